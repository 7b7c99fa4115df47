"""A folder of images in torchvision's ImageFolder layout (``folder/CLASS/IMAGE.png``), streamed in batches.

The folder is scanned with torchvision's own ``find_classes``/``make_dataset`` (classes: the sorted sub-folder
names, numbered 0..K−1; files sorted, sub-folders followed), so labels are numbered exactly as
``torchvision.datasets.ImageFolder`` numbers them for a model trained on it. Images are decoded by PIL
(no code runs), 8 bits per channel, converted to RGB (or to L with ``grayscale``: ITU-R 601-2 luma). With
``image_size`` = (H, W) they go through torchvision's ``Resize(s)`` (bilinear, antialiased; shorter side
→ s, s the least that covers H×W, or ``resize``) and ``CenterCrop((H, W))``, as torchvision's evaluation
transforms do (ImageNet: resize 256, crop 224); without ``resize``, an image already H×W is not resampled.
Batches come from a ``torch.utils.data.DataLoader`` (``workers`` reader processes), so only a few batches
are in memory at a time. A file that cannot be read is a one-line DataError naming it, also when a worker
process read it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from advgrad import _validate
from advgrad._validate import parse_image_size
from advgrad.data.files import DataError

Size = tuple[int, int]  # (H, W)


class _Bad:
    """What a reader returns for a file it cannot read (an exception raised in a worker process would come
    back as a multi-line traceback): the one-line message."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _why(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0][:160]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def cover(h: int, w: int, size: Size) -> int:
    """The smallest shorter side s for which torchvision's ``Resize(s)`` (shorter side → s, longer side →
    int(s·longer/shorter)) makes an h×w image cover ``size`` = (H, W)."""
    target_short, target_long = (size[1], size[0]) if w <= h else (size[0], size[1])
    short, long = min(h, w), max(h, w)
    s = max(target_short, -(-target_long * short // long))  # ceil(H·short/long): close to the answer
    while int(s * long / short) < target_long:  # torchvision truncates the longer side
        s += 1
    return s


def read_image(path: str, mode: str, size: Size, resize: int | None) -> Tensor | _Bad:
    """One image as uint8 (C, H, W): decoded, converted to ``mode`` ("L" or "RGB"); with ``resize`` (0: the
    smallest that covers ``size``) as torchvision's ``Resize(resize)`` then ``CenterCrop(size)``, skipped
    for an image that is ``size`` already; without, it must be ``size``."""
    import torchvision.transforms.functional as tf

    h, w = size
    try:
        with Image.open(path) as im:
            if im.mode in ("I", "F") or im.mode.startswith("I;"):
                return _Bad(f"{path!r}: {im.mode} images (more than 8 bits per channel) are not supported")
            img = im.convert(mode)
    except Exception as exc:  # UnidentifiedImageError, truncated data, a decompression bomb, ...
        return _Bad(f"{path!r}: is not a readable image ({_why(exc)})")
    if img.size != (w, h) or resize:
        if resize is None:
            return _Bad(f"{path!r}: is {img.size[1]}×{img.size[0]} but the first image is {h}×{w}; pass "
                        "image_size to resize and crop them all to one size")
        short = resize or cover(img.size[1], img.size[0], size)
        img = tf.center_crop(tf.resize(img, [short], antialias=True), [h, w])
    array = np.asarray(img, dtype=np.uint8)  # (H, W) or (H, W, 3)
    t = torch.from_numpy(array.copy())
    return t[None] if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


class _Images(TorchDataset[Any]):
    def __init__(self, samples: Sequence[tuple[str, int]], mode: str, size: Size, resize: int | None) -> None:
        self.samples, self.mode, self.size, self.resize = samples, mode, size, resize

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Tensor, int] | _Bad:
        path, label = self.samples[i]
        image = read_image(path, self.mode, self.size, self.resize)
        return image if isinstance(image, _Bad) else (image, label)


def _collate(items: list[tuple[Tensor, int] | _Bad]) -> tuple[Tensor, Tensor] | _Bad:
    bad = next((it for it in items if isinstance(it, _Bad)), None)
    if bad is not None:
        return bad
    good = [it for it in items if not isinstance(it, _Bad)]
    return torch.stack([x for x, _ in good]), torch.tensor([y for _, y in good], dtype=torch.int64)


@dataclass(frozen=True)
class FolderSource:
    """An ImageFolder-layout folder read a batch at a time. ``samples``: (file, label) in ImageFolder's
    order; ``size``: every image's (H, W) after reading; ``image_size``: the crop (None: as stored);
    ``resize``: the shorter side before the crop (0: just enough to cover ``image_size``). ``load_data``
    opens one for a folder.

    Parameters
    ----------
    name : str
    samples : tuple of (str, int)
    class_names : tuple of str
    size : (int, int)
    image_size : (int, int), optional
    resize, workers : int
        As above; reader processes.
    grayscale : bool
        One channel (else RGB).
    classes_known : bool
    bounds : (float, float)
    mean, std : tuple of float, optional

    Examples
    --------
    >>> from advgrad import FolderSource
    >>> samples = (("pets/cat/0.png", 0), ("pets/dog/0.png", 1), ("pets/dog/1.png", 1))
    >>> folder = FolderSource("pets", samples, ("cat", "dog"), (224, 224))  # as load_data("pets") scans it
    >>> len(folder), folder.input_shape, folder.subset([1, 2]).labels
    (3, (3, 224, 224), [1, 1])
    """

    name: str
    samples: tuple[tuple[str, int], ...]
    class_names: tuple[str, ...]
    size: Size
    image_size: Size | None = None
    resize: int = 0
    grayscale: bool = False
    workers: int = 0
    classes_known: bool = True
    bounds: tuple[float, float] = (0.0, 1.0)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> list[int]:
        return [label for _, label in self.samples]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (1 if self.grayscale else 3, *self.size)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, keep: Sequence[int] | None) -> FolderSource:
        return self if keep is None else replace(self, samples=tuple(self.samples[i] for i in keep))

    def batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """(x (B, C, H, W) float32 in [0, 1], y (B,) int64), in order, read by ``workers`` processes."""
        size = _validate.count("batch_size", batch_size)
        resize = None if self.image_size is None else self.resize
        images = _Images(self.samples, "L" if self.grayscale else "RGB", self.size, resize)
        loader = DataLoader(images, batch_size=size, shuffle=False, num_workers=self.workers, collate_fn=_collate)
        for batch in loader:
            if isinstance(batch, _Bad):
                raise DataError(batch.message)
            x, y = batch
            yield x.float().div_(255.0), y

    def tensors(self) -> tuple[Tensor, Tensor]:
        """All of it at once (every image decoded into memory: mind the size)."""
        parts = list(self.batches(256))
        return torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])

    def meta(self) -> dict[str, Any]:
        return {"name": self.name, "n": len(self), "input_shape": list(self.input_shape),
                "num_classes": self.num_classes, "class_names": list(self.class_names), "classes_known": True,
                "bounds": list(self.bounds), "image_size": self.image_size, "resize": self.resize,
                "grayscale": self.grayscale}


def open_folder(path: str | os.PathLike[str], *, image_size: int | Sequence[int] | str | None = None,
                resize: int | None = None, grayscale: bool = False, workers: int = 0) -> FolderSource:
    """Scan ``path`` (ImageFolder layout); the size of its images is the first image's unless ``image_size``
    (with ``resize``, the shorter side first goes to ``resize``: ImageNet's evaluation is 256 then 224)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    where = repr(os.fspath(path))
    target = parse_image_size(image_size)
    if resize is not None:
        _validate.count("resize", resize)
        if target is None or resize < max(target):
            raise ValueError(f"resize (the shorter side before the crop) must be ≥ image_size, got resize={resize} "
                             f"with image_size={target}")
    if not isinstance(grayscale, bool):
        raise ValueError(f"grayscale must be True or False, got {grayscale!r}")
    try:
        classes, class_to_idx = find_classes(path)
        samples = make_dataset(path, class_to_idx, extensions=IMG_EXTENSIONS)
    except (FileNotFoundError, OSError) as exc:
        text = " ".join(str(exc).split())
        raise DataError(f"{where}: not an image folder in ImageFolder layout (folder/CLASS/IMAGE.png): "
                        f"{text[:200]}") from None
    size = target
    if size is None:
        try:
            with Image.open(samples[0][0]) as first:
                size = (first.size[1], first.size[0])
        except Exception as exc:
            raise DataError(f"{samples[0][0]!r}: is not a readable image ({_why(exc)})") from None
    return FolderSource(str(Path(path)), tuple(samples), tuple(classes), size, target, resize or 0, grayscale,
                        _validate.count("workers", workers, 0))
