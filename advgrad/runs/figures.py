"""The figures of ``advgrad plot``, each from the files another command writes (read and checked by
``advgrad.records.read``, drawn by ``advgrad.plots``): a matplotlib ``Figure`` for ``records.write.write_figure``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from matplotlib.figure import Figure

from advgrad import plots
from advgrad.evaluate import loss_landscape
from advgrad.records import read as records
from advgrad.runs._sources import Warn, open_checkpoint

PathLike = str | os.PathLike[str]


def examples(path: PathLike, *, n: int = 8, title: str | None = None) -> Figure:
    """Clean | perturbation | adversarial for ``n`` examples of ``attack --save-examples``' file, the ones
    the attack fooled first."""
    arrays, class_names = records.read_examples(path)
    return plots.example_grid(**records.fooled_first(arrays), n=n, class_names=class_names, title=title)


def curve(paths: Sequence[PathLike], *, title: str | None = None) -> Figure:
    """Accuracy against ε, every attack of every eval (or attack) record overlaid, labelled by file name."""
    return plots.accuracy_curves([records.accuracy_records(p) for p in paths], title=title)


def training(path: PathLike, *, title: str | None = None) -> Figure:
    """Loss and accuracy per epoch from the metrics JSON of ``advgrad train``."""
    name, history = records.training_history(path)
    return plots.training_curves(history, title=title or f"Training curves: {name or Path(path).stem}")


def min_eps(paths: Sequence[PathLike], *, title: str | None = None) -> Figure:
    """Histogram and robust-accuracy curve of the per-point minimal distances of each ``advgrad eval``
    record: its ``--min-eps`` bisection (named by the attack it bisected with) and every ``--min-norm``
    attack with their ensemble, each series named by its file when there are several files."""
    series, eps_max = [], 0.0
    for path in paths:
        found, top = records.minimal_distances(path)
        series += [(f"{Path(path).stem}: {label}" if len(paths) > 1 else label, values) for label, values in found]
        eps_max = max(eps_max, top)
    return plots.min_eps_figure(series, eps_max=eps_max or None, title=title)


def landscape(model_path: PathLike, *, n: int = 3, eps_max: float = 0.3, seed: int = 0,
              data_root: PathLike | None = None, title: str | None = None, on_warning: Warn | None = None) -> Figure:
    """The loss along sign(∂J/∂X) against random sign directions (seeded with ``seed``) for the first ``n``
    test images of the checkpoint at ``model_path``, up to a step of ``eps_max``."""
    inputs = open_checkpoint(model_path, data_root=data_root, device="cpu", n=n, on_warning=on_warning)
    x, y = inputs.source.tensors()
    t, along, rand = loss_landscape(inputs.module("the loss landscape"), x, y, eps_max=eps_max, bounds=inputs.bounds,
                                    generator=torch.Generator().manual_seed(seed))
    labels = [f"#{i} ({inputs.source.class_names[int(c)]})" for i, c in enumerate(y)]
    return plots.landscape_figure(t.tolist(), along.numpy(), rand.numpy(), labels=labels,
                                  title=title or f"Loss along sign(∂J/∂X) vs random signs: {inputs.model_name}")
