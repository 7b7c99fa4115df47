"""Plain reference loops for the gradient attacks, written for reading, not speed: what the fast loops in
``pgd.py`` (buffers recycled in place, the active set shrinking, chunks) and ``_apgd_run.py`` (the same, plus
the reference's operation order) compute. The tests run both and compare.

Each function attacks a batch (N, ...) with every sample at every step (no early stop, no chunks), allocating
freely; the gradient is that of the batch-mean loss (PGD) or of the sum (APGD), as the fast loops take it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advgrad.norms import get_norm, per_sample


def _rows(mask: Tensor, like: Tensor) -> Tensor:
    """A per-sample (N,) mask shaped (N, 1, ..., 1) to select whole samples of ``like``."""
    return mask.view(-1, *[1] * (like.ndim - 1))


def pgd(model: nn.Module, x: Tensor, y: Tensor, eps: float, *, steps: int, alpha: float, norm: str = "inf",
        start: Tensor | None = None, bounds: tuple[float, float] = (0.0, 1.0)) -> Tensor:
    """K steps of x′ ← clip(x + Π_ε(x′ + α·steepest(∇ mean CE) − x)) from ``start`` (default x)."""
    geometry = get_norm(norm)
    x_adv = x.clone() if start is None else start.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        (grad,) = torch.autograd.grad(loss, x_adv)
        with torch.no_grad():
            if geometry.skip_saturated:  # L1: a coordinate on a bound, pushed outward, cannot move
                out = ((x_adv <= bounds[0]) & (grad < 0)) | ((x_adv >= bounds[1]) & (grad > 0))
                grad = grad.masked_fill(out, 0)
            moved = x_adv + geometry.steepest(grad, alpha)
            x_adv = (x + geometry.project(moved - x, eps)).clamp(*bounds)
    return x_adv.detach()


def apgd_ce(model: nn.Module, x: Tensor, y: Tensor, eps: float, *, steps: int, start: Tensor,
            checkpoints: dict[int, int], rho: float = 0.75,
            bounds: tuple[float, float] = (0.0, 1.0)) -> tuple[Tensor, Tensor]:
    """APGD on the cross-entropy in L∞ (Croce & Hein 2020, Algorithm 1) from ``start``: η = 2ε, momentum 0.75
    after the first step, and at each checkpoint i (0-based iteration → window k) the step halves, and the
    iterate returns to the best (highest-loss) point, where the loss rose in at most ρ·k of the last k steps
    or where η was not halved last time and the best loss has not improved. The reference's quirk is kept:
    the first window compares its oldest loss with 0. Returns (fooled (N,): misclassified at some iterate,
    the last misclassified iterate (N, ...), x where never)."""
    lo, hi = bounds

    def project(z: Tensor) -> Tensor:
        return torch.minimum(torch.maximum(z, x - eps), x + eps).clamp(lo, hi)

    def loss_and_grad(z: Tensor) -> tuple[Tensor, Tensor]:
        z = z.detach().requires_grad_(True)
        losses = F.cross_entropy(model(z), y, reduction="none")
        (grad,) = torch.autograd.grad(losses.sum(), z)
        return losses.detach(), grad

    def wrong(z: Tensor) -> Tensor:
        with torch.no_grad():
            return model(z).argmax(1) != y

    x_cur = start.clone()
    fooled = wrong(x_cur)
    found = torch.where(_rows(fooled, x), x_cur, x)
    loss, grad = loss_and_grad(x_cur)
    x_prev, best, loss_best, best_at_check = x_cur.clone(), x_cur.clone(), loss.clone(), loss.clone()
    step = torch.full((len(x),), 2.0 * eps, dtype=x.dtype)
    prev_loss, rises = torch.zeros_like(loss), torch.zeros(len(x), dtype=torch.long)
    halved = torch.ones(len(x), dtype=torch.bool)
    for i in range(steps):
        a = 0.75 if i > 0 else 1.0
        z = project(x_cur + per_sample(step, x) * grad.sign())
        x_next = project(x_cur + a * (z - x_cur) + (1 - a) * (x_cur - x_prev))
        x_prev, x_cur = x_cur, x_next
        now = wrong(x_cur)
        fooled, found = fooled | now, torch.where(_rows(now, x), x_cur, found)
        loss, grad = loss_and_grad(x_cur)
        rises += loss > prev_loss
        prev_loss = loss
        better = loss > loss_best
        best[better], loss_best = x_cur[better], torch.where(better, loss, loss_best)
        if i in checkpoints:
            limit = float(torch.tensor(checkpoints[i] * rho, dtype=loss.dtype))
            halve = (rises <= limit) | (~halved & (best_at_check >= loss_best))
            halved, best_at_check, rises = halve, loss_best.clone(), torch.zeros_like(rises)
            step = torch.where(halve, step / 2, step)
            x_cur = torch.where(_rows(halve, x), best, x_cur)
            _, grad_best = loss_and_grad(best)
            grad = torch.where(_rows(halve, x), grad_best, grad)
    return fooled, found
