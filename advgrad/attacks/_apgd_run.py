"""One run of APGD (Croce & Hein, ICML 2020, arXiv 2003.01690, Algorithm 1) on a batch.

The arithmetic follows the reference implementation (pyautoattack 0.2.0, ``attack_single_run``)
operation for operation, in the same order and on the same shapes, so that on one batch in one piece the
iterates are the reference's bit for bit; the steps are computed in place in buffers the run owns, so an
iteration allocates no (n, ...) tensor of its own besides the gradient. Every quantity is per sample
(the gradient is that of Σᵢ Jᵢ, so row i is ∂Jᵢ/∂xᵢ): dropping a fooled sample from the batch
(``early_stop``) changes nothing for the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
from torch import Tensor, nn

from advgrad.attacks._chunks import slices
from advgrad.norms import per_point

# (logits (n, K), labels (n,), targets (n,) or None) -> loss per sample (n,)
RunLoss = Callable[[Tensor, Tensor, Tensor | None], Tensor]
MOMENTUM = 0.75  # α of the paper: weight of the new step against the previous one (none on the first step)


@dataclass(frozen=True)
class Setup:
    """What stays fixed during an attack call."""

    model: nn.Module
    norm: str          # "inf", "2" or "1" (whose run is ``_apgd_l1.run``)
    steps: int         # N_iter
    rho: float         # ρ: the step halves when the loss rose in at most ρ·k of the last k steps
    lo: float          # the box the iterates are clipped to
    hi: float
    eot: int           # gradients averaged over this many forward passes (for randomised models)
    chunk: int         # samples per forward pass
    early_stop: bool   # drop a sample from the batch once it is misclassified
    loss: RunLoss
    largereps: bool = False  # L1: the iterations at 3ε, 2ε, then ε (``_apgd_l1``)


def checkpoint_windows(steps: int) -> dict[int, int]:
    """The checkpoints: {0-based iteration i after which a check happens: window k of that check}.

    First after k₀ = max(⌊0.22·N⌋, 1) iterations, then after windows that shrink by max(⌊0.03·N⌋, 1)
    down to max(⌊0.06·N⌋, 1) (the paper's p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06), with the
    reference's truncation to whole iterations, ``int()``, not a ceiling)."""
    k, least, shrink = max(int(0.22 * steps), 1), max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)
    marks, done = {}, 0
    while done + k <= steps:
        done += k
        marks[done - 1] = k
        k = max(k - shrink, least)
    return marks


def _length(norm: str, v: Tensor) -> Tensor:
    """‖v‖ per sample as the reference computes it (max |v| or √Σv²), shaped (n, 1, ..., 1)."""
    flat = v.abs().flatten(1).amax(1) if norm == "inf" else (v ** 2).flatten(1).sum(-1).sqrt()
    return per_point(flat, v)


def start(setup: Setup, x: Tensor, eps: Tensor, gen: torch.Generator) -> Tensor:
    """x + ε·t/‖t‖ clipped to the box: t ~ U[−1, 1] (L∞) or N(0, I) (L2), drawn from ``gen`` on the CPU
    with the reference's calls and shapes, so a generator seeded s gives its torch.manual_seed(s) start."""
    if setup.norm == "inf":
        t = torch.rand(x.shape, generator=gen, dtype=x.dtype).mul_(2).sub_(1)
    else:
        t = torch.randn(x.shape, generator=gen, dtype=x.dtype)
    t = t.to(x.device)
    return t.div_(_length(setup.norm, t) + 1e-12).mul_(eps).add_(x).clamp_(setup.lo, setup.hi)


def evaluate(setup: Setup, x_adv: Tensor, y: Tensor, target: Tensor | None,
             out: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """∂(Σᵢ Jᵢ)/∂x at x_adv averaged over ``eot`` passes, with the logits (n, K) and losses (n,) of
    the last pass; chunk by chunk (into ``out`` if it fits) when the batch is larger than a chunk."""
    parts = slices(len(x_adv), setup.chunk)
    grad = logits = loss = None
    for draw in range(setup.eot):
        for part in parts:
            xc = x_adv[part].detach().requires_grad_(True)
            with torch.enable_grad():
                zc = setup.model(xc)                                            # (n_c, K)
                lc = setup.loss(zc, y[part], None if target is None else target[part])
                (gc,) = torch.autograd.grad(lc.sum(), xc)
            if len(parts) == 1:
                grad = gc if grad is None else grad.add_(gc)
                logits, loss = zc.detach(), lc.detach()
                continue
            if logits is None or loss is None or grad is None:
                logits, loss = zc.new_empty((len(x_adv), zc.shape[1])), lc.new_empty(len(x_adv))
                grad = out if out is not None and out.shape == x_adv.shape else torch.empty_like(x_adv)
            if draw == 0:
                grad[part] = gc
            else:
                grad[part] += gc
            logits[part], loss[part] = zc.detach(), lc.detach()
    assert grad is not None and logits is not None and loss is not None
    if setup.eot > 1:
        grad /= float(setup.eot)
    return grad, logits, loss


@dataclass
class _State:
    """The n samples still attacked; every tensor is per sample, so ``keep`` selects rows."""

    ids: Tensor              # (n,) positions in the run's batch
    x: Tensor                # (n, ...) clean points
    y: Tensor                # (n,)
    target: Tensor | None    # (n,) for the targeted loss
    eps: Tensor              # (n, 1, ..., 1)
    ball: tuple[Tensor, Tensor] | None  # L∞: (x − ε, x + ε), the box of the ε-ball
    x_adv: Tensor            # (n, ...) the current iterate x_i
    x_old: Tensor            # (n, ...) the previous iterate x_{i−1}
    grad: Tensor             # (n, ...) the gradient the next step follows
    x_best: Tensor           # (n, ...) the highest-loss point so far, and its gradient
    grad_best: Tensor
    step: Tensor             # (n, 1, ..., 1) η, from 2ε, halved at checkpoints
    loss_best: Tensor        # (n,)
    best_at_check: Tensor    # (n,) loss_best at the last checkpoint
    prev_loss: Tensor        # (n,) the loss of the previous iteration
    rises: Tensor            # (n,) iterations since the last checkpoint whose loss rose
    halved: Tensor           # (n,) bool: the step was halved at the last checkpoint

    def keep(self, mask: Tensor) -> _State:
        rows: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is not None:
                rows[f.name] = (v[0][mask], v[1][mask]) if isinstance(v, tuple) else v[mask]
        return replace(self, **rows)


def _to_ball(s: _State, z: Tensor, norm: str, lo: float, hi: float) -> Tensor:
    """z ← the box-clipped projection of z onto the ε-ball around x, in place."""
    if s.ball is not None:
        return z.clamp_(*s.ball).clamp_(lo, hi)
    d = z.sub_(s.x)
    length = _length(norm, d)                                   # (n, 1, ..., 1)
    return d.div_(length + 1e-12).mul_(torch.minimum(length, s.eps)).add_(s.x).clamp_(lo, hi)


def _step(s: _State, norm: str, a: float, lo: float, hi: float) -> Tensor:
    """x_{i+1} = P(x_i + a·(P(x_i + η·d(g)) − x_i) + (1 − a)·(x_i − x_{i−1})), d(g) = sign g or g/‖g‖.
    The gradient's buffer becomes x_{i+1}, x_i becomes x_old; returns the old x_old buffer (free)."""
    z = s.grad.sign_() if norm == "inf" else s.grad.div_(_length(norm, s.grad) + 1e-12)
    _to_ball(s, z.mul_(s.step).add_(s.x_adv), norm, lo, hi)
    z.sub_(s.x_adv).mul_(a).add_(s.x_adv)
    z.add_(torch.sub(s.x_adv, s.x_old, out=s.x_old).mul_(1.0 - a))
    free = s.x_old
    s.x_old, s.x_adv = s.x_adv, _to_ball(s, z, norm, lo, hi)
    return free


def _remember(s: _State, loss: Tensor) -> None:
    """Count a rise of the loss and keep the best point, its gradient and loss."""
    s.rises += loss > s.prev_loss
    s.prev_loss = loss
    better = loss > s.loss_best
    if bool(better.any()):
        s.x_best[better] = s.x_adv[better]
        s.grad_best[better] = s.grad[better]
    s.loss_best = torch.where(better, loss, s.loss_best)


def _checkpoint(s: _State, k: int, rho: float) -> None:
    """Halve η and restart from the best point where the loss rose in at most ρ·k of the last k steps,
    or where η was not halved at the last checkpoint and the best loss has not improved since."""
    limit = float(torch.tensor(k * rho, dtype=s.loss_best.dtype))  # the reference compares in float32
    halve = (s.rises <= limit) | (~s.halved & (s.best_at_check >= s.loss_best))
    s.halved, s.best_at_check = halve, s.loss_best
    s.rises.zero_()
    if bool(halve.any()):
        s.step[halve] = s.step[halve] / 2.0
        s.x_adv[halve] = s.x_best[halve]
        s.grad[halve] = s.grad_best[halve]


def run(setup: Setup, x: Tensor, y: Tensor, target: Tensor | None, eps: Tensor,
        gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """One APGD run on (x, y), ε per sample (n, 1, ..., 1). Returns ``fooled`` (n,) bool, and for the
    fooled samples the adversarial point (n, ...) and its logits (n, K): the last misclassified iterate
    (as the reference) or, with ``early_stop``, the first. Other rows are meaningless."""
    x_adv = start(setup, x, eps, gen)
    grad, logits, loss = evaluate(setup, x_adv, y, target)
    ok = logits.max(1).indices == y                             # (n,)
    found_x, found_z, fooled = x_adv.clone(), logits.clone(), ~ok
    ball = (x - eps, x + eps) if setup.norm == "inf" else None
    s = _State(ids=torch.arange(len(x), device=x.device), x=x, y=y, target=target, eps=eps, ball=ball,
               x_adv=x_adv,
               x_old=x_adv.clone(), grad=grad, x_best=x_adv.clone(), grad_best=grad.clone(),
               step=2.0 * eps, loss_best=loss, best_at_check=loss, prev_loss=torch.zeros_like(loss),
               rises=torch.zeros(len(x), dtype=torch.long, device=x.device),
               halved=torch.ones(len(x), dtype=torch.bool, device=x.device))
    # The reference compares the first checkpoint's oldest loss with a zero-initialised slot of its loss
    # history (loss_steps[-1]): prev_loss = 0 reproduces that (see ``apgd``'s docstring).
    if setup.early_stop and not bool(ok.all()):
        s = s.keep(ok)
    marks = checkpoint_windows(setup.steps)
    for i in range(setup.steps):
        if len(s.ids) == 0:
            break
        free = _step(s, setup.norm, MOMENTUM if i > 0 else 1.0, setup.lo, setup.hi)
        s.grad, logits, loss = evaluate(setup, s.x_adv, s.y, s.target, out=free)
        wrong = logits.max(1).indices != s.y
        if bool(wrong.any()):
            hit = s.ids[wrong]
            found_x[hit], found_z[hit], fooled[hit] = s.x_adv[wrong], logits[wrong], True
            if setup.early_stop:
                s, loss = s.keep(~wrong), loss[~wrong]
        _remember(s, loss)
        if i in marks:
            _checkpoint(s, marks[i], setup.rho)
    return fooled, found_x, found_z
