"""DDN, Decoupled Direction and Norm (Rony et al., CVPR 2019, arXiv 1811.09600): the minimal L2 attack that
steers the direction of δ by the gradient and its norm by a radius that shrinks while the point is
adversarial and grows while it is not.

From δ₀ = 0 and ε₀ = ``init_norm``, for k = 0 … K−1 (K = ``steps``):

    g = ∇_δ ±CE(f(x + δ_k), y) / ‖∇‖₂       (+ untargeted, − targeted; a zero gradient → a random unit g)
    δ' = δ_k + α_k·g,                      α_k = 0.01 + 0.99·(1 + cos(πk/K))/2   (cosine annealing)
    ε_{k+1} = min(ε_k·(1 − γ) if x + δ_k is adversarial else ε_k·(1 + γ),  ‖max(x − lo, hi − x)‖₂)
    δ_{k+1} = clip(x + ε_{k+1}·δ'/‖δ'‖₂, lo, hi) − x          (optionally quantised to ``levels`` values)

and the smallest adversarial x + δ_k met is kept (ties: the first). The radius moves onto the sphere
‖δ‖ = ε, not into the ball (``norms.rescale``): the norm is set by ε alone, the direction by the gradient.

The operations are adv-lib 0.2.8's ``ddn`` in its order, so with the same batch in one chunk the examples
are the same bits (tests/attacks/minimal/test_ddn.py); it draws its rare random directions from
``generator`` (adv-lib: the global RNG, and unnormalised).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from advgrad import _validate
from advgrad._runtime import frozen_eval
from advgrad.attacks._checks import Bounds, EpsSpec
from advgrad.attacks.gradient import gradient
from advgrad.attacks.minimal._common import Setup, finish, is_adversarial, prepare
from advgrad.attacks.result import AttackResult
from advgrad.losses import cross_entropy
from advgrad.norms import L2_NORM, per_point, rescale

ZERO_GRADIENT = 1e-12  # a gradient with a smaller L2 norm gives no direction: a random one is drawn instead


def _direction(grad: Tensor, generator: torch.Generator | None) -> Tensor:
    """g/‖g‖₂ per sample, in place; samples with ‖g‖ < ZERO_GRADIENT get a random unit direction."""
    small = L2_NORM.measure(grad) < ZERO_GRADIENT  # (N,)
    grad = L2_NORM.steepest_(grad, 1.0)
    if bool(small.any()):
        device = generator.device if generator is not None else grad.device
        noise = torch.randn(grad[small].shape, generator=generator, device=device, dtype=grad.dtype)
        grad[small] = L2_NORM.steepest(noise.to(grad.device), 1.0)
    return grad


def _quantise(v: Tensor, lo: float, hi: float, levels: int) -> Tensor:
    """v (within [lo, hi]) rounded to the nearest of ``levels`` evenly spaced values, in place."""
    return v.sub_(lo).div_(hi - lo).mul_(levels - 1).round_().div_(levels - 1).mul_(hi - lo).add_(lo)


def _search(model: nn.Module, x: Tensor, y: Tensor, s: Setup, steps: int, gamma: float, init_norm: float,
            levels: int | None, targeted: bool, generator: torch.Generator | None) -> Tensor:
    """The DDN loop; returns the smallest adversarial example met per sample (x where none was)."""
    n = len(x)
    delta = torch.zeros_like(x)  # (N, ...)
    radius = torch.full((n,), init_norm, dtype=x.dtype, device=x.device)  # (N,) ε_k
    worst = L2_NORM.measure(torch.maximum(x - s.lo, s.hi - x))  # (N,) the farthest corner of the box
    best_norm, best = worst.clone(), x.clone()
    weight = -1.0 if targeted else 1.0
    for k in range(steps):
        norm_now = L2_NORM.measure(delta)  # (N,)
        x_adv = x + delta
        grad, logits = gradient(model, x_adv, y, cross_entropy, weight, s.chunk)
        adv = is_adversarial(logits, y, targeted)
        better = adv & (norm_now < best_norm)
        best_norm = torch.where(better, norm_now, best_norm)
        best = torch.where(per_point(better, x), x_adv, best)
        alpha = 0.01 + (1 - 0.01) * (1 + math.cos(math.pi * k / steps)) / 2
        delta.add_(_direction(grad, generator), alpha=alpha)
        radius = torch.minimum(torch.where(adv, (1 - gamma) * radius, (1 + gamma) * radius), worst)
        delta = rescale(L2_NORM, delta, radius).add_(x).clamp_(s.lo, s.hi)
        if levels is not None:
            _quantise(delta, s.lo, s.hi, levels)
        delta.sub_(x)
    return best


def _check(steps: object, gamma: object, init_norm: object, levels: object, targeted: object) -> None:
    _validate.count("steps", steps)
    _validate.number("gamma", gamma, minimum=0.0, strict=True, below=1.0)
    _validate.number("init_norm", init_norm, minimum=0.0, strict=True)
    _validate.optional_count("levels", levels, minimum=2)
    _validate.flag("targeted", targeted)


def ddn(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec | None = None, *, steps: int = 100,
        gamma: float = 0.05, init_norm: float = 1.0, levels: int | None = None, targeted: bool = False,
        bounds: Bounds = (0.0, 1.0), generator: torch.Generator | None = None,
        chunk_size: int | None = None) -> AttackResult:
    r"""Decoupled Direction and Norm: per sample, a small L2 perturbation that fools the model.

    Gradient steps on the cross-entropy, rescaled onto ‖δ‖₂ = ε_k, ε_k ← ε_k·(1 ∓ γ) (module docstring).

    Parameters
    ----------
    model : nn.Module
        Returns logits (N, K); run in eval mode with its parameters' gradients off, both restored.
    x, y : Tensor
        Inputs (N, ...) within ``bounds`` and labels (N,) (target classes when ``targeted``); not modified.
    eps : float or Tensor, optional
        A radius (or one per sample): success then also needs ‖δ‖₂ ≤ ε; the search is the same.
    steps, gamma, init_norm : int, float, float
        Iterations K (a forward and a backward pass each); γ in (0, 1); the first radius ε₀ > 0.
    levels : int, optional
        Round the iterates to this many values evenly spaced in the box (adv-lib: 256); None: continuous.
    targeted : bool
        Descend the cross-entropy of the target class y instead of ascending that of the label.
    bounds : (float, float)
        The box (lo, hi) of valid inputs.
    generator : torch.Generator, optional
        For the random directions drawn where a gradient vanishes; the global RNG is never used.
    chunk_size : int, optional
        Samples per forward pass (speed and memory only).

    Returns
    -------
    AttackResult
        The smallest adversarial example met (x where none), success, the margin and logits at x_adv, and
        ``distance`` ‖x_adv − x‖₂ (0 where x is adversarial already, inf where the attack fails).

    Raises
    ------
    ValueError
        For a bad argument: the message names it and what is allowed.

    Examples
    --------
    >>> import torch
    >>> from advgrad import ddn
    >>> _ = torch.manual_seed(0)  # the model's initial weights
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> x = torch.rand(8, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    >>> result = ddn(model, x, model(x).argmax(1), steps=20)
    >>> bool(result.success.all()), bool((result.distance < 4.0).all())
    (True, True)

    References
    ----------
    J. Rony, L. G. Hafemann, L. S. Oliveira, I. Ben Ayed, R. Sabourin, E. Granger, "Decoupling Direction
    and Norm for Efficient Gradient-Based L2 Adversarial Attacks and Defenses", CVPR 2019, arXiv 1811.09600.
    """
    s = prepare(model, x, y, eps, bounds, chunk_size, generator)
    _check(steps, gamma, init_norm, levels, targeted)
    x, y = x.detach(), y.long()
    with frozen_eval(model):
        best = _search(model, x, y, s, steps, gamma, init_norm, levels, targeted, generator)
        return finish(model, x, y, best, L2_NORM, s, targeted)
