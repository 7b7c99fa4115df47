"""RayS (Chen & Gu, KDD 2020, arXiv:2006.12792): a hard-label L∞ attack that searches rays, not gradients.

Minimal L∞ adversarial distance as a search over directions: for a sign vector s ∈ {−1, 1}^D the ray
x + r·s (clipped to the bounds) is adversarial beyond some radius g(s), and RayS minimises g over s by
flipping the signs of blocks of coordinates: the whole vector, then its halves, quarters, ... (block k of
level ℓ: coordinates [k·⌈D/2^ℓ⌉, (k + 1)·⌈D/2^ℓ⌉)), single coordinates once blocks reach one, and on again.
A flip is kept when its ray is adversarial at the best radius so far r* (one query decides: a ray that is
not cannot improve r*), its radius then bisected on [0, min(r*, hi − lo)] to 10⁻³/√D (the reference's
tolerance of 10⁻³ along the unit-L2 ray). Starting from s = (1, …, 1) and r* = ∞, where the ray ends at a
corner of the box. Nothing is random.

Each sample stops when its budget is spent or (with ``eps``) once its distance is ≤ ε.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from advgrad.attacks._checks import EpsSpec
from advgrad.attacks.blackbox._oracle import Oracle, Problem, minimal, problem, within
from advgrad.attacks.result import AttackResult
from advgrad.models.query import QueryModel
from advgrad.norms import NormSpec


def blocks(d: int) -> list[tuple[int, int]]:
    """The blocks of one pass through the levels, in order, down to single coordinates:
    d = 5 → (0, 5), (0, 3), (3, 5), (0, 2), (2, 4), (4, 5), (0, 1), ..., (4, 5)."""
    out, level = [], 0
    while True:
        size = math.ceil(d / 2 ** level)
        out += [(a, min(d, a + size)) for a in range(0, d, size)]
        if size == 1:
            return out
        level += 1


def _ray(p: Problem, x: Tensor, s: Tensor, r: Tensor) -> Tensor:
    """clip(x + r·s) (n, D) for radii r (n,) (∞ reaches the corner of the box that s points to)."""
    return (x + r[:, None].to(x.dtype) * s).clamp(p.lo, p.hi)


def _try(oracle: Oracle, x: Tensor, s: Tensor, local: Tensor, best: Tensor, tol: float) -> Tensor:
    """The radius (n,) beyond which each ray x + r·s is adversarial, for the rays adversarial at the best
    radii so far (others: inf); bisected on [0, min(best, hi − lo)] to tol while the budget lasts."""
    p = oracle.p
    high = torch.full_like(best, math.inf)
    hit = oracle.adversarial(_ray(p, x, s, best), local)
    high[hit] = best[hit].clamp(max=p.hi - p.lo)
    low = torch.zeros_like(best)
    while True:
        go = (hit & (high - low > tol) & (oracle.left(local) > 0)).nonzero().squeeze(1)
        if len(go) == 0:
            return high
        mid = (low[go] + high[go]) / 2
        adv = oracle.adversarial(_ray(p, x[go], s[go], mid), local[go])
        high[go[adv]], low[go[~adv]] = mid[adv], mid[~adv]


def _search(p: Problem, oracle: Oracle) -> tuple[Tensor, Tensor]:
    """(points (n, D), found (n,)) for the samples of ``oracle``."""
    x = p.flat[oracle.idx]
    n, d = x.shape
    tol = 1e-3 / math.sqrt(d)
    s = torch.ones_like(x)                                               # (n, D) the best signs
    best = torch.full((n,), math.inf, dtype=torch.float64, device=x.device)  # r*: their radius
    adv = x.clone()
    schedule = blocks(d)
    first_single = next(i for i, (a, b) in enumerate(schedule) if b - a == 1)
    k = 0
    while True:
        dist = p.norm.measure(adv - x)
        live = ((oracle.left() > 0) & ~(within(p, dist, oracle.idx) & best.isfinite())).nonzero().squeeze(1)
        if len(live) == 0:
            break
        a, b = schedule[k]
        k = k + 1 if k + 1 < len(schedule) else first_single  # single coordinates, round and round
        trial = s[live].clone()
        trial[:, a:b] *= -1
        radius = _try(oracle, x[live], trial, live, best[live], tol)
        better = radius < best[live]
        won = live[better]
        best[won], s[won] = radius[better], trial[better]
        adv[won] = _ray(p, x[won], trial[better], radius[better])
    return adv, best.isfinite()


def rays(model: nn.Module | QueryModel, x: Tensor, y: Tensor, eps: EpsSpec | None = None, *,
         norm: NormSpec = "inf", queries: int = 10_000, targeted: bool = False,
         bounds: tuple[float, float] = (0.0, 1.0), chunk_size: int | None = None) -> AttackResult:
    """RayS (Chen & Gu 2020): the smallest L∞ perturbation found by a hard-label search over sign rays.

    See the module docstring. Decisions only: scores are read at x and at the example found, for ``logits``
    and ``loss`` (one-hot rows from a labels-only model).

    Parameters
    ----------
    model, x, y
        An nn.Module or QueryModel (only queried); inputs (N, ...) in ``bounds``; labels (targets) (N,).
    eps : float or Tensor, optional
        With a radius, success also needs ‖δ‖∞ ≤ ε, and a sample stops once it is reached.
    norm : "inf"
        RayS is an L∞ attack.
    queries : int
        Queries per sample at most, all included (the one at x and the one at the example found).
    targeted, bounds, chunk_size
        As every attack; ``chunk_size`` rows per query (default 1024), speed only. RayS draws nothing at
        random and takes no generator.

    Returns
    -------
    AttackResult
        With ``distance`` (‖δ‖∞ where success, inf elsewhere) and ``queries`` (N,).

    Raises
    ------
    ValueError
        For a bad argument (one line naming it), or a norm other than inf.

    Examples
    --------
    >>> import torch
    >>> from advgrad import rays
    >>> _ = torch.manual_seed(0)  # the model's initial weights
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> x = torch.rand(4, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    >>> res = rays(model, x, model(x).argmax(1), queries=500)
    >>> bool(res.success.all()), bool((res.distance <= 1).all())
    (True, True)

    References
    ----------
    Jinghui Chen, Quanquan Gu, "RayS: A Ray Searching Method for Hard-label Adversarial Attack", KDD 2020,
    arXiv:2006.12792.
    """
    p = problem(model, x, y, eps, name="RayS", norm=norm, norms=("inf",), targeted=targeted, bounds=bounds,
                queries=queries, generator=None, chunk_size=chunk_size)
    return minimal(p, lambda oracle, answered: _search(p, oracle))
