"""Your model: load any classifier advgrad can attack, and check it fits the data before attacking it.

``open_model(spec, ...)`` takes

- an advgrad checkpoint (``advgrad train`` writes them);
- ``path/to/file.py:factory`` or ``package.module:factory``: **the .py file is executed** (your explicit
  choice, as with ``python file.py``); ``factory(**model_args)`` returns an ``nn.Module``;
- ``torchvision:NAME`` (e.g. ``torchvision:resnet18`` with ``model_args={"num_classes": 10}``), built with
  ``weights=None``: nothing is downloaded;
- a TorchScript file (``torch.jit.save``) or a torch.export program (``torch.export.save``, ``.pt2``).

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
from typing import Any, Protocol

import torch
from torch import nn

from advgrad import _validate
from advgrad._runtime import check_dtype, frozen_eval, model_device, resolve_device
from advgrad.models._files import ExportedModule, build_factory, build_torchvision, load_program, model_kind
from advgrad.models._weights import _why, fit_state_dict, read_state_dict
from advgrad.models.checkpoint import load_checkpoint
from advgrad.models.zoo import Normalize, OutputLogits, output_logits
from advgrad.records.write import sha256_file

KINDS = ("checkpoint", "factory", "torchvision", "torchscript", "export")
_BUILT = ("factory", "torchvision")  # the kinds built from code, which take weights and model_args


@dataclass(frozen=True)
class LoadedModel:
    """The model (eval mode, on its device, inputs in ``bounds``), what it is (``info``: kind, source, file
    hashes, weights, model_args, mean/std; a checkpoint's metadata) and warnings to show the user.

    Parameters
    ----------
    model : nn.Module
    info : dict
    warnings : tuple of str

    Examples
    --------
    >>> from advgrad import open_model
    >>> loaded = open_model("torch.nn:Linear", model_args={"in_features": 4, "out_features": 3})
    >>> loaded.info["kind"], loaded.info["parameters"], loaded.warnings
    ('factory', 15, ())
    """

    model: nn.Module
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
    if kind == "checkpoint" and mean is not None:
        raise ValueError("an advgrad checkpoint normalizes its inputs itself (its mean/std are stored in it); "
                         "drop mean/std")


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
    if weights is not None:
        info["weights"] = os.fspath(weights)
    bare, notes = _build(spec, kind, args, weights, weights_key, info)
    inner: nn.Module = bare
    if mean_t is not None and std_t is not None:
        inner = nn.Sequential(Normalize(mean_t, std_t), bare)  # (x − mean)/std, then the model
    model = OutputLogits(inner).to(dev).eval()
    info["parameters"] = sum(p.numel() for p in model.parameters())
    return LoadedModel(model, info, tuple(notes))


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
    where the file records them (a torch.export program's graph does; code and TorchScript do not: None)."""
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
    """
    return open_model(spec, device=map_location, **options).model


def _probability_warning(z: torch.Tensor) -> str | None:
    """A warning when the outputs (N, K) look like probabilities rather than logits."""
    if bool((z < 0).any()):
        return None
    if z.shape[1] > 1 and bool(((z.sum(1) - 1).abs() < 1e-3).all()):
        shape = "softmax probabilities (non-negative rows that sum to 1)"
    elif bool((z <= 1).all()):
        shape = "sigmoid outputs (all in [0, 1])"
    else:
        return None
    return (f"the model's outputs look like {shape}: attack the logits (return them before the softmax/"
            "sigmoid); gradients through a saturated softmax vanish and make the model look more robust")


def check_model_fits(model: nn.Module, sample_shape: Sequence[int], num_classes: int,
                     bounds: tuple[float, float] = (0.0, 1.0), *, exact: bool = True) -> list[str]:
    """Run the model on 2 random inputs of ``sample_shape`` = (C, H, W) in ``bounds`` (seeded), then on the
    first alone. ValueError (one line) if it fails, returns no (N, K) floating logits, has K ≠ ``num_classes``
    (with ``exact=False``: K < ``num_classes``, for data whose labels only bound the class count) or returns
    NaN/Inf. Returns warnings: outputs that look like probabilities; a sample's logits that depend on the
    rest of its batch (batch statistics: a model not in eval mode when it was saved).

    Parameters
    ----------
    model : nn.Module
    sample_shape : sequence of int
        (C, H, W).
    num_classes : int
    bounds : (float, float)
    exact : bool

    Returns
    -------
    list of str
        The warnings (empty for a model that fits).

    Raises
    ------
    ValueError
        As above.

    Examples
    --------
    >>> import torch
    >>> from advgrad import check_model_fits
    >>> _ = torch.manual_seed(0)  # the model's initial weights
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> check_model_fits(model, (1, 2, 2), 3)
    []
    >>> check_model_fits(model, (1, 2, 2), 10)
    Traceback (most recent call last):
    ...
    ValueError: the model has 3 outputs but the data needs 10 classes (set num_classes in model_args, ...)
    """
    lo, hi = _validate.bounds(bounds)
    shape = tuple(_validate.count("sample_shape", int(s)) for s in sample_shape)
    k = _validate.count("num_classes", num_classes)
    device = model_device(model)
    g = torch.Generator().manual_seed(0)
    x = (lo + (hi - lo) * torch.rand((2, *shape), generator=g)).to(device)  # (2, C, H, W) float32
    check_dtype(model, x)
    outs = []
    with frozen_eval(model), torch.no_grad():
        for batch in (x, x[:1]):
            try:
                z = output_logits(model(batch))
            except Exception as exc:  # any failure inside the user's model is "does not fit", on one line
                raise ValueError(f"the model fails on inputs of shape {tuple(batch.shape)} in [{lo:g}, {hi:g}] "
                                 f"({_why(exc)})") from None
            if z.ndim != 2 or len(z) != len(batch) or not z.is_floating_point():
                raise ValueError(f"the model must return logits of shape (N, K) = ({len(batch)}, K) for inputs "
                                 f"{tuple(batch.shape)}, got {z.dtype} {tuple(z.shape)}")
            outs.append(z.float().cpu())
    z = outs[0]
    if not bool(torch.isfinite(z).all()):
        raise ValueError(f"the model returns NaN or Inf on inputs of shape {tuple(x.shape)} in [{lo:g}, {hi:g}]")
    if (z.shape[1] != k) if exact else (z.shape[1] < k):
        need = f"{k}" if exact else f"at least {k}"
        raise ValueError(f"the model has {z.shape[1]} outputs but the data needs {need} classes "
                         "(set num_classes in model_args, or use the model's own data)")
    found = [w for w in (_probability_warning(z),) if w]
    gap = float((outs[1][0] - z[0]).abs().max())
    if gap > 1e-4 * (1 + float(z[0].abs().max())):  # rounding of a different batch size stays far below this
        found.append(f"sample 0's logits change by {gap:.3g} when the rest of its batch changes: the model uses "
                     "batch statistics (save or export it in eval mode)")
    return found


class _DataShape(Protocol):
    """What ``check_model_data`` reads of a data source (``advgrad.data.sources.DataSource`` has it)."""

    @property
    def classes_known(self) -> bool: ...

    @property
    def bounds(self) -> tuple[float, float]: ...

    @property
    def input_shape(self) -> tuple[int, int, int]: ...

    @property
    def num_classes(self) -> int: ...


def check_model_data(model: nn.Module, data: _DataShape) -> list[str]:
    """``check_model_fits`` for a data source: its sample shape, class count (exact where the data declares
    its classes, a lower bound where only the labels tell) and bounds.

    Parameters
    ----------
    model : nn.Module
    data : DataSource

    Returns
    -------
    list of str
        ``check_model_fits``'s warnings.

    Raises
    ------
    ValueError
        The model does not fit the data.

    Examples
    --------
    >>> import torch
    >>> from advgrad import TensorSource, check_model_data
    >>> x = torch.rand(5, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    >>> data = TensorSource("toy", x, torch.tensor([0, 1, 2, 0, 1]), ("a", "b", "c"))
    >>> _ = torch.manual_seed(0)  # the model's initial weights
    >>> check_model_data(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)), data)
    []
    """
    return check_model_fits(model, data.input_shape, data.num_classes, data.bounds, exact=data.classes_known)
