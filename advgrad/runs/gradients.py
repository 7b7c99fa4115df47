"""The gradient check of ``advgrad grad``: ∂J/∂W and ∂J/∂X for a few test samples by hand, by autograd and by
finite differences (``advgrad.gradcheck``), then one FGSM step x + ε·sign(∂J/∂X) and what the model predicts
before and after it — for any model ``runs._sources.open_sources`` opens (a checkpoint on its own test split,
or any model on ``data``), or for a fresh seeded ``mlp-sigmoid`` with a sigmoid output layer (the classic
network, J = ½‖y − ŷ‖²) run on the embedded mnist-5k test digits."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from advgrad._validate import ParameterError
from advgrad.attacks import fgsm
from advgrad.data import builtin as _data
from advgrad.data.sources import FolderSource, TensorSource, source_of, subset
from advgrad.gradcheck import GradientCheck, check_gradients
from advgrad.losses import output_activation, probabilities
from advgrad.models.loading import user_module
from advgrad.models.zoo import build_for
from advgrad.runs._sources import Sources, Warn, open_sources

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RANDOM_DATASET = "mnist-5k"  # what random sigmoid networks are fed: its 1×28×28 test digits, 10 classes
Prediction = tuple[str, float]  # (class name, probability)


@dataclass(frozen=True)
class GradientReport:
    """``description``: the model in words; ``x``, ``y``: the samples (N, C, H, W), (N,); ``check``: the
    gradients and how far the three ways differ; ``x_adv``: x + ε·sign(∂J/∂X) clipped; ``before``/``after``:
    the predictions at x and at x_adv; ``labels``: the true class names."""

    description: str
    dataset: str
    indices: tuple[int, ...]
    x: Tensor
    y: Tensor
    check: GradientCheck
    eps: float
    x_adv: Tensor
    before: list[Prediction]
    after: list[Prediction]
    labels: list[str]
    model_type: str

    def figure(self) -> Figure:
        """Input, ∂J/∂X, its sign and the FGSM step with the predictions (``plots.input_gradient_figure``)."""
        from advgrad.plots import input_gradient_figure

        return input_gradient_figure(self.x, self.check.input_grad, self.x_adv, eps=self.eps, before=self.before,
                                     after=self.after, labels=self.labels)


def random_sigmoid(widths: Sequence[int], data: _data.Dataset, seed: int = 0) -> nn.Module:
    """A seeded mlp-sigmoid with a sigmoid output layer and widths D, H₁, …, K: D and K must be the input
    size and the class count of ``data``."""
    widths = [int(w) for w in widths]
    if len(widths) < 2:
        raise ValueError(f"widths {widths}: give at least the input and output widths")
    d, k = math.prod(data.input_shape), data.num_classes
    if widths[0] != d or widths[-1] != k:
        shape = "×".join(map(str, data.input_shape))
        raise ParameterError("random_sigmoid", f" '{','.join(map(str, widths))}': it runs on {data.name} test "
                                               f"digits, so the first width must be {d} ({shape}) and the last {k} "
                                               "(classes)")
    # type: ignore: models.DataShape declares mean/std settable, the frozen Dataset's are read-only (models/zoo.py)
    model, _ = build_for("mlp-sigmoid", data, seed=seed, hidden=widths[1:-1], head="sigmoid")  # type: ignore[arg-type]
    return model.eval()


def _predictions(model: nn.Module, x: Tensor, class_names: Sequence[str]) -> list[Prediction]:
    with torch.no_grad():
        conf, pred = probabilities(model(x), output_activation(model)).max(dim=1)
    return [(class_names[int(c)], float(v)) for c, v in zip(pred, conf)]


def _described(model_path: str | os.PathLike[str], inputs: Sources) -> tuple[str, str]:
    """The model in words and its class: a checkpoint by its recorded name and kwargs, any other model by
    its kind and the class inside open_model's wrappers (``user_module``, as ``advgrad info`` names it)."""
    meta = inputs.model_meta
    if "kind" not in meta:  # a checkpoint's model block: name, kwargs
        kwargs = meta.get("kwargs", {})
        return f"{model_path} ({meta['name']}{', ' + str(kwargs) if kwargs else ''})", type(inputs.model).__name__
    inner = user_module(inputs.module("advgrad grad"))
    return f"{model_path} ({meta['kind']}, {type(inner).__name__})", type(inner).__name__


def _samples(source: TensorSource | FolderSource, indices: Sequence[int]) -> tuple[Tensor, Tensor]:
    """The samples ``indices`` of ``source``: x (N, C, H, W) float32 in [0, 1], y (N,); a folder reads only
    those images."""
    n_test = len(source)
    bad = [i for i in indices if not 0 <= i < n_test]
    if bad:
        raise ParameterError("index", f" {bad[0]} is out of range: {source.name} has {n_test} test samples "
                                      f"(0..{n_test - 1})")
    keep = [int(i) for i in indices]
    picked = subset(source, keep) if isinstance(source, TensorSource) else source.subset(keep)
    return picked.tensors()


def gradient_report(model_path: str | os.PathLike[str] | None = None, *, random_widths: Sequence[int] | None = None,
                    indices: Sequence[int] = (0,), loss: str | None = None, eps: float = 0.1, fd_coords: int = 16,
                    seed: int = 0, data_root: str | os.PathLike[str] | None = None,
                    on_warning: Warn | None = None, data: str | os.PathLike[str] | None = None,
                    classes: str | Sequence[int] | None = None, **options: Any) -> GradientReport:
    """Check the gradients of the model ``model_path`` (any model ``open_model`` takes, on ``data``; a
    checkpoint by default on its own test split; ``options`` as in ``open_sources``) or of
    ``random_sigmoid(random_widths)`` on the samples ``indices`` (their summed loss ``loss``: by default mse
    for a sigmoid output, ce otherwise), on ``fd_coords`` sampled coordinates of X and of each Wᵢ, bᵢ drawn
    with ``seed``; then the FGSM step ε."""
    if (model_path is None) == (random_widths is None):
        raise ValueError("give either model_path or random_widths")
    if random_widths is not None:
        if data is not None or classes is not None or any(v not in (None, False, 0) for v in options.values()):
            raise ValueError("random_widths runs on the mnist-5k test digits: data, classes and the model "
                             "options apply to model_path")
        builtin = _data.load_dataset(RANDOM_DATASET)
        model: nn.Module = random_sigmoid(random_widths, builtin, seed)
        description = f"random mlp-sigmoid {','.join(map(str, random_widths))} (seed {seed}, sigmoid output)"
        source: TensorSource | FolderSource = source_of(builtin)
        bounds, model_type = (0.0, 1.0), type(model).__name__
    else:
        assert model_path is not None  # for mypy: exactly one of the two is given
        inputs = open_sources(model_path, data=data, data_root=data_root, device="cpu", classes=classes,
                              on_warning=on_warning, **options)
        if inputs.model_meta.get("kind") == "export":
            raise ValueError(f"{os.fspath(model_path)!r} is a torch.export program: its graph is fixed to the dtype "
                             "it was exported in (float32), and the gradient check runs in float64 (finite "
                             "differences need it); give the model as TorchScript, file.py:factory or a checkpoint")
        model, bounds = inputs.module("advgrad grad"), inputs.bounds
        description, model_type = _described(model_path, inputs)
        source = inputs.source
    x, y = _samples(source, indices)  # (N, C, H, W) float32, (N,)
    dataset, names = source.name, source.class_names
    with warnings.catch_warnings():  # copying a TorchScript module reads its parameters' .grad: torch warns
        warnings.filterwarnings("ignore", message="The .grad attribute of a Tensor that is not a leaf")
        check = check_gradients(model, x, y, loss, fd_coords=fd_coords, generator=torch.Generator().manual_seed(seed))
    x_adv = fgsm(model, x, y, eps, loss=check.loss, bounds=bounds).x_adv
    return GradientReport(description, dataset, tuple(indices), x, y, check, eps, x_adv,
                          _predictions(model, x, names), _predictions(model, x_adv, names),
                          [names[int(c)] for c in y], model_type)
