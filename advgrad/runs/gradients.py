"""The gradient check of ``advgrad grad``: ∂J/∂W and ∂J/∂X for a few test samples by hand, by autograd and by
finite differences (``advgrad.gradcheck``), then one FGSM step x + ε·sign(∂J/∂X) and what the model predicts
before and after it — for a saved model, or for a fresh seeded ``mlp-sigmoid`` with a sigmoid output layer
(the classic network, J = ½‖y − ŷ‖²) run on the embedded mnist-5k test digits."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from advgrad import data as _data
from advgrad._validate import ParameterError
from advgrad.attacks import fgsm
from advgrad.gradcheck import GradientCheck, check_gradients
from advgrad.losses import output_activation, probabilities
from advgrad.models import build_for
from advgrad.runs._inputs import Warn, open_inputs

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
    # type: ignore: models.DataShape declares mean/std settable, the frozen Dataset's are read-only (models.py)
    model, _ = build_for("mlp-sigmoid", data, seed=seed, hidden=widths[1:-1], head="sigmoid")  # type: ignore[arg-type]
    return model.eval()


def _predictions(model: nn.Module, x: Tensor, class_names: Sequence[str]) -> list[Prediction]:
    with torch.no_grad():
        conf, pred = probabilities(model(x), output_activation(model)).max(dim=1)
    return [(class_names[int(c)], float(v)) for c, v in zip(pred, conf)]


def gradient_report(model_path: str | os.PathLike[str] | None = None, *, random_widths: Sequence[int] | None = None,
                    indices: Sequence[int] = (0,), loss: str | None = None, eps: float = 0.1, fd_coords: int = 16,
                    seed: int = 0, data_root: str | os.PathLike[str] | None = None,
                    on_warning: Warn | None = None) -> GradientReport:
    """Check the gradients of the checkpoint at ``model_path`` (or of ``random_sigmoid(random_widths)``) on the
    test samples ``indices`` (their summed loss ``loss``: by default mse for a sigmoid output, ce otherwise),
    on ``fd_coords`` sampled coordinates of X and of each Wᵢ, bᵢ drawn with ``seed``; then the FGSM step ε."""
    if (model_path is None) == (random_widths is None):
        raise ValueError("give either model_path or random_widths")
    bounds = (0.0, 1.0)
    if random_widths is not None:
        data = _data.load_dataset(RANDOM_DATASET)
        model = random_sigmoid(random_widths, data, seed)
        description = f"random mlp-sigmoid {','.join(map(str, random_widths))} (seed {seed}, sigmoid output)"
    else:
        inputs = open_inputs(str(model_path), data_root=data_root, device="cpu", on_warning=on_warning)
        data, model, bounds = inputs.data, inputs.model, inputs.bounds
        kwargs = inputs.checkpoint.meta["model"].get("kwargs", {})
        description = f"{model_path} ({inputs.model_name}{', ' + str(kwargs) if kwargs else ''})"
    n_test = len(data.y_test)
    bad = [i for i in indices if not 0 <= i < n_test]
    if bad:
        raise ParameterError("index", f" {bad[0]} is out of range: {data.name} has {n_test} test samples "
                                      f"(0..{n_test - 1})")
    idx = torch.tensor(list(indices))
    x, y = data.x_test[idx], data.y_test[idx]  # (N, C, H, W) float32, (N,)
    check = check_gradients(model, x, y, loss, fd_coords=fd_coords, generator=torch.Generator().manual_seed(seed))
    x_adv = fgsm(model, x, y, eps, loss=check.loss, bounds=bounds)
    names = data.class_names
    return GradientReport(description, data.name, tuple(indices), x, y, check, eps, x_adv,
                          _predictions(model, x, names), _predictions(model, x_adv, names),
                          [names[int(c)] for c in y], type(model).__name__)
