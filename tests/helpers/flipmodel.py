"""Test helpers for the attack loop's state space: a model whose predictions flip at chosen steps, and a plain
reference PGD loop with advgrad's semantics (used by tests/attacks/test_loop_state.py and
tests/evaluate/test_evaluation_state.py)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from advgrad.losses import resolve_loss
from advgrad.norms import get_norm


class FlipModel(nn.Module):
    """Two classes, z = (0, u·relu(x) − θ). On inputs in [0.25, 0.75] relu is the identity, so z₁ − z₀ is
    linear in x and every attack step raises it by a fixed amount: α‖u‖₁ (L∞), α‖u‖₂ (L2), α·max|u| (L1).
    relu keeps its output for the backward pass, so autograd holds D floats per sample (``big``: enough to
    make ``auto_chunk_size`` cut a batch of a few hundred into chunks)."""

    def __init__(self, side: int = 8, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        d = side * side
        g = torch.Generator().manual_seed(0)
        signs = torch.where(torch.rand(d, generator=g) < 0.5, -1.0, 1.0)
        magnitude = (1.0 + torch.arange(d) / d) / d  # distinct |u_j|: L1's steepest coordinate is unique
        self.register_buffer("u", (signs * magnitude).to(dtype))
        self.theta = float(0.5 * self.u.sum())

    def forward(self, x: Tensor) -> Tensor:
        s = torch.relu(x.flatten(1)) @ self.u - self.theta  # (N,)
        return torch.stack([torch.zeros_like(s), s], dim=1)  # (N, 2)

    def rate(self, norm: str) -> float:
        """How far one step of size 1 moves t, where x = 0.5 + t·sign(u) (so z₁ − z₀ = t‖u‖₁)."""
        u = self.u.abs()
        per_step = {"inf": u.sum(), "2": u.norm(), "1": u.max()}[norm]
        return float(per_step / u.sum())

    def inputs(self, flip: Tensor, alpha: float, norm: str) -> tuple[Tensor, Tensor]:
        """Clean points (N, 1, side, side), label 0, that PGD from x with step α fools after exactly
        ``flip[i]`` steps (the margin crosses zero half a step before)."""
        t = -(flip.to(self.u.dtype) - 0.5) * alpha * self.rate(norm)  # (N,)
        side = math.isqrt(len(self.u))
        x = 0.5 + t[:, None] * self.u.sign()[None, :]
        return x.view(-1, 1, side, side), torch.zeros(len(flip), dtype=torch.long)


def reference_attack(model: nn.Module, x: Tensor, y: Tensor, eps: float, *, alpha: float, steps: int,
                     norm: str, random_start: bool, restarts: int, targeted: bool, early_stop: bool,
                     generator: torch.Generator | None, bounds: tuple[float, float] = (0.0, 1.0),
                     momentum: float = 0.0) -> tuple[Tensor, Tensor]:
    """PGD written plainly, with advgrad's semantics: the batch-mean loss over the points still attacked,
    early stop checked on the logits at the start of each step, restarts (with early stop: only for the
    points not yet fooled) keeping the worst example per sample. Returns (x_adv, success)."""
    geometry, loss_fn = get_norm(norm), resolve_loss("ce")
    lo, hi = bounds

    def fooled(z: Tensor, t: Tensor) -> Tensor:
        return z.argmax(1) == t if targeted else z.argmax(1) != t

    def run(xs: Tensor, ys: Tensor) -> Tensor:
        xa = (xs + geometry.random_start(xs, eps, generator)).clamp(lo, hi) if random_start else xs.clone()
        active = torch.ones(len(xs), dtype=torch.bool)
        v = torch.zeros_like(xs)  # MI-FGSM's velocity, per sample
        for _ in range(steps):
            idx = active.nonzero().squeeze(1)
            xi = xa[idx].clone().requires_grad_(True)
            z = model(xi)
            sign = -1.0 if targeted else 1.0
            (g,) = torch.autograd.grad(loss_fn(z, ys[idx]).mean() * sign, xi)
            if early_stop:
                done = fooled(z.detach(), ys[idx])
                active[idx[done]] = False
                idx, xi, g = idx[~done], xi[~done], g[~done]
                if len(idx) == 0:
                    break
            with torch.no_grad():
                if momentum:
                    v[idx] = momentum * v[idx] + g / g.abs().flatten(1).mean(1).clamp_min(1e-300).view(-1, 1, 1, 1)
                    g = v[idx]
                step = geometry.steepest(g, alpha)
                xa[idx] = (xs[idx] + geometry.project(xi + step - xs[idx], eps)).clamp(lo, hi)
        return xa

    x_adv = run(x, y)
    with torch.no_grad():
        z = model(x_adv)
    success, loss = fooled(z, y), loss_fn(z, y)
    for _ in range((restarts if random_start else 1) - 1):
        idx = (~success).nonzero().squeeze(1) if early_stop else torch.arange(len(x))
        if len(idx) == 0:
            break
        cand = run(x[idx], y[idx])
        with torch.no_grad():
            zc = model(cand)
        s_new, l_new = fooled(zc, y[idx]), loss_fn(zc, y[idx])
        s_old, l_old = success[idx], loss[idx]
        gain_new, gain_old = (-l_new, -l_old) if targeted else (l_new, l_old)
        better = (s_new & ~s_old) | ((s_new == s_old) & (gain_new > gain_old))
        x_adv[idx[better]], success[idx[better]], loss[idx[better]] = cand[better], s_new[better], l_new[better]
    return x_adv, success
