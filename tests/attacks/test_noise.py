"""Gradient-free attacks (sign noise, the square search) stay in the ε-ball and the bounds, on any shape."""

from __future__ import annotations

import torch
from torch import nn

from advgrad import evaluate as ev

N = 100  # test images per evaluation: small enough to keep this file fast


def test_gradient_free_attacks_stay_in_the_ball(trained_small, mnist5k) -> None:  # type: ignore[no-untyped-def]
    model, _ = trained_small
    x, y = mnist5k.x_test[:20], mnist5k.y_test[:20]
    g = torch.Generator().manual_seed(0)
    for x_adv in (ev.sign_noise(x, 0.1, generator=g), ev.square_search(model, x, y, 0.1, queries=20, generator=g)):
        assert x_adv.shape == x.shape
        assert float((x_adv - x).abs().max()) <= 0.1 + 1e-6
        assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    flat = nn.Sequential(nn.Unflatten(1, (1, 28, 28)), model)  # takes (N, 784)
    x_flat = ev.square_search(flat, x.flatten(1), y, 0.1, queries=5, generator=g)  # any shape (N, D)
    assert x_flat.shape == (20, 784) and float((x_flat - x.flatten(1)).abs().max()) <= 0.1 + 1e-6
