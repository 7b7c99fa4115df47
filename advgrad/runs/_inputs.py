"""What the workflows that evaluate a saved model share: the checkpoint, the data it was trained on, the
device — opened in that order, each check before the next costly step."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from advgrad._runtime import resolve_device
from advgrad.data import builtin as _data

# Called through their modules, not imported by name, so that a test replacing one sees every call.
from advgrad.models import checkpoint as _checkpoint

Warn = Callable[[str], None]


@dataclass(frozen=True)
class Inputs:
    checkpoint: _checkpoint.Checkpoint
    data: _data.Dataset
    device: torch.device

    @property
    def model(self) -> nn.Module:
        return self.checkpoint.model

    @property
    def bounds(self) -> tuple[float, float]:
        return self.checkpoint.bounds

    @property
    def model_name(self) -> str:
        return str(self.checkpoint.meta["model"]["name"])

    def test_split(self, n: int | None = None) -> tuple[Tensor, Tensor]:
        """The first ``n`` test images (all with None) and their labels, on the CPU."""
        return self.data.x_test[:n], self.data.y_test[:n]


def open_inputs(model_path: str | os.PathLike[str], *, data_root: str | os.PathLike[str] | None = None,
                device: str = "cpu", on_warning: Warn | None = None) -> Inputs:
    """The device (ValueError for "cuda" without one), the checkpoint at ``model_path`` (FileNotFoundError,
    or ValueError for a foreign or damaged file), its data set's files under ``data_root``, and the check that
    the model runs on that data (ValueError if not; ``on_warning(text)`` per difference that only changes the
    numbers, e.g. another copy of the data set)."""
    dev = resolve_device(device)
    ckpt = _checkpoint.load_checkpoint(Path(model_path), map_location=dev)
    name = ckpt.meta["dataset"]["name"]
    if name not in _data.DATASETS:  # `train --data FILE|FOLDER --test-data ...`: no name to reload it by
        raise ValueError(f"--data is needed: {os.fspath(model_path)!r} was trained on the data {name!r} (a file or "
                         "folder, not a built-in set): give its test data, or any data, with --data")
    data = _data.load_dataset(name, None if data_root is None else Path(data_root))
    for warning in _checkpoint.check_data(ckpt, data):
        if on_warning is not None:
            on_warning(warning)
    return Inputs(ckpt, data, dev)
