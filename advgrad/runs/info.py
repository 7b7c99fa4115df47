"""What ``advgrad info`` describes: an advgrad checkpoint by its record (``read_checkpoint``), any other model
``attack``/``eval`` take (``file.py:factory``, ``module:factory``, ``torchvision:NAME``, TorchScript, ``.pt2``,
with weights) by what ``open_model`` finds (``describe``)."""

from __future__ import annotations

import os
from typing import Any

import torch

from advgrad.models.checkpoint import Checkpoint, load_checkpoint
from advgrad.models.loading import describe_model, model_kind_of, open_model
from advgrad.runs._sources import Warn

__all__ = ["Checkpoint", "describe", "model_kind_of", "read_checkpoint"]


def read_checkpoint(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> Checkpoint:
    """The checkpoint at ``path`` (FileNotFoundError, or ValueError for a foreign or damaged file)."""
    return load_checkpoint(path, map_location=device)


def describe(spec: str | os.PathLike[str], *, on_warning: Warn | None = None, **options: Any) -> dict[str, Any]:
    """``models.loading.describe_model`` of the model ``open_model(spec, **options)`` opens (kind, class,
    parameters, input shape and classes where the file records them, file hashes); ``on_warning(text)`` per
    warning of the loader, before the description is made."""
    loaded = open_model(spec, **options)
    for text in loaded.warnings:
        if on_warning is not None:
            on_warning(text)
    return describe_model(loaded)
