"""The forward half of :mod:`advgrad.backprop`'s hand pass: an ``mlp-sigmoid`` model run layer by layer,
every z⁽ⁱ⁾ and a⁽ⁱ⁾ kept for the chain rule (``forward_pass``, ``ForwardPass``; both public from
``advgrad.backprop``, whose docstring has the recursion).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from advgrad.losses import output_activation
from advgrad.models.zoo import SigmoidMLP


@dataclass(frozen=True)
class ForwardPass:
    """Everything the backward pass needs: zs[i] = z⁽ⁱ⁺¹⁾ (N, nᵢ₊₁), activations[i] = a⁽ⁱ⁾ (N, nᵢ).

    Parameters
    ----------
    x : Tensor
        (N, C, H, W) the input.
    zs, activations : list of Tensor
        z⁽¹⁾ … z⁽ᴸ⁾; a⁽⁰⁾ … a⁽ᴸ⁻¹⁾ (a⁽⁰⁾ the normalized, flattened x).
    y_hat : Tensor
        (N, K): σ(z⁽ᴸ⁾) for a sigmoid head, softmax(z⁽ᴸ⁾) otherwise.
    activation : {"sigmoid", "softmax"}

    Examples
    --------
    >>> import torch
    >>> from advgrad import build_model, forward_pass
    >>> _ = torch.manual_seed(0)
    >>> model = build_model("mlp-sigmoid", input_shape=(1, 2, 2), num_classes=3, mean=[0.5], std=[0.5],
    ...                     hidden=[5], head="sigmoid")
    >>> x, y = torch.rand(4, 1, 2, 2, dtype=torch.float64), torch.tensor([0, 1, 2, 0])
    >>> fwd = forward_pass(model, x)
    >>> [tuple(z.shape) for z in fwd.zs], fwd.activation, torch.allclose(fwd.zs[-1], model.double()(x))
    ([(4, 5), (4, 3)], 'sigmoid', True)
    """

    x: Tensor                  # (N, C, H, W), the input
    zs: list[Tensor]           # z⁽¹⁾ … z⁽ᴸ⁾
    activations: list[Tensor]  # a⁽⁰⁾ … a⁽ᴸ⁻¹⁾ (a⁽⁰⁾ = normalized, flattened x)
    y_hat: Tensor              # (N, K): σ(z⁽ᴸ⁾) for a sigmoid head, softmax(z⁽ᴸ⁾) otherwise
    activation: str            # the model's output_activation: "sigmoid" or "softmax"


def check_model(model: nn.Module) -> SigmoidMLP:
    """The model as an ``mlp-sigmoid`` network, the only kind the hand pass covers; else ValueError."""
    if not isinstance(model, SigmoidMLP):
        raise ValueError(f"the hand-written backward pass covers mlp-sigmoid models (SigmoidMLP), "
                         f"not {type(model).__name__}")
    return model


def forward_pass(model: nn.Module, x: Tensor) -> ForwardPass:
    """Run ``model`` layer by layer in x's dtype, keeping every z⁽ⁱ⁾ and a⁽ⁱ⁾.

    Parameters
    ----------
    model : SigmoidMLP
        An ``mlp-sigmoid`` model (else ValueError).
    x : Tensor
        (N, C, H, W).

    Returns
    -------
    ForwardPass

    Examples
    --------
    >>> import torch
    >>> from advgrad import build_model, forward_pass
    >>> _ = torch.manual_seed(0)
    >>> model = build_model("mlp-sigmoid", input_shape=(1, 2, 2), num_classes=3, mean=[0.5], std=[0.5],
    ...                     hidden=[5], head="sigmoid")
    >>> x, y = torch.rand(4, 1, 2, 2, dtype=torch.float64), torch.tensor([0, 1, 2, 0])
    >>> fwd = forward_pass(model, x)
    >>> len(fwd.activations), fwd.y_hat.dtype, bool(((fwd.y_hat > 0) & (fwd.y_hat < 1)).all())
    (2, torch.float64, True)
    """
    net = check_model(model)
    mean, std = net.normalize.mean.to(x), net.normalize.std.to(x)  # (1, C, 1, 1)
    with torch.no_grad():
        a = ((x - mean) / std).flatten(1)  # a⁽⁰⁾, (N, D)
        zs: list[Tensor] = []
        activations = [a]
        for i, linear in enumerate(net.layers):
            z = a @ linear.weight.detach().to(x).T + linear.bias.detach().to(x)  # (N, nᵢ)
            zs.append(z)
            if i < len(net.linears) - 1:
                a = torch.sigmoid(z)
                activations.append(a)
        activation = output_activation(net)
        y_hat = torch.sigmoid(zs[-1]) if activation == "sigmoid" else torch.softmax(zs[-1], dim=1)
    return ForwardPass(x=x, zs=zs, activations=activations, y_hat=y_hat, activation=activation)
