"""Whether a model fits the data, checked before any attack runs: the sample shape it takes, the number of
classes it answers, and outputs that look like logits (not probabilities, not NaN); a model that only
answers queries (an ONNX graph) is checked by ``models.query.check_query_fits``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torch import nn

from advgrad import _validate
from advgrad._runtime import check_dtype, frozen_eval, model_device
from advgrad.models._weights import _why
from advgrad.models.layers import output_logits
from advgrad.models.query import Classifier, QueryModel, check_query_fits


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


def check_model_data(model: Classifier, data: _DataShape) -> list[str]:
    """``check_model_fits`` for a data source: its sample shape, class count (exact where the data declares
    its classes, a lower bound where only the labels tell) and bounds (a QueryModel: ``check_query_fits``).

    Parameters
    ----------
    model : nn.Module or QueryModel
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
    if isinstance(model, QueryModel):
        return check_query_fits(model, data.input_shape, data.num_classes, data.bounds, exact=data.classes_known)
    return check_model_fits(model, data.input_shape, data.num_classes, data.bounds, exact=data.classes_known)
