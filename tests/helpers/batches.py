"""Small seeded batches for tests, imported by name (``from batches import make_batch``): conftest.py holds
only fixtures, because several folders have a conftest.py and ``from batches import`` would take whichever
the run imported first."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import nn

from advgrad.data.builtin import Dataset


def make_batch(shape: tuple[int, ...], k: int, seed: int = 0, dtype: torch.dtype = torch.float64
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded batch: x uniform in [0, 1) of ``shape``, labels in 0..k−1."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=dtype), torch.randint(0, k, (shape[0],), generator=g)


def half_correct(model: nn.Module, n: int, seed: int, classes: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """n 6×6 single-channel points in [0, 1) (6 rows: L2 Square tiles its start in 5, so H ≥ 5); the even ones
    labelled as ``model`` classifies them (they enter a cascade), the odd ones at random among ``classes``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 6, 6, generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[1::2] = torch.randint(0, classes, (len(y[1::2]),), generator=g)
    return x, y


def mixed_digits(mnist5k: Dataset, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n test digits of every class, in a seeded random order."""
    idx = torch.randperm(len(mnist5k.y_test), generator=torch.Generator().manual_seed(0))[:n]
    return mnist5k.x_test[idx], mnist5k.y_test[idx]


def digits_folder(root: Path, data: Dataset, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n test digits as PNGs in ImageFolder layout under ``root`` (class folders 0..9); returns them
    in the folder's order (class, then name)."""
    x8 = (data.x_test[:n] * 255).round().to(torch.uint8)  # mnist-5k holds k/255 exactly: the PNGs decode to x
    assert torch.equal(x8.float() / 255, data.x_test[:n])
    for i, (img, label) in enumerate(zip(x8, data.y_test[:n].tolist())):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[0].numpy()).save(root / str(label) / f"{i:04d}.png")
    order = sorted(range(n), key=lambda i: (int(data.y_test[i]), i))
    return data.x_test[:n][order], data.y_test[:n][order]


def well_conditioned(model: nn.Module, x: torch.Tensor, y: torch.Tensor, floor: float = 1e-3) -> torch.Tensor:
    """(N,) True where the clean cross-entropy is at least ``floor``. Then 1 − p_y ≳ 1e-3 and the gradient at
    the logits, p − onehot, is known to ~1e-4 relative in float32 (p_y rounds at 6e-8); below it, on samples
    the model is all but certain of, the direction of ∂J/∂X is mostly rounding noise."""
    from advgrad.losses import cross_entropy

    with torch.no_grad():
        return cross_entropy(model(x), y) >= floor
