"""Training data that is not a built-in set: ``advgrad train --data FILE|FOLDER --test-data FILE|FOLDER``.

The two sources (``data.sources.load_data``: an ImageFolder folder or an ``.npz``/``.pt`` file) become one
``data.Dataset``: the first is the training split, the second the held-out split that every epoch's test
accuracy is measured on. There is no hidden split: a file has no test split of its own, so one is asked for
explicitly. Both are read whole into memory (training shuffles over all of it every epoch). The Dataset's
mean/std (what the model's ``Normalize`` uses) are the training images' per-channel mean and standard
deviation, as the built-in sets' statistics are of their training split."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from advgrad.data.builtin import Dataset
from advgrad.data.sources import load_data


def load_training_data(train: str | os.PathLike[str], test: str | os.PathLike[str], *,
                       image_size: Sequence[int] | None = None, grayscale: bool = False) -> Dataset:
    """The training source ``train`` and the held-out source ``test`` as one Dataset named ``train``;
    ``image_size``/``grayscale`` as in ``load_data``, for a folder among them.
    ValueError (one line) when they do not go together: other sample shapes, other class names (folders),
    test labels beyond the training classes (an array file without class_names has max label + 1)."""
    a, b = (load_data(src, **_folder_options(src, image_size, grayscale)) for src in (train, test))
    if a.input_shape != b.input_shape:
        raise ValueError(f"the training data {os.fspath(train)!r} holds {a.input_shape} images, the test data "
                         f"{os.fspath(test)!r} {b.input_shape}: both must have one shape")
    # (N, C, H, W) float32 in [0, 1], (N,) int64. Cloned to the standard strides: an (N, H, W, 1) file
    # transposed to (N, 1, H, W) is "contiguous" with NHWC strides, which sends convolutions down their
    # channels-last kernels, so that the same images would train to other bits than a built-in set's.
    x_train, y_train = (t.clone(memory_format=torch.contiguous_format) for t in a.tensors())
    x_test, y_test = (t.clone(memory_format=torch.contiguous_format) for t in b.tensors())
    names = a.class_names
    if a.classes_known and b.classes_known and a.class_names != b.class_names:
        raise ValueError(f"the training data's classes {list(a.class_names)} differ from the test data's "
                         f"{list(b.class_names)}")
    if int(y_test.max()) >= len(names):  # a class the model would have no output for
        raise ValueError(f"the test data has label {int(y_test.max())}, but the training data only "
                         f"{len(names)} classes")
    x64 = x_train.double()
    mean = x64.mean(dim=(0, 2, 3))  # (C,)
    std = x64.std(dim=(0, 2, 3)).clamp_min(1e-6)  # (C,); a constant channel must not divide by 0
    return Dataset(os.fspath(train), x_train.float(), y_train, x_test.float(), y_test, names,
                   tuple(float(m) for m in mean), tuple(float(s) for s in std))


def _folder_options(source: str | os.PathLike[str], image_size: Sequence[int] | None,
                    grayscale: bool) -> dict[str, Any]:
    """The folder options for ``source``: none for a file (load_data refuses them there), so that one
    --image-size serves a folder of training images beside an .npz of test images, and the reverse."""
    if not Path(source).is_dir():
        return {}
    return {"image_size": image_size, "grayscale": grayscale}
