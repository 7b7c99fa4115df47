"""Square Attack (Andriushchenko, Croce, Flammarion & Hein, ECCV 2020, arXiv:1912.00049), as AutoAttack runs it.

A score-based black-box attack: it reads the logits z and never a gradient. It minimises the margin
    L(x′) = z_y(x′) − max_{j≠y} z_j(x′)      (x′ is misclassified once L ≤ 0)
by random search over the ε-ball ∩ bounds. Query t (0-based) changes one square window of side
s ≈ √(p_t·H·W), with p_t = p_init halved after 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 queries,
and the change is kept for a point when its margin strictly decreases. Only points with L > 0 are queried.

- L∞: start from vertical stripes x ± ε (one sign per column and channel); a query adds ±2ε (one sign per
  channel) on the window and projects onto [x − ε, x + ε] ∩ bounds, so the window jumps to x ± ε.
- L2: start from a 5 × 5 grid of tiles, each ± a unit-norm pattern η_s (``_eta``), scaled to ‖δ‖ = ε;
  a query moves the perturbation mass of a second window into the first, redrawn as ± the bump plus the old
  content, with the norm the budget allows, then rescales δ to ‖δ‖ = ε and clips to the bounds.

Parity with AutoAttack's reference (pyautoattack 0.2.0 ``SquareAttack(p_init=.8, loss='margin',
resc_schedule=False)``): the reference reseeds torch's global RNG and draws uniforms from it; here a
private CPU generator seeded alike makes the same draws in the same order (one uint32 per float32 uniform),
and every float operation is the reference's, so on one batch in one piece the examples are bit-identical.
The draws of a query are SHARED by the batch: the window position(s) and, for L∞, the channel signs (for
L2 the signs are per point). So a point's result depends on its position in the batch and on the batch's
size (the start is drawn for the whole batch first) and, for L2, on when the other points were fooled
(each query draws signs only for the points still queried): parity holds for the same batch only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from itertools import product

import numpy as np
import torch
from torch import Tensor, nn

from advgrad import _validate
from advgrad._runtime import frozen_eval
from advgrad.attacks._checks import check_batch, check_bounds, check_radius, seed_of, untargeted
from advgrad.attacks._chunks import chunk_for, slices
from advgrad.attacks.result import AttackResult
from advgrad.configs import AttackConfig
from advgrad.losses import margin
from advgrad.norms import NormSpec, get_norm

HALVE_AFTER = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)  # queries after which p halves


@dataclass(frozen=True)
class SquareResult(AttackResult):
    """``AttackResult`` plus the model queries spent on each point (N,): per run 1 for the start and 1 per
    query while the point was unbroken, summed over restarts, as the reference counts; 0 for points the
    model already misclassifies (they are not attacked). ``loss`` is advgrad's margin max_{j≠y} z_j − z_y."""

    queries: Tensor


def p_schedule(it: int, p_init: float = 0.8) -> float:
    """The share p of the image that query ``it`` (0-based) changes: p_init, halved after each of
    ``HALVE_AFTER`` (Andriushchenko et al. §4; AutoAttack does not rescale it to the query budget)."""
    return p_init / 2 ** sum(it > t for t in HALVE_AFTER)


def window_side(p: float, c: int, h: int, w: int, norm: str = "inf") -> int:
    """Side s of the square window covering a share p of an (h, w) image: round(√(p·h·w)), at least 1
    (L∞) or an odd number ≥ 3 (L2), at most min(h, w). 28 × 28 at p = 0.8: 25."""
    side = round(math.sqrt(p * (c * h * w) / c))  # the reference's expression (n_features / c)
    if norm == "2":
        side = max(side, 3)
        side += 1 - side % 2
    return min(max(side, 1), h, w)


def _index(u: float, span: int) -> int:
    """The reference's random position ⌊span·u⌋ in {0, …, span − 1} (span itself is never drawn), with the
    product rounded to float32 as torch rounds it: a product that rounds up to an integer counts."""
    return int(np.float32(span) * np.float32(u))


def _signs(u: Tensor) -> Tensor:
    """±1 from uniforms, as the reference draws them: sign(2u − 1) (0 when u = 1/2 exactly)."""
    return torch.sign(2 * u - 1)


@cache
def _bump(rows: int, cols: int) -> Tensor:
    """(rows, cols) float32: at Chebyshev distance d from the centre (rows//2, cols//2), Σ_{k=d}^{K−1} 1/(k+1)²
    summed in float32 in that order (K = max(rows, cols)//2 + 1), then scaled to unit L2 norm."""
    k_max = max(rows, cols) // 2 + 1
    terms = [np.float32(1) / np.float32((k + 1) ** 2) for k in range(k_max)]
    table = []
    for d in range(k_max):  # the reference adds the terms square by square, from the innermost out
        acc = np.float32(0)
        for term in terms[d:]:
            acc = np.float32(acc + term)
        table.append(acc)
    i = (torch.arange(rows) - rows // 2).abs()[:, None]
    j = (torch.arange(cols) - cols // 2).abs()[None, :]
    bump = torch.tensor(table, dtype=torch.float32)[torch.maximum(i, j)]  # (rows, cols)
    return bump / (bump ** 2).sum(dim=(0, 1), keepdim=True).sqrt()


@cache
def _eta(side: int, transpose: bool = False) -> Tensor:
    """Square Attack's L2 window pattern (side, side), unit L2 norm: the upper ⌊side/2⌋ rows a centred
    bump, the lower rows minus one (Andriushchenko et al., Alg. 3); or its transpose, stored contiguous:
    a proposal built from it must be laid out like the reference's, whose window sums follow memory order."""
    if transpose:
        return _eta(side).t().contiguous()
    pattern = torch.cat([_bump(side // 2, side), -_bump(side - side // 2, side)])
    return pattern / (pattern ** 2).sum(dim=(0, 1), keepdim=True).sqrt()


def _l2_norm(t: Tensor) -> Tensor:
    """‖tᵢ‖₂ per sample as (n, 1, 1, 1): the reference's sum of squares over the flattened sample."""
    return (t ** 2).view(len(t), -1).sum(-1).sqrt().view(-1, 1, 1, 1)


def _check_labels(logits: Tensor, y: Tensor) -> None:
    k = logits.shape[1]
    if bool((y >= k).any()):
        raise ValueError(f"label {int(y.max())} is outside the model's {k} classes (0..{k - 1})")


def _margin(logits: Tensor, y: Tensor) -> Tensor:
    """z_y − max_{j≠y} z_j per sample (the reference's sign: > 0 while classified correctly)."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    return true - logits.scatter(1, y[:, None], float("-inf")).amax(dim=1)


def _forward(model: nn.Module, x: Tensor, chunk: int) -> Tensor:
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


def _start_l2(x: Tensor, eps: float, lo: float, hi: float, g: torch.Generator) -> Tensor:
    """Tiles of side s = ⌊h/5⌋ from ((h − 5s)//2, same) on, each ±η_s (``_eta``, transposed at random) per
    (sample, channel); δ scaled to ‖δ‖₂ = ε, then clipped. (n, c, h, w)"""
    n, c, h, w = x.shape
    s = h // 5
    first = (h - 5 * s) // 2
    tiles = list(product(range(first, first + h // s * s, s), range(first, first + w // s * s, s)))
    draws = torch.rand((len(tiles), 1 + n * c), generator=g)  # per tile: transpose?, then the signs
    delta = torch.zeros_like(x)
    for (r, q), u in zip(tiles, draws):
        pattern = _eta(s, bool(u[0] > 0.5)).to(x)
        tile = pattern * _signs(u[1:].to(x)).view(n, c, 1, 1)  # (n, c, s, s)
        # A tile past the border is cropped: the reference skips one wholly outside (its draws are still
        # made) and fails on one partly outside, which happens only for some h < 28 or w ≠ h.
        delta[:, :, r:r + s, q:q + s] += tile[:, :, :h - r, :w - q]
    return (x + delta / (_l2_norm(delta) + 1e-12) * eps).clamp(lo, hi)


def _query_linf(model: nn.Module, cur: Tensor, y: Tensor, m: Tensor, box: Tensor, eps: float, s: int,
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


def _query_l2(model: nn.Module, cur: Tensor, y: Tensor, m: Tensor, x: Tensor, eps: float, s: int,
              u: Tensor, lo: float, hi: float, chunk: int) -> Tensor:
    """One L2 query on the live points: windows at (u₀, u₁) and (u₂, u₃), η_s transposed if u₄ > ½, signs
    per (point, channel) from u₅…; ``cur`` takes the proposal where the margin drops. Returns margins."""
    n, c, h, w = cur.shape
    spans = (h - s, w - s, h - s, w - s)
    vh, vw, vh2, vw2 = (_index(v, span) for v, span in zip(u[:4].tolist(), spans))
    pattern = _eta(s, bool(u[4] > 0.5)).to(cur)
    new = pattern * _signs(u[5:].to(cur)).view(n, c, 1, 1)  # (n, c, s, s)
    cand = _l2_candidate(cur, x, eps, s, (vh, vw), (vh2, vw2), new, lo, hi)
    margin = _margin(_forward(model, cand, chunk), y)
    better = margin < m
    cur[better] = cand[better]
    return torch.where(better, margin, m)


# --- one run and the attack ------------------------------------------------------------------------

def _search(model: nn.Module, x: Tensor, y: Tensor, eps: float, linf: bool, queries: int, p_init: float,
            lo: float, hi: float, g: torch.Generator, chunk: int) -> tuple[Tensor, Tensor]:
    """One run on (x, y) (the reference's attack_single_run): the best point per sample (n, c, h, w) and the
    queries spent on it (n,). Points leave the search once their margin is ≤ 0 (their point is kept);
    the rest is a compact ``live`` set, re-indexed only when someone leaves."""
    n, c, h, w = x.shape
    best = (_start_linf if linf else _start_l2)(x, eps, lo, hi, g)
    margin = _margin(_forward(model, best, chunk), y)
    spent = torch.ones(n, dtype=torch.long, device=x.device)
    if bool((margin < 0).all()):
        return best, spent
    # L∞: the box [x − ε, x + ε] ∩ bounds (n, 2, c, h, w); L2: x itself
    aux = torch.stack(((x - eps).clamp_(min=lo), (x + eps).clamp_(max=hi)), 1) if linf else x
    live = (margin > 0).nonzero().squeeze(1)
    cur, ys, m, aux = best[live], y[live], margin[live], aux[live]
    for it in range(queries):
        s = window_side(p_schedule(it, p_init), c, h, w, "inf" if linf else "2")
        # this query's uniforms, made even when no point is live (the reference draws, then stops)
        u = torch.rand(2 + c if linf else 5 + len(live) * c, generator=g)
        if len(live):
            if linf:
                m = _query_linf(model, cur, ys, m, aux, eps, s, u, chunk)
            else:
                m = _query_l2(model, cur, ys, m, aux, eps, s, u, lo, hi, chunk)
            fooled = m <= 0
            if bool(fooled.any()):
                best[live[fooled]], spent[live[fooled]] = cur[fooled], it + 2
                keep = ~fooled
                live, cur, ys, m, aux = live[keep], cur[keep], ys[keep], m[keep], aux[keep]
        if len(live) == 0:
            break
    best[live], spent[live] = cur, it + 2
    return best, spent


def _check_options(x: Tensor, eps: float | Tensor, norm: str, p_init: float, seed: int) -> tuple[bool, float]:
    if not isinstance(eps, (int, float)):  # the project's rule: bad arguments raise ValueError
        raise ValueError(  # noqa: TRY004
            f"eps must be one number for the batch, got a tensor of shape {tuple(eps.shape)}")
    if norm not in ("inf", "2"):
        raise ValueError(f"Square Attack supports norm 'inf' or '2', got {norm!r}")
    if x.ndim != 4:
        raise ValueError(f"Square Attack needs images (N, C, H, W), got shape {tuple(x.shape)}")
    if norm == "2" and x.shape[2] < 5:
        raise ValueError(f"L2 Square Attack tiles its start in 5 rows of ⌊H/5⌋ pixels: H must be ≥ 5, "
                         f"got shape {tuple(x.shape)}")
    if isinstance(p_init, bool) or not isinstance(p_init, (int, float)) or not 0 < p_init <= 1:
        raise ValueError(f"p_init must be a number in (0, 1], got {p_init!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise ValueError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    return norm == "inf", float(eps)


def square(model: nn.Module, x: Tensor, y: Tensor, eps: float, *, norm: NormSpec = "inf", queries: int = 5000,
           p_init: float = 0.8, restarts: int = 1, bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0,
           chunk_size: int | None = None) -> SquareResult:
    """Square Attack (Andriushchenko et al. 2020), untargeted, margin loss, as AutoAttack runs it.

    Minimises z_y − max_{j≠y} z_j by random search in ‖x′ − x‖ ≤ ε (L∞ or L2) ∩ ``bounds``, ``queries``
    queries per run (see the module docstring). Points the model misclassifies at x are not attacked.
    Each of ``restarts`` runs attacks the points still classified correctly, continuing the random
    stream (seeded with ``seed``: a private generator, torch's global RNG is untouched).

    Returns per sample: ``x_adv`` = the first misclassified point found, else x itself (as the reference:
    the best unsuccessful point is discarded); ``success`` = argmax f(x_adv) ≠ y; ``loss`` = the margin
    max_{j≠y} z_j − z_y at x_adv; ``logits`` at x_adv; ``queries`` spent (``SquareResult``).

    ``chunk_size`` splits forward passes (default ``auto_chunk_size``). With one piece (chunk_size ≥ N)
    the examples equal pyautoattack 0.2.0's ``SquareAttack(p_init, n_queries=queries, n_restarts=restarts,
    seed=seed, loss='margin', resc_schedule=False)`` on the same batch bit for bit (float32, bounds (0, 1));
    in chunks, a forward pass of another batch size may round a logit differently. ``eps == 0`` returns
    x without querying. Square never differentiates: every forward pass runs under ``torch.no_grad`` (with
    ``chunk_size=None`` on the CPU, ``auto_chunk_size`` may first probe the model once with autograd).
    """
    xmin, xmax = check_batch(x, y)
    name = get_norm(norm).name
    lo, hi = check_bounds(bounds, xmin, xmax)
    linf, eps_ = _check_options(x, check_radius("eps", eps, x, positive=False), name, p_init, seed)
    queries, restarts = _validate.count("queries", queries), _validate.count("restarts", restarts)
    x = x.detach()
    chunk = chunk_for(chunk_size, model, x)
    with frozen_eval(model), torch.no_grad():
        logits = _forward(model, x, chunk)  # (N, K) at x
        _check_labels(logits, y)
        robust = logits.max(dim=1).indices == y  # the reference's clean check (its tie-breaking)
        x_adv, spent = x.clone(), torch.zeros(len(x), dtype=torch.long, device=x.device)
        g = torch.Generator().manual_seed(seed)
        for _ in range(restarts if eps_ > 0 else 0):
            idx = robust.nonzero().squeeze(1)  # (n,) still classified correctly
            if len(idx) == 0:
                break
            best, used = _search(model, x[idx], y[idx], eps_, linf, queries, float(p_init), lo, hi, g, chunk)
            z = _forward(model, best, chunk)
            fooled = z.max(dim=1).indices != y[idx]
            hit = idx[fooled]
            x_adv[hit], logits[hit], robust[hit] = best[fooled], z[fooled], False
            spent[idx] += used
    return SquareResult(x_adv, ~robust, margin(logits, y), logits, spent)


def square_entry(model: nn.Module, x: Tensor, y: Tensor, eps: float, config: AttackConfig,
                 generator: torch.Generator | None = None) -> AttackResult:
    """``catalog.ATTACKS`` "square": ``square`` with ``config.queries`` queries, p_init 0.8, seeded from the
    generator (Square stops querying a point once it is fooled: early stop is its nature)."""
    untargeted(config)
    return square(model, x, y, eps, norm=config.norm, queries=config.queries, restarts=config.restarts,
                  bounds=config.bounds, seed=seed_of(generator), chunk_size=config.chunk_size)
