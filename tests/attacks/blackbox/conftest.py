"""Shared pieces of the black-box attack tests: an independent query count, the peers' starting points, the
affine closed forms (from tests/attacks/minimal/conftest.py) and small models."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
from torch import Tensor, nn

from tests.attacks.minimal.conftest import affine, affine_problem, min_distance  # noqa: F401  (fixture re-export)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Black-box attacks ask many small batches: one thread spares them the pool's hand-offs, which on a busy
    machine cost more than the arithmetic (restored after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Counting(nn.Module):
    """Wraps a model and counts what it is asked, independently of advgrad: calls and rows. Inputs are cast
    to the model's dtype (ART's HopSkipJump bisects in float64 NumPy and hands those rows on)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.calls = 0
        self.rows = 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        self.rows += len(x)
        return self.model(x.to(next(self.model.parameters()).dtype))


def norm_of(delta: Tensor, norm: str) -> Tensor:
    return torch.linalg.vector_norm(delta.flatten(1), ord=math.inf if norm == "inf" else 2.0, dim=1)


@torch.no_grad()
def noise_starts(model: nn.Module, x: Tensor, y: Tensor, seed: int, trials: int = 100) -> tuple[Tensor, Tensor, Tensor]:
    """The peers' starting points, made here by the rule advgrad's decision attacks use (written again, not
    imported): uniform noise until misclassified, then the blend (1 − α)·x + α·noise bisected to 10⁻³.
    (starts (N, ...), found (N,), queries spent per point (N,))."""
    g = torch.Generator().manual_seed(seed)
    far, found = x.clone(), torch.zeros(len(x), dtype=torch.bool)
    spent = torch.zeros(len(x), dtype=torch.long)
    for _ in range(trials):
        u = torch.rand(x.shape, generator=g, dtype=x.dtype)
        spent += ~found
        hit = (model(u).argmax(1) != y) & ~found
        far[hit], found = u[hit], found | hit
    lo, hi = torch.zeros(len(x), dtype=torch.float64), torch.ones(len(x), dtype=torch.float64)
    while True:
        go = found & (hi - lo > 1e-3)
        if not go.any():
            break
        mid = (lo + hi) / 2
        a = mid.to(x.dtype).view(-1, *[1] * (x.ndim - 1))
        adv = model((1 - a) * x + a * far).argmax(1) != y
        spent += go
        hi, lo = torch.where(go & adv, mid, hi), torch.where(go & ~adv, mid, lo)
    a = hi.to(x.dtype).view(-1, *[1] * (x.ndim - 1))
    return torch.where(found.view(-1, *[1] * (x.ndim - 1)), (1 - a) * x + a * far, x), found, spent


@pytest.fixture(scope="session")
def digits_model(trained_small: tuple[nn.Module, dict], mnist5k) -> tuple[nn.Module, Tensor, Tensor]:  # type: ignore[no-untyped-def]
    """cnn-small (trained 2 epochs) and the first 200 test digits it classifies correctly."""
    model, _ = trained_small
    x, y = mnist5k.x_test[:240].float(), mnist5k.y_test[:240].long()
    with torch.no_grad():
        ok = model(x).argmax(1) == y
    return model, x[ok][:200], y[ok][:200]
