"""Checkpoints: one ``.pt`` file holding the weights and everything needed to rebuild the model.

Layout (a plain dict, loadable with ``torch.load(..., weights_only=True)``; a checkpoint is untrusted
input, so nothing in it is unpickled as code)::

    {"format": "advgrad-checkpoint", "format_version": 1,
     "meta": {"model": {"name", "kwargs"}, "dataset": {"name", "input_shape", "num_classes",
              "class_names", "mean", "std", "bounds"}, "train_config", "metrics",
              "advgrad_version", "torch_version"},
     "state_dict": {...},
     ...extra entries (optimizer and RNG state for ``--resume``)}

The metadata is checked when a checkpoint is loaded (types and ranges, and the shapes of the weights
against a model built on the ``meta`` device, which allocates nothing), and ``check_data`` compares it with
the data a model is about to be evaluated on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from advgrad.models._meta import check_meta
from advgrad.models.zoo import build_model
from advgrad.records.write import to_json, write_torch

if TYPE_CHECKING:
    from advgrad.data.builtin import Dataset

FORMAT = "advgrad-checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """A loaded checkpoint: the rebuilt model (eval mode), its metadata and the extra entries saved with it.

    Parameters
    ----------
    model : nn.Module
    meta : dict
        The metadata (layout in the module docstring); ``bounds`` reads the data set's pixel bounds.
    extra : dict
        The entries saved beside the weights (``save_checkpoint``'s keywords: optimizer and RNG state).

    Examples
    --------
    >>> import torch
    >>> from advgrad import Checkpoint
    >>> ckpt = Checkpoint(torch.nn.Linear(4, 3), {"dataset": {"bounds": [-1, 1]}})
    >>> ckpt.bounds, ckpt.extra
    ((-1.0, 1.0), {})
    """

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
    """Write weights + metadata atomically (temporary file, then ``os.replace``).

    Parameters
    ----------
    path : str or PathLike
    model : nn.Module
        Its ``state_dict`` is stored (on the CPU).
    meta : dict
        "model" and "dataset" blocks (``checkpoint_meta``); the advgrad and torch versions are added.
    **extra
        Further entries (tensors, dicts, lists, scalars), returned as ``Checkpoint.extra``.

    Returns
    -------
    Path
        The file written.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from advgrad import build_model, load_checkpoint, save_checkpoint
    >>> _ = torch.manual_seed(0)
    >>> model = build_model("logreg", input_shape=(1, 2, 2), num_classes=3, mean=[0.5], std=[0.5])
    >>> meta = {"model": {"name": "logreg"}, "dataset": {"name": "toy", "input_shape": [1, 2, 2],
    ...         "num_classes": 3, "mean": [0.5], "std": [0.5]}}
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     ckpt = load_checkpoint(save_checkpoint(Path(tmp) / "model.pt", model, meta, epoch=3))
    >>> ckpt.extra, torch.equal(ckpt.model[2].weight, model[2].weight)
    ({'epoch': 3}, True)
    """
    from advgrad._version import __version__

    # A JSON round trip keeps the metadata to plain str/int/float/list/dict (torch.__version__ is a
    # str subclass, numpy scalars are not floats), which is all weights_only loading accepts.
    meta = json.loads(to_json({**meta, "advgrad_version": __version__, "torch_version": str(torch.__version__)}))
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "meta": meta, "state_dict": state, **extra}
    return write_torch(path, payload)


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load and rebuild the model, checking the metadata and the weights' shapes first (no code is unpickled).

    Parameters
    ----------
    path : str or PathLike
    map_location : str or torch.device
        Where the model goes.

    Returns
    -------
    Checkpoint
        The model in eval mode, its metadata and the extra entries.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        Not an advgrad checkpoint, another format version, or damaged (one line naming the first fault).

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from advgrad import load_checkpoint
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     torch.save({"weight": torch.zeros(2)}, Path(tmp) / "weights.pt")
    ...     load_checkpoint(Path(tmp) / "weights.pt")
    Traceback (most recent call last):
    ...
    ValueError: '...weights.pt' is not an advgrad checkpoint (no 'advgrad-checkpoint' header)
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no model at {str(p)!r}: train one with `advgrad train` (writes out/model.pt)")
    try:
        payload = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors all mean "not a checkpoint we can read"
        raise ValueError(f"{str(p)!r} is not an advgrad checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{str(p)!r} is not an advgrad checkpoint (no {FORMAT!r} header)")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{str(p)!r} has checkpoint format {payload.get('format_version')!r}; "
                         f"this advgrad reads format {FORMAT_VERSION}")
    meta = payload.get("meta")
    try:
        if not isinstance(meta, dict):
            raise ValueError("no metadata")
        check_meta(meta)
        _check_shapes(meta, payload.get("state_dict"))
        model = model_from_meta(meta)
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise ValueError(f"{str(p)!r} is a damaged advgrad checkpoint: {_first_line(exc)}") from None
    model.to(map_location).eval()
    extra = {k: v for k, v in payload.items() if k not in ("format", "format_version", "meta", "state_dict")}
    return Checkpoint(model=model, meta=meta, extra=extra)


def check_data(ckpt_or_meta: Checkpoint | Mapping[str, Any], data: Dataset) -> list[str]:
    """Compare the data a checkpoint's model is about to be evaluated on with the data it was trained on
    (``meta["dataset"]``, as ``Dataset.meta()`` recorded it).

    Raises ValueError when the model cannot be evaluated on ``data``: another input shape (C, H, W), or
    another number of classes. Returns one line per difference that leaves the numbers computable but not
    comparable with the recorded ones: another data set name, other class names, other bounds, and
    train/test splits of other sizes than the recorded n_train/n_test (e.g. a different copy of the data
    set). A field the checkpoint does not record is not compared.
    """
    meta = ckpt_or_meta.meta if isinstance(ckpt_or_meta, Checkpoint) else ckpt_or_meta
    ds = meta.get("dataset") if isinstance(meta, Mapping) else None
    if not isinstance(ds, Mapping):
        raise ValueError("the checkpoint records no data set (meta['dataset'] is missing)")
    name = ds.get("name", "?")
    shape, want = ds.get("input_shape"), list(data.input_shape)
    if shape is not None and list(shape) != want:
        raise ValueError(f"the model takes inputs of shape {_shape(shape)} ({name}), but {data.name} has "
                         f"{_shape(want)}: evaluate it on the data it was trained on")
    classes = ds.get("num_classes")
    if classes is not None and classes != data.num_classes:
        raise ValueError(f"the model has {classes} classes ({name}), but {data.name} has {data.num_classes}: "
                         "evaluate it on the data it was trained on")
    warnings = []
    if name != data.name:
        warnings.append(f"the model was trained on {name}, the data is {data.name}")
    if ds.get("class_names") is not None and list(ds["class_names"]) != list(data.class_names):
        warnings.append(f"the model's class names ({', '.join(map(str, ds['class_names']))}) differ from "
                        f"{data.name}'s ({', '.join(data.class_names)})")
    if ds.get("bounds") is not None and [float(b) for b in ds["bounds"]] != [float(b) for b in data.bounds]:
        warnings.append(f"the model was trained on pixel bounds {tuple(ds['bounds'])}, {data.name} has {data.bounds}")
    for split, n in (("train", len(data.y_train)), ("test", len(data.y_test))):
        recorded = ds.get(f"n_{split}")
        if recorded is not None and recorded != n:
            warnings.append(f"{data.name} has {n} {split} images here but had {recorded} when the model was "
                            f"trained: another copy or version of the data set; results are not comparable "
                            f"with the recorded ones")
    return warnings


def _shape(shape: Any) -> str:
    return "×".join(map(str, shape))


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _check_shapes(meta: dict[str, Any], state: Any) -> None:
    """The weights must have the shapes of the model the metadata describes. The model is built on the
    ``meta`` device first: a damaged width (say 10⁹) costs no memory there."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError("state_dict: expected a dict of tensors")
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in model_from_meta(meta).state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != expected:
        diff = next(k for k in sorted(set(got) | set(expected)) if got.get(k) != expected.get(k))
        raise ValueError(f"weight {diff!r} has shape {got.get(diff)}, the model in meta needs {expected.get(diff)}")


def checkpoint_meta(model_meta: dict[str, Any], data: Any, config: Any, history: Any, **extra: Any) -> dict[str, Any]:
    """The metadata stored beside the weights: enough to rebuild, evaluate and trace the model.

    Parameters
    ----------
    model_meta : dict
        ``build_for``'s block: the model's name and keyword arguments.
    data, config, history : Dataset, TrainConfig, History
        The training data (``meta()``), the run's config and its record (the last epoch's metrics).
    **extra
        Further entries (e.g. "adversarial": the AdvConfig's dict).

    Returns
    -------
    dict

    Examples
    --------
    >>> import torch
    >>> from advgrad import Dataset, History, TrainConfig, checkpoint_meta
    >>> x, y = torch.rand(3, 1, 2, 2, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2])
    >>> data = Dataset("toy", x, y, x, y, ("a", "b", "c"), (0.5,), (0.5,))
    >>> meta = checkpoint_meta({"name": "logreg", "kwargs": {}}, data, TrainConfig(), History([{"epoch": 1}]))
    >>> sorted(meta), meta["dataset"]["input_shape"], meta["metrics"]
    (['dataset', 'metrics', 'model', 'train_config'], [1, 2, 2], {'epoch': 1})
    """
    return {"model": model_meta, "dataset": data.meta(), "train_config": config.to_dict(),
            "metrics": history.final, **extra}
