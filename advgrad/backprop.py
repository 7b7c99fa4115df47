"""The backward pass of the classic sigmoid network written out by hand — why ∂J/∂X comes for free.

Training holds the input X fixed and needs ∂J/∂Wᵢ, ∂J/∂bᵢ; an attacker holds the weights fixed and needs
∂J/∂X. Both come out of one recursion over the layers of an ``mlp-sigmoid`` model
(:class:`advgrad.models.SigmoidMLP`)::

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
cast to it): pass float64 inputs for checks to 1e-10. No autograd is used anywhere in the hand pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advgrad.losses import output_activation
from advgrad.models import SigmoidMLP

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure

HAND_LOSSES = ("mse", "ce")
# One-sided slopes differing by more than this fraction of the larger (plus 1e-8) mark a kink (ReLU at 0,
# max-pool tie) of a piecewise-linear network, where the derivative does not exist; at smooth points of
# such networks the gap is about h·|f″| with h = 1e-6, far below it.
KINK_TOL = 1e-3


@dataclass(frozen=True)
class ForwardPass:
    """Everything the backward pass needs: zs[i] = z⁽ⁱ⁺¹⁾ (N, nᵢ₊₁), activations[i] = a⁽ⁱ⁾ (N, nᵢ)."""

    x: Tensor                  # (N, C, H, W), the input
    zs: list[Tensor]           # z⁽¹⁾ … z⁽ᴸ⁾
    activations: list[Tensor]  # a⁽⁰⁾ … a⁽ᴸ⁻¹⁾ (a⁽⁰⁾ = normalized, flattened x)
    y_hat: Tensor              # (N, K): σ(z⁽ᴸ⁾) for a sigmoid head, softmax(z⁽ᴸ⁾) otherwise
    activation: str            # the model's output_activation: "sigmoid" or "softmax"


@dataclass(frozen=True)
class HandGradients:
    """∂J/∂· for J = Σₙ Jₙ. weights[i], biases[i] have the shapes of ``model.linears[i]``'s parameters."""

    loss: Tensor            # (N,) per-sample J
    weights: list[Tensor]   # ∂J/∂Wᵢ, (nᵢ, nᵢ₋₁), summed over the batch
    biases: list[Tensor]    # ∂J/∂bᵢ, (nᵢ,), summed over the batch
    deltas: list[Tensor]    # δ⁽ⁱ⁾ = ∂J/∂z⁽ⁱ⁾ per sample, (N, nᵢ)
    input: Tensor           # ∂J/∂X per sample, shape of x


def _check_model(model: nn.Module) -> SigmoidMLP:
    if not isinstance(model, SigmoidMLP):
        raise ValueError(f"the hand-written backward pass covers mlp-sigmoid models (SigmoidMLP), "
                         f"not {type(model).__name__}")
    return model


def default_loss(model: nn.Module) -> str:
    """The loss the network was made for: "mse" for a sigmoid output layer, "ce" for softmax."""
    return "mse" if output_activation(model) == "sigmoid" else "ce"


def forward_pass(model: nn.Module, x: Tensor) -> ForwardPass:
    """Run ``model`` layer by layer in x's dtype, keeping every z⁽ⁱ⁾ and a⁽ⁱ⁾."""
    net = _check_model(model)
    mean, std = net.normalize.mean.to(x), net.normalize.std.to(x)  # (1, C, 1, 1)
    with torch.no_grad():
        a = ((x - mean) / std).flatten(1)  # a⁽⁰⁾, (N, D)
        zs: list[Tensor] = []
        activations = [a]
        for i, linear in enumerate(net.linears):
            z = a @ linear.weight.detach().to(x).T + linear.bias.detach().to(x)  # (N, nᵢ)
            zs.append(z)
            if i < len(net.linears) - 1:
                a = torch.sigmoid(z)
                activations.append(a)
        activation = output_activation(net)
        y_hat = torch.sigmoid(zs[-1]) if activation == "sigmoid" else torch.softmax(zs[-1], dim=1)
    return ForwardPass(x=x, zs=zs, activations=activations, y_hat=y_hat, activation=activation)


def _output_delta(fwd: ForwardPass, onehot: Tensor, loss: str) -> tuple[Tensor, Tensor]:
    """(per-sample J, δ⁽ᴸ⁾ = ∂J/∂z⁽ᴸ⁾) for the loss as advgrad.losses defines it."""
    z = fwd.zs[-1]
    if loss == "ce":
        log_p = torch.log_softmax(z, dim=1)
        return -(onehot * log_p).sum(dim=1), log_p.exp() - onehot  # δ = softmax(z) − y
    if loss != "mse":
        raise ValueError(f"unknown loss {loss!r} for the hand-written pass: expected one of {', '.join(HAND_LOSSES)}")
    y_hat = fwd.y_hat
    e = y_hat - onehot  # ∂J/∂ŷ = ŷ − y for J = ½‖y − ŷ‖²
    j = 0.5 * (onehot - y_hat).pow(2).sum(dim=1)
    if fwd.activation == "sigmoid":
        return j, e * y_hat * (1 - y_hat)  # σ′(z) = ŷ(1 − ŷ), elementwise
    # softmax Jacobian ∂ŷⱼ/∂zₖ = ŷⱼ(δⱼₖ − ŷₖ) is symmetric: δ = ŷ ∘ (e − ⟨e, ŷ⟩)
    return j, y_hat * (e - (e * y_hat).sum(dim=1, keepdim=True))


def backward_pass(model: nn.Module, fwd: ForwardPass, y: Tensor, loss: str | None = None) -> HandGradients:
    """The chain rule by hand from δ⁽ᴸ⁾ down to ∂J/∂X; ``y`` holds class indices (N,).

    ``loss`` is "mse" or "ce" (default: :func:`default_loss`), defined as in advgrad.losses.
    """
    net = _check_model(model)
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
            grad_a = delta @ net.linears[i].weight.detach().to(x)  # Wᵀδ per sample, (N, nᵢ)
            if i > 0:
                delta = grad_a * a_prev * (1 - a_prev)  # ∘ σ′(z⁽ⁱ⁾), since a_prev = σ(z⁽ⁱ⁾)
                deltas.append(delta)
        grad_x = grad_a.view_as(x) / net.normalize.std.to(x)  # through (x − mean)/std
    return HandGradients(loss=j, weights=weights[::-1], biases=biases[::-1], deltas=deltas[::-1], input=grad_x)


def hand_gradients(model: nn.Module, x: Tensor, y: Tensor, loss: str | None = None) -> HandGradients:
    """Forward and backward by hand: every ∂J/∂Wᵢ, ∂J/∂bᵢ and the per-sample ∂J/∂X."""
    return backward_pass(model, forward_pass(model, x), y, loss)


def hand_input_gradient(model: nn.Module, x: Tensor, y: Tensor, loss: str | None = None) -> Tensor:
    """∂J/∂X by hand, same shape as x — what FGSM steps along."""
    return hand_gradients(model, x, y, loss).input


def one_sided_differences(f: Callable[[], float], t: Tensor, indices: Sequence[int],
                          h: float = 1e-6) -> tuple[Tensor, Tensor]:
    """(forward, backward) slopes (f(t + h eₖ) − f(t))/h and (f(t) − f(t − h eₖ))/h for each flat index k
    of ``t``, perturbing ``t`` in place and restoring it; ``f`` recomputes the scalar loss from ``t``.

    Their mean is the central difference. Where f is smooth they differ by about h·|f″|; where a ReLU or
    a max-pool tie puts a kink at t, they differ by the jump in slope and no derivative exists there.
    """
    flat = t.detach().view(-1)
    fwd = torch.empty(len(indices), dtype=torch.float64)
    bwd = torch.empty(len(indices), dtype=torch.float64)
    with torch.no_grad():
        f0 = float(f())
        for n, k in enumerate(indices):
            orig = flat[k].item()
            flat[k] = orig + h
            plus = float(f())
            flat[k] = orig - h
            minus = float(f())
            flat[k] = orig
            fwd[n], bwd[n] = (plus - f0) / h, (f0 - minus) / h
    return fwd, bwd


def central_differences(f: Callable[[], float], t: Tensor, indices: Sequence[int], h: float = 1e-6) -> Tensor:
    """(f(t + h eₖ) − f(t − h eₖ)) / 2h for each flat index k of ``t``: the mean of the one-sided slopes.

    Use float64: the error is O(h²) plus rounding of order ε_machine·|f|/h.
    """
    fwd, bwd = one_sided_differences(f, t, indices, h)
    return (fwd + bwd) / 2


def plot_input_gradient(x: Any, grad: Any, x_adv: Any, *, eps: float, before: Sequence[tuple[str, float]],
                        after: Sequence[tuple[str, float]], labels: Sequence[str] | None = None,
                        title: str | None = None) -> "Figure":
    """One row per sample: the input, ∂J/∂X as a diverging heat map, sign(∂J/∂X), and x + ε·sign(∂J/∂X).

    ``x``, ``grad``, ``x_adv``: (N, C, H, W) arrays or CPU tensors; ``before``/``after``: per sample the
    predicted class name and its confidence; ``labels``: the true class names (a prediction after the
    step that differs from it is drawn in red). Channels are summed for the heat map of colour images.
    A pure function in the manner of ``advgrad.plots``: it returns a Figure and touches no pyplot state.
    """
    import numpy as np
    from matplotlib.figure import Figure

    from advgrad.plots import _image

    x, grad, x_adv = (np.asarray(a, dtype=np.float64) for a in (x, grad, x_adv))
    n = len(x)
    fig = Figure(figsize=(10.5, 2.7 * n + 0.5), layout="constrained")
    axes = fig.subplots(n, 4, squeeze=False)
    for i in range(n):
        g = grad[i].sum(axis=0)  # (H, W)
        vmax = float(np.abs(g).max()) or 1.0
        img, cmap = _image(x[i])
        adv, _ = _image(x_adv[i])
        truth = f" (label {labels[i]})" if labels is not None else ""
        fooled = labels is not None and after[i][0] != labels[i]
        ax = axes[i]
        ax[0].imshow(img, cmap=cmap, vmin=0, vmax=1)
        ax[0].set_title(f"x{truth}\npredicted {before[i][0]} ({before[i][1]:.0%})", fontsize=9)
        heat = ax[1].imshow(g, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        fig.colorbar(heat, ax=ax[1], shrink=0.8)
        ax[1].set_title("∂J/∂X (red raises the loss)", fontsize=9)
        ax[2].imshow(np.sign(g), cmap="RdBu_r", vmin=-1, vmax=1)
        ax[2].set_title("sign(∂J/∂X)", fontsize=9)
        ax[3].imshow(adv, cmap=cmap, vmin=0, vmax=1)
        ax[3].set_title(f"x + {eps:g}·sign(∂J/∂X)\npredicted {after[i][0]} ({after[i][1]:.0%})", fontsize=9,
                        color="tab:red" if fooled else "black")
        for a in ax:
            a.set_xticks([])
            a.set_yticks([])
    fig.suptitle(title or "One step along sign(∂J/∂X) (FGSM): the input gradient an attacker needs")
    return fig


@dataclass(frozen=True)
class GradientCheck:
    """What ``advgrad grad`` prints: gradient norms and how far the three ways of computing them differ.

    All in float64. ``layers``/``hand_vs_autograd`` are empty and ``hand_vs_fd`` is None for models the
    hand pass does not cover (anything but mlp-sigmoid); then ∂J/∂X is autograd's.
    """

    loss: str                                    # "ce" or "mse" as in advgrad.losses
    losses: Tensor                               # (N,) per-sample J
    layers: list[tuple[tuple[int, ...], float, float]]  # per linear layer: (Wᵢ shape, ‖∂J/∂Wᵢ‖, ‖∂J/∂bᵢ‖)
    input_grad: Tensor                           # ∂J/∂X (N, C, H, W): the hand pass's where it applies
    hand_vs_autograd: dict[str, float]           # max |hand − autograd| over all of ∂J/∂W, ∂J/∂b, ∂J/∂X
    hand_vs_fd: float | None                     # max |hand − central difference| on sampled coordinates
    autograd_vs_fd: float                        # max |autograd − central difference| on the same
    fd_coords: int                               # how many coordinates were sampled (X and each Wᵢ, bᵢ)
    kinks: int                                   # sampled coordinates left out: one-sided slopes disagree

    @property
    def by_hand(self) -> bool:
        return bool(self.layers)


def check_gradients(model: nn.Module, x: Tensor, y: Tensor, loss: str | None = None, *, fd_coords: int = 16,
                    h: float = 1e-6, generator: torch.Generator | None = None) -> GradientCheck:
    """Compute ∂J/∂X (and, for mlp-sigmoid, every ∂J/∂Wᵢ, ∂J/∂bᵢ) by hand, by autograd and by central
    differences on ``fd_coords`` sampled coordinates of X and of each parameter, on a float64 copy of
    ``model`` in eval mode. J is the sum over the batch of the per-sample loss of advgrad.losses.

    For models other than mlp-sigmoid, coordinates where J has a kink (one-sided slopes differ by more
    than ``KINK_TOL``: a ReLU at 0 or a max-pool tie, common on the flat background of a digit) have no
    derivative to compare; they are left out of the finite-difference comparison and counted in
    ``kinks``. A sigmoid network is smooth, so there every sampled coordinate is compared."""
    import copy

    from advgrad.losses import resolve_loss

    if fd_coords < 0:
        raise ValueError(f"fd_coords must be ≥ 0, got {fd_coords}")
    loss = default_loss(model) if loss is None else loss
    if loss not in HAND_LOSSES:
        raise ValueError(f"unknown loss {loss!r}: expected one of {', '.join(HAND_LOSSES)}")
    net = copy.deepcopy(model).double().eval()
    x64 = x.detach().to(torch.float64).clone()
    loss_fn = resolve_loss(loss, net)
    by_hand = isinstance(net, SigmoidMLP)
    params = [p for lin in net.linears for p in (lin.weight, lin.bias)] if by_hand else []

    xg = x64.clone().requires_grad_(True)
    per_sample = loss_fn(net(xg), y)
    auto = torch.autograd.grad(per_sample.sum(), [xg, *params])
    auto_x, auto_params = auto[0], list(auto[1:])

    def total() -> float:
        return float(loss_fn(net(x64), y).sum())

    targets = [(x64, auto_x)] + list(zip(params, auto_params))
    hand_all: list[Tensor] = []
    layers: list[tuple[tuple[int, ...], float, float]] = []
    diffs: dict[str, float] = {}
    if by_hand:
        hand = hand_gradients(net, x64, y, loss)
        hand_all = [hand.input] + [g for pair in zip(hand.weights, hand.biases) for g in pair]
        layers = [(tuple(w.shape), float(w.norm()), float(b.norm())) for w, b in zip(hand.weights, hand.biases)]
        diffs = {"W": max(float((hw - aw).abs().max()) for hw, aw in zip(hand.weights, auto_params[0::2])),
                 "b": max(float((hb - ab).abs().max()) for hb, ab in zip(hand.biases, auto_params[1::2])),
                 "X": float((hand.input - auto_x).abs().max())}
    hand_fd = auto_fd = 0.0
    kinks = 0
    for n, (t, grad) in enumerate(targets):
        idx = torch.randperm(t.numel(), generator=generator)[:fd_coords].tolist()
        if not idx:
            continue
        fwd, bwd = one_sided_differences(total, t, idx, h)
        fd = (fwd + bwd) / 2
        # A sigmoid network is smooth everywhere: every coordinate is compared. Elsewhere a gap between the
        # one-sided slopes that does not shrink with h is a kink, where no derivative exists.
        gap = (fwd - bwd).abs()
        smooth = gap <= KINK_TOL * torch.maximum(fwd.abs(), bwd.abs()) + 1e-8 if not by_hand else gap >= 0
        kinks += int((~smooth).sum())
        if bool(smooth.any()):
            keep = torch.tensor(idx)[smooth]
            auto_fd = max(auto_fd, float((grad.reshape(-1)[keep] - fd[smooth]).abs().max()))
            if by_hand:
                hand_fd = max(hand_fd, float((hand_all[n].reshape(-1)[keep] - fd[smooth]).abs().max()))
    return GradientCheck(loss=loss, losses=per_sample.detach(), layers=layers,
                         input_grad=hand_all[0] if by_hand else auto_x,
                         hand_vs_autograd=diffs, hand_vs_fd=hand_fd if by_hand else None,
                         autograd_vs_fd=auto_fd, fd_coords=fd_coords, kinks=kinks)
