"""Array files of images and labels: an ``.npz`` (read with ``allow_pickle=False``) or ``.pt`` file
(``torch.load(weights_only=True)``) holding ``x`` (N, C, H, W) or (N, H, W, C) (or (N, H, W): one channel),
uint8 or floating point in [0, 1], and integer labels ``y`` (N,); optionally ``class_names``. The layout:
(N, H, W, C) when the last axis has 1 or 3 entries and axis 1 has neither, else (N, C, H, W).

``read_arrays`` reads such a file (through the untrusted-file readers of ``advgrad.data.files``) and checks
it: images, labels and class names as ``load_data`` makes a ``TensorSource`` of them, or a one-line
``DataError``. Without ``class_names`` the class count is inferred from the labels (max label + 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from advgrad.data.files import DataError, read_npz, read_torch_arrays
from advgrad.records.write import sha256_file

ARRAY_SUFFIXES = (".npz", ".pt", ".pth")


class LabelledArrays(NamedTuple):
    """A checked array file: ``x`` (N, C, H, W) uint8 or float32 in [0, 1], ``y`` (N,) int64."""

    x: Tensor
    y: Tensor
    class_names: tuple[str, ...]
    classes_known: bool  # False where the class names were inferred from the labels
    sha256: str | None = None  # of the file it was read from


def _layout(where: str, x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) from (N, C, H, W), (N, H, W, C) or (N, H, W); see the module docstring for the rule."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim != 4:
        raise DataError(f"{where}: x must be (N, C, H, W), (N, H, W, C) or (N, H, W), got shape {x.shape}")
    if x.shape[3] in (1, 3) and x.shape[1] not in (1, 3):
        return x.transpose(0, 3, 1, 2)
    return x


def check_arrays(where: str, x: np.ndarray, y: np.ndarray, class_names: object = None) -> LabelledArrays:
    """Check images ``x`` and labels ``y`` (and ``class_names``); every fault is a one-line DataError."""
    if x.dtype != np.uint8 and x.dtype.kind != "f":
        raise DataError(f"{where}: x must be uint8 (0..255) or floating point in [0, 1], got {x.dtype}")
    x = _layout(where, x)
    if len(x) == 0 or 0 in x.shape:
        raise DataError(f"{where}: x holds no images (shape {x.shape})")
    if x.dtype.kind == "f":
        lo, hi = float(np.min(x)), float(np.max(x))  # NaN propagates into both
        if not (lo >= 0.0 and hi <= 1.0):
            raise DataError(f"{where}: floating-point x must lie in [0, 1], found values in [{lo:g}, {hi:g}] "
                            "(store 0..255 images as uint8)")
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise DataError(f"{where}: y must be a 1-D integer array of labels, got {y.dtype} {y.shape}")
    if len(y) != len(x):
        raise DataError(f"{where}: x holds {len(x)} images but y {len(y)} labels")
    low, high = int(y.min()), int(y.max())
    names = _class_names(where, class_names)
    k = len(names) if names else high + 1
    if low < 0 or high >= k:
        raise DataError(f"{where}: label {low if low < 0 else high} is outside the {k} classes 0..{k - 1}")
    xt = torch.from_numpy(np.ascontiguousarray(x))
    xt = xt if xt.dtype == torch.uint8 else xt.to(torch.float32)
    return LabelledArrays(xt, torch.from_numpy(y.astype(np.int64)), names or tuple(str(i) for i in range(k)),
                          classes_known=bool(names))


def _class_names(where: str, value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.tolist() if isinstance(value, np.ndarray) else value
    if not isinstance(items, (list, tuple)) or not items or not all(isinstance(s, str) for s in items):
        raise DataError(f"{where}: class_names must be a non-empty list of strings, got {type(value).__name__}")
    return tuple(items)


def read_arrays(path: Path) -> LabelledArrays:
    """The array file at ``path`` (``.npz``, ``.pt`` or ``.pth``), checked, with its SHA-256."""
    where = repr(str(path))
    if path.suffix == ".npz":
        arrays: dict[str, Any] = read_npz(path, ("x", "y"), ("class_names",))
    else:
        arrays = read_torch_arrays(path, ("x", "y"), ("class_names",))
        for key in ("x", "y"):
            value = arrays[key]
            if not isinstance(value, Tensor):
                raise DataError(f"{where}: {key} must be a tensor, got {type(value).__name__}")
            arrays[key] = value.detach().cpu().numpy()
    checked = check_arrays(where, arrays["x"], arrays["y"], arrays.get("class_names"))
    return checked._replace(sha256=sha256_file(path))
