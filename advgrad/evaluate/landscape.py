"""The loss along a direction: Goodfellow et al.'s (2015) linearity argument made visible."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from advgrad._runtime import frozen_eval, model_device
from advgrad.attacks import input_gradient
from advgrad.attacks.noise import sign_noise
from advgrad.losses import cross_entropy


def loss_landscape(model: nn.Module, x: Tensor, y: Tensor, *, eps_max: float = 0.3, points: int = 31,
                   n_random: int = 2, bounds: tuple[float, float] = (0.0, 1.0),
                   generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Cross-entropy J(x + t·d) for t in linspace(0, eps_max, points), clipped to ``bounds``: d =
    sign(∂J/∂X) and d = ``n_random`` random sign vectors per sample. Returns (t (P,), loss along the
    gradient's sign (N, P), loss along the random directions (N, R, P)). The loss climbs almost linearly
    along the gradient's sign and barely moves along random directions of the same L∞ size."""
    if points < 2 or n_random < 1:
        raise ValueError(f"points must be ≥ 2 and n_random ≥ 1, got {points} and {n_random}")
    device = model_device(model)
    x, y = x.to(device), y.to(device)
    d_grad = input_gradient(model, x, y).sign()
    d_rand = [sign_noise(torch.zeros_like(x), 1.0, bounds=(-1.0, 1.0), generator=generator) for _ in range(n_random)]
    t = torch.linspace(0.0, eps_max, points)
    along_grad, along_rand = [], []
    with torch.no_grad(), frozen_eval(model):
        for step in t.tolist():
            along_grad.append(cross_entropy(model((x + step * d_grad).clamp(*bounds)), y))
            along_rand.append(torch.stack([cross_entropy(model((x + step * d).clamp(*bounds)), y) for d in d_rand], 1))
    return t, torch.stack(along_grad, 1).cpu(), torch.stack(along_rand, 2).cpu()
