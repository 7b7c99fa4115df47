"""The backward pass of the classic sigmoid network written out by hand — why ∂J/∂X comes for free.

Training holds the input X fixed and needs ∂J/∂Wᵢ, ∂J/∂bᵢ; an attacker holds the weights fixed and needs
∂J/∂X. Both come out of one recursion over the layers of an ``mlp-sigmoid`` model
(:class:`advgrad.models.zoo.SigmoidMLP`)::

    a⁽⁰⁾ = (X − mean)/std, flattened          z⁽ⁱ⁾ = Wᵢ a⁽ⁱ⁻¹⁾ + bᵢ      a⁽ⁱ⁾ = σ(z⁽ⁱ⁾)  (i < L)
    δ⁽ᴸ⁾ = ∂J/∂z⁽ᴸ⁾                             (the head, below)
    ∂J/∂Wᵢ = δ⁽ⁱ⁾ a⁽ⁱ⁻¹⁾ᵀ     ∂J/∂bᵢ = δ⁽ⁱ⁾       (summed over the batch)
    ∂J/∂a⁽ⁱ⁻¹⁾ = Wᵢᵀ δ⁽ⁱ⁾     δ⁽ⁱ⁻¹⁾ = ∂J/∂a⁽ⁱ⁻¹⁾ ∘ σ′(z⁽ⁱ⁻¹⁾),  σ′(z) = σ(z)(1 − σ(z))
    ∂J/∂X = (W₁ᵀ δ⁽¹⁾)/std   — the same step once more, through the Normalize layer (per sample)

The losses are exactly those of :func:`advgrad.losses.resolve_loss`, so the hand pass can be checked
against autograd and fed to :func:`advgrad.fgsm` unchanged:

- ``"mse"`` on a sigmoid head (``head="sigmoid"``): J = ½‖y − ŷ‖², ŷ = σ(z⁽ᴸ⁾) — the classic network.
  ∂J/∂ŷ = ŷ − y (not y − ŷ, as many texts write), so δ⁽ᴸ⁾ = (ŷ − y) ∘ ŷ ∘ (1 − ŷ). This is what
  ``advgrad.fgsm(model, x, y, eps, loss="mse")`` differentiates on such a model, because the "mse" loss
  applies the model's ``output_activation`` (σ for a sigmoid head) before the squared error.
- ``"mse"`` on a softmax head: ŷ = softmax(z⁽ᴸ⁾), δ⁽ᴸ⁾ = ŷ ∘ (e − ⟨e, ŷ⟩) with e = ŷ − y.
- ``"ce"`` (either head): J = −log softmax(z⁽ᴸ⁾)_y, δ⁽ᴸ⁾ = softmax(z⁽ᴸ⁾) − y.

Here y is one-hot. J of a batch is the sum of the per-sample losses, so the parameter gradients are sums
over the batch and ∂J/∂X holds each sample's own gradient. Everything runs in x's dtype (the weights are
cast to it): pass float64 inputs for checks to 1e-10. No autograd is used anywhere in the hand pass. The
forward half (``forward_pass``, ``ForwardPass``) is written in the private ``advgrad._forward_pass`` and
public from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advgrad._forward_pass import ForwardPass, check_model, forward_pass
from advgrad.catalog import HAND_LOSSES, LOSSES, resolve
from advgrad.losses import output_activation

__all__ = ["ForwardPass", "HandGradients", "backward_pass", "default_loss", "forward_pass", "hand_gradients",
           "hand_input_gradient"]


@dataclass(frozen=True)
class HandGradients:
    """∂J/∂· for J = Σₙ Jₙ. weights[i], biases[i] have the shapes of ``model.linears[i]``'s parameters.

    Parameters
    ----------
    loss : Tensor
        (N,) per-sample J.
    weights, biases : list of Tensor
        ∂J/∂Wᵢ (nᵢ, nᵢ₋₁) and ∂J/∂bᵢ (nᵢ,), summed over the batch.
    deltas : list of Tensor
        δ⁽ⁱ⁾ = ∂J/∂z⁽ⁱ⁾ per sample, (N, nᵢ).
    input : Tensor
        ∂J/∂X per sample, shaped like x.

    Examples
    --------
    >>> import torch
    >>> from advgrad import build_model, hand_gradients
    >>> _ = torch.manual_seed(0)
    >>> model = build_model("mlp-sigmoid", input_shape=(1, 2, 2), num_classes=3, mean=[0.5], std=[0.5],
    ...                     hidden=[5], head="sigmoid")
    >>> x, y = torch.rand(4, 1, 2, 2, dtype=torch.float64), torch.tensor([0, 1, 2, 0])
    >>> grads = hand_gradients(model, x, y)  # "mse" on the sigmoid head: J = ½‖y − σ(z⁽ᴸ⁾)‖²
    >>> [tuple(w.shape) for w in grads.weights], grads.loss.shape, grads.input.shape
    ([(5, 4), (3, 5)], torch.Size([4]), torch.Size([4, 1, 2, 2]))
    """

    loss: Tensor            # (N,) per-sample J
    weights: list[Tensor]   # ∂J/∂Wᵢ, (nᵢ, nᵢ₋₁), summed over the batch
    biases: list[Tensor]    # ∂J/∂bᵢ, (nᵢ,), summed over the batch
    deltas: list[Tensor]    # δ⁽ⁱ⁾ = ∂J/∂z⁽ⁱ⁾ per sample, (N, nᵢ)
    input: Tensor           # ∂J/∂X per sample, shape of x


def default_loss(model: nn.Module) -> str:
    """The loss the network was made for: "mse" for a sigmoid output layer, "ce" for softmax."""
    return "mse" if output_activation(model) == "sigmoid" else "ce"


def _delta_ce(fwd: ForwardPass, onehot: Tensor) -> tuple[Tensor, Tensor]:
    """J = −log softmax(z)_y: δ⁽ᴸ⁾ = softmax(z) − y."""
    log_p = torch.log_softmax(fwd.zs[-1], dim=1)
    return -(onehot * log_p).sum(dim=1), log_p.exp() - onehot


def _delta_mse(fwd: ForwardPass, onehot: Tensor) -> tuple[Tensor, Tensor]:
    """J = ½‖y − ŷ‖²: ∂J/∂ŷ = ŷ − y, through σ (elementwise) or softmax (its Jacobian)."""
    y_hat = fwd.y_hat
    e = y_hat - onehot  # ∂J/∂ŷ = ŷ − y for J = ½‖y − ŷ‖²
    j = 0.5 * (onehot - y_hat).pow(2).sum(dim=1)
    if fwd.activation == "sigmoid":
        return j, e * y_hat * (1 - y_hat)  # σ′(z) = ŷ(1 − ŷ), elementwise
    # softmax Jacobian ∂ŷⱼ/∂zₖ = ŷⱼ(δⱼₖ − ŷₖ) is symmetric: δ = ŷ ∘ (e − ⟨e, ŷ⟩)
    return j, y_hat * (e - (e * y_hat).sum(dim=1, keepdim=True))


def _output_delta(fwd: ForwardPass, onehot: Tensor, loss: str) -> tuple[Tensor, Tensor]:
    """(per-sample J, δ⁽ᴸ⁾ = ∂J/∂z⁽ᴸ⁾) for a loss of ``catalog.LOSSES`` the hand pass implements (its ``hand``)."""
    if loss not in HAND_LOSSES:
        raise ValueError(f"unknown loss {loss!r} for the hand-written pass: expected one of {', '.join(HAND_LOSSES)}")
    delta: Callable[[ForwardPass, Tensor], tuple[Tensor, Tensor]] = resolve(str(LOSSES[loss].hand))
    return delta(fwd, onehot)


def backward_pass(model: nn.Module, fwd: ForwardPass, y: Tensor, loss: str | None = None) -> HandGradients:
    """The chain rule by hand from δ⁽ᴸ⁾ down to ∂J/∂X; ``y`` holds class indices (N,).

    ``loss`` is "mse" or "ce" (default: :func:`default_loss`), defined as in advgrad.losses.

    Parameters
    ----------
    model : SigmoidMLP
        The model ``fwd`` ran.
    fwd : ForwardPass
    y : Tensor
        (N,) class indices.
    loss : {"mse", "ce"}, optional

    Returns
    -------
    HandGradients

    Raises
    ------
    ValueError
        Not an ``mlp-sigmoid`` model, labels that are not (N,) class indices, an unknown loss.

    Examples
    --------
    >>> import torch
    >>> from advgrad import build_model, backward_pass, forward_pass
    >>> _ = torch.manual_seed(0)
    >>> model = build_model("mlp-sigmoid", input_shape=(1, 2, 2), num_classes=3, mean=[0.5], std=[0.5],
    ...                     hidden=[5], head="sigmoid")
    >>> x, y = torch.rand(4, 1, 2, 2, dtype=torch.float64), torch.tensor([0, 1, 2, 0])
    >>> grads = backward_pass(model, forward_pass(model, x), y, loss="ce")
    >>> x_var = x.clone().requires_grad_(True)
    >>> j = torch.nn.functional.cross_entropy(model.double()(x_var), y, reduction="sum")
    >>> torch.allclose(grads.input, torch.autograd.grad(j, x_var)[0])
    True
    """
    net = check_model(model)
    loss = default_loss(net) if loss is None else loss
    x = fwd.x
    k = fwd.zs[-1].shape[1]
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"y must hold one class index per sample: shape {tuple(y.shape)} for {len(x)} samples")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= k):
        raise ValueError(f"labels must lie in 0..{k - 1}, got {int(y.min())}..{int(y.max())}")
    with torch.no_grad():
        onehot = F.one_hot(y.long(), num_classes=k).to(x.dtype)  # (N, K)
        j, delta = _output_delta(fwd, onehot, loss)
        weights: list[Tensor] = []
        biases: list[Tensor] = []
        deltas = [delta]
        for i in range(len(net.linears) - 1, -1, -1):
            a_prev = fwd.activations[i]  # a⁽ⁱ⁾ feeds linears[i] (layer i + 1 in 1-based notation)
            weights.append(delta.T @ a_prev)  # (nᵢ₊₁, nᵢ) = Σₙ δₙ a_prevₙᵀ
            biases.append(delta.sum(dim=0))
            grad_a = delta @ net.layers[i].weight.detach().to(x)  # Wᵀδ per sample, (N, nᵢ)
            if i > 0:
                delta = grad_a * a_prev * (1 - a_prev)  # ∘ σ′(z⁽ⁱ⁾), since a_prev = σ(z⁽ⁱ⁾)
                deltas.append(delta)
        grad_x = grad_a.view_as(x) / net.normalize.std.to(x)  # through (x − mean)/std
    return HandGradients(loss=j, weights=weights[::-1], biases=biases[::-1], deltas=deltas[::-1], input=grad_x)


def hand_gradients(model: nn.Module, x: Tensor, y: Tensor, loss: str | None = None) -> HandGradients:
    """Forward and backward by hand: every ∂J/∂Wᵢ, ∂J/∂bᵢ and the per-sample ∂J/∂X.

    Parameters
    ----------
    model : SigmoidMLP
    x, y : Tensor
        (N, C, H, W) inputs and (N,) class indices.
    loss : {"mse", "ce"}, optional
        Default: "mse" for a sigmoid head, "ce" for softmax.

    Returns
    -------
    HandGradients

    Examples
    --------
    >>> import torch
    >>> from advgrad import build_model, hand_gradients
    >>> _ = torch.manual_seed(0)
    >>> model = build_model("mlp-sigmoid", input_shape=(1, 2, 2), num_classes=3, mean=[0.5], std=[0.5],
    ...                     hidden=[5], head="sigmoid")
    >>> x, y = torch.rand(4, 1, 2, 2, dtype=torch.float64), torch.tensor([0, 1, 2, 0])
    >>> grads = hand_gradients(model, x, y)
    >>> j = 0.5 * (torch.eye(3, dtype=x.dtype)[y] - torch.sigmoid(model.double()(x))).pow(2).sum()
    >>> weight = model.linears[0].weight
    >>> torch.allclose(grads.weights[0], torch.autograd.grad(j, weight)[0])
    True
    """
    return backward_pass(model, forward_pass(model, x), y, loss)


def hand_input_gradient(model: nn.Module, x: Tensor, y: Tensor, loss: str | None = None) -> Tensor:
    """∂J/∂X by hand, same shape as x — what FGSM steps along.

    Parameters
    ----------
    model : SigmoidMLP
    x, y : Tensor
        (N, C, H, W) inputs and (N,) class indices.
    loss : {"mse", "ce"}, optional

    Returns
    -------
    Tensor

    Examples
    --------
    >>> import torch
    >>> from advgrad import build_model, hand_input_gradient, input_gradient
    >>> _ = torch.manual_seed(0)
    >>> model = build_model("mlp-sigmoid", input_shape=(1, 2, 2), num_classes=3, mean=[0.5], std=[0.5],
    ...                     hidden=[5], head="sigmoid")
    >>> x, y = torch.rand(4, 1, 2, 2, dtype=torch.float64), torch.tensor([0, 1, 2, 0])
    >>> torch.allclose(hand_input_gradient(model, x, y), input_gradient(model.double(), x, y, loss="mse"))
    True
    """
    return hand_gradients(model, x, y, loss).input
