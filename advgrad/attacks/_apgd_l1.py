"""One run of APGD under L1 (L1-APGD: Croce & Hein, "Mind the box: l1-APGD for sparse adversarial attacks on
image classifiers", ICML 2021, arXiv 2103.01208, Sec. 3), as pyautoattack 0.2.0 runs it (``attack_single_run``
with norm 'L1', and ``decr_eps_pgd`` for ``use_largereps``).

Each step moves along the signs of the largest-|gradient| coordinates only, a share ``topk`` of them (20 % at
first), by η spread evenly over them (‖step‖₁ = η), then projects onto the ε-ball ∩ box
(``advgrad.norms.l1_box_correction``). No momentum. Every k = max(⌊0.04·N⌋, 1) steps, with s the number of
coordinates the best point so far changes: if s fell below 95 % of its value at the last check, η returns
to ε and the run restarts from the best point; else η shrinks by 1.5 (never below ε/10); either way the
next steps use topk = s / (1.5·D), D coordinates per sample.

``use_largereps`` runs the iterations in three phases, 30 % at 3ε, 30 % at 2ε and the rest at ε, each from
the highest-loss point of the one before (projected onto the new ball); only the last phase, at ε, decides
which samples are fooled. The reference draws a Gaussian start for every phase even when it starts from the
previous one's point; advgrad makes the same draws (discarded), so the generator stays in step.

The float operations are the reference's, in its order, on the same shapes (see ``apgd``'s module docstring);
ε enters in float64 (the caller's number), and every radius a phase uses (3ε, 2ε, ε, ε/10) is computed in
float64 and then rounded to x's dtype, as the reference computes them in Python and torch rounds the scalars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
from torch import Tensor

from advgrad.attacks._apgd_run import Setup, evaluate
from advgrad.attacks._chunks import slices
from advgrad.norms import l1_box_correction, per_point

SPARSITY = 0.2        # share of the coordinates the first steps move
SHRINK = 1.5          # η ← η/1.5 at a check where the sparsity did not fall; topk = s/(1.5·D)
FLOOR = 10.0          # η ≥ ε/10
FELL = 0.95           # "the sparsity fell": s < 0.95 × s at the last check


def phases(steps: int) -> list[tuple[float, int]]:
    """``use_largereps``'s (ε multiple, iterations): ⌈0.3·N⌉ at 3ε, ⌈0.3·N⌉ at 2ε, the rest at ε."""
    a = b = math.ceil(0.3 * steps)
    return [(3.0, a), (2.0, b), (1.0, steps - a - b)]


@dataclass
class _State:
    """The n samples still attacked; every tensor is per sample, so ``keep`` selects rows."""

    ids: Tensor              # (n,) positions in the run's batch
    x: Tensor                # (n, ...) clean points
    y: Tensor                # (n,)
    target: Tensor | None    # (n,)
    eps: Tensor              # (n, 1, ..., 1) this phase's radius, in x's dtype
    floor: Tensor            # (n, 1, ..., 1) ε/10
    x_adv: Tensor            # (n, ...)
    grad: Tensor             # (n, ...)
    x_best: Tensor           # (n, ...) the highest-loss point so far, its gradient and loss
    grad_best: Tensor
    loss_best: Tensor        # (n,)
    step: Tensor             # (n, 1, ..., 1) η
    topk: Tensor             # (n,) share of the coordinates a step moves
    sparsity: Tensor         # (n,) coordinates the best point changed at the last check (D at first)

    def keep(self, mask: Tensor) -> _State:
        rows: dict[str, Any] = {f.name: getattr(self, f.name)[mask] for f in fields(self)
                                if getattr(self, f.name) is not None}
        return replace(self, **rows)


def _changed(v: Tensor) -> Tensor:
    """‖v‖₀ per sample (int64): the coordinates that are not zero."""
    return (v != 0.0).flatten(1).sum(-1)


def _step(s: _State, lo: float, hi: float) -> None:
    """x ← P(x + η·σ/‖σ‖₁), σ = sign of the gradient on its top ``topk`` share of |coordinates|."""
    n, dims = len(s.x_adv), math.prod(s.x.shape[1:])
    ranked = s.grad.abs().reshape(n, -1).sort(-1)[0]                               # (n, D) ascending
    rank = torch.clamp((1.0 - s.topk) * dims, min=0, max=dims - 1).long()          # (n,)
    thr = per_point(ranked[torch.arange(n, device=rank.device), rank], s.x)
    sign = (s.grad * (s.grad.abs() >= thr).to(s.grad.dtype)).sign()
    moved = sign.abs().reshape(n, -1).sum(-1).view_as(s.step)                      # ‖σ‖₁
    d = s.x_adv + s.step * sign / (moved + 1e-10) - s.x
    s.x_adv = s.x + d + l1_box_correction(s.x, d, s.eps.view(-1), (lo, hi))


def _checkpoint(s: _State) -> None:
    """Back to η = ε and the best point where the best point's sparsity fell, else η/1.5 (≥ ε/10)."""
    dims = math.prod(s.x.shape[1:])
    now = _changed(s.x_best - s.x)                                                 # (n,) int64
    fell = now / s.sparsity < FELL
    s.topk = now.to(s.topk.dtype) / dims / SHRINK
    wide = fell.view_as(s.step)
    s.step = torch.where(wide, s.eps, s.step / SHRINK).clamp(s.floor, s.eps)
    s.sparsity = now.to(s.sparsity.dtype)
    s.x_adv = torch.where(wide, s.x_best, s.x_adv)
    s.grad = torch.where(wide, s.grad_best, s.grad)


def _phase(setup: Setup, x: Tensor, y: Tensor, target: Tensor | None, eps64: Tensor, steps: int,
           gen: torch.Generator, x_init: Tensor | None, last: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``steps`` iterations at radius ``eps64`` (n, 1, ..., 1) from a random start or from ``x_init``.
    Returns ``fooled`` (n,), the fooled samples' point and logits (see ``_apgd_run.run``) and the best
    point of every sample (the next phase's start; early stop, only in the ``last`` phase, drops rows)."""
    lo, hi, dt = setup.lo, setup.hi, x.dtype
    eps = eps64.to(dt)
    t = torch.randn(x.shape, generator=gen, dtype=dt).to(x.device)  # drawn also with x_init, as the reference
    if x_init is None:
        x_adv = (x + t + l1_box_correction(x, t, eps.view(-1), (lo, hi))).clamp_(lo, hi)
        topk = torch.full((len(x),), SPARSITY, dtype=dt)
        sparsity = torch.full((len(x),), float(x[0].numel()), dtype=dt)
    else:
        x_adv = x_init.clamp(lo, hi)
        sparsity = _changed(x_adv - x).to(dt)
        topk = sparsity / x[0].numel() / SHRINK
    grad, logits, loss = evaluate(setup, x_adv, y, target)
    found_x, found_z, fooled = x_adv.clone(), logits.clone(), logits.max(1).indices != y
    s = _State(ids=torch.arange(len(x), device=x.device), x=x, y=y, target=target, eps=eps,
               floor=(eps64 / FLOOR).to(dt), x_adv=x_adv, grad=grad, x_best=x_adv.clone(), grad_best=grad.clone(),
               loss_best=loss, step=eps.clone(), topk=topk.to(x.device), sparsity=sparsity.to(x.device))
    drop = setup.early_stop and last
    if drop and bool(fooled.any()):
        s = s.keep(~fooled)
    k = max(int(0.04 * steps), 1)
    for i in range(steps):
        if len(s.ids) == 0:
            break
        _step(s, lo, hi)
        s.grad, logits, loss = evaluate(setup, s.x_adv, s.y, s.target)
        wrong = logits.max(1).indices != s.y
        if bool(wrong.any()):
            hit = s.ids[wrong]
            found_x[hit], found_z[hit], fooled[hit] = s.x_adv[wrong], logits[wrong], True
            if drop:
                s, loss = s.keep(~wrong), loss[~wrong]
                if len(s.ids) == 0:
                    break
        better = loss > s.loss_best
        s.x_best[better], s.grad_best[better] = s.x_adv[better], s.grad[better]
        s.loss_best = torch.where(better, loss, s.loss_best)
        if (i + 1) % k == 0:
            _checkpoint(s)
    return fooled, found_x, found_z, s.x_best


def run(setup: Setup, x: Tensor, y: Tensor, target: Tensor | None, eps64: Tensor,
        gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """One L1-APGD run on (x, y), ε per sample (n, 1, ..., 1) in float64; as ``_apgd_run.run``."""
    if not setup.largereps:
        fooled, found_x, found_z, _ = _phase(setup, x, y, target, eps64, setup.steps, gen, None, True)
        return _into_box(setup, y, fooled, found_x, found_z)
    box = (setup.lo, setup.hi)
    x_init = x + torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
    x_init = x_init + l1_box_correction(x, x_init - x, (3.0 * eps64).to(x.dtype).view(-1), box)
    for k, (times, steps) in enumerate(phases(setup.steps)):
        eps = times * eps64
        x_init = x_init + l1_box_correction(x, x_init - x, eps.to(x.dtype).view(-1), box)
        fooled, found_x, found_z, x_init = _phase(setup, x, y, target, eps, steps, gen, x_init, k == 2)
    return _into_box(setup, y, fooled, found_x, found_z)


def _into_box(setup: Setup, y: Tensor, fooled: Tensor, found_x: Tensor,
              found_z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The fooled points clipped to the box, with their logits and flags recomputed where that moved them.

    The reference does not clip after its L1 projection, whose x + δ + r can leave the box by a rounding
    (one ulp; rare: seen once, on one coordinate, in four 20-step runs on 100 digits); advgrad returns points
    within the bounds. A point that the clipping makes classified correctly again (a decision within one ulp:
    not seen) is not fooled."""
    out = ((found_x < setup.lo) | (found_x > setup.hi)).flatten(1).any(1) & fooled  # (n,)
    if bool(out.any()):
        moved = found_x[out].clamp_(setup.lo, setup.hi)
        with torch.no_grad():
            z = torch.cat([setup.model(moved[part]) for part in slices(len(moved), setup.chunk)])
        found_x[out], found_z[out] = moved, z
        fooled[out] = z.max(1).indices != y[out]
    return fooled, found_x, found_z
