"""HopSkipJump's three moves, batched over the samples still searching (each sample charged its own queries):
bisection to the boundary, the Monte-Carlo estimate of the boundary's normal, and the geometric step search.

Shapes: x, points (n, D) flattened; ``local`` (n,) the samples' numbers in the oracle.
"""

from __future__ import annotations

import torch
from torch import Tensor

from advgrad.attacks.blackbox._oracle import ROWS, Oracle, draw

MAX_HALVINGS = 64   # step-size search: 2⁻⁶⁴ of a distance is below any float's resolution
MAX_BISECTIONS = 64


def project(x: Tensor, adv: Tensor, alpha: Tensor, linf: bool) -> Tensor:
    """The point of the segment (L2: (1 − α)·x + α·adv) or of the box (L∞: adv clipped to x ± α) given by α (n,)."""
    a = alpha.to(x.dtype)[:, None]
    if linf:
        return torch.minimum(torch.maximum(adv, x - a), x + a)
    return (1 - a) * x + a * adv


def bisect(oracle: Oracle, x: Tensor, adv: Tensor, local: Tensor, theta: float, linf: bool) -> Tensor:
    """The adversarial point nearest x found by bisection between x and adv (both (n, D); adv adversarial):
    L2 on the blend weight α ∈ [0, 1] to θ; L∞ on the radius α ∈ [0, ‖adv − x‖∞] to min(θ·‖adv − x‖∞, θ)
    (Chen et al.'s thresholds). A sample whose budget ends keeps the last adversarial α."""
    if linf:
        high = (adv - x).abs().amax(1).to(torch.float64)
        tol = torch.clamp(high * theta, max=theta)
    else:
        high = torch.ones(len(x), dtype=torch.float64, device=x.device)
        tol = torch.full_like(high, theta)
    low = torch.zeros_like(high)
    for _ in range(MAX_BISECTIONS):
        go = ((high - low > tol) & (oracle.left(local) > 0)).nonzero().squeeze(1)
        if len(go) == 0:
            break
        mid = (low[go] + high[go]) / 2
        hit = oracle.adversarial(project(x[go], adv[go], mid, linf), local[go])
        high[go[hit]], low[go[~hit]] = mid[hit], mid[~hit]
    return project(x, adv, high, linf)


def estimate(oracle: Oracle, at: Tensor, local: Tensor, m: int, delta: Tensor, linf: bool) -> Tensor:
    """The unit estimate (n, D) of the boundary's normal at ``at`` (n, D), from m random directions u_b per
    sample (N(0, I) for L2, U[−1, 1]^D for L∞, scaled to unit L2 norm): with φ_b = ±1 the decision at
    clip(at + δ·u_b) and u_b replaced by the step actually taken over δ,
        ĝ = 1/m Σ (φ_b − φ̄)·u_b          (φ̄ = the mean of φ; no baseline when every φ_b agrees)
    (Chen et al. eq. 16). Directions are drawn one (n, D) block per b and summed in groups whose size depends
    on n only, so ``chunk_size`` (how many rows the model answers at a time) changes no bit."""
    p = oracle.p
    n, d = at.shape
    s1, s0 = torch.zeros_like(at), torch.zeros_like(at)
    votes = torch.zeros(n, dtype=at.dtype, device=at.device)
    per_query = max(16, ROWS // n)  # directions per request
    dl = delta.to(at.dtype)[:, None]
    for b0 in range(0, m, per_query):
        k = min(per_query, m - b0)
        u = torch.stack([draw(p, (n, d), "uniform" if linf else "normal") for _ in range(k)])  # (k, n, D)
        if linf:
            u = u * 2 - 1
        u = u / torch.linalg.vector_norm(u, dim=2, keepdim=True)
        probes = (at + dl * u).clamp(p.lo, p.hi)
        u = (probes - at) / dl
        phi = oracle.adversarial(probes.view(k * n, d), local.repeat(k)).view(k, n).to(at.dtype) * 2 - 1
        s1 += (phi[:, :, None] * u).sum(0)
        s0 += u.sum(0)
        votes += phi.sum(0)
    mean = votes / m
    grad = torch.where((mean.abs() == 1)[:, None], s1, s1 - mean[:, None] * s0) / m
    return grad / torch.linalg.vector_norm(grad, dim=1, keepdim=True).clamp_min(1e-30)


def step(oracle: Oracle, at: Tensor, update: Tensor, local: Tensor, size: Tensor) -> tuple[Tensor, Tensor]:
    """Geometric step search: from ``size`` (n,), halve until clip(at + size·update) is adversarial.
    (new points (n, D), found (n,) bool): a sample whose budget ends first keeps ``at`` (found False)."""
    p = oracle.p
    size = size.clone()
    new, ok = at.clone(), torch.zeros(len(at), dtype=torch.bool, device=at.device)
    for _ in range(MAX_HALVINGS):
        go = (~ok & (oracle.left(local) > 0)).nonzero().squeeze(1)
        if len(go) == 0:
            break
        cand = (at[go] + size[go, None] * update[go]).clamp(p.lo, p.hi)
        hit = oracle.adversarial(cand, local[go])
        new[go[hit]], ok[go[hit]] = cand[hit], True
        size[go[~hit]] /= 2
    return new, ok
