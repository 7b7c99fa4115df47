"""Your model: load any classifier advgrad can attack, and check it fits the data before attacking it.

``open_model(spec, ...)`` takes

- an advgrad checkpoint (``advgrad train`` writes them);
- ``path/to/file.py:factory`` or ``package.module:factory``: **the .py file is executed** (your explicit
  choice, as with ``python file.py``); ``factory(**model_args)`` returns an ``nn.Module``;
- ``torchvision:NAME`` (e.g. ``torchvision:resnet18`` with ``model_args={"num_classes": 10}``), built with
  ``weights=None``: nothing is downloaded;
- a TorchScript file (``torch.jit.save``) or a torch.export program (``torch.export.save``, ``.pt2``);
- an ONNX graph (``.onnx``), run by ONNX Runtime (``models.onnx.load_onnx``): a ``QueryModel``, which only
  the black-box attacks can attack (it has no gradient).

A factory or torchvision model takes ``weights``, a state-dict file read with ``torch.load(weights_only=True)``
(``weights_key`` picks a nested entry such as "state_dict"; a ``module.``/``model.`` prefix from DDP or
Lightning is stripped). ``mean``/``std`` put advgrad's ``Normalize`` in front of the model, so that the
attack's inputs stay in pixel space (bounds (0, 1)) and the model sees (x − mean)/std, as it was trained.
Outputs that are a tuple, a dict or an object with ``.logits`` are reduced to the logits (``OutputLogits``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advgrad import _validate
from advgrad._runtime import resolve_device
from advgrad.models._files import ExportedModule, build_factory, build_torchvision, load_program, model_kind
from advgrad.models._weights import fit_state_dict, read_state_dict
from advgrad.models.checkpoint import load_checkpoint
from advgrad.models.layers import Normalize, OutputLogits
from advgrad.models.query import Classifier, QueryModel
from advgrad.records.write import sha256_file

KINDS = ("checkpoint", "factory", "torchvision", "torchscript", "export", "onnx")
_BUILT = ("factory", "torchvision")  # the kinds built from code, which take weights and model_args


@dataclass(frozen=True)
class LoadedModel:
    """The model (eval mode, on its device, inputs in ``bounds``; an ONNX graph: a ``QueryModel``), what it is
    (``info``: kind, source, file hashes, weights, model_args, mean/std; a checkpoint's metadata; an ONNX
    graph's signature) and warnings to show the user.

    Parameters
    ----------
    model : nn.Module or QueryModel
    info : dict
    warnings : tuple of str

    Examples
    --------
    >>> from advgrad import open_model
    >>> loaded = open_model("torch.nn:Linear", model_args={"in_features": 4, "out_features": 3})
    >>> loaded.info["kind"], loaded.info["parameters"], loaded.warnings
    ('factory', 15, ())
    """

    model: Classifier
    info: dict[str, Any]
    warnings: tuple[str, ...] = field(default=())


def parse_model_args(text: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """``--model-args``: a JSON object (``'{"num_classes": 10}'``) or a mapping → a dict of keyword arguments."""
    if text is None:
        return {}
    if isinstance(text, Mapping):
        value: object = dict(text)
    else:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"model_args must be a JSON object such as '{{\"num_classes\": 10}}', got {text!r} "
                             f"({exc.msg} at character {exc.pos})") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"model_args must be a JSON object such as '{{\"num_classes\": 10}}', got {text!r}")
    return value


def parse_floats(name: str, text: str | Sequence[float] | None) -> tuple[float, ...] | None:
    """``--mean``/``--std``: "0.485,0.456,0.406" (or a sequence) → a tuple of finite floats; None stays None."""
    if text is None:
        return None
    items: Sequence[object] = text.replace(" ", "").split(",") if isinstance(text, str) else text
    values = []
    for item in items:
        try:
            values.append(float(item) if isinstance(item, str) else item)
        except ValueError:
            raise ValueError(f"{name} must be comma-separated numbers such as 0.485,0.456,0.406, got {text!r}"
                             ) from None
    return _validate.numbers(name, values, minimum=-math.inf)


def _check_options(kind: str, weights: object, weights_key: object, args: dict[str, Any],
                   mean: object, std: object) -> None:
    if weights_key is not None and weights is None:
        raise ValueError("weights_key picks an entry of a weights file: give weights too")
    if kind not in _BUILT and (weights is not None or args):
        what = "weights" if weights is not None else "model_args"
        raise ValueError(f"{what} apply to a factory or torchvision:NAME model; a {kind} file holds its own "
                         "architecture and weights")
    if (mean is None) != (std is None):
        raise ValueError("give mean and std together (one value per input channel each)")
    if kind in ("checkpoint", "onnx") and mean is not None:
        what = "an advgrad checkpoint" if kind == "checkpoint" else "an ONNX graph"
        raise ValueError(f"{what} normalizes its inputs itself (its mean/std are stored in it); drop mean/std")


def _build(spec: str, kind: str, args: dict[str, Any], weights: str | os.PathLike[str] | None,
           weights_key: str | None, info: dict[str, Any]) -> tuple[nn.Module, list[str]]:
    """The bare model of a non-checkpoint ``spec`` (weights loaded), and load-time warnings."""
    notes: list[str] = []
    if kind in _BUILT:
        model = build_factory(spec, args) if kind == "factory" else build_torchvision(spec, args)
        if weights is not None:
            where = f"weights {str(weights)!r}" + (f"[{weights_key!r}]" if weights_key else "")
            info["stripped_prefixes"] = fit_state_dict(model, read_state_dict(weights, weights_key), where)
            info["weights_sha256"] = sha256_file(weights)
        elif kind == "torchvision":
            notes.append(f"{spec} has no weights file: its weights are random (pass weights=FILE)")
        return model, notes
    info["sha256"] = sha256_file(spec)
    return load_program(Path(spec), kind), notes


def open_model(spec: str | os.PathLike[str], *, weights: str | os.PathLike[str] | None = None,
               weights_key: str | None = None, model_args: str | Mapping[str, Any] | None = None,
               mean: str | Sequence[float] | None = None, std: str | Sequence[float] | None = None,
               device: str | torch.device = "cpu") -> LoadedModel:
    """Load the model ``spec`` names (see the module docstring), in eval mode on ``device``.

    A ``.py`` factory file is executed. Every failure is one line: FileNotFoundError for a missing file,
    ValueError for a bad ``module:attr``, a factory that raises, weights that do not fit (first missing/
    unexpected key, first shape mismatch), a file that is not what it claims. Call ``check_model_fits`` (or
    ``check_model_data``) next: whether the model takes the data's shape is known only with the data.

    Parameters
    ----------
    spec : str or PathLike
        A checkpoint, ``file.py:factory``, ``module:factory``, ``torchvision:NAME``, a TorchScript or .pt2 file.
    weights, weights_key : str or PathLike, str, optional
        A state-dict file for a factory or torchvision model, and the entry in it that holds the weights.
    model_args : str or Mapping, optional
        The factory's keyword arguments (a JSON object or a mapping).
    mean, std : str or sequence of float, optional
        Put ``Normalize(mean, std)`` in front of the model (not for checkpoints, which normalize themselves).
    device : str or torch.device

    Returns
    -------
    LoadedModel

    Raises
    ------
    FileNotFoundError, ValueError
        As above.

    Examples
    --------
    >>> import torch
    >>> from advgrad import open_model
    >>> loaded = open_model("torch.nn:Linear", model_args='{"in_features": 4, "out_features": 3}',
    ...                     mean=[0.5], std=[0.5])
    >>> [type(m).__name__ for m in loaded.model.model], loaded.model(torch.zeros(2, 1, 1, 4)).shape
    (['Normalize', 'Linear'], torch.Size([2, 1, 1, 3]))
    """
    spec = os.fspath(spec)
    args = parse_model_args(model_args)
    mean_t, std_t = parse_floats("mean", mean), parse_floats("std", std)
    dev = resolve_device(device) if isinstance(device, str) else device
    kind = model_kind(spec)
    _check_options(kind, weights, weights_key, args, mean_t, std_t)
    info: dict[str, Any] = {"kind": kind, "source": spec, "sha256": None, "weights": None, "weights_sha256": None,
                            "weights_key": weights_key, "model_args": args, "mean": mean_t, "std": std_t}
    if kind == "checkpoint":
        try:
            ckpt = load_checkpoint(spec, map_location=dev)
        except ValueError as exc:
            if "not an advgrad checkpoint" not in str(exc):
                raise
            raise ValueError(f"{exc}; a state dict saved with torch.save is given as weights=FILE with a factory "
                             "or torchvision:NAME model") from None
        info.update(sha256=sha256_file(spec), model=ckpt.meta.get("model"), dataset=ckpt.meta.get("dataset"))
        return LoadedModel(ckpt.model, info)
    if kind == "onnx":
        return _open_onnx(spec, dev, info)
    if weights is not None:
        info["weights"] = os.fspath(weights)
    bare, notes = _build(spec, kind, args, weights, weights_key, info)
    inner: nn.Module = bare
    if mean_t is not None and std_t is not None:
        inner = nn.Sequential(Normalize(mean_t, std_t), bare)  # (x − mean)/std, then the model
    model = OutputLogits(inner).to(dev).eval()
    info["parameters"] = sum(p.numel() for p in model.parameters())
    return LoadedModel(model, info, tuple(notes))


def _open_onnx(spec: str, device: torch.device, info: dict[str, Any]) -> LoadedModel:
    """An ONNX graph by ONNX Runtime, on the CPU or CUDA provider as ``device`` says; ``info`` adds that it
    answers queries only and the graph's signature (input, outputs, opset)."""
    from advgrad.models.onnx import load_onnx

    try:  # on a CUDA device: ONNX Runtime's CUDA provider where this onnxruntime has one, else its CPU one
        model = load_onnx(spec, device="auto" if device.type == "cuda" else "cpu")
    except ImportError as exc:  # the optional extra is missing: a usage error, one line saying what to install
        raise ValueError(str(exc)) from None
    signature: dict[str, Any] = getattr(model.fn, "signature", dict)()
    info.update(sha256=sha256_file(spec), query_only=True, labels_only=False, **signature)
    return LoadedModel(model, info)


def model_kind_of(spec: str | os.PathLike[str]) -> str:
    """``open_model``'s kind of ``spec`` (one of ``KINDS``); "checkpoint" where it cannot tell (a missing or
    foreign file), so that the checkpoint reader is the one to name the problem."""
    try:
        return model_kind(os.fspath(spec))
    except (OSError, ValueError):
        return "checkpoint"


def user_module(model: nn.Module) -> nn.Module:
    """The user's module inside ``open_model``'s wrappers: the ``OutputLogits`` around it, then the
    ``--mean/--std`` Normalize in front of it (the module itself where there are none)."""
    inner = model.model if isinstance(model, OutputLogits) else model
    if isinstance(inner, nn.Sequential) and len(inner) == 2 and isinstance(inner[0], Normalize):
        inner = inner[1]
    return inner


def describe_model(loaded: LoadedModel) -> dict[str, Any]:
    """What ``advgrad info`` says about a model that is not a checkpoint: ``open_model``'s info plus the class
    inside the wrappers (``user_module``), the parameter count, and the sample shape (C, H, W) and class count
    where the file records them (a torch.export program's graph does; code and TorchScript do not: None); an
    ONNX graph: its declared sample shape and class count (None where symbolic), no parameters counted."""
    if isinstance(loaded.model, QueryModel):
        dims = list(getattr(loaded.model.fn, "sample_shape", None) or [None])
        return {**loaded.info, "class": "QueryModel", "parameters": None,
                "input_shape": None if None in dims else dims, "num_classes": loaded.model.num_classes}
    inner = user_module(loaded.model)
    shape, width = inner.shapes() if isinstance(inner, ExportedModule) else (None, None)
    parameters = sum(p.numel() for p in loaded.model.parameters())
    return {**loaded.info, "class": type(inner).__name__, "parameters": parameters,
            "input_shape": None if shape is None else list(shape), "num_classes": width}


def load_model(spec: str | os.PathLike[str], map_location: str | torch.device = "cpu", **options: Any) -> nn.Module:
    """The module alone: ``open_model(spec, device=map_location, **options).model`` (for an advgrad
    checkpoint, the trained model).

    Parameters
    ----------
    spec, map_location, **options
        As ``open_model``'s ``spec``, ``device`` and keyword options.

    Returns
    -------
    nn.Module
        In eval mode; returns logits (N, K).

    Examples
    --------
    >>> import torch
    >>> from advgrad import load_model
    >>> model = load_model("torch.nn:Linear", model_args={"in_features": 4, "out_features": 3})
    >>> model(torch.zeros(2, 4)).shape
    torch.Size([2, 3])

    Raises
    ------
    ValueError
        ``spec`` is an ONNX graph: it only answers queries (``load_onnx``).
    """
    model = open_model(spec, device=map_location, **options).model
    if isinstance(model, QueryModel):
        raise ValueError(f"{os.fspath(spec)!r} is an ONNX graph: it only answers queries (load_onnx), it is no "
                         "torch module")
    return model
