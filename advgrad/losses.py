"""Per-sample losses J(f(x), y), shared by training (∂J/∂W) and the attacks (∂J/∂X).

Every loss maps ``(logits (N, K), y (N,)) -> (N,)``: one value per sample, never reduced, so an attack
can keep the worst restart per sample and the training loop can choose its own reduction. ``LOSSES`` is
``catalog.LOSSES`` is the one list of their names (the CLI's choices and the configs read it).

A model turns its outputs z (called "logits") into probabilities ŷ by its ``output_activation``:
"softmax" (every model by default) or "sigmoid" (the classic ``mlp-sigmoid`` network with a sigmoid
output layer, ŷ = σ(z) per unit). Only the squared loss looks at ŷ; the others work on z directly.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advgrad.catalog import LOSSES, TRAIN_LOSSES

LossFn = Callable[[Tensor, Tensor], Tensor]
LossSpec = Union[str, LossFn]
__all__ = ["LOSSES", "TRAIN_LOSSES", "LossFn", "LossSpec", "cross_entropy", "dlr", "dlr_targeted", "margin",
           "output_activation", "probabilities", "resolve_loss", "squared_error"]
ACTIVATIONS = ("softmax", "sigmoid")


def output_activation(model: nn.Module | None) -> str:
    """How ``model`` maps its outputs to probabilities: "softmax" unless it declares "sigmoid"."""
    activation = getattr(model, "output_activation", "softmax") if model is not None else "softmax"
    if activation not in ACTIVATIONS:
        raise ValueError(f"output_activation {activation!r} is not one of {', '.join(ACTIVATIONS)}")
    return activation


def probabilities(logits: Tensor, activation: str = "softmax") -> Tensor:
    """ŷ from the model's outputs: softmax over classes, or an independent sigmoid per unit."""
    if activation == "sigmoid":
        return torch.sigmoid(logits)
    return torch.softmax(logits, dim=1)


def cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    """J = −log softmax(z)_y per sample, shape (N,)."""
    return F.cross_entropy(logits, y, reduction="none")


def squared_error(logits: Tensor, y: Tensor, activation: str = "softmax") -> Tensor:
    """The classic J = ½‖onehot(y) − ŷ‖² per sample, ŷ = softmax(z) (or σ(z) for a sigmoid head)."""
    p = probabilities(logits, activation)  # (N, K)
    onehot = F.one_hot(y, num_classes=logits.shape[1]).to(p.dtype)
    return 0.5 * (onehot - p).pow(2).sum(dim=1)


def margin(logits: Tensor, y: Tensor) -> Tensor:
    """Carlini–Wagner margin max_{j≠y} z_j − z_y per sample: positive once x is misclassified."""
    true = logits.gather(1, y[:, None]).squeeze(1)  # (N,)
    others = logits.scatter(1, y[:, None], float("-inf"))  # hide the true class
    return others.amax(dim=1) - true


def _true_logit(logits: Tensor, y: Tensor) -> Tensor:
    """z_y per sample, shape (N,)."""
    return logits[torch.arange(len(logits), device=logits.device), y]


def dlr(logits: Tensor, y: Tensor) -> Tensor:
    """Difference of Logits Ratio (Croce & Hein 2020, eq. 5): −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3 + 1e−12),
    with z_π1 ≥ z_π2 ≥ … the sorted logits. Invariant to shifting and positively rescaling the logits (a
    saturated softmax cannot hide the gradient), positive exactly when x is misclassified; K ≥ 3.

    The same floating-point path as the reference (pyautoattack 0.2.0): a full sort, and max_{i≠y} z_i as
    a 0/1 blend of the two largest sorted logits rather than a ``where``; the backward pass of the blend is
    what makes APGD-DLR's iterates equal to the reference's bit for bit."""
    if logits.shape[1] < 3:
        raise ValueError(f"the DLR loss needs at least 3 classes, got {logits.shape[1]}")
    zs, order = logits.sort(dim=1)                     # ascending: zs[:, -1] = z_π1, (N, K)
    y_on_top = (order[:, -1] == y).to(logits.dtype)   # (N,) 1 when the true class has the largest logit
    gap = _true_logit(logits, y) - zs[:, -2] * y_on_top - zs[:, -1] * (1.0 - y_on_top)
    return -gap / (zs[:, -1] - zs[:, -3] + 1e-12)


def dlr_targeted(logits: Tensor, y: Tensor, target: Tensor) -> Tensor:
    """Targeted DLR (eq. 6): −(z_y − z_t) / (z_π1 − ½(z_π3 + z_π4) + 1e−12) per sample; K ≥ 4."""
    zs = logits.sort(dim=1).values                     # ascending, (N, K)
    gap = _true_logit(logits, y) - _true_logit(logits, target)
    return -gap / (zs[:, -1] - 0.5 * (zs[:, -3] + zs[:, -4]) + 1e-12)


# The implementations catalog.LOSSES names: each builds the per-sample loss for a model's output activation.
def _ce(activation: str) -> LossFn:
    return cross_entropy


def _mse(activation: str) -> LossFn:
    return partial(squared_error, activation=activation)


def _margin(activation: str) -> LossFn:
    return margin


def _dlr(activation: str) -> LossFn:
    return dlr


def resolve_loss(loss: LossSpec, model: nn.Module | None = None) -> LossFn:
    """Turn a loss name (a key of ``LOSSES``) or a callable into a per-sample loss function.

    "mse" uses the model's ``output_activation`` so that ŷ is what the model calls its probabilities.

    Parameters
    ----------
    loss : str or callable
        A key of ``LOSSES`` ("ce", "margin", "dlr", "mse", ...) or (logits, y) → per-sample loss (returned
        as it is).
    model : nn.Module, optional
        Read for its ``output_activation`` ("mse").

    Returns
    -------
    LossFn
        (logits (N, K), y (N,)) → (N,) per-sample loss.

    Raises
    ------
    ValueError
        An unknown name, listing the known ones.

    Examples
    --------
    >>> import torch
    >>> from advgrad import resolve_loss
    >>> resolve_loss("margin")(torch.tensor([[2.0, 0.5, 1.0]]), torch.tensor([0])).tolist()
    [-1.0]
    """
    if callable(loss):
        return loss
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}: expected one of {', '.join(LOSSES)} or a callable")
    fn: LossFn = LOSSES[loss].impl(output_activation(model))
    return fn
