"""Fixtures shared by the evaluation tests: 100 test digits and one sound evaluation of the fixture model."""

from __future__ import annotations

import pytest
from torch import Tensor, nn

from advgrad import evaluate as ev
from advgrad.data.builtin import Dataset

N = 100  # test images per evaluation: small enough to keep these files fast


@pytest.fixture(scope="session")
def batch(mnist5k: Dataset) -> tuple[Tensor, Tensor]:
    return mnist5k.x_test[:N], mnist5k.y_test[:N]


@pytest.fixture(scope="session")
def sound(trained_small: tuple[nn.Module, dict], batch: tuple[Tensor, Tensor]) -> ev.Evaluation:
    model, _ = trained_small
    config = ev.EvalConfig(eps=(0.0, 0.1, 0.2), steps=10, queries=100)
    return ev.evaluate_model(model, *batch, config)
