"""Gradient-free attacks: what an adversary without ∂J/∂X tries. The sanity report uses them to flag
gradient masking (a defence that only hides its gradients falls to them where PGD cannot).

- ``sign_noise``: x + ε·s, s a uniformly random sign per coordinate (the L∞ corner tried first).
- ``square_search``: a simplified score-based Square Attack (Andriushchenko et al. 2020).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from advgrad._runtime import frozen_eval
from advgrad.losses import margin


@torch.no_grad()
def sign_noise(x: Tensor, eps: float, *, bounds: tuple[float, float] = (0.0, 1.0),
               generator: torch.Generator | None = None) -> Tensor:
    """x + ε·s with s a uniformly random sign per coordinate, clipped to the bounds. No model is queried."""
    u = torch.rand(x.shape, generator=generator, device=generator.device if generator else x.device)
    return (x + eps * torch.where(u.to(x.device) < 0.5, -1.0, 1.0).to(x.dtype)).clamp(*bounds)


def _p_selection(p_init: float, it: int, queries: int) -> float:
    """Square Attack's schedule for the fraction of pixels changed per query, rescaled to ``queries``."""
    t = int(it / queries * 10000)
    for k, step in enumerate((10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)):
        if t <= step:
            return p_init / 2 ** k
    return p_init / 2 ** 9


@torch.no_grad()
def square_search(model: nn.Module, x: Tensor, y: Tensor, eps: float, *, queries: int = 300, p_init: float = 0.5,
                  bounds: tuple[float, float] = (0.0, 1.0), generator: torch.Generator | None = None) -> Tensor:
    """A score-based black-box L∞ attack that never looks at a gradient: a simplified Square Attack
    (Andriushchenko et al. 2020). Start from vertical stripes of ±ε; each query redraws the signs in a
    random square window (its area shrinking on Square Attack's schedule) and keeps the change wherever it
    raises the margin max_{j≠y} z_j − z_y. Samples stop once fooled. Returns x_adv (N, ...) in the ε-ball
    and the bounds. Works on (N, C, H, W) images; other shapes are searched as (N, 1, 1, D)."""
    lo, hi = bounds
    n = len(x)
    shape = x.shape
    xs = x.detach().reshape(n, *(shape[1:] if x.ndim == 4 else (1, 1, -1)))
    _, c, h, w = xs.shape
    g = generator

    def rand(*size: int) -> Tensor:
        return torch.rand(size, generator=g, device=g.device if g else x.device).to(x.device)

    def signs(*size: int) -> Tensor:
        return torch.where(rand(*size) < 0.5, -eps, eps).to(x.dtype)

    with frozen_eval(model):
        best = (xs + signs(n, c, 1, w)).clamp(lo, hi)  # stripes: one sign per column and channel
        best_margin = margin(model(best.view(shape)), y)
        for it in range(queries):
            active = (best_margin <= 0).nonzero().squeeze(1)
            if len(active) == 0:
                break
            p = _p_selection(p_init, it, queries)
            if h > 1:  # a square window covering a share p of the image
                s_h = s_w = max(1, min(h, w, int(round(math.sqrt(p * h * w)))))
            else:  # flat inputs: a run of p·D coordinates
                s_h, s_w = 1, max(1, int(round(p * w)))
            r0 = int(rand(1).item() * (h - s_h + 1))
            c0 = int(rand(1).item() * (w - s_w + 1))
            cand = best[active].clone()
            window = (slice(None), slice(None), slice(r0, r0 + s_h), slice(c0, c0 + s_w))
            cand[window] = (xs[active][window] + signs(len(active), c, 1, 1)).clamp(lo, hi)
            m = margin(model(cand.view(-1, *shape[1:])), y[active])
            better = m > best_margin[active]
            best[active[better]] = cand[better]
            best_margin[active[better]] = m[better]
    return best.view(shape)
