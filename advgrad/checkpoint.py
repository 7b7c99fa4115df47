"""Checkpoints: one ``.pt`` file holding the weights and everything needed to rebuild the model.

Layout (a plain dict, loadable with ``torch.load(..., weights_only=True)``; a checkpoint is untrusted
input, so nothing in it is unpickled as code)::

    {"format": "advgrad-checkpoint", "format_version": 1,
     "meta": {"model": {"name", "kwargs"}, "dataset": {"name", "input_shape", "num_classes",
              "class_names", "mean", "std", "bounds"}, "train_config", "metrics",
              "advgrad_version", "torch_version"},
     "state_dict": {...},
     ...extra entries (optimizer and RNG state for ``--resume``)}
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advgrad._version import __version__
from advgrad.models import build_model
from advgrad.results import to_json, write_torch

FORMAT = "advgrad-checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    model: nn.Module
    meta: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def bounds(self) -> tuple[float, float]:
        lo, hi = self.meta["dataset"].get("bounds", (0.0, 1.0))
        return float(lo), float(hi)


def model_from_meta(meta: dict[str, Any]) -> nn.Module:
    """Rebuild an (untrained) model from a checkpoint's metadata."""
    ds = meta["dataset"]
    return build_model(meta["model"]["name"], input_shape=ds["input_shape"], num_classes=ds["num_classes"],
                       mean=ds["mean"], std=ds["std"], **meta["model"].get("kwargs", {}))


def save_checkpoint(path: str | os.PathLike[str], model: nn.Module, meta: dict[str, Any],
                    **extra: Any) -> Path:
    """Write weights + metadata atomically (temporary file, then ``os.replace``)."""
    # A JSON round trip keeps the metadata to plain str/int/float/list/dict (torch.__version__ is a
    # str subclass, numpy scalars are not floats), which is all weights_only loading accepts.
    meta = json.loads(to_json({**meta, "advgrad_version": __version__, "torch_version": str(torch.__version__)}))
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "meta": meta, "state_dict": state, **extra}
    return write_torch(path, payload)


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load and rebuild; ValueError if the file is not an advgrad checkpoint, FileNotFoundError if absent."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no model at {str(p)!r}: train one with `advgrad train` (writes runs/model.pt)")
    try:
        payload = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors all mean "not a checkpoint we can read"
        raise ValueError(f"{str(p)!r} is not an advgrad checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{str(p)!r} is not an advgrad checkpoint (no {FORMAT!r} header)")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{str(p)!r} has checkpoint format {payload.get('format_version')!r}; "
                         f"this advgrad reads format {FORMAT_VERSION}")
    meta = payload["meta"]
    try:
        model = model_from_meta(meta)
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise ValueError(f"{str(p)!r} is a damaged advgrad checkpoint: {exc}") from None
    model.to(map_location).eval()
    extra = {k: v for k, v in payload.items() if k not in ("format", "format_version", "meta", "state_dict")}
    return Checkpoint(model=model, meta=meta, extra=extra)


def load_model(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a trained model from its checkpoint, in eval mode."""
    return load_checkpoint(path, map_location).model


def checkpoint_meta(model_meta: dict[str, Any], data: Any, config: Any, history: Any, **extra: Any) -> dict[str, Any]:
    """The metadata stored beside the weights: enough to rebuild, evaluate and trace the model
    (``data``: a Dataset, ``config``: a TrainConfig, ``history``: a History)."""
    return {"model": model_meta, "dataset": data.meta(), "train_config": config.to_dict(),
            "metrics": history.final, **extra}
