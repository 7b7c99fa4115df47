"""FAB's projection: the smallest Lp step from a point onto a hyperplane, inside a box.

Every FAB iteration (Croce & Hein, ICML 2020, arXiv 1907.02044, sec. 3) solves, per row,

    δ* = argmin ‖δ‖_p   subject to   ⟨w, t + δ⟩ = b   and   lo ≤ t + δ ≤ hi,

for a point t ∈ [lo, hi]^D and the hyperplane {z : ⟨w, z⟩ = b}. Negating (w, b) where needed makes the
residual c = ⟨w, t⟩ − b ≥ 0: the step must lower ⟨w, ·⟩ by c, and coordinate i then moves against the sign
of wᵢ (down to lo where wᵢ ≥ 0, up to hi where wᵢ < 0), by at most its room: tᵢ − lo or hi − tᵢ.

- L∞ (``project_linf``): with ‖δ‖∞ = λ, coordinate i moves by min(λ, roomᵢ), and ⟨w, ·⟩ falls by
  h(λ) = Σᵢ |wᵢ|·min(λ, roomᵢ): piecewise linear and increasing, with a kink at every room. Sorting the
  rooms gives h at every kink from two running sums; a bisection over the kinks finds the piece where
  h(λ) = c, and λ solves that linear piece.
- L2 (``project_l2``): the KKT conditions give δᵢ = clip(−α·wᵢ, lo − tᵢ, hi − tᵢ) for one α ≥ 0;
  coordinate i reaches its end at αᵢ = roomᵢ/|wᵢ|. Sorting the αᵢ gives ⟨w, δ(α)⟩ at every kink, and the
  same bisection finds α.
- L1 (``project_l1``): a unit of ‖δ‖₁ spent on coordinate i lowers ⟨w, ·⟩ by |wᵢ|, so the coordinates are
  pushed to their ends in order of decreasing |wᵢ| until the remaining residual fits in one coordinate,
  which moves part of the way.

Where the hyperplane misses the box (c exceeds the total fall the box allows), every movable coordinate
goes to its end: the box point nearest the hyperplane along w. Coordinates with wᵢ = 0 (|wᵢ| ≤ 1e-8 for
L2 and L1) never move.

The arithmetic (which sums, in which order, the bisection's probes, the tie order of the sorts: many MNIST
pixels are exactly 0 or 1, so many rooms tie) is the one of the authors' implementation (pyautoattack
0.2.0), so that FAB here reproduces its iterates bit for bit.

Shapes: t and w are (R, D), b is (R,), the result is (R, D).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

BIG = 1e12    # stands for "never saturates" in the L2 and L1 sorts
TINY = 1e-8   # |wᵢ| below this counts as zero (L2, L1)


def length(name: str) -> Callable[[Tensor], Tensor]:
    """‖v‖ over the last dimension of v (rows (R, D), or (n, K, D)) in the norm ``name``, with the
    reference's formula for each norm (same rounding): FAB's step sizes, distances and dual norms."""
    if name == "inf":
        return lambda v: v.abs().amax(dim=-1)
    if name == "2":
        return lambda v: v.pow(2).sum(dim=-1).sqrt()
    return lambda v: v.abs().sum(dim=-1)


def _signs(residual: Tensor) -> Tensor:
    """+1 where the residual ⟨w, t⟩ − b is ≥ 0, else −1, shaped (R,): multiplying w and b (or the
    residual) by it is exact and makes every residual non-negative."""
    return torch.where(residual >= 0, 1.0, -1.0).to(residual.dtype)


def _bisect(holds: Callable[[Tensor], Tensor], rows: int, top: int, steps: int, device: torch.device) -> Tensor:
    """The reference's bisection over positions 0 … top: ``steps`` times probe mid = ⌊(lb + ub)/2⌋ and
    move lb up to mid where ``holds(mid)`` (a bool (rows,) tensor), else ub down to mid. Returns lb (rows,).

    With a predicate that is true at 0 and false at ``top`` this ends on the last position where it holds
    once ub − lb = 1 (after ⌈log₂ top⌉ steps). Float rounding can make the predicate non-monotone among tied kinks, so
    the exact sequence of probes matters for bit-identity; it is reproduced here with integers (the
    reference bisects floats holding integers, exactly)."""
    lb = torch.zeros(rows, dtype=torch.long, device=device)
    ub = torch.full_like(lb, top)
    for _ in range(steps):
        mid = (lb + ub) // 2
        ok = holds(mid)
        lb = torch.where(ok, mid, lb)
        ub = torch.where(ok, ub, mid)
    return lb


def _indicator(v: Tensor) -> Tensor:
    """1.0 where v > 0, else 0.0 (+0.0), in v's dtype: the same values as ``(v > 0).to(v.dtype)`` without
    the bool intermediate, whose comparison and conversion run several times slower on the CPU."""
    return v.sign().clamp_min(0)


def _ends(up: Tensor, lo: float, hi: float) -> Tensor:
    """hi where ``up`` (a 0/1 float mask) is 1, lo where it is 0: the end each coordinate moves towards.
    Arithmetic rather than ``torch.where`` (a branchy loop, slow on random masks); exact: one term is
    0 × (the other end), and for the default box (0, 1) the result is the mask itself, bit for bit."""
    return up * hi + (1 - up) * lo


def _at(v: Tensor, k: Tensor) -> Tensor:
    """v[i, k[i]] for every row i: (R, M), (R,) → (R,)."""
    return v.gather(1, k.unsqueeze(1)).squeeze(1)


def project_linf(t: Tensor, w: Tensor, b: Tensor, lo: float = 0.0, hi: float = 1.0) -> Tensor:
    """δ of least ‖δ‖∞ with ⟨w, t + δ⟩ = b and lo ≤ t + δ ≤ hi, per row (see the module docstring).

    The (R, D) passes are few and in place on temporaries (each fresh (R, D) tensor costs page faults):
    ⟨w, t⟩ is summed once, since negating w negates every product and partial sum exactly, so the sum
    for the flipped row is −⟨w, t⟩ where that is non-zero (and where it is zero b is not, so need is b);
    the sort returns the rooms in order with the permutation."""
    wt = (w * t).sum(1)                                           # (R,) ⟨w, t⟩
    sign = _signs(wt - b)                                         # (R,)
    w, b = w * sign.unsqueeze(1), b * sign
    need = b - wt * sign                                          # (R,) −c ≤ 0: the change ⟨w, δ⟩ must make
    up = w.neg().sign_().clamp_min_(0)                            # (R, D) 1: moves up to hi, 0: down to lo
    movable = w.abs().sign_()                                     # (R, D) 1 where wᵢ ≠ 0
    delta = (up - t) if (lo, hi) == (0.0, 1.0) else _ends(up, lo, hi).sub_(t)  # every coordinate at its end
    room = delta.abs()                                            # (R, D) |that move|
    delta.mul_(movable)
    rooms, order = torch.sort(room, dim=1)                        # the reference's argsort, values too
    rooms, order = rooms.flip(1), order.flip(1)                   # largest room first
    spent = w * delta                                             # (R, D) change per coordinate at its end
    floor = spent.sum(1)                                          # (R,) the most negative change possible
    # With the k+1 roomiest coordinates moved by λ and the others at their ends, ⟨w, δ⟩ changes by
    # reach[k] − slope[k]·λ; at λ = the k-th largest room that is −h(λ).
    slope = torch.cumsum(w.gather(1, order).abs_(), dim=1)                            # (R, D)
    reach = torch.cumsum(spent.gather(1, order).neg_(), dim=1).add_(floor.unsqueeze(1))  # (R, D)
    d = w.shape[1]
    inside = need - (reach[:, -1] - slope[:, -1] * rooms[:, -1]) > 0  # λ* below every room
    between = (need - floor > 0) & ~inside                        # reachable, with some coordinates at an end

    def overshoots(k: Tensor) -> Tensor:  # λ at the k-th largest room changes ⟨w, ·⟩ by more than needed
        return need - (_at(reach, k) - _at(slope, k) * _at(rooms, k)) > 0

    k = _bisect(overshoots, len(need), d - 1, math.ceil(math.log2(d)), t.device)
    k = k.masked_fill(inside, d - 1)                              # inside: every coordinate moves by λ
    lam = torch.clamp_min((need - _at(reach, k)) / -_at(slope, k), 0).unsqueeze(1)  # (R, 1)
    # The move to the end capped at λ, blended by the 0/1 mask (exact: the other term is ±0); rows with
    # λ* inside move by ±λ, rows that cannot reach the hyperplane stay at their ends.
    out = torch.minimum(lam, delta).mul_(up).add_(torch.maximum(-lam, delta).mul_(1 - up))
    if not bool(between.all()):
        out[~between] = delta[~between]
        out[inside] = (2 * up[inside] - 1) * lam[inside]
    return out.mul_(movable)


def project_l2(t: Tensor, w: Tensor, b: Tensor, lo: float = 0.0, hi: float = 1.0) -> Tensor:
    """δ of least ‖δ‖₂ with ⟨w, t + δ⟩ = b and lo ≤ t + δ ≤ hi, per row (see the module docstring)."""
    residual = (w * t).sum(1) - b
    sign = _signs(residual)
    w, c = w * sign.unsqueeze(1), residual * sign                 # c ≥ 0: how far ⟨w, ·⟩ must fall
    # αᵢ at which coordinate i reaches its end (the positive one of the two ratios); BIG for wᵢ ≈ 0.
    ends = torch.max((t - lo) / w, (t - hi) / w).clamp(min=-BIG, max=BIG)
    ends = ends.masked_fill(w.abs() < TINY, BIG)
    ends = ends.masked_fill(ends == -BIG, BIG)
    kinks, order = torch.sort(ends, dim=1)                        # (R, D) ascending α
    following = F.pad(kinks[:, 1:], (0, 1))                       # the next kink, 0 after the last
    kinks = kinks.masked_fill(kinks == BIG, 0)
    following = following.masked_fill(following == BIG, 0)
    sq = w.pow(2).gather(1, order)                                # (R, D) wᵢ² in kink order
    total = sq.sum(dim=1, keepdim=True)                           # (R, 1) ‖w‖²
    free = total - torch.cumsum(sq, dim=1)                        # Σ wᵢ² of coordinates not yet at an end
    movable = _indicator(w.abs() - TINY)                          # (R, D) 1 where |wᵢ| > TINY
    delta = -(ends * w) * movable                                 # (R, D) every coordinate at its end
    # ⟨w, δ(α)⟩ at α = each kink (and one past the last): a running sum of slope × kink spacing.
    first = total * kinks[:, 0:1]
    value = torch.cat((-first, torch.cumsum((kinks - following) * free, dim=1) - first), 1)  # (R, D + 1)
    before = value[:, 0] + c < 0                                  # α* below the first kink: nothing saturates
    beyond = (delta * w).sum(dim=1) + c > 0                       # even every coordinate at its end falls short
    d = w.shape[1]
    k = _bisect(lambda m: _at(value, m) + c > 0, len(c), d - 1, math.ceil(math.log2(d)), t.device)
    free_k = _at(free, k)
    alpha = ((_at(value, k) + c) / free_k + _at(kinks, k)).masked_fill(free_k == 0, 0)
    alpha = torch.where(before, c / total.squeeze(1), alpha).unsqueeze(1)  # (R, 1)
    # Coordinates whose kink α passed stay at their end, the others move by −α·wᵢ; blended by the 0/1
    # mask (exact: the other term is ±0, and the sign of the zeros is the reference's).
    at_end = _indicator(alpha - ends)                             # (R, D) 1 where α > αᵢ
    moved = torch.where(before.unsqueeze(1), -alpha * w, delta * at_end - alpha * w * (1 - at_end))
    return torch.where(beyond.unsqueeze(1), delta, moved) * movable


def project_l1(t: Tensor, w: Tensor, b: Tensor, lo: float = 0.0, hi: float = 1.0) -> Tensor:
    """δ of least ‖δ‖₁ with ⟨w, t + δ⟩ = b and lo ≤ t + δ ≤ hi, per row (see the module docstring)."""
    residual = (w * t).sum(1) - b
    sign = _signs(residual)
    w, c = w * sign.unsqueeze(1), residual * sign
    cost = (1 / w).abs().clamp_max(BIG)                           # ‖δ‖₁ per unit of fall: 1/|wᵢ|
    order = torch.argsort(cost, dim=1)                            # cheapest first
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(order.shape[1], device=t.device).expand_as(order))
    delta = (_ends(_indicator(-w), lo, hi) - t) * w.abs().sign()  # (R, D) every coordinate at its end
    fall = torch.min(-w * (t - lo), w * (hi - t)).gather(1, order)  # (R, D) ≤ 0: change at its end
    left = torch.cumsum(torch.cat((c.unsqueeze(-1), fall), 1), dim=1)  # (R, D + 1) residual after k ends
    between = left[:, -1] < 0                                     # reachable: the last coordinate overshoots
    d = w.shape[1]
    k = _bisect(lambda m: _at(left, m) > 0, len(c), d + 1, math.ceil(math.log2(d)), t.device)
    k = k.masked_fill(~between, 0)                                # (elsewhere it may point past the end)
    partial = _at(order, k)                                       # (R,) the coordinate that moves part way
    alpha = -_at(left, k) / _at(w, partial)
    moved = (delta * (rank < k.unsqueeze(1)).to(t.dtype)).scatter_(1, partial.unsqueeze(1), alpha.unsqueeze(1))
    return torch.where(between.unsqueeze(1), moved, delta) * _indicator(w.abs() - TINY)
