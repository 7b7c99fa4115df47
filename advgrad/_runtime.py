"""What training, attacks and evaluation share about running a model: the frozen evaluation mode, the
device, and forward passes in batches. A neutral layer: it knows nothing of losses, attacks or training.

- ``frozen_eval(model)``: eval mode (BatchNorm on running statistics, dropout off: the deployed function,
  and a sample's output does not depend on its batch) and every parameter's ``requires_grad`` off (autograd
  then records nothing for the weights, so an input gradient is the only gradient computed and parameter
  ``.grad`` is never touched). Both are restored on exit, also when the body raises.
- ``forward(model, x)``: model(x) checked to be logits (N, K); a model that cannot take x is a ValueError
  that names the shapes instead of a traceback from inside a layer; ``check_batch``/``check_labels``/
  ``check_dtype``: the same for the batch (x, y) itself.
- ``logits``/``predict``: forward passes in batches under ``frozen_eval``, each batch moved to the model's
  device and the results brought back to x's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from advgrad._validate import ParameterError

DEVICES = ("auto", "cpu", "cuda")
Advance = Callable[[int], None]  # advance(k): k more samples done (evaluate.progress's Tally is one)


@contextmanager
def frozen_eval(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and parameters with ``requires_grad=False`` inside; the caller's mode and flags after.

    Parameters
    ----------
    model : nn.Module
        The model to freeze for the duration of the ``with`` block.

    Returns
    -------
    Iterator[nn.Module]
        A context manager yielding ``model`` itself.

    Examples
    --------
    >>> import torch
    >>> from advgrad import frozen_eval
    >>> model = torch.nn.Linear(2, 2)
    >>> with frozen_eval(model):
    ...     model.training, model.weight.requires_grad
    (False, False)
    >>> model.training, model.weight.requires_grad
    (True, True)
    """
    was_training = model.training
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    model.eval()
    for p in params:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
        model.train(was_training)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); the CPU for a model with neither."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def resolve_device(name: str) -> torch.device:
    """"auto" → cuda if available, else cpu; "cuda" without a CUDA device is a ValueError (``ParameterError``
naming ``device``)."""
    if name not in DEVICES:
        raise ValueError(f"unknown device {name!r}: expected one of {', '.join(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device", " 'cuda' requested but no CUDA device is available (use cpu or auto)")
    return torch.device(name)


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def check_dtype(model: nn.Module, x: Tensor) -> None:
    """x must have the floating dtype of the model's parameters (or buffers, for a model without any):
    torch would stop at the first layer with a message about mat1 and mat2."""
    dtypes = {t.dtype for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()}
    if dtypes and x.dtype not in dtypes:
        have = " and ".join(sorted(_name(d) for d in dtypes))
        raise ValueError(f"x is {_name(x.dtype)} but the model's parameters are {have}: "
                         f"convert one to the other (e.g. x.to({have.split(' ')[0]}) or model.to(x.dtype))")


def forward(model: nn.Module, x: Tensor) -> Tensor:
    """model(x) as logits (N, K); a model that cannot take x (wrong rank, channels or size) or returns
    something else is a ValueError naming the shapes."""
    try:
        z = model(x)
    except torch.OutOfMemoryError:
        raise
    except (RuntimeError, TypeError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"the model cannot take x of shape {tuple(x.shape)} ({_name(x.dtype)}): {reason}") from exc
    if not isinstance(z, Tensor) or z.ndim != 2 or len(z) != len(x) or not z.is_floating_point():
        got = f"shape {tuple(z.shape)}" if isinstance(z, Tensor) else type(z).__name__
        raise ValueError(f"the model must return logits of shape (N, K) = ({len(x)}, K), got {got}")
    return z


def check_batch(x: Tensor, y: Tensor) -> tuple[float, float]:
    """Validate a batch; returns x's smallest and largest value (one pass over x)."""
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    if x.ndim < 2:
        raise ValueError(f"x must be a batch (N, ...) with at least 2 dimensions, got shape {tuple(x.shape)}")
    if len(x) == 0:
        raise ValueError("x is an empty batch (N = 0)")
    if not isinstance(y, Tensor) or y.ndim != 1 or y.is_floating_point() or y.is_complex():
        raise ValueError(f"y must be a 1-D integer tensor of class labels, got "
                         f"{getattr(y, 'dtype', type(y).__name__)} shape {tuple(getattr(y, 'shape', ()))}")
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)} labels")
    xmin, xmax = (float(v) for v in torch.aminmax(x.detach()))  # NaN propagates into both
    if not (math.isfinite(xmin) and math.isfinite(xmax)):
        raise ValueError("x contains NaN or Inf values")
    if bool((y < 0).any()):
        raise ValueError(f"labels must be class indices ≥ 0, got {int(y.min())}")
    return xmin, xmax


def check_labels(logits: Tensor, y: Tensor) -> None:
    """Every label must index one of the model's K outputs (checked before a loss indexes with it)."""
    k = logits.shape[1]
    if bool((y >= k).any()):
        raise ValueError(f"label {int(y.max())} is outside the model's {k} classes (0..{k - 1})")


def spans(n: int, size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` covering range(n)."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


@torch.no_grad()
def logits(model: nn.Module, x: Tensor, batch_size: int = 500, advance: Advance | None = None) -> Tensor:
    """Logits (N, K) in frozen eval mode, ``batch_size`` samples at a time on the model's device."""
    device = model_device(model)
    out = []
    with frozen_eval(model):
        for part in spans(len(x), batch_size):
            out.append(forward(model, x[part].to(device)).to(x.device))
            if advance is not None:
                advance(part.stop - part.start)
    return torch.cat(out) if out else x.new_empty((0, 0))


def predict(model: nn.Module, x: Tensor, batch_size: int = 500) -> Tensor:
    """Predicted classes (N,), on x's device.

    Parameters
    ----------
    model : nn.Module
        Returns logits (N, K); run in eval mode with its parameters' gradients off (both restored).
    x : Tensor
        (N, ...) inputs.
    batch_size : int
        Samples per forward pass.

    Returns
    -------
    Tensor
        (N,) int64 argmax of the logits.

    Examples
    --------
    >>> import torch
    >>> from advgrad import predict
    >>> model = torch.nn.Linear(2, 2)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.eye(2)), model.bias.zero_()
    >>> predict(model, torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.2, 0.9]])).tolist()
    [0, 1, 1]
    """
    return logits(model, x, batch_size).argmax(1)
