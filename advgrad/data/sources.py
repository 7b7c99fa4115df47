"""Your data: the evaluation reads any data set through one small interface, in batches.

``load_data(spec, ...)`` takes

- a built-in name (``DATASETS``: mnist-5k, mnist, fashion-mnist, cifar10): its test split (a name wins
  over a folder of that name: write ``./mnist`` for the folder);
- a folder in torchvision's ImageFolder layout (``folder/CLASS/IMAGE.png``; classes are the sorted
  sub-folder names, as ``torchvision.datasets.ImageFolder`` numbers them), streamed from disk in batches
  (``FolderSource``), so an ImageNet-validation-sized folder never has to fit in memory;
- an ``.npz`` or ``.pt`` file of images ``x`` and labels ``y`` (``advgrad.data.arrays`` says what it may
  hold), read whole (use a folder for huge sets).

Every source (``DataSource``) has ``len``, ``input_shape`` (C, H, W), ``num_classes``, ``class_names``,
``bounds`` (0, 1), ``meta()``, ``tensors()`` (all at once) and ``batches(batch_size)`` yielding
(x (B, C, H, W) float32 in [0, 1], y (B,) int64) on the CPU. ``classes_known`` is False where the class
count is only inferred from the labels (an array file without ``class_names``: max label + 1), so a model
with more outputs still fits. ``n`` keeps the first N samples, ``classes`` only those of the given class
indices (labels keep their values).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from advgrad import _validate
from advgrad._validate import parse_image_size
from advgrad.data._imagefolder import FolderSource, open_folder
from advgrad.data.arrays import ARRAY_SUFFIXES, read_arrays
from advgrad.data.builtin import DATASETS, DataNotFound, Dataset, load_dataset

__all__ = ["DataSource", "FolderSource", "TensorSource", "load_data", "parse_classes", "parse_image_size",
           "source_of"]


class DataSource(Protocol):
    """What the evaluation needs of a data set (``TensorSource`` and ``FolderSource`` have it; the module
    docstring lists the members). A protocol: never constructed, so its fields are Attributes.

    Attributes
    ----------
    name : str
    class_names : tuple of str
    classes_known : bool
        False where the class count is inferred from the labels.
    bounds : (float, float)

    Examples
    --------
    >>> import torch
    >>> from advgrad import DataSource, TensorSource
    >>> source: DataSource = TensorSource("toy", torch.zeros(3, 1, 2, 2), torch.tensor([0, 1, 0]), ("a", "b"))
    >>> len(source), source.input_shape, source.num_classes
    (3, (1, 2, 2), 2)
    """

    name: str
    class_names: tuple[str, ...]
    classes_known: bool
    bounds: tuple[float, float]

    def __len__(self) -> int: ...

    @property
    def input_shape(self) -> tuple[int, int, int]: ...

    @property
    def num_classes(self) -> int: ...

    def batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]: ...

    def tensors(self) -> tuple[Tensor, Tensor]: ...

    def meta(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class TensorSource:
    """A data set in memory: ``x`` (N, C, H, W) uint8 (converted to [0, 1] a batch at a time, so the set
    takes a quarter of the memory) or float32 in [0, 1]; ``y`` (N,) int64.

    Parameters
    ----------
    name : str
    x, y : Tensor
    class_names : tuple of str
    classes_known : bool
        False where ``class_names`` were inferred from the labels.
    bounds : (float, float)
    mean, std : tuple of float, optional
        A built-in set's statistics (its models normalize with them).
    sha256 : str, optional
        The hash of the file it was read from.

    Examples
    --------
    >>> import torch
    >>> from advgrad import TensorSource
    >>> x = torch.full((3, 1, 2, 2), 255, dtype=torch.uint8)
    >>> source = TensorSource("toy", x, torch.tensor([0, 1, 0]), ("a", "b"))
    >>> [(xb.max().item(), yb.tolist()) for xb, yb in source.batches(2)]
    [(1.0, [0, 1]), (1.0, [0])]
    """

    name: str
    x: Tensor
    y: Tensor
    class_names: tuple[str, ...]
    classes_known: bool = True
    bounds: tuple[float, float] = (0.0, 1.0)
    mean: tuple[float, ...] | None = None  # a built-in set's statistics (its models normalize with them)
    std: tuple[float, ...] | None = None
    sha256: str | None = None  # of the file it was read from

    def __len__(self) -> int:
        return len(self.y)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.x.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """(x (B, C, H, W) float32 in [0, 1], y (B,) int64), in order."""
        size = _validate.count("batch_size", batch_size)
        for start in range(0, len(self.y), size):
            x = self.x[start:start + size]
            yield (x.float().div_(255.0) if x.dtype == torch.uint8 else x), self.y[start:start + size]

    def tensors(self) -> tuple[Tensor, Tensor]:
        """All of it at once: x (N, C, H, W) float32 in [0, 1], y (N,)."""
        return (self.x.float().div_(255.0) if self.x.dtype == torch.uint8 else self.x), self.y

    def meta(self) -> dict[str, Any]:
        return {"name": self.name, "n": len(self), "input_shape": list(self.input_shape),
                "num_classes": self.num_classes, "class_names": list(self.class_names),
                "classes_known": self.classes_known, "bounds": list(self.bounds), "sha256": self.sha256}


def source_of(dataset: Dataset, split: str = "test") -> TensorSource:
    """A built-in ``Dataset``'s split as a ``TensorSource``.

    Parameters
    ----------
    dataset : Dataset
    split : {"test", "train"}

    Returns
    -------
    TensorSource

    Examples
    --------
    >>> import torch
    >>> from advgrad import Dataset, source_of
    >>> x = torch.zeros(4, 1, 2, 2)
    >>> data = Dataset("toy", x, torch.tensor([0, 1, 0, 1]), x[:1], torch.tensor([1]), ("a", "b"), (0.5,), (0.5,))
    >>> len(source_of(data)), len(source_of(data, "train")), source_of(data).mean
    (1, 4, (0.5,))
    """
    _validate.one_of("split", split, ("test", "train"))
    x, y = (dataset.x_test, dataset.y_test) if split == "test" else (dataset.x_train, dataset.y_train)
    return TensorSource(dataset.name, x, y, dataset.class_names, True, dataset.bounds, dataset.mean, dataset.std)


def parse_classes(text: str | Sequence[int] | None) -> tuple[int, ...] | None:
    """``--classes``: "0,3,5" or "0-4" (ranges inclusive), or a sequence of ints → distinct class indices."""
    if text is None:
        return None
    if not isinstance(text, str):
        return tuple(_validate.count("class", c, 0) for c in text)
    out: list[int] = []
    for part in text.replace(" ", "").split(","):
        lo, dash, hi = part.partition("-")
        if not (lo.isdigit() and (not dash or hi.isdigit())):
            raise ValueError(f"classes must be class indices such as 0,3,5 or 0-4, got {text!r}")
        out.extend(range(int(lo), int(hi) + 1) if dash else [int(lo)])
    return tuple(out)


def select(labels: Sequence[int] | Tensor, num_classes: int, n: int | None,
           classes: str | Sequence[int] | None) -> list[int] | None:
    """The indices to keep: those of ``classes`` (all if None), then the first ``n``; None means all."""
    _validate.optional_count("n", n)
    if classes is None and n is None:
        return None
    keep = list(range(len(labels)))
    if classes is not None:
        wanted = parse_classes(classes) or ()
        if not wanted or len(set(wanted)) != len(wanted):
            raise ValueError(f"classes must be distinct class indices, got {list(wanted)}")
        bad = [c for c in wanted if c >= num_classes]
        if bad:
            raise ValueError(f"class {bad[0]} is not one of the data's {num_classes} classes (0..{num_classes - 1})")
        chosen = set(wanted)
        keep = [i for i in keep if int(labels[i]) in chosen]
        if not keep:
            raise ValueError(f"the data holds no sample of classes {sorted(chosen)}")
    return keep[:n] if n is not None else keep


def subset(source: TensorSource, keep: list[int] | None) -> TensorSource:
    """The samples ``keep`` of ``source`` (``select``'s indices; None: all of it, the same object)."""
    if keep is None:
        return source
    idx = torch.tensor(keep, dtype=torch.long)
    return replace(source, x=source.x[idx], y=source.y[idx])


def load_data(spec: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None,
              image_size: int | Sequence[int] | str | None = None, resize: int | None = None,
              grayscale: bool = False,
              n: int | None = None, classes: str | Sequence[int] | None = None, workers: int = 0,
              download: bool = False) -> TensorSource | FolderSource:
    """The data set ``spec`` names (see the module docstring): a built-in name (``root``, ``download`` as in
    ``load_dataset``), a folder of images (``image_size`` H or (H, W): resize to cover (or the shorter side
    to ``resize``), centre crop;
    ``grayscale``: one channel; ``workers``: reader processes) or an ``.npz``/``.pt`` file. ``n``: the first
    N samples; ``classes``: only these class indices. Files are never run as code.

    Parameters
    ----------
    spec : str or PathLike
    root, download, image_size, resize, grayscale, workers, n, classes
        As above.

    Returns
    -------
    TensorSource or FolderSource

    Raises
    ------
    DataNotFound
        A missing path (a FileNotFoundError).
    DataError, ValueError
        Anything else, in one line (DataError is a ValueError).

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from pathlib import Path
    >>> from advgrad import load_data
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     np.savez(Path(tmp) / "toy.npz", x=np.zeros((4, 2, 2, 3), np.uint8), y=np.array([0, 1, 1, 2]))
    ...     source = load_data(Path(tmp) / "toy.npz", classes=[1, 2])
    >>> len(source), source.input_shape, source.num_classes, source.classes_known
    (3, (3, 2, 2), 3, False)
    """
    text = os.fspath(spec)
    path = Path(text)
    _validate.count("workers", workers, 0)
    builtin = text in DATASETS
    if not builtin and (root is not None or download):
        raise ValueError("root and download apply to the built-in data sets "
                         f"({', '.join(DATASETS)}), not to {text!r}")
    if not (path.is_dir() and not builtin) and (image_size is not None or resize is not None or grayscale):
        raise ValueError(f"image_size, resize and grayscale apply to a folder of images, not to {text!r}")
    if builtin:
        source = source_of(load_dataset(text, None if root is None else Path(root), download))
    elif path.is_dir():
        folder = open_folder(path, image_size=image_size, resize=resize, grayscale=grayscale, workers=workers)
        return folder.subset(select(folder.labels, folder.num_classes, n, classes))
    elif path.is_file() and path.suffix in ARRAY_SUFFIXES:
        arrays = read_arrays(path)
        source = TensorSource(str(path), arrays.x, arrays.y, arrays.class_names, arrays.classes_known,
                              sha256=arrays.sha256)
    elif path.is_file():
        raise ValueError(f"{text!r}: unknown data file type {path.suffix!r} (expected .npz or .pt)")
    elif os.sep in text or path.suffix:
        raise DataNotFound(f"no data at {text!r}")
    else:
        raise ValueError(f"unknown data set {text!r}: expected one of {', '.join(DATASETS)}, a folder of images "
                         "(ImageFolder layout) or an .npz/.pt file")
    return subset(source, select(source.y, source.num_classes, n, classes))
