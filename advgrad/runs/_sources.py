"""The model and the data of ``advgrad attack``/``eval``/``transfer``: any classifier ``open_model`` takes (an
advgrad checkpoint, ``file.py:factory``, ``module:factory``, ``torchvision:NAME``, TorchScript, ``.pt2``) on
any data ``load_data`` takes (a built-in name, an ImageFolder folder, an ``.npz``/``.pt`` file).

Without ``data`` a checkpoint is evaluated on the test split of the data set it was trained on, as before
(``_inputs.open_inputs``: the recorded data set, its files under ``data_root``, ``checkpoint.check_data``);
any other model needs ``data``. With ``data``, ``check_model_data`` runs the model on two samples of the
data's shape first, so that a model that does not fit fails with one line before any attack starts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from advgrad._runtime import resolve_device
from advgrad.data.builtin import DATASETS
from advgrad.data.sources import FolderSource, TensorSource, load_data, select, source_of, subset
from advgrad.models._files import model_kind
from advgrad.models.loading import check_model_data, open_model
from advgrad.records.write import sha256_file
from advgrad.runs._inputs import Warn, open_inputs

MODEL_OPTIONS = ("model_args", "weights", "weights_key", "mean", "std")
DATA_OPTIONS = ("image_size", "grayscale", "workers")


@dataclass(frozen=True)
class Sources:
    """The model (eval mode, on ``device``, inputs in ``bounds``), what the records say about it
    (``model_meta``: a checkpoint's model block, else open_model's info with ``name`` = the spec) and the
    data, whose batches the workflows read one at a time."""

    model: nn.Module
    model_meta: dict[str, Any]
    model_sha256: str | None
    source: TensorSource | FolderSource
    device: torch.device
    bounds: tuple[float, float]

    @property
    def model_name(self) -> str:
        return str(self.model_meta.get("name"))

    @property
    def dataset_name(self) -> str:
        return str(self.source.name)


def _given(options: dict[str, Any], names: Sequence[str]) -> list[str]:
    """The options of ``names`` set to something other than their defaults (None, False, 0)."""
    return [k for k in names if options.get(k) not in (None, False, 0)]


def open_sources(model: str | os.PathLike[str], *, data: str | os.PathLike[str] | None = None,
                 data_root: str | os.PathLike[str] | None = None, device: str = "cpu", n: int | None = None,
                 classes: str | Sequence[int] | None = None, on_warning: Warn | None = None,
                 **options: Any) -> Sources:
    """Open the model ``model`` and the data ``data`` (the first ``n`` samples of ``classes``). ``options``:
    model_args, weights, weights_key, mean, std (``open_model``), image_size, grayscale, workers
    (``load_data``). FileNotFoundError or ValueError (one line) before anything costly when one does not fit."""
    unknown = sorted(set(options) - set(MODEL_OPTIONS) - set(DATA_OPTIONS))
    if unknown:
        raise TypeError(f"open_sources() got unexpected options {unknown}")
    warn = on_warning or (lambda _text: None)
    dev = resolve_device(device)
    if data is None:
        return _checkpoint_data(model, data_root, device, n, classes, warn, options)
    loaded = open_model(model, device=dev, **{k: options[k] for k in MODEL_OPTIONS if k in options})
    source = load_data(data, root=data_root, n=n, classes=classes,
                       **{k: options[k] for k in DATA_OPTIONS if k in options})
    if len(source) == 0:
        raise ValueError(f"the data {os.fspath(data)!r} holds no samples")
    for text in (*loaded.warnings, *check_model_data(loaded.model, source)):
        warn(text)
    info = loaded.info
    meta = info["model"] if info["kind"] == "checkpoint" else {"name": info["source"], **info}
    trained_on = info.get("dataset", {}).get("name") if info["kind"] == "checkpoint" else None
    # A model trained on a file (`train --data FILE --test-data FILE`) is meant to meet other files.
    if trained_on in DATASETS and trained_on != source.name:
        warn(f"the model was trained on {info['dataset']['name']}, the data is {source.name}")
    return Sources(loaded.model, meta, info.get("sha256"), source, dev, source.bounds)


def model_kind_of(spec: str | os.PathLike[str]) -> str:
    """open_model's kind of ``spec``; "checkpoint" where it cannot tell (a missing or foreign file: the
    checkpoint reader names the problem, as it always has)."""
    try:
        return model_kind(os.fspath(spec))
    except (OSError, ValueError):
        return "checkpoint"


def _checkpoint_data(model: str | os.PathLike[str], data_root: str | os.PathLike[str] | None, device: str,
                     n: int | None, classes: str | Sequence[int] | None, warn: Warn,
                     options: dict[str, Any]) -> Sources:
    """A checkpoint on the test split of its own data set (no ``data`` given)."""
    given = _given(options, (*MODEL_OPTIONS, *DATA_OPTIONS))
    kind = model_kind_of(model)
    if kind != "checkpoint":
        raise ValueError(f"--data is needed: {os.fspath(model)!r} is a {kind} model, and only an advgrad "
                         "checkpoint records the data set it was trained on (give a built-in name, a folder of "
                         "images or an .npz/.pt file)")
    if given:
        option = "--" + given[0].replace("_", "-")
        raise ValueError(f"{option} applies to a model given as code or an export, or to data given with "
                         f"--data; {os.fspath(model)!r} is read as an advgrad checkpoint on its own data set")
    inputs = open_inputs(model, data_root=data_root, device=device, on_warning=warn)
    full = source_of(inputs.data)
    source = subset(full, select(full.y, full.num_classes, n, classes))
    return Sources(inputs.model, inputs.checkpoint.meta["model"], sha256_file(model), source, inputs.device,
                   inputs.bounds)
