"""The Carlini–Wagner L2 attack (Carlini & Wagner, IEEE S&P 2017, arXiv 1608.04644): Adam on a change of
variables that keeps the box, with a binary search over the trade-off constant c.

The box [lo, hi] is left by no point of x′(m) = lo + (hi − lo)·(tanh(t + m) + 1)/2, t = atanh((2(x − lo)/(hi − lo)
− 1)·(1 − 10⁻⁶)) (the factor keeps t finite at the bounds; x′(0) is x within about 10⁻⁶). For a constant c
per sample, Adam (learning rate ``lr``) minimises over m, from m = 0,

    L(m) = ‖x′(m) − x‖₂² + c·max(κ ∓ (max_{j≠y} z_j − z_y), 0)     (z = f(x′(m)); − untargeted, + targeted)

for ``steps`` iterations, and every adversarial iterate (its logits with κ subtracted from the winning
side) smaller than the best so far is kept. With ``abort_early``, every tenth of the steps the run stops
once no sample's loss fell below 0.9999 of its value at the last check. Then per sample: success with c
sets the upper bound u = min(u, c), failure the lower bound l = max(l, c); c becomes (l + u)/2 once
u is below 10⁹, else 10·c while failing. With ≥ 10 search steps the last one runs at c = u.

The operations are adv-lib 0.2.8's ``carlini_wagner_l2`` in its order (the abort test included: it stops
the whole batch, so a sample's result depends on the batch it is attacked with, as in every reference
implementation), so with the same batch the examples are the same bits (tests/attacks/minimal/test_cw.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from advgrad import _validate
from advgrad._runtime import frozen_eval
from advgrad.attacks._checks import Bounds, EpsSpec, check_labels, forward
from advgrad.attacks._chunks import slices
from advgrad.attacks.minimal._common import Setup, finish, is_adversarial, prepare
from advgrad.attacks.result import AttackResult
from advgrad.losses import margin
from advgrad.norms import L2_NORM, NormSpec, get_norm

SHRINK = 1 - 1e-6       # keeps atanh finite at the bounds
UNBOUNDED = 1e10        # the upper bound of c before any success
BOUNDED = 1e9           # below this the upper bound is real and c bisects
ADAM_EPS = 1e-8


@dataclass(frozen=True)
class CWOptions:
    """The knobs of the CW-L2 search, validated on creation (defaults: the paper's and adv-lib's).

    ``binary_search_steps``: searches over c; ``initial_const``: c for the first; ``confidence``: κ ≥ 0, the
    margin an example must have; ``lr``: Adam's learning rate; ``betas``: Adam's averaging factors;
    ``abort_early``: stop a search's iterations once the loss stalls.

    Parameters
    ----------
    binary_search_steps, initial_const, confidence, lr, betas, abort_early
        As above.

    Examples
    --------
    >>> from advgrad import CWOptions
    >>> CWOptions(initial_const=1.0).binary_search_steps
    9
    """

    binary_search_steps: int = 9
    initial_const: float = 1e-3
    confidence: float = 0.0
    lr: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    abort_early: bool = True

    def __post_init__(self) -> None:
        _validate.count("binary_search_steps", self.binary_search_steps)
        _validate.number("initial_const", self.initial_const, minimum=0.0, strict=True)
        _validate.number("confidence", self.confidence, minimum=0.0)
        _validate.number("lr", self.lr, minimum=0.0, strict=True)
        if not (isinstance(self.betas, tuple) and len(self.betas) == 2):
            raise ValueError(f"betas must be a pair (β₁, β₂), got {self.betas!r}")
        for beta in self.betas:
            _validate.number("betas", beta, minimum=0.0, below=1.0)
        _validate.flag("abort_early", self.abort_early)


@dataclass
class _Adam:
    """Adam's state for the variable m (N, ...); ``step`` updates m in place (adv-lib's operations)."""

    m: Tensor
    avg: Tensor
    avg_sq: Tensor

    def step(self, g: Tensor, i: int, lr: float, betas: tuple[float, float]) -> None:
        b1, b2 = betas
        self.avg.mul_(b1).add_(g, alpha=1 - b1)
        self.avg_sq.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = self.avg_sq.sqrt().div_(math.sqrt(1 - b2 ** (i + 1))).add_(ADAM_EPS)
        self.m.addcdiv_(self.avg, denom, value=-lr / (1 - b1 ** (i + 1)))


def _value_and_grad(model: nn.Module, t: Tensor, x: Tensor, y: Tensor, m: Tensor, c: Tensor, s: Setup, sign: float,
                    kappa: float) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """x′(m), ‖x′ − x‖₂², the logits, the loss L (all per sample) and ∂ΣL/∂m, ``s.chunk`` samples at a time."""
    outs: list[tuple[Tensor, ...]] = []
    with torch.enable_grad():
        for p in slices(len(x), s.chunk):
            mv = m[p].detach().requires_grad_(True)
            x_adv = (torch.tanh(t[p] + mv) + 1) / 2 * (s.hi - s.lo) + s.lo
            l2_sq = (x_adv - x[p]).flatten(1).square().sum(1)  # (n,)
            z = forward(model, x_adv)
            check_labels(z, y[p])
            loss = l2_sq + c[p] * (sign * margin(z, y[p]) + kappa).clamp_(min=0)
            (g,) = torch.autograd.grad(loss.sum(), mv)
            outs.append((x_adv.detach(), l2_sq.detach(), z.detach(), loss.detach(), g))
    return tuple(torch.cat(parts) for parts in zip(*outs))  # type: ignore[return-value]


def _search(model: nn.Module, x: Tensor, y: Tensor, s: Setup, steps: int, o: CWOptions, targeted: bool) -> Tensor:
    """The binary search over c around ``steps`` Adam iterations; returns the smallest adversarial x′ found
    per sample (x where none was)."""
    n, view = len(x), (-1, *[1] * (x.ndim - 1))
    t = ((x - s.lo) / (s.hi - s.lo) * 2).sub_(1).mul_(SHRINK).atanh_()  # (N, ...)
    c = torch.full((n,), o.initial_const, dtype=x.dtype, device=x.device)
    lower, upper = torch.zeros_like(c), torch.full_like(c, UNBOUNDED)
    best_norm, best = torch.full_like(c, math.inf), x.clone()
    sign = 1.0 if targeted else -1.0
    shift = torch.zeros(n, 1, dtype=x.dtype, device=x.device)  # (N, K) on first use: ±κ on y's logit
    every = max(steps // 10, 1)
    for outer in range(o.binary_search_steps):
        adam = _Adam(torch.zeros_like(x), torch.zeros_like(x), torch.zeros_like(x))
        found, run_norm = torch.zeros(n, dtype=torch.bool, device=x.device), torch.full_like(c, math.inf)
        if o.binary_search_steps >= 10 and outer == o.binary_search_steps - 1:
            c = upper
        prev = torch.full_like(c, math.inf)
        for i in range(steps):
            x_adv, l2_sq, z, loss, g = _value_and_grad(model, t, x, y, adam.m, c, s, sign, o.confidence)
            if shift.shape[1] == 1:
                shift = torch.zeros_like(z).scatter_(1, y[:, None], 1) * (-o.confidence if targeted else o.confidence)
            l2 = l2_sq.sqrt()
            adv = is_adversarial(z + shift, y, targeted)
            new_run, new_best = adv & (l2 < run_norm), adv & (l2 < best_norm)
            run_norm, found = torch.where(new_run, l2, run_norm), found | new_run
            best_norm, best = torch.where(new_best, l2, best_norm), torch.where(new_best.view(view), x_adv, best)
            if o.abort_early and i % every == 0:
                if bool((loss > prev * 0.9999).all()):
                    break
                prev = loss
            adam.step(g, i, o.lr, o.betas)
        upper = torch.where(found, torch.minimum(upper, c), upper)
        lower = torch.where(found, lower, torch.maximum(lower, c))
        bounded = upper < BOUNDED
        c = torch.where(bounded, (lower + upper) / 2, torch.where(found, c, c * 10))
    return best


def _check(norm: NormSpec, steps: object, options: object, targeted: object) -> None:
    if get_norm(norm) is not L2_NORM:
        raise ValueError(f"cw implements the norm 2 only, not {get_norm(norm).name!r}")
    _validate.count("steps", steps)
    if not isinstance(options, CWOptions):
        raise ValueError(f"options must be a CWOptions, got {type(options).__name__}")
    _validate.flag("targeted", targeted)


def cw(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec | None = None, *, norm: NormSpec = 2,
       steps: int = 10000, options: CWOptions = CWOptions(), targeted: bool = False, bounds: Bounds = (0.0, 1.0),
       chunk_size: int | None = None) -> AttackResult:
    r"""Carlini–Wagner L2: per sample, the smallest L2 perturbation found by Adam on ‖δ‖₂² + c·hinge(margin).

    A tanh change of variables keeps the box; c is bisected per sample (module docstring).

    Parameters
    ----------
    model : nn.Module
        Returns logits (N, K); run in eval mode with its parameters' gradients off, both restored.
    x, y : Tensor
        Inputs (N, ...) within ``bounds`` and labels (N,) (target classes when ``targeted``); not modified.
    eps : float or Tensor, optional
        A radius (or one per sample): success then also needs ‖δ‖₂ ≤ ε; the search is the same.
    norm : "2"
        L2 only (CW's L0 and L∞ attacks are other algorithms).
    steps : int
        Adam iterations per value of c (the paper's and adv-lib's 10,000; a forward and a backward pass each).
    options : CWOptions
        ``binary_search_steps`` (9), ``initial_const`` (10⁻³), ``confidence`` κ (0), ``lr`` (0.01), ``betas``
        ((0.9, 0.999)), ``abort_early`` (True).
    targeted : bool
        Reach the class y instead of leaving it.
    bounds : (float, float)
        The box (lo, hi) of valid inputs.
    chunk_size : int, optional
        Samples per forward pass (speed and memory only).

    Returns
    -------
    AttackResult
        The smallest adversarial example found (x where none), success, the margin and logits at x_adv, and
        ``distance`` ‖x_adv − x‖₂ (0 where x is adversarial already, inf where the attack fails).

    Raises
    ------
    ValueError
        For a bad argument: the message names it and what is allowed.

    Examples
    --------
    >>> import torch
    >>> from advgrad import CWOptions, cw
    >>> _ = torch.manual_seed(0)  # the model's initial weights
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> x = torch.rand(8, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    >>> options = CWOptions(binary_search_steps=4, initial_const=1.0, lr=0.1)
    >>> bool(cw(model, x, model(x).argmax(1), steps=100, options=options).success.all())
    True

    References
    ----------
    N. Carlini, D. Wagner, "Towards Evaluating the Robustness of Neural Networks", IEEE Symposium on
    Security and Privacy 2017, arXiv 1608.04644.
    """
    s = prepare(model, x, y, eps, bounds, chunk_size)
    _check(norm, steps, options, targeted)
    x, y = x.detach(), y.long()
    with frozen_eval(model):
        best = _search(model, x, y, s, steps, options, targeted)
        return finish(model, x, y, best, L2_NORM, s, targeted)
