"""σ-zero (Cinà et al. 2024): a minimal-L0 attack by gradient descent on a smooth count of the pixels.

‖δ‖₀ has no useful gradient, so σ-zero descends, with Adam, on

    J(δ) = max(z_y − max_{j≠y} z_j, 0) + (1/P)·Σ_p ‖δ_p‖²/(‖δ_p‖² + σ)

(targeted: max(max_{j≠t} z_j − z_t, 0) for the target t), each pixel's term a smooth 0-or-1 that tends to
the indicator δ_p ≠ 0 as σ → 0. The gradient is normalised by its L∞ norm before Adam sees it, the step
size η decays from η₀ to η₀/10 by cosine annealing, and after every step δ is clipped to the box and every
coordinate with |δ_i| < τ is set to 0, the threshold τ (one per sample) rising by τ_factor·η after an
adversarial iterate and falling by as much after any other. Per sample the adversarial iterate with the
fewest pixels is returned. Pixels are counted as ``advgrad.norms.L0`` counts them (channels of an image's
location jointly, P pixels); with one channel this is adv-lib's per-coordinate count, bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from advgrad import _validate
from advgrad._runtime import frozen_eval
from advgrad.attacks._checks import (
    Bounds,
    EpsSpec,
    check_batch,
    check_bounds,
    check_dtype,
    check_generator,
    check_labels,
    check_radius,
    forward,
)
from advgrad.attacks._chunks import chunk_for, slices
from advgrad.attacks.minimal._common import is_adversarial, outcome
from advgrad.attacks.result import AttackResult
from advgrad.losses import margin
from advgrad.norms import L0_NORM, Norm, NormSpec, Radius, get_norm, per_point

BETAS = (0.9, 0.999)  # Adam's moment decays, as in the paper


@dataclass(frozen=True)
class SigmaZeroOptions:
    """σ-zero's knobs; the defaults are the paper's, as adv-lib 0.2.8 sets them.

    ``alpha``: η₀, Adam's first step size; ``sigma``: σ > 0 of the smooth count (smaller: sharper);
    ``threshold``: τ₀ in [0, 1]; ``threshold_factor``: τ moves by threshold_factor·η per step;
    ``grad_norm``: the norm ("inf", "2" or "1") the gradient is divided by.

    Parameters
    ----------
    alpha, sigma, threshold, threshold_factor, grad_norm
        As above.

    Examples
    --------
    >>> from advgrad import SigmaZeroOptions
    >>> SigmaZeroOptions(grad_norm=2).grad_norm
    '2'
    """

    alpha: float = 1.0
    sigma: float = 1e-3
    threshold: float = 0.3
    threshold_factor: float = 0.01
    grad_norm: NormSpec = "inf"

    def __post_init__(self) -> None:
        _validate.number("alpha", self.alpha, minimum=0.0, strict=True)
        _validate.number("sigma", self.sigma, minimum=0.0, strict=True)
        if _validate.number("threshold", self.threshold, minimum=0.0) > 1:
            raise ValueError(f"threshold must be in [0, 1] (a fraction of the bounds' width), got {self.threshold!r}")
        _validate.number("threshold_factor", self.threshold_factor, minimum=0.0)
        name = get_norm(self.grad_norm).name
        object.__setattr__(self, "grad_norm", _validate.one_of("grad_norm", name, ("inf", "2", "1")))


@dataclass(frozen=True)
class _Setup:
    model: nn.Module
    steps: int
    options: SigmaZeroOptions
    grad_norm: Norm
    targeted: bool
    lo: float
    hi: float
    chunk: int


def _gradient(s: _Setup, x: Tensor, y: Tensor, delta: Tensor) -> tuple[Tensor, Tensor]:
    """∇_δ Σᵢ J(δᵢ) (module docstring) and the logits at x + δ, chunk by chunk."""
    grads, logits = [], []
    with torch.enable_grad():
        for part in slices(len(x), s.chunk):
            d = delta[part].detach().requires_grad_(True)
            z = forward(s.model, x[part] + d)  # (n, K)
            check_labels(z, y[part])
            m = margin(z, y[part])  # max_{j≠y} z_j − z_y
            hinge = (m if s.targeted else -m).clamp(min=0)
            sq = d.square()
            if L0_NORM.pixels and d.ndim == 4:  # one term per pixel: its channels' squares summed
                sq = sq.sum(dim=1)
            smooth = (sq / (sq + s.options.sigma)).flatten(1).mean(dim=1)  # (n,) ≈ ‖δ‖₀/P
            (g,) = torch.autograd.grad((hinge + smooth).sum(), d)
            grads.append(g)
            logits.append(z.detach())
    return torch.cat(grads), torch.cat(logits)


def _descend(s: _Setup, x: Tensor, y: Tensor) -> Tensor:
    """``steps`` σ-zero iterations from δ = 0; returns x + δ* per sample (x where none was found)."""
    o, (b1, b2) = s.options, BETAS
    delta = torch.zeros_like(x)
    avg, avg_sq = torch.zeros_like(x), torch.zeros_like(x)  # Adam's first and second moments
    best = torch.full((len(x),), float(L0_NORM.measure(torch.ones_like(x[:1]))[0]), dtype=x.dtype, device=x.device)
    x_best = x.clone()
    tau = torch.full_like(best, o.threshold * (s.hi - s.lo))  # (N,)
    eta = o.alpha
    for i in range(s.steps):
        grad, logits = _gradient(s, x, y, delta)
        with torch.no_grad():
            size, adv = L0_NORM.measure(delta), is_adversarial(logits, y, s.targeted)
            better = adv & (size < best)
            best = torch.where(better, size, best)
            x_best = torch.where(per_point(better, x), x + delta, x_best)
            grad.div_(per_point(s.grad_norm.measure(grad).clamp_(min=1e-12), x))
            avg.lerp_(grad, weight=1 - b1)
            avg_sq.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            denom = avg_sq.sqrt().div_((1 - b2 ** (i + 1)) ** 0.5).add_(1e-8)
            delta.addcdiv_(avg, denom, value=-eta / (1 - b1 ** (i + 1)))
            delta.add_(x).clamp_(s.lo, s.hi).sub_(x)
            eta = 0.1 * o.alpha + 0.9 * o.alpha * (1 + math.cos(math.pi * i / s.steps)) / 2
            step = o.threshold_factor * eta * (s.hi - s.lo)
            tau.add_(torch.where(adv, step, -step)).clamp_(min=0, max=s.hi - s.lo)
            delta.masked_fill_(delta.abs() < per_point(tau, x), 0)
    return x_best


def sigma_zero(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec | None = None, *, steps: int = 1000,
               options: SigmaZeroOptions | None = None, targeted: bool = False, bounds: Bounds = (0.0, 1.0),
               generator: torch.Generator | None = None, chunk_size: int | None = None) -> AttackResult:
    """σ-zero: per sample, few changed pixels δ with x + δ adversarial (the L0 minimal-norm attack), by
    Adam on the hinged logit margin plus a smooth pixel count, with a per-sample threshold that zeroes the
    small coordinates after every step (the iteration: module docstring).

    Parameters
    ----------
    model : nn.Module
        Returns logits (N, K); run in eval mode with its parameters' gradients off (both restored).
    x : Tensor
        (N, ...) inputs within ``bounds``; y : Tensor (N,) int64 labels (targets when ``targeted``).
    eps : float or Tensor (N,), optional
        With it, success also needs ‖δ‖₀ ≤ ε pixels; the attack itself is unchanged.
    steps : int
        Iterations (one forward and one backward pass each).
    options : SigmaZeroOptions, optional
        Step size, σ, the threshold and its rate, the gradient's norm (default ``SigmaZeroOptions()``).
    targeted, bounds, chunk_size
        As in every attack: reach class y; the box; samples per forward pass (speed only). τ is measured
        in units of the bounds' width.
    generator : torch.Generator, optional
        Unused: σ-zero draws nothing at random.

    Returns
    -------
    AttackResult
        x_adv the adversarial iterate with the fewest pixels (x where none), ``success``, ``distance``
        ‖x_adv − x‖₀ in pixels (∞ where not successful), ``loss`` the margin, ``logits`` at x_adv.

    Raises
    ------
    ValueError
        A bad argument (one line naming it).

    Examples
    --------
    >>> import torch
    >>> from advgrad.attacks.minimal.sigma_zero import sigma_zero
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).eval()
    >>> g = torch.Generator().manual_seed(0)
    >>> _ = [torch.nn.init.normal_(p, generator=g) for p in model.parameters()]
    >>> x = torch.rand(4, 1, 4, 4, generator=g)
    >>> result = sigma_zero(model, x, model(x).argmax(1), steps=100)
    >>> result.success.tolist(), result.distance.tolist()  # pixels changed
    ([True, True, True, True], [3.0, 2.0, 3.0, 2.0])

    References
    ----------
    A. E. Cinà, F. Villani, M. Pintor, L. Schönherr, B. Biggio, M. Pelillo, "σ-zero: Gradient-based
    Optimization of ℓ0-norm Adversarial Examples", arXiv 2402.01879, 2024.
    """
    s, eps_ = _setup(model, x, y, eps, steps, options, targeted, bounds, generator, chunk_size)
    x = x.detach()
    with frozen_eval(model):
        return outcome(model, x, y, _descend(s, x, y), L0_NORM, eps_, s.targeted, s.chunk)


def _setup(model: nn.Module, x: Tensor, y: Tensor, eps: object, steps: object, options: object, targeted: object,
           bounds: object, generator: object, chunk_size: int | None) -> tuple[_Setup, Radius | None]:
    """Every argument checked once; ValueError names the first bad one."""
    xmin, xmax = check_batch(x, y)
    check_dtype(model, x)
    lo, hi = check_bounds(bounds, xmin, xmax)
    eps_ = None if eps is None else check_radius("eps", eps, x, positive=False)
    n_steps = _validate.count("steps", steps)
    _validate.flag("targeted", targeted)
    check_generator(generator)
    if options is not None and not isinstance(options, SigmaZeroOptions):
        raise ValueError(f"options must be a SigmaZeroOptions or None, got {type(options).__name__}")
    o = options or SigmaZeroOptions()
    return _Setup(model, n_steps, o, get_norm(o.grad_norm), targeted is True, lo, hi,
                  chunk_for(chunk_size, model, x)), eps_
