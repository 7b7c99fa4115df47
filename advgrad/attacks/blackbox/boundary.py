"""The Boundary Attack (Brendel, Rauber & Bethge, ICLR 2018, arXiv:1712.04248): a decision-based L2
minimal-norm attack that walks along the decision boundary towards x by rejection sampling.

From an adversarial start x̃ (uniform noise blended back towards x, ``_start``), each step proposes, per
sample, with δ = x̃ − x:

1. an orthogonal ("spherical") step: η ~ N(0, I) made orthogonal to δ and scaled to σ·‖δ‖, then
   x_s = clip(x + (δ + η)/√(1 + σ²)), nearly on the sphere of radius ‖δ‖ around x;
2. a step towards x: x_c = clip(x_s + λ·(x − x_s)) with λ such that ‖x_c − x‖ ≈ (1 − ε_src)·‖δ‖
   (corrected for x_s missing the sphere).

x_c replaces x̃ when it is adversarial and closer. Every 10th step also asks whether x_s is adversarial, and
the sizes adapt to the success rates, as the authors' implementation (Foolbox 3) does: over the last 100
such checks, a spherical success rate above 0.5 multiplies σ and ε_src by 1.5, below 0.2 divides them; over
the last 30, a rate of accepted steps above 0.25 multiplies ε_src by 1.5, below 0.1 divides it (the window
is then emptied). A sample stops at its budget, once ε_src < 10⁻⁷ (converged), or (with ``eps``) once
‖x̃ − x‖ ≤ ε.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor, nn

from advgrad import _validate
from advgrad.attacks._checks import EpsSpec
from advgrad.attacks.blackbox._oracle import Oracle, Problem, draw, minimal, problem, within
from advgrad.attacks.blackbox._start import noise_start
from advgrad.attacks.result import AttackResult
from advgrad.models.query import QueryModel
from advgrad.norms import NormSpec

ADAPT = 1.5       # step-size factor
CONVERGED = 1e-7  # source step below which a sample has converged
CHECK_EVERY = 10  # steps between the checks of the spherical candidate
WINDOWS = (100, 30)  # checks over which the spherical and the step success rates are taken


def _proposals(p: Problem, x: Tensor, adv: Tensor, sph: Tensor, src: Tensor) -> tuple[Tensor, Tensor]:
    """(candidate, spherical candidate), both (n, D), for the points adv (n, D) of the samples x."""
    delta = adv - x
    norm = torch.linalg.vector_norm(delta, dim=1, keepdim=True)           # (n, 1)
    unit = delta / norm
    eta = draw(p, tuple(x.shape), "normal")
    eta = eta - (eta * unit).sum(1, keepdim=True) * unit                  # orthogonal to δ
    eta = eta * (sph[:, None] * norm / torch.linalg.vector_norm(eta, dim=1, keepdim=True))
    spherical = (x + (delta + eta) / torch.sqrt(1 + sph[:, None] ** 2)).clamp(p.lo, p.hi)
    back = x - spherical
    back_norm = torch.linalg.vector_norm(back, dim=1, keepdim=True)
    length = (src[:, None] * norm + back_norm - norm).clamp_min(0) / back_norm
    return (spherical + length * back).clamp(p.lo, p.hi), spherical


def _adapt(stats: Tensor, sph: Tensor, src: Tensor, spherical: bool) -> None:
    """Adapt the sizes (in place) of the samples whose window ``stats`` (W, n) is full, and empty it."""
    full = ~stats.isnan().any(0)
    rate = stats.nan_to_num(0).sum(0) / stats.shape[0]
    high, low = (0.5, 0.2) if spherical else (0.25, 0.1)
    up, down = full & (rate > high), full & (rate < low)
    for size in (sph, src) if spherical else (src,):
        size[up] *= ADAPT
        size[down] /= ADAPT
    stats[:, up | down] = math.nan


def _search(p: Problem, oracle: Oracle, answered: Tensor, spherical_step: float,
            source_step: float) -> tuple[Tensor, Tensor]:
    """(points (n, D), found (n,)) for the samples of ``oracle``."""
    x = p.flat[oracle.idx]
    n = len(x)
    adv, found = noise_start(oracle, x, answered)
    sph = torch.full((n,), spherical_step, dtype=x.dtype, device=x.device)
    src = torch.full_like(sph, source_step)
    stats = [torch.full((w, n), math.nan, dtype=x.dtype, device=x.device) for w in WINDOWS]
    checks = 0
    done = ~found
    for t in itertools.count(1):
        check = t % CHECK_EVERY == 0
        done |= (oracle.left() < 1 + check) | (src < CONVERGED) | within(p, p.norm.measure(adv - x), oracle.idx)
        live = (~done).nonzero().squeeze(1)
        if len(live) == 0:
            break
        cand, spherical = _proposals(p, x[live], adv[live], sph[live], src[live])
        hit = oracle.adversarial(cand, live)
        closer = torch.linalg.vector_norm(cand - x[live], dim=1) < torch.linalg.vector_norm(adv[live] - x[live], dim=1)
        adv[live[hit & closer]] = cand[hit & closer]
        if check:
            for window, outcome in zip(stats, (oracle.adversarial(spherical, live), hit)):
                window[checks % len(window), live] = outcome.to(x.dtype)
            checks += 1
            _adapt(stats[0], sph, src, spherical=True)
            _adapt(stats[1], sph, src, spherical=False)
    return adv, found


def boundary(model: nn.Module | QueryModel, x: Tensor, y: Tensor, eps: EpsSpec | None = None, *,
             norm: NormSpec = 2, queries: int = 25_000, spherical_step: float = 1e-2, source_step: float = 1e-2,
             targeted: bool = False, bounds: tuple[float, float] = (0.0, 1.0),
             generator: torch.Generator | None = None, chunk_size: int | None = None) -> AttackResult:
    """The Boundary Attack (Brendel et al. 2018): the smallest L2 perturbation found from top-1 labels only.

    See the module docstring. Decisions only: scores are read at x and at the example found, for ``logits``
    and ``loss`` (one-hot rows from a labels-only model).

    Parameters
    ----------
    model, x, y
        An nn.Module or QueryModel (only queried); inputs (N, ...) in ``bounds``; labels (targets) (N,).
    eps : float or Tensor, optional
        With a radius, success also needs ‖δ‖₂ ≤ ε, and a sample stops once it is reached.
    norm : "2"
        The Boundary Attack is an L2 attack.
    queries : int
        Queries per sample at most, all included (the one at x and the one at the example found): about one
        per step, 1.1 with the spherical checks.
    spherical_step, source_step : float
        The initial σ and ε_src (relative to ‖δ‖), 0.01 as Foolbox's.
    targeted, bounds, generator, chunk_size
        As every attack; ``chunk_size`` rows per query (default 1024), speed only.

    Returns
    -------
    AttackResult
        With ``distance`` (‖δ‖₂ where success, inf elsewhere) and ``queries`` (N,).

    Raises
    ------
    ValueError
        A bad argument (one line naming it); a norm other than 2.

    Examples
    --------
    >>> import torch
    >>> from advgrad import boundary
    >>> _ = torch.manual_seed(0)  # the model's initial weights
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> x = torch.rand(4, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    >>> res = boundary(model, x, model(x).argmax(1), queries=300, generator=torch.Generator().manual_seed(0))
    >>> bool(res.success.all()), int(res.queries.max()) <= 300
    (True, True)

    References
    ----------
    Wieland Brendel, Jonas Rauber, Matthias Bethge, "Decision-Based Adversarial Attacks: Reliable Attacks
    Against Black-Box Machine Learning Models", ICLR 2018, arXiv:1712.04248.
    """
    p = problem(model, x, y, eps, name="the Boundary Attack", norm=norm, norms=("2",), targeted=targeted,
                bounds=bounds, queries=queries, generator=generator, chunk_size=chunk_size)
    _validate.number("spherical_step", spherical_step, minimum=0.0, strict=True)
    _validate.number("source_step", source_step, minimum=0.0, strict=True, below=1.0)
    return minimal(p, lambda oracle, answered: _search(p, oracle, answered, float(spherical_step),
                                                       float(source_step)))
