"""Gradient checking: ∂J/∂X (and, for the sigmoid network, every ∂J/∂Wᵢ, ∂J/∂bᵢ) by hand, by autograd and
by finite differences, in float64 — what ``advgrad grad`` prints.

Central differences (f(t + h eₖ) − f(t − h eₖ))/2h have error O(h²) plus rounding of order ε·|f|/h. Where a
ReLU or a max-pool tie puts a kink at t, the one-sided slopes differ by the jump and no derivative exists:
such coordinates are left out of the comparison and counted.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from advgrad.backprop import default_loss, hand_gradients
from advgrad.catalog import HAND_LOSSES
from advgrad.losses import resolve_loss
from advgrad.models.zoo import SigmoidMLP

# One-sided slopes differing by more than this fraction of the larger (plus 1e-8) mark a kink (ReLU at 0,
# max-pool tie) of a piecewise-linear network, where the derivative does not exist; at smooth points of
# such networks the gap is about h·|f″| with h = 1e-6, far below it.
KINK_TOL = 1e-3


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

    Parameters
    ----------
    f : callable
        () → float, reading ``t``.
    t : Tensor
        The tensor perturbed in place (restored after each index).
    indices : sequence of int
        Flat indices k of ``t``.
    h : float
        The step.

    Returns
    -------
    Tensor
        (len(indices),) float64 slopes.

    Examples
    --------
    >>> import torch
    >>> from advgrad import central_differences
    >>> t = torch.tensor([1.0, 2.0], dtype=torch.float64)
    >>> [round(v, 6) for v in central_differences(lambda: float((t ** 3).sum()), t, [0, 1]).tolist()]
    [3.0, 12.0]
    """
    fwd, bwd = one_sided_differences(f, t, indices, h)
    return (fwd + bwd) / 2


@dataclass(frozen=True)
class GradientCheck:
    """What ``advgrad grad`` prints: gradient norms and how far the three ways of computing them differ.

    All in float64. ``layers``/``hand_vs_autograd`` are empty and ``hand_vs_fd`` is None for models the
    hand pass does not cover (anything but mlp-sigmoid); then ∂J/∂X is autograd's.

    Parameters
    ----------
    loss, losses, layers, input_grad, hand_vs_autograd, hand_vs_fd, autograd_vs_fd, fd_coords, kinks
        The fields, as the comments beside them say.

    Examples
    --------
    >>> import torch
    >>> from advgrad import check_gradients
    >>> _ = torch.manual_seed(0)  # the model's initial weights
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x = torch.rand(2, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    >>> report = check_gradients(model, x, torch.tensor([0, 1]), "ce", fd_coords=4)
    >>> report.autograd_vs_fd < 1e-6, report.hand_vs_fd is None, report.input_grad.shape
    (True, True, torch.Size([2, 1, 2, 2]))
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


def _fd_errors(f: Callable[[], float], targets: list[tuple[Tensor, Tensor]], hand_all: list[Tensor],
               fd_coords: int, h: float, generator: torch.Generator | None) -> tuple[float, float, int]:
    """Central differences of ``f`` on ``fd_coords`` random coordinates of each tensor of ``targets`` (tensor,
    its autograd gradient), against autograd and (where ``hand_all`` holds the hand pass's gradients, one per
    target) the hand pass: (max |autograd − fd|, max |hand − fd|, kinks left out). With a hand pass the net
    is a sigmoid network, smooth everywhere, so every coordinate is compared."""
    by_hand = bool(hand_all)
    hand_fd = auto_fd = 0.0
    kinks = 0
    for n, (t, grad) in enumerate(targets):
        idx = torch.randperm(t.numel(), generator=generator)[:fd_coords].tolist()
        if not idx:
            continue
        fwd, bwd = one_sided_differences(f, t, idx, h)
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
    return auto_fd, hand_fd, kinks


def check_gradients(model: nn.Module, x: Tensor, y: Tensor, loss: str | None = None, *, fd_coords: int = 16,
                    h: float = 1e-6, generator: torch.Generator | None = None) -> GradientCheck:
    """Compute ∂J/∂X (and, for mlp-sigmoid, every ∂J/∂Wᵢ, ∂J/∂bᵢ) by hand, by autograd and by central
    differences on ``fd_coords`` sampled coordinates of X and of each parameter, on a float64 copy of
    ``model`` in eval mode. J is the sum over the batch of the per-sample loss of advgrad.losses.

    For models other than mlp-sigmoid, coordinates where J has a kink (one-sided slopes differ by more
    than ``KINK_TOL``: a ReLU at 0 or a max-pool tie, common on the flat background of a digit) have no
    derivative to compare; they are left out of the finite-difference comparison and counted in
    ``kinks``. A sigmoid network is smooth, so there every sampled coordinate is compared.

    Parameters
    ----------
    model : nn.Module
        Returns logits (N, K); copied to float64, the caller's model untouched.
    x, y : Tensor
        (N, ...) inputs and (N,) labels.
    loss : str, optional
        "ce" or "mse" (default: the model's own loss).
    fd_coords, h, generator
        Coordinates sampled per tensor, the finite-difference step, the sampling's generator.

    Returns
    -------
    GradientCheck
        The gradient norms and the three pairwise maximum differences.

    Examples
    --------
    >>> import torch
    >>> from advgrad import build_model, check_gradients
    >>> _ = torch.manual_seed(0)  # the model's initial weights
    >>> model = build_model("mlp-sigmoid", input_shape=(1, 2, 2), num_classes=3, mean=[0.0], std=[1.0], hidden=[5])
    >>> x = torch.rand(2, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    >>> report = check_gradients(model, x, torch.tensor([0, 2]), "ce", fd_coords=4)
    >>> max(report.hand_vs_autograd.values()) < 1e-12, report.hand_vs_fd < 1e-8
    (True, True)
    """
    if fd_coords < 0:
        raise ValueError(f"fd_coords must be ≥ 0, got {fd_coords}")
    loss = default_loss(model) if loss is None else loss
    if loss not in HAND_LOSSES:
        raise ValueError(f"unknown loss {loss!r}: expected one of {', '.join(HAND_LOSSES)}")
    net = copy.deepcopy(model).double().eval()
    x64 = x.detach().to(torch.float64).clone()
    loss_fn = resolve_loss(loss, net)
    by_hand = isinstance(net, SigmoidMLP)
    params = [p for lin in net.layers for p in (lin.weight, lin.bias)] if isinstance(net, SigmoidMLP) else []

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
    auto_fd, hand_fd, kinks = _fd_errors(total, targets, hand_all, fd_coords, h, generator)
    return GradientCheck(loss=loss, losses=per_sample.detach(), layers=layers,
                         input_grad=hand_all[0] if by_hand else auto_x,
                         hand_vs_autograd=diffs, hand_vs_fd=hand_fd if by_hand else None,
                         autograd_vs_fd=auto_fd, fd_coords=fd_coords, kinks=kinks)
