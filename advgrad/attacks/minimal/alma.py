"""ALMA, the Augmented Lagrangian Method for Adversarial attacks (Rony et al., ICCV 2021, arXiv 2011.11857),
for the L1 and L2 norms: minimise ‖δ‖ subject to the point being adversarial, by gradient steps on an
augmented Lagrangian whose multiplier μ and penalty ρ adapt per sample.

The constraint is g(δ) = DLR(f(x + δ)) < 0 with adv-lib's DLR, (z_y − max_{j≠y} z_j + τ_l)/(z_π1 − z_π3 + 10⁻⁸)
(targeted: −(z_t − max_{j≠t} z_j + τ_l)/(z_π1 − (z_π3 + z_π4)/2 + 10⁻⁸)), τ_l = ``logit_tolerance``. From δ = 0,
for k = 0 … K−1 (K = ``steps``):

    L_k(δ) = ‖δ‖ + P₂(g(δ), ρ, μ),   P₂(y) = μy + μρy² + ρ²y³/6 (y ≥ 0),  μy/(1 − ρy) (y < 0)
    μ ← clamp(α·μ + (1 − α)·∂P₂/∂y(g), 10⁻⁶, 10¹²)          (k ≥ 1)
    ρ ← γ·ρ every M = ``check_steps`` steps, where no adversarial point was met and g did not fall below τ·g_prev
    δ ← clip(x + δ − η_k·RMSProp-momentum(∇L_k), lo, hi) − x,   η_k = η₀·r^((k − k*)/(K − k*)) after the first
                                                               success at step k* (η₀ before), r = ``lr_reduction``

(the first step omits ‖δ‖), keeping the smallest adversarial point met. The operations are adv-lib 0.2.8's
``alma`` with its default penalty P2 in its order, so on the same batch the examples are the same bits
(tests/attacks/minimal/test_alma.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from advgrad import _validate
from advgrad._runtime import frozen_eval
from advgrad.attacks._checks import Bounds, EpsSpec, check_labels, forward
from advgrad.attacks._chunks import slices
from advgrad.attacks.minimal._common import Setup, finish, prepare
from advgrad.attacks.result import AttackResult
from advgrad.losses import margin
from advgrad.norms import Norm, NormSpec, get_norm, per_point

NORMS = ("1", "2")
RMS_EPS = 1e-8


@dataclass(frozen=True)
class ALMAOptions:
    """ALMA's knobs, validated on creation (defaults: the paper's and adv-lib's): the learning rate η₀
    (``lr_init``) and its final reduction factor r; μ₀ and ρ₀; the check period M, the improvement rate τ
    and the penalty growth γ; α, the averaging factor of μ, of RMSProp's squares and of its momentum;
    the logit tolerance τ_l; ``levels``: round the iterates to that many values of the box (None: don't).

    Parameters
    ----------
    lr_init, lr_reduction, mu_init, rho_init : float
        η₀, r, μ₀, ρ₀.
    check_steps, tau, gamma, alpha, logit_tolerance : int, float, float, float, float
        M, τ, γ, α, τ_l.
    levels : int, optional
        As above.

    Examples
    --------
    >>> from advgrad import ALMAOptions
    >>> ALMAOptions(lr_init=0.5).lr_init
    0.5
    """

    lr_init: float = 0.1
    lr_reduction: float = 0.01
    mu_init: float = 1.0
    rho_init: float = 1.0
    check_steps: int = 10
    tau: float = 0.95
    gamma: float = 1.2
    alpha: float = 0.9
    logit_tolerance: float = 1e-4
    levels: int | None = None

    def __post_init__(self) -> None:
        for name in ("lr_init", "lr_reduction", "mu_init", "rho_init", "tau", "gamma"):
            _validate.number(name, getattr(self, name), minimum=0.0, strict=True)
        _validate.count("check_steps", self.check_steps)
        _validate.number("alpha", self.alpha, minimum=0.0, below=1.0)
        _validate.number("logit_tolerance", self.logit_tolerance, minimum=0.0)
        _validate.optional_count("levels", self.levels, minimum=2)


def _dlr(z: Tensor, y: Tensor, targeted: bool, tolerance: float) -> Tensor:
    """adv-lib's difference of logits ratio, (N,): positive while the point is not adversarial."""
    if targeted:
        top = torch.topk(z, k=4, dim=1).values
        scale = top[:, 0] - (top[:, -2] + top[:, -1]) / 2
    else:
        top = torch.topk(z, k=3, dim=1).values
        scale = top[:, 0] - top[:, -1]
    ratio = (-margin(z, y) + tolerance) / (scale + 1e-8)
    return -ratio if targeted else ratio


def _p2(y: Tensor, rho: Tensor, mu: Tensor) -> Tensor:
    """The penalty-Lagrangian P2 of the paper (its table 1), elementwise."""
    above = mu * y + mu * rho * y ** 2 + 1 / 6 * rho ** 2 * y ** 3
    below = mu * y / (1 - rho * y.clamp(max=0))
    return torch.where(y >= 0, above, below)


@dataclass
class _State:
    """Per-sample state of the search, (N,) each (δ and RMSProp's buffers (N, ...))."""

    delta: Tensor
    square_avg: Tensor
    momentum: Tensor
    mu: Tensor
    rho: Tensor
    prev: Tensor
    found: Tensor
    step_found: Tensor
    best_dist: Tensor
    best: Tensor


def _chunk(model: nn.Module, x: Tensor, y: Tensor, st: _State, p: slice, k: int, norm: Norm, o: ALMAOptions,
           targeted: bool) -> Tensor:
    """Step k on the rows p: the forward pass, the updates of ρ, μ and the best points, and ∇_δ L_k (rows p)."""
    with torch.enable_grad():
        d = st.delta[p].detach().requires_grad_(True)
        x_adv = x[p] + d
        z = forward(model, x_adv)
        check_labels(z, y[p])
        if z.shape[1] < (4 if targeted else 3):
            raise ValueError(f"alma's DLR needs {4 if targeted else 3} classes or more, the model has {z.shape[1]}")
        dist = norm.measure(x[p] - x_adv)  # (n,) adv-lib's order: x − x′
        g = _dlr(z, y[p], targeted, o.logit_tolerance)
        rho, mu = st.rho[p], st.mu[p]
        if k == 0:
            st.prev[p] = g.detach()
        elif (k + 1) % o.check_steps == 0:
            improved = g.detach() < o.tau * st.prev[p]
            rho = torch.where(~(st.found[p] | improved), o.gamma * rho, rho)
            st.rho[p], st.prev[p] = rho, g.detach()
        if k:
            leaf = g.detach().requires_grad_(True)
            (new_mu,) = torch.autograd.grad(_p2(leaf, rho, mu).sum(), leaf)
            mu = mu.lerp(new_mu, 1 - o.alpha).clamp_(min=1e-6, max=1e12)
            st.mu[p] = mu
        adv = g.detach() < 0
        better = adv & (dist.detach() < st.best_dist[p])
        st.step_found[p] = st.step_found[p].masked_fill(~st.found[p] & adv, k)
        st.found[p] |= adv
        st.best_dist[p] = torch.where(better, dist.detach(), st.best_dist[p])
        st.best[p] = torch.where(per_point(better, x), x_adv.detach(), st.best[p])
        loss = _p2(g, rho, mu) if k == 0 else dist + _p2(g, rho, mu)
        (grad,) = torch.autograd.grad(loss.sum(), d)
    return grad


def _search(model: nn.Module, x: Tensor, y: Tensor, s: Setup, norm: Norm, steps: int, o: ALMAOptions,
            targeted: bool) -> Tensor:
    """The ALMA loop; returns the smallest adversarial example met per sample (x where none was)."""
    n, view = len(x), (-1, *[1] * (x.ndim - 1))
    per = (n,)
    st = _State(torch.zeros_like(x), torch.ones_like(x), torch.zeros_like(x),
                torch.full(per, o.mu_init, dtype=x.dtype, device=x.device),
                torch.full(per, o.rho_init, dtype=x.dtype, device=x.device), x.new_zeros(per),
                torch.zeros(per, dtype=torch.bool, device=x.device),
                torch.full(per, float(steps + 1), dtype=x.dtype, device=x.device),
                torch.full(per, float("inf"), dtype=x.dtype, device=x.device), x.clone())
    lr = torch.full(per, o.lr_init, dtype=x.dtype, device=x.device)
    for k in range(steps):
        grad = torch.cat([_chunk(model, x, y, st, p, k, norm, o, targeted) for p in slices(n, s.chunk)])
        decay = o.lr_reduction ** ((k - st.step_found).clamp_(min=0) / (steps - st.step_found))
        st.square_avg.mul_(o.alpha).addcmul_(grad, grad, value=1 - o.alpha)
        st.momentum.mul_(o.alpha).addcdiv_(grad, st.square_avg.sqrt().add_(RMS_EPS))
        st.delta.addcmul_(st.momentum, (lr * decay).view(view), value=-1)
        st.delta.add_(x).clamp_(s.lo, s.hi)
        if o.levels is not None:
            st.delta.sub_(s.lo).div_(s.hi - s.lo).mul_(o.levels - 1).round_().div_(o.levels - 1)
            st.delta.mul_(s.hi - s.lo).add_(s.lo)
        st.delta.sub_(x)
    return st.best


def _check(norm: NormSpec, steps: object, options: object, targeted: object) -> Norm:
    geometry = get_norm(norm)
    if geometry.name not in NORMS:
        raise ValueError(f"alma implements the norms {', '.join(NORMS)}, not {geometry.name!r}")
    _validate.count("steps", steps)
    if not isinstance(options, ALMAOptions):
        raise ValueError(f"options must be an ALMAOptions, got {type(options).__name__}")
    _validate.flag("targeted", targeted)
    return geometry


def alma(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec | None = None, *, norm: NormSpec = 2,
         steps: int = 1000, options: ALMAOptions = ALMAOptions(), targeted: bool = False,
         bounds: Bounds = (0.0, 1.0), chunk_size: int | None = None) -> AttackResult:
    r"""ALMA: per sample, a small L1 or L2 perturbation by an augmented Lagrangian with adaptive penalties.

    Gradient steps (RMSProp with momentum) on ‖δ‖ + P₂(DLR, ρ, μ), μ and ρ updated per sample (module docstring).

    Parameters
    ----------
    model : nn.Module
        Returns logits (N, K), K ≥ 3 (K ≥ 4 targeted); run in eval mode, parameters' gradients off, both restored.
    x, y : Tensor
        Inputs (N, ...) within ``bounds`` and labels (N,) (target classes when ``targeted``); not modified.
    eps : float or Tensor, optional
        A radius (or one per sample): success then also needs ‖δ‖ ≤ ε; the search is the same.
    norm : "1" or "2"
        The norm minimised (also 1, 2).
    steps : int
        Iterations K (a forward and a backward pass each; the paper's and adv-lib's 1,000).
    options : ALMAOptions
        η₀ (0.1), r (0.01), μ₀ (1), ρ₀ (1), M (10), τ (0.95), γ (1.2), α (0.9), τ_l (10⁻⁴), levels (None).
    targeted : bool
        Reach the class y instead of leaving it.
    bounds : (float, float)
        The box (lo, hi) of valid inputs.
    chunk_size : int, optional
        Samples per forward pass (speed and memory only).

    Returns
    -------
    AttackResult
        The smallest adversarial example met (x where none), success, the margin and logits at x_adv, and
        ``distance`` ‖x_adv − x‖ (0 where x is adversarial already, inf where the attack fails).

    Raises
    ------
    ValueError
        For a bad argument, a norm other than L1 and L2 included: the message names it.

    Examples
    --------
    >>> import torch
    >>> from advgrad import alma
    >>> _ = torch.manual_seed(0)  # the model's initial weights
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> x = torch.rand(8, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    >>> result = alma(model, x, model(x).argmax(1), norm=1, steps=100)
    >>> bool(result.success.all())
    True

    References
    ----------
    J. Rony, E. Granger, M. Pedersoli, I. Ben Ayed, "Augmented Lagrangian Adversarial Attacks", ICCV 2021,
    arXiv 2011.11857.
    """
    s = prepare(model, x, y, eps, bounds, chunk_size)
    geometry = _check(norm, steps, options, targeted)
    x, y = x.detach(), y.long()
    with frozen_eval(model):
        best = _search(model, x, y, s, geometry, steps, options, targeted)
        return finish(model, x, y, best, geometry, s, targeted)
