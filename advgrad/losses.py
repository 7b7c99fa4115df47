"""Per-sample losses J(f(x), y), shared by training (∂J/∂W) and the attacks (∂J/∂X).

Every loss maps ``(logits (N, K), y (N,)) -> (N,)``: one value per sample, never reduced, so an attack
can keep the worst restart per sample and the training loop can choose its own reduction.

A model turns its outputs z (called "logits") into probabilities ŷ by its ``output_activation``:
"softmax" (every model by default) or "sigmoid" (the classic ``mlp-sigmoid`` network with a sigmoid
output layer, ŷ = σ(z) per unit). Only the squared loss looks at ŷ; cross-entropy and the margin work on
z directly.
"""

from __future__ import annotations

from typing import Callable, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LossFn = Callable[[Tensor, Tensor], Tensor]
LossSpec = Union[str, LossFn]
LOSSES = ("ce", "mse", "margin")
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


def resolve_loss(loss: LossSpec, model: nn.Module | None = None) -> LossFn:
    """Turn a loss name ("ce", "mse", "margin") or a callable into a per-sample loss function.

    "mse" uses the model's ``output_activation`` so that ŷ is what the model calls its probabilities.
    """
    if callable(loss):
        return loss
    if loss == "ce":
        return cross_entropy
    if loss == "mse":
        activation = output_activation(model)
        return lambda logits, y: squared_error(logits, y, activation)
    if loss == "margin":
        return margin
    raise ValueError(f"unknown loss {loss!r}: expected one of {', '.join(LOSSES)} or a callable")
