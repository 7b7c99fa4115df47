"""Shared pieces of the black-box attack tests: an independent query count, the peers' starting points, the
affine closed forms (from tests/attacks/minimal/closed_forms.py) and small models."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
from torch import Tensor, nn

from tests.attacks.minimal.closed_forms import affine, min_distance  # noqa: F401
from tests.attacks.minimal.conftest import affine_problem  # noqa: F401  (fixture re-export)


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
    """The peers' starting points, made here by the rule of advgrad's decision attacks (written again, not
    imported), with the same draws in the same order: per trial one uniform draw for the points not yet
    misclassified, then the blend (1 − α)·x + α·noise bisected on α to 10⁻³. On a batch where every point
    finds its noise, advgrad's attack seeded alike starts from these very points.
    (starts (N, ...), found (N,), queries spent per point (N,))."""
    g = torch.Generator().manual_seed(seed)
    flat = x.flatten(1)
    far, found = flat.clone(), torch.zeros(len(x), dtype=torch.bool)
    spent = torch.zeros(len(x), dtype=torch.long)

    def fooled(rows: Tensor, idx: Tensor) -> Tensor:
        spent[idx] += 1
        return model(rows.view(-1, *x.shape[1:])).argmax(1) != y[idx]

    for _ in range(trials):
        live = (~found).nonzero().squeeze(1)
        if len(live) == 0:
            break
        u = torch.rand((len(live), flat.shape[1]), generator=g, dtype=x.dtype)
        hit = fooled(u, live)
        far[live[hit]], found[live[hit]] = u[hit], True
    lo, hi = torch.zeros(len(x), dtype=torch.float64), torch.ones(len(x), dtype=torch.float64)
    while True:
        go = (found & (hi - lo > 1e-3)).nonzero().squeeze(1)
        if len(go) == 0:
            break
        mid = (lo[go] + hi[go]) / 2
        a = mid.to(x.dtype)[:, None]
        adv = fooled((1 - a) * flat[go] + a * far[go], go)
        hi[go[adv]], lo[go[~adv]] = mid[adv], mid[~adv]
    a = hi.to(x.dtype)[:, None]
    starts = torch.where(found[:, None], (1 - a) * flat + a * far, flat)
    return starts.view_as(x), found, spent


def startable(model: nn.Module, x: Tensor, y: Tensor, seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The points whose noise start succeeds, narrowed until it succeeds for each of them in their own batch
    (the draws depend on which points are still drawing): (x, y, starts, spent) on those, and their indices."""
    keep = torch.arange(len(x))
    while True:
        starts, found, spent = noise_starts(model, x[keep], y[keep], seed)
        if bool(found.all()):
            return x[keep], y[keep], starts, spent, keep
        keep = keep[found]


@pytest.fixture(scope="session")
def digits_model(trained_small: tuple[nn.Module, dict], mnist5k) -> tuple[nn.Module, Tensor, Tensor]:  # type: ignore[no-untyped-def]
    """cnn-small (trained 2 epochs) and the first 200 test digits it classifies correctly."""
    model, _ = trained_small
    x, y = mnist5k.x_test[:240].float(), mnist5k.y_test[:240].long()
    with torch.no_grad():
        ok = model(x).argmax(1) == y
    return model, x[ok][:200], y[ok][:200]
