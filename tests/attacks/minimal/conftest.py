"""Fixtures of the minimal-norm tests; the closed forms themselves live in ``closed_forms`` (a module name
of its own: ``from conftest import`` would find whichever conftest another folder loaded first)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from tests.attacks.minimal.closed_forms import affine


@pytest.fixture
def affine_problem() -> tuple[nn.Module, Tensor, Tensor, Tensor, Tensor]:
    """A seeded float64 affine model on 1×4×4 inputs with 4 classes, 32 points in [0, 1] labelled with the
    model's own prediction (so every point starts correct): (model, weight, bias, x, y)."""
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(4, 16, generator=g, dtype=torch.float64)
    bias = torch.randn(4, generator=g, dtype=torch.float64) * 0.1
    x = torch.rand(32, 1, 4, 4, generator=g, dtype=torch.float64)
    model = affine(weight, bias)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, weight, bias, x, y
