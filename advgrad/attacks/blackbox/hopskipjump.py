"""HopSkipJump (Chen, Jordan & Wainwright, IEEE S&P 2020, arXiv:1904.02144): a decision-based minimal-norm
attack under L2 or L∞ that needs the model's top-1 label only.

From an adversarial start (uniform noise blended back towards x, ``_start``) projected onto the boundary by
bisection, each iteration t = 1, 2, ...:

1. estimates the boundary's normal at the current boundary point x_t from m_t = min(samples·√t,
   max_samples) decisions at x_t + δ_t·u (``_hsj_steps.estimate``), δ_1 = 0.1·(hi − lo) and after that
   δ_t = γ/d·‖x̃_{t−1} − x‖ (x̃ the point before its bisection, d = D the input size);
2. steps along it (L2: the unit estimate; L∞: its sign) from ξ_t = ‖x_t − x‖/√t, halving ξ until the point
   is adversarial (geometric progression);
3. bisects between x and that point back to the boundary, to θ = γ/d^{3/2} (L2, on the blend weight) or
   γ/d² (L∞, on the radius, relative).

Each sample stops when its next estimate would not fit in its budget, when ``steps`` iterations are done,
or (with ``eps``) once ‖x_t − x‖ ≤ ε. Every iterate is adversarial, so the last one is the answer.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from advgrad import _validate
from advgrad.attacks._checks import EpsSpec
from advgrad.attacks.blackbox._hsj_steps import bisect, estimate, step
from advgrad.attacks.blackbox._oracle import Oracle, Problem, minimal, problem, within
from advgrad.attacks.blackbox._start import noise_start
from advgrad.attacks.result import AttackResult
from advgrad.models.query import QueryModel
from advgrad.norms import NormSpec


def _search(p: Problem, oracle: Oracle, answered: Tensor, steps: int, samples: int, max_samples: int,
            gamma: float) -> tuple[Tensor, Tensor]:
    """(points (n, D), found (n,)) for the samples of ``oracle``."""
    x = p.flat[oracle.idx]
    n, d = x.shape
    linf = p.norm.name == "inf"
    theta = gamma / (d * d) if linf else gamma / d ** 1.5
    local = torch.arange(n, device=x.device)
    cur, found = noise_start(oracle, x, answered)
    live = found.nonzero().squeeze(1)
    cur[live] = bisect(oracle, x[live], cur[live], live, theta, linf)
    dist = p.norm.measure(cur - x)
    before = dist.clone()  # ‖x̃ − x‖: the last step's point before its bisection
    done = ~found
    for t in range(1, steps + 1):
        m = min(int(samples * math.sqrt(t)), max_samples)
        done |= (oracle.left(local) < m) | within(p, dist, oracle.idx)
        live = (~done).nonzero().squeeze(1)
        if len(live) == 0:
            break
        delta = torch.full_like(dist[live], 0.1 * (p.hi - p.lo)) if t == 1 else gamma / d * before[live]
        grad = estimate(oracle, cur[live], live, m, delta, linf)
        new, ok = step(oracle, cur[live], grad.sign() if linf else grad, live, dist[live] / math.sqrt(t))
        done[live[~ok]] = True  # budget spent in the step search: keep the last boundary point
        live, new = live[ok], new[ok]
        before[live] = p.norm.measure(new - x[live])
        cur[live] = bisect(oracle, x[live], new, live, theta, linf)
        dist[live] = p.norm.measure(cur[live] - x[live])
    return cur, found


def hopskipjump(model: nn.Module | QueryModel, x: Tensor, y: Tensor, eps: EpsSpec | None = None, *,
                norm: NormSpec = 2, steps: int = 64, queries: int = 10_000, samples: int = 100,
                max_samples: int = 10_000, gamma: float = 1.0, targeted: bool = False,
                bounds: tuple[float, float] = (0.0, 1.0), generator: torch.Generator | None = None,
                chunk_size: int | None = None) -> AttackResult:
    """HopSkipJump (Chen et al. 2020): the smallest L2 or L∞ perturbation found from top-1 labels only.

    See the module docstring. Decisions only: scores are read at x and at the example found, for ``logits``
    and ``loss`` (one-hot rows from a labels-only model).

    Parameters
    ----------
    model, x, y
        An nn.Module or QueryModel (only queried); inputs (N, ...) in ``bounds``; labels (targets) (N,).
    eps : float or Tensor, optional
        With a radius, success also needs ‖δ‖ ≤ ε, and a sample stops searching once it is reached.
    norm : "2" or "inf"
    steps, queries : int
        Iterations at most; queries per sample at most, all included (at x and at the example found).
    samples, max_samples : int
        The gradient estimate at iteration t uses min(samples·√t, max_samples) queries.
    gamma : float
        Sets the bisection thresholds and the probe size δ (Chen et al.'s γ; 1.0 as theirs and Foolbox's).
    targeted, bounds, generator, chunk_size
        As every attack; ``chunk_size`` rows per query (default 1024), speed only.

    Returns
    -------
    AttackResult
        With ``distance`` (‖δ‖ where success, inf elsewhere) and ``queries`` (N,).

    Raises
    ------
    ValueError
        A bad argument (one line naming it); a norm other than 2 and inf.

    Examples
    --------
    >>> import torch
    >>> from advgrad import hopskipjump
    >>> _ = torch.manual_seed(0)  # the model's initial weights
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> x = torch.rand(4, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    >>> res = hopskipjump(model, x, model(x).argmax(1), steps=5, queries=2000,
    ...                   generator=torch.Generator().manual_seed(0))
    >>> bool(res.success.all()), bool((res.queries <= 2000).all())
    (True, True)

    References
    ----------
    Jianbo Chen, Michael I. Jordan, Martin J. Wainwright, "HopSkipJumpAttack: A Query-Efficient
    Decision-Based Attack", IEEE Symposium on Security and Privacy 2020, arXiv:1904.02144.
    """
    p = problem(model, x, y, eps, name="HopSkipJump", norm=norm, norms=("2", "inf"), targeted=targeted,
                bounds=bounds, queries=queries, generator=generator, chunk_size=chunk_size)
    _validate.count("steps", steps)
    _validate.count("samples", samples)
    _validate.count("max_samples", max_samples, samples, phrase=f"an integer ≥ samples ({samples})")
    _validate.number("gamma", gamma, minimum=0.0, strict=True)
    return minimal(p, lambda oracle, answered: _search(p, oracle, answered, steps, samples, max_samples,
                                                       float(gamma)))
