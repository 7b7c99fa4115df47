"""Where the decision-based searches start: an adversarial point found by uniform noise, blended back towards x.

Each sample draws uniform points of the bounds' box until the model calls one adversarial (at most
``TRIALS`` draws): Chen et al.'s HopSkipJump initialisation; Foolbox starts the Boundary Attack the same way.
Random images tend to fall in one class, so a sample that no draw fools starts instead from the nearest
point of its batch (in the attack's norm) that the model, asked at x, put in another class (targeted: in
the target class), as Chen et al. start their targeted attacks from an image of the target class; that
costs no query. The blend (1 − α)·x + α·u is then bisected on α ∈ [0, 1] to ``TOLERANCE``. Samples whose
budget ends first, or that nothing fools, have no start (``found`` False).
"""

from __future__ import annotations

import torch
from torch import Tensor

from advgrad.attacks.blackbox._oracle import Oracle, draw

TRIALS = 100      # uniform draws per sample, at most
TOLERANCE = 1e-3  # on the blend weight α


def noise_start(oracle: Oracle, x: Tensor, answered: Tensor) -> tuple[Tensor, Tensor]:
    """(start (n, D), found (n,) bool) for the samples x (n, D) of ``oracle``; start = x where not found.
    ``answered`` (N,): the model's labels at the whole batch's x."""
    p = oracle.p
    n = len(x)
    far, found = x.clone(), torch.zeros(n, dtype=torch.bool, device=x.device)
    for _ in range(TRIALS):
        live = (~found & (oracle.left() > 0)).nonzero().squeeze(1)
        if len(live) == 0:
            break
        u = p.lo + (p.hi - p.lo) * draw(p, (len(live), x.shape[1]))  # (m, D) uniform in the box
        adv = oracle.adversarial(u, live)
        far[live[adv]], found[live[adv]] = u[adv], True
    for i in (~found).nonzero().squeeze(1).tolist():
        other = (answered == oracle.y[i]) if p.targeted else (answered != oracle.y[i])  # (N,)
        if bool(other.any()):
            pool = p.flat[other]
            far[i], found[i] = pool[p.norm.measure(pool - x[i]).argmin()], True
    return blend_bisect(oracle, x, far, found), found


def blend_bisect(oracle: Oracle, x: Tensor, far: Tensor, found: Tensor) -> Tensor:
    """The adversarial blend (1 − α)·x + α·far with α bisected to ``TOLERANCE`` (n, D); x where not found."""
    low = torch.zeros(len(x), dtype=torch.float64, device=x.device)
    high = torch.ones_like(low)
    while True:
        go = (found & (high - low > TOLERANCE) & (oracle.left() > 0)).nonzero().squeeze(1)
        if len(go) == 0:
            break
        mid = (low[go] + high[go]) / 2
        a = mid.to(x.dtype)[:, None]
        adv = oracle.adversarial((1 - a) * x[go] + a * far[go], go)
        high[go[adv]], low[go[~adv]] = mid[adv], mid[~adv]
    a = high.to(x.dtype)[:, None]
    return torch.where(found[:, None], (1 - a) * x + a * far, x)
