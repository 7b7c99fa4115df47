"""The Square Attack's two threat models, as AutoAttack's reference computes them (``advgrad.attacks.square``
runs the search): the L∞ and L2 starts, one query of each, and the random draws and patterns they use. Every
float operation and every draw is the reference's, in its order (see ``square``'s module docstring)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from itertools import product

import numpy as np
import torch
from torch import Tensor

from advgrad.attacks._chunks import slices
from advgrad.norms import l1_box_correction

# The L1 search projects onto the ball of radius ε·(1 − 10⁻⁶), as the reference does; storing x + δ in
# float32 can still leave it outside by up to D half-ulps (tests/attacks/test_square_l1.py).
L1_SHRINK = 1.0 - 1e-6


def _index(u: float, span: int) -> int:
    """The reference's random position ⌊span·u⌋ in {0, …, span − 1} (span itself is never drawn), with the
    product rounded to float32 as torch rounds it: a product that rounds up to an integer counts."""
    return int(np.float32(span) * np.float32(u))


def _signs(u: Tensor) -> Tensor:
    """±1 from uniforms, as the reference draws them: sign(2u − 1) (0 when u = 1/2 exactly)."""
    return torch.sign(2 * u - 1)


@cache
def _bump(rows: int, cols: int, norm: str = "2") -> Tensor:
    """(rows, cols) float32: at Chebyshev distance d from the centre (rows//2, cols//2), Σ_{k=d}^{K−1} 1/(k+1)²
    (L2; 1/(k+1)⁴ for L1) summed in float32 in that order (K = max(rows, cols)//2 + 1), then scaled to unit
    L2 (L1) norm."""
    k_max = max(rows, cols) // 2 + 1
    power = 4 if norm == "1" else 2
    terms = [np.float32(1) / np.float32((k + 1) ** power) for k in range(k_max)]
    table = []
    for d in range(k_max):  # the reference adds the terms square by square, from the innermost out
        acc = np.float32(0)
        for term in terms[d:]:
            acc = np.float32(acc + term)
        table.append(acc)
    i = (torch.arange(rows) - rows // 2).abs()[:, None]
    j = (torch.arange(cols) - cols // 2).abs()[None, :]
    bump = torch.tensor(table, dtype=torch.float32)[torch.maximum(i, j)]  # (rows, cols)
    return _unit(bump, norm)


def _unit(t: Tensor, norm: str) -> Tensor:
    """A (rows, cols) pattern scaled to unit L2 or L1 norm, with the reference's sum."""
    return t / (t.abs().sum(dim=(0, 1), keepdim=True) if norm == "1" else (t ** 2).sum(dim=(0, 1), keepdim=True).sqrt())


@cache
def _eta(side: int, transpose: bool = False, norm: str = "2") -> Tensor:
    """Square Attack's window pattern (side, side), unit L2 (L1) norm: the upper ⌊side/2⌋ rows a centred
    bump, the lower rows minus one (Andriushchenko et al., Alg. 3); or its transpose, stored contiguous:
    a proposal built from it must be laid out like the reference's, whose window sums follow memory order."""
    if transpose:
        return _eta(side, False, norm).t().contiguous()
    return _unit(torch.cat([_bump(side // 2, side, norm), -_bump(side - side // 2, side, norm)]), norm)


def _l2_norm(t: Tensor) -> Tensor:
    """‖tᵢ‖₂ per sample as (n, 1, 1, 1): the reference's sum of squares over the flattened sample."""
    return (t ** 2).view(len(t), -1).sum(-1).sqrt().view(-1, 1, 1, 1)


def _margin(logits: Tensor, y: Tensor) -> Tensor:
    """z_y − max_{j≠y} z_j per sample (the reference's sign: > 0 while classified correctly)."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    return true - logits.scatter(1, y[:, None], float("-inf")).amax(dim=1)


def _forward(model: Callable[[Tensor], Tensor], x: Tensor, chunk: int) -> Tensor:
    """Logits (n, K), ``chunk`` samples per forward pass (one pass when n ≤ chunk)."""
    if len(x) <= chunk:
        return model(x)
    return torch.cat([model(x[part]) for part in slices(len(x), chunk)])


def _rand(g: torch.Generator, n: int, like: Tensor) -> Tensor:
    """n float32 uniforms from the private CPU generator (the reference's torch.rand), on x's device."""
    return torch.rand(n, generator=g, dtype=torch.float32).to(device=like.device, dtype=like.dtype)


# --- the two threat models: start and one query ---------------------------------------------------

def _start_linf(x: Tensor, eps: float, lo: float, hi: float, g: torch.Generator) -> Tensor:
    """Vertical stripes: x + ε·σ clipped, one sign σ per (sample, channel, column). (n, c, h, w)"""
    n, c, _, w = x.shape
    return (x + eps * _signs(_rand(g, n * c * w, x)).view(n, c, 1, w)).clamp(lo, hi)


def _start_l2(x: Tensor, eps: float, lo: float, hi: float, g: torch.Generator, norm: str = "2") -> Tensor:
    """Tiles of side s = ⌊h/5⌋ from ((h − 5s)//2, same) on, each ±η_s (``_eta``, transposed at random) per
    (sample, channel); δ scaled to ‖δ‖₂ = ε, then clipped (L2), or projected onto the box ∩ L1 ball of
    radius ε·(1 − 10⁻⁶) (L1, with the L1 pattern). (n, c, h, w)"""
    n, c, h, w = x.shape
    s = h // 5
    first = (h - 5 * s) // 2
    tiles = list(product(range(first, first + h // s * s, s), range(first, first + w // s * s, s)))
    draws = torch.rand((len(tiles), 1 + n * c), generator=g)  # per tile: transpose?, then the signs
    delta = torch.zeros_like(x)
    for (r, q), u in zip(tiles, draws):
        pattern = _eta(s, bool(u[0] > 0.5), norm).to(x)
        tile = pattern * _signs(u[1:].to(x)).view(n, c, 1, 1)  # (n, c, s, s)
        # A tile past the border is cropped: the reference skips one wholly outside (its draws are still
        # made) and fails on one partly outside, which happens only for some h < 28 or w ≠ h.
        delta[:, :, r:r + s, q:q + s] += tile[:, :, :h - r, :w - q]
    if norm == "1":
        return x + delta + l1_box_correction(x, delta, eps * L1_SHRINK, (lo, hi))
    return (x + delta / (_l2_norm(delta) + 1e-12) * eps).clamp(lo, hi)


def _query_linf(model: Callable[[Tensor], Tensor], cur: Tensor, y: Tensor, m: Tensor, box: Tensor, eps: float, s: int,
                u: Tensor, chunk: int) -> Tensor:
    """One L∞ query on the live points, in place in ``cur`` (n, c, h, w): the window at (u₀, u₁) moves by
    ±2ε (sign per channel from u₂…) into ``box`` (n, 2, c, h, w: lower, upper); kept where the margin
    drops below ``m``, restored elsewhere. Returns the new margins (n,).

    Only the window is touched: outside it the reference's x_best + 0, projected, is x_best bit for bit
    (x_best already lies in the box), so the forward pass sees the reference's x_new."""
    _, c, h, w = cur.shape
    vh, vw = (_index(v, span) for v, span in zip(u[:2].tolist(), (h - s, w - s)))
    step = (2.0 * eps) * _signs(u[2:].to(cur)).view(c, 1, 1)
    rows, cols = slice(vh, vh + s), slice(vw, vw + s)
    win = cur[:, :, rows, cols]  # (n, c, s, s) view into cur
    old = win.clone()
    # clip(clip(v, x − ε, x + ε), lo, hi) = clip(v, max(x − ε, lo), min(x + ε, hi)): the intervals meet at x
    # (the reference clips the whole image; outside the window that changes nothing)
    win.add_(step).clamp_(box[:, 0, :, rows, cols], box[:, 1, :, rows, cols])
    margin = _margin(_forward(model, cur, chunk), y)
    better = margin < m  # the reference's "loss < loss_min" (for the margin loss it implies "margin ≤ 0")
    torch.where(better.view(-1, 1, 1, 1), win, old, out=win)  # rejected windows get their old values back
    return torch.where(better, margin, m)


def _l2_candidate(cur: Tensor, x: Tensor, eps: float, s: int, at: tuple[int, int], away: tuple[int, int],
                  new: Tensor, lo: float, hi: float) -> Tensor:
    """The L2 proposal (n, c, h, w). δ = cur − x; the window ``at`` gets ``new`` (n, c, s, s: ±η_s) + its old
    content / ‖·‖, rescaled per channel to √(max(ε² − ‖δ‖², 0)/c + ‖δ on both windows‖²); the window
    ``away`` is emptied (its mass moves); then δ ← ε·δ/‖δ‖, x + δ clipped. The reference's float ops, in
    order."""
    n = len(cur)
    delta = cur - x  # (n, c, h, w)
    win = (slice(None), slice(None), slice(at[0], at[0] + s), slice(at[1], at[1] + s))
    win2 = (slice(None), slice(None), slice(away[0], away[0] + s), slice(away[1], away[1] + s))
    # each sum runs over a tensor laid out as the reference's: a reduction's rounding follows memory order
    norm_win = (delta[win] ** 2).sum(dim=(-2, -1), keepdim=True).sqrt()  # (n, c, 1, 1)
    sq = delta ** 2
    norm_img = sq.view(n, -1).sum(-1).sqrt().view(-1, 1, 1, 1)  # (n, 1, 1, 1)
    mask = delta.new_zeros(delta.shape[-2:])  # (h, w): 1 on the union of the two windows
    mask[win[2:]] = 1
    mask[win2[2:]] = 1
    norm_both = (sq.mul_(mask)).sum(dim=(-2, -1), keepdim=True).sqrt()  # (n, c, 1, 1); (δ·1)² = δ²·1
    new += delta[win] / (1e-12 + norm_win)
    eps_sq = torch.full((1,), eps, dtype=delta.dtype, device=delta.device) ** 2  # ε² rounded as there
    budget = (torch.clamp_min(eps_sq - norm_img ** 2, 0) / delta.shape[1] + norm_both ** 2).sqrt()
    new = new / (1e-12 + (new ** 2).sum(dim=(-2, -1), keepdim=True).sqrt()) * budget
    delta[win2] = 0
    delta[win] = new
    return delta.div_(_l2_norm(delta) + 1e-12).mul_(eps).add_(x).clamp_(lo, hi)  # x + ε·δ/‖δ‖, clipped


def _l1_candidate(cur: Tensor, x: Tensor, eps: float, s: int, at: tuple[int, int], away: tuple[int, int],
                  new: Tensor, lo: float, hi: float) -> Tensor:
    """The L1 proposal (n, c, h, w), as ``_l2_candidate`` with L1 norms: the window ``at`` gets ``new`` + its
    old content / ‖·‖₁, rescaled per channel to ‖·‖₁ = c·(max(ε − ‖δ‖₁, 0)/c + ‖δ on both windows‖₁); the
    window ``away`` is emptied; then x + δ is projected onto the box ∩ L1 ball of radius ε·(1 − 10⁻⁶)."""
    n = len(cur)
    delta = cur - x  # (n, c, h, w)
    win = (slice(None), slice(None), slice(at[0], at[0] + s), slice(at[1], at[1] + s))
    win2 = (slice(None), slice(None), slice(away[0], away[0] + s), slice(away[1], away[1] + s))
    norm_win = delta[win].abs().sum(dim=(-2, -1), keepdim=True)  # (n, c, 1, 1)
    size = delta.abs()
    norm_img = size.view(n, -1).sum(-1).view(-1, 1, 1, 1)  # (n, 1, 1, 1)
    mask = delta.new_zeros(delta.shape[-2:])  # (h, w): 1 on the union of the two windows
    mask[win[2:]] = 1
    mask[win2[2:]] = 1
    norm_both = size.mul_(mask).sum(dim=(-2, -1), keepdim=True)  # (n, c, 1, 1); |δ·1| = |δ|·1
    new += delta[win] / (1e-12 + norm_win)
    c = delta.shape[1]
    room = torch.clamp_min(torch.full_like(norm_img, eps) - norm_img, 0) / c + norm_both  # ε rounded as there
    new = new / (1e-12 + new.abs().sum(dim=(-2, -1), keepdim=True)) * room * c
    delta[win2] = 0
    delta[win] = new
    return x + delta + l1_box_correction(x, delta, eps * L1_SHRINK, (lo, hi))


def _query_l2(model: Callable[[Tensor], Tensor], cur: Tensor, y: Tensor, m: Tensor, x: Tensor, eps: float, s: int,
               u: Tensor, lo: float, hi: float, chunk: int, norm: str = "2") -> Tensor:
    """One L2 (or L1) query on the live points: windows at (u₀, u₁) and (u₂, u₃), η_s transposed if u₄ > ½,
    signs per (point, channel) from u₅…; ``cur`` takes the proposal where the margin drops. Returns margins."""
    n, c, h, w = cur.shape
    spans = (h - s, w - s, h - s, w - s)
    vh, vw, vh2, vw2 = (_index(v, span) for v, span in zip(u[:4].tolist(), spans))
    pattern = _eta(s, bool(u[4] > 0.5), norm).to(cur)
    new = pattern * _signs(u[5:].to(cur)).view(n, c, 1, 1)  # (n, c, s, s)
    propose = _l1_candidate if norm == "1" else _l2_candidate
    cand = propose(cur, x, eps, s, (vh, vw), (vh2, vw2), new, lo, hi)
    margin = _margin(_forward(model, cand, chunk), y)
    better = margin < m
    cur[better] = cand[better]
    return torch.where(better, margin, m)
