"""The model and the data a workflow opens (``advgrad attack``/``eval``/``transfer``/``grad``/``plot``), as one
record, ``Sources``: any classifier ``open_model`` takes (an advgrad checkpoint, ``file.py:factory``,
``module:factory``, ``torchvision:NAME``, TorchScript, ``.pt2``) on any data ``load_data`` takes (a built-in
name, an ImageFolder folder, an ``.npz``/``.pt`` file).

Without ``data`` a checkpoint is evaluated on the test split of the data set it was trained on
(``open_checkpoint``: the device, the checkpoint, the recorded data set's files under ``data_root``,
``checkpoint.check_data`` — opened in that order, each check before the next costly step); any other model
needs ``data``. With ``data``, ``check_model_data`` runs the model on two samples of the data's shape first,
so that a model that does not fit fails with one line before any attack starts.

An ONNX graph (``.onnx``) opens as a ``QueryModel`` (ONNX Runtime; it answers queries, no gradient);
``labels_only`` makes any model answer its top-1 label only. ``check_attacks`` then turns away, in one
line, an attack that needs what such a model does not give (gradients, or scores).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advgrad._runtime import resolve_device
from advgrad.catalog import ATTACKS, DATASETS, LABEL_ATTACKS, QUERY_ATTACKS

# Called through their modules, not imported by name, so that a test replacing one sees every call.
from advgrad.data import builtin as _data
from advgrad.data.sources import FolderSource, TensorSource, load_data, select, source_of, subset
from advgrad.models import checkpoint as _checkpoint
from advgrad.models.fitting import check_model_data
from advgrad.models.loading import model_kind_of, open_model
from advgrad.models.query import Classifier, QueryModel, labels_only_view
from advgrad.records.write import sha256_file

Warn = Callable[[str], None]
MODEL_OPTIONS = ("model_args", "weights", "weights_key", "mean", "std")
DATA_OPTIONS = ("image_size", "grayscale", "workers")


@dataclass(frozen=True)
class Sources:
    """The model (eval mode, on ``device``, inputs in ``bounds``), what the records say about it
    (``model_meta``: a checkpoint's model block, else open_model's info with ``name`` = the spec) and the
    data, whose batches the workflows read one at a time."""

    model: Classifier
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

    def module(self, what: str) -> nn.Module:
        """The model as a torch module, for ``what`` (a workflow that needs its gradients); ValueError, one
        line, for a model that only answers queries (an ONNX graph, ``--labels-only``)."""
        if isinstance(self.model, nn.Module):
            return self.model
        raise ValueError(f"{what} needs the model's gradients, but {self.model.name} only answers queries")


def _given(options: dict[str, Any], names: Sequence[str]) -> list[str]:
    """The options of ``names`` set to something other than their defaults (None, False, 0)."""
    return [k for k in names if options.get(k) not in (None, False, 0)]


def check_attacks(model: Classifier, methods: Sequence[str]) -> None:
    """ValueError, one line, for the first of ``methods`` that ``model`` cannot be attacked with: a gradient
    attack on a model that only answers queries, a score-based one on a model that answers labels only."""
    if not isinstance(model, QueryModel):
        return
    for method in methods:
        needs = ATTACKS[method].needs
        if model.labels_only and needs != "labels":
            raise ValueError(f"{method} needs the model's {needs}, but {model.name} answers top-1 labels only: "
                             f"use a decision-based attack ({', '.join(LABEL_ATTACKS)})")
        if needs == "gradients":
            raise ValueError(f"{method} needs the model's gradients, but {model.name} only answers queries: use a "
                             f"black-box attack ({', '.join(QUERY_ATTACKS)})")


def _labels_only(sources: Sources) -> Sources:
    """``sources`` with a model that answers its top-1 label only (``--labels-only``), and says so."""
    meta = {**sources.model_meta, "query_only": True, "labels_only": True}
    return replace(sources, model=labels_only_view(sources.model), model_meta=meta)


def open_sources(model: str | os.PathLike[str], *, data: str | os.PathLike[str] | None = None,
                 data_root: str | os.PathLike[str] | None = None, device: str = "cpu", n: int | None = None,
                 classes: str | Sequence[int] | None = None, on_warning: Warn | None = None,
                 labels_only: bool = False, **options: Any) -> Sources:
    """Open the model ``model`` and the data ``data`` (the first ``n`` samples of ``classes``). ``options``:
    model_args, weights, weights_key, mean, std (``open_model``), image_size, grayscale, workers
    (``load_data``). FileNotFoundError or ValueError (one line) before anything costly when one does not fit.
    ``labels_only``: the model answers top-1 labels only (a ``QueryModel``; only decision-based attacks)."""
    sources = _open_sources(model, data=data, data_root=data_root, device=device, n=n, classes=classes,
                            on_warning=on_warning, **options)
    return _labels_only(sources) if labels_only else sources


def _open_sources(model: str | os.PathLike[str], *, data: str | os.PathLike[str] | None,
                  data_root: str | os.PathLike[str] | None, device: str, n: int | None,
                  classes: str | Sequence[int] | None, on_warning: Warn | None, **options: Any) -> Sources:
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
    return open_checkpoint(model, data_root=data_root, device=device, n=n, classes=classes, on_warning=warn)


def open_checkpoint(model_path: str | os.PathLike[str], *, data_root: str | os.PathLike[str] | None = None,
                    device: str = "cpu", n: int | None = None, classes: str | Sequence[int] | None = None,
                    on_warning: Warn | None = None) -> Sources:
    """The device (ValueError for "cuda" without one), the checkpoint at ``model_path`` (FileNotFoundError,
    or ValueError for a foreign or damaged file), the test split of its data set (the first ``n`` samples of
    ``classes``) from the files under ``data_root``, and the check that the model runs on that data
    (ValueError if not; ``on_warning(text)`` per difference that only changes the numbers, e.g. another copy
    of the data set)."""
    dev = resolve_device(device)
    ckpt = _checkpoint.load_checkpoint(Path(model_path), map_location=dev)
    name = ckpt.meta["dataset"]["name"]
    if name not in DATASETS:  # `train --data FILE|FOLDER --test-data ...`: no name to reload it by
        raise ValueError(f"--data is needed: {os.fspath(model_path)!r} was trained on the data {name!r} (a file or "
                         "folder, not a built-in set): give its test data, or any data, with --data")
    data = _data.load_dataset(name, None if data_root is None else Path(data_root))
    for warning in _checkpoint.check_data(ckpt, data):
        if on_warning is not None:
            on_warning(warning)
    full = source_of(data)
    source = subset(full, select(full.y, full.num_classes, n, classes))
    return Sources(ckpt.model, ckpt.meta["model"], sha256_file(model_path), source, dev, ckpt.bounds)
