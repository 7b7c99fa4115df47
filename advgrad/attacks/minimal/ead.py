"""EAD, the Elastic-net Attack to DNNs (Chen et al., AAAI 2018, arXiv 1709.04114): CW's loss with an L1 term,
minimised by FISTA (Beck & Teboulle 2009) with a projected shrinkage-thresholding step, and a binary search
over the constant c; examples selected by their elastic-net (or L1) distance.

For a constant c per sample, from x_0 = y_0 = x, for k = 0 … K−1 (K = ``steps``):

    g_k = ∇_y [c·max(±(z_y − max_{j≠y} z_j) + κ, 0) + ‖y − x‖₂²] at y_k     (+ untargeted; targeted: z_t, −)
    x_{k+1} = S_β(y_k − η_k·g_k),       η_k = η·(1 − k/K)^½
    y_{k+1} = x_{k+1} + k/(k + 3)·(x_{k+1} − x_k)

where S_β moves each coordinate of z towards x by β (the proximal step of β‖· − x‖₁) and clips it to the
box: x_i + (z_i − x_i ∓ β) where |z_i − x_i| > β (clipped to [lo, hi]), else x_i. Every x_{k+1} adversarial
(its label's logit raised by κ) with a smaller β‖δ‖₁ + ‖δ‖₂² (decision rule "EN"; "L1": ‖δ‖₁) than the best
so far is kept. With ``abort_early``, every tenth of the steps the run stops once the batch's summed loss
exceeds 0.9999 of its value at the last check. c: the upper bound u becomes c on success and the lower
bound c on failure; then c ← 10·c while u is ∞, else (l + u)/2; with ≥ 10 searches the last runs at
min(u, 10¹⁰).

The operations are Foolbox 3.3.4's ``EADAttack`` in its order (the abort test too: it stops the whole
batch), so with the same batch the examples are the same bits (tests/attacks/minimal/test_ead.py).
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
from advgrad.attacks.minimal._common import Setup, finish, is_adversarial, logits_of, prepare
from advgrad.attacks.result import AttackResult
from advgrad.norms import L1_NORM, NormSpec, get_norm, per_point

RULES = ("EN", "L1")
LAST_CONST = 1e10  # the cap on c in a last, repeated search


@dataclass(frozen=True)
class EADOptions:
    """EAD's knobs, validated on creation (defaults: Foolbox's): ``binary_search_steps``, ``initial_const``,
    ``confidence`` κ, ``lr`` the first step η, ``beta`` the weight β of the L1 term, ``decision_rule`` ("EN"
    or "L1"), ``abort_early``.

    Parameters
    ----------
    binary_search_steps, initial_const, confidence, lr, beta, decision_rule, abort_early
        As above.

    Examples
    --------
    >>> from advgrad import EADOptions
    >>> EADOptions(decision_rule="L1").beta
    0.01
    """

    binary_search_steps: int = 9
    initial_const: float = 1e-3
    confidence: float = 0.0
    lr: float = 0.01
    beta: float = 0.01
    decision_rule: str = "EN"
    abort_early: bool = True

    def __post_init__(self) -> None:
        _validate.count("binary_search_steps", self.binary_search_steps)
        for name in ("initial_const", "lr"):
            _validate.number(name, getattr(self, name), minimum=0.0, strict=True)
        for name in ("confidence", "beta"):
            _validate.number(name, getattr(self, name), minimum=0.0)
        _validate.one_of("decision_rule", self.decision_rule, RULES)
        _validate.flag("abort_early", self.abort_early)


def _loss_and_grad(model: nn.Module, x: Tensor, y: Tensor, y_k: Tensor, c: Tensor, s: Setup, o: EADOptions,
                   targeted: bool) -> tuple[float, Tensor]:
    """The batch's summed loss (a float, as Foolbox's ``loss.item()``) and its gradient at y_k, in chunks."""
    hinges, squares, grads = [], [], []
    with torch.enable_grad():
        for p in slices(len(x), s.chunk):
            v = y_k[p].detach().requires_grad_(True)
            z = forward(model, v)
            check_labels(z, y[p])
            best_other = z.scatter(1, y[p][:, None], -math.inf).argmax(1)  # (n,) the largest logit but y's
            lo_cls, hi_cls = (best_other, y[p]) if targeted else (y[p], best_other)
            gap = z.gather(1, lo_cls[:, None]).squeeze(1) - z.gather(1, hi_cls[:, None]).squeeze(1) + o.confidence
            hinge = torch.maximum(gap, torch.zeros_like(gap)) * c[p]
            square = (v - x[p]).flatten(1).square().sum(1)
            (g,) = torch.autograd.grad(hinge.sum() + square.sum(), v)
            hinges.append(hinge.detach())
            squares.append(square.detach())
            grads.append(g)
    return (torch.cat(hinges).sum() + torch.cat(squares).sum()).item(), torch.cat(grads)


def _shrink(z: Tensor, x: Tensor, beta: float, lo: float, hi: float) -> Tensor:
    """The projected shrinkage-thresholding S_β(z) around x (module docstring)."""
    up, down = z - x > beta, z - x < -beta
    out = torch.where(up, torch.minimum(z - beta, torch.full_like(z, hi)), x)
    return torch.where(down, torch.maximum(z + beta, torch.full_like(z, lo)), out)


@dataclass
class _Best:
    x: Tensor      # (N, ...) the best example so far
    norm: Tensor   # (N,) its elastic-net (or L1) distance


def _run(model: nn.Module, x: Tensor, y: Tensor, c: Tensor, s: Setup, steps: int, o: EADOptions, targeted: bool,
         best: _Best) -> Tensor:
    """One FISTA run at the constants c; updates ``best``; returns (N,) whether an example was found."""
    x_k, y_k = x, x
    found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    prev = math.inf
    shift = (-o.confidence if targeted else o.confidence)
    for k in range(steps):
        loss, grad = _loss_and_grad(model, x, y, y_k, c, s, o, targeted)
        x_old, x_k = x_k, _shrink(y_k - o.lr * (1.0 - k / steps) ** 0.5 * grad, x, o.beta, s.lo, s.hi)
        y_k = x_k + k / (k + 3.0) * (x_k - x_old)
        if o.abort_early and k % math.ceil(steps / 10) == 0:
            if not loss <= 0.9999 * prev:
                break
            prev = loss
        z = logits_of(model, x_k, s.chunk)
        if shift != 0:
            z = z + torch.zeros_like(z).scatter_(1, y[:, None], shift)
        hit = is_adversarial(z, y, targeted)
        d = (x_k - x).flatten(1)
        size = d.abs().sum(-1) if o.decision_rule == "L1" else o.beta * d.abs().sum(-1) + d.square().sum(-1)
        new = (size < best.norm) & hit
        best.x = torch.where(per_point(new, x), x_k, best.x)
        best.norm = torch.where(new, size, best.norm)
        found |= hit
    return found


def _search(model: nn.Module, x: Tensor, y: Tensor, s: Setup, steps: int, o: EADOptions, targeted: bool) -> Tensor:
    """The binary search over c around FISTA runs; returns the best example per sample (x where none)."""
    c = torch.full((len(x),), o.initial_const, dtype=x.dtype, device=x.device)
    lower, upper = torch.zeros_like(c), torch.full_like(c, math.inf)
    best = _Best(x.clone(), torch.full_like(c, math.inf))
    for search in range(o.binary_search_steps):
        if search == o.binary_search_steps - 1 and o.binary_search_steps >= 10:
            c = torch.minimum(upper, torch.full_like(upper, LAST_CONST))
        found = _run(model, x, y, c, s, steps, o, targeted, best)
        upper, lower = torch.where(found, c, upper), torch.where(found, lower, c)
        c = torch.where(torch.isinf(upper), c * 10, (lower + upper) / 2)
    return best.x


def _check(norm: NormSpec, steps: object, options: object, targeted: object) -> None:
    if get_norm(norm) is not L1_NORM:
        raise ValueError(f"ead implements the norm 1 only, not {get_norm(norm).name!r}")
    _validate.count("steps", steps)
    if not isinstance(options, EADOptions):
        raise ValueError(f"options must be an EADOptions, got {type(options).__name__}")
    _validate.flag("targeted", targeted)


def ead(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec | None = None, *, norm: NormSpec = 1,
        steps: int = 10000, options: EADOptions = EADOptions(), targeted: bool = False, bounds: Bounds = (0.0, 1.0),
        chunk_size: int | None = None) -> AttackResult:
    r"""EAD: per sample, a sparse L1 perturbation by FISTA on CW's loss with an elastic-net penalty.

    ISTA's shrinkage handles β‖δ‖₁ and the box; c is searched per sample as in CW (module docstring).

    Parameters
    ----------
    model : nn.Module
        Returns logits (N, K); run in eval mode with its parameters' gradients off, both restored.
    x, y : Tensor
        Inputs (N, ...) within ``bounds`` and labels (N,) (target classes when ``targeted``); not modified.
    eps : float or Tensor, optional
        An L1 radius (or one per sample): success then also needs ‖δ‖₁ ≤ ε; the search is the same.
    norm : "1"
        The norm reported: L1 only.
    steps : int
        FISTA iterations per value of c (Foolbox's 10,000; each one forward and backward pass, and one forward).
    options : EADOptions
        ``binary_search_steps`` (9), ``initial_const`` (10⁻³), ``confidence`` κ (0), ``lr`` η (0.01), ``beta`` β
        (0.01), ``decision_rule`` ("EN"), ``abort_early`` (True).
    targeted : bool
        Reach the class y instead of leaving it.
    bounds : (float, float)
        The box (lo, hi) of valid inputs.
    chunk_size : int, optional
        Samples per forward pass (speed and memory only).

    Returns
    -------
    AttackResult
        The best example by the decision rule (x where none), success, the margin and logits at x_adv, and
        ``distance`` ‖x_adv − x‖₁ (0 where x is adversarial already, inf where the attack fails).

    Raises
    ------
    ValueError
        For a bad argument: the message names it and what is allowed.

    Examples
    --------
    >>> import torch
    >>> from advgrad import EADOptions, ead
    >>> _ = torch.manual_seed(0)  # the model's initial weights
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> x = torch.rand(8, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    >>> options = EADOptions(binary_search_steps=4, initial_const=1.0, lr=0.1)
    >>> bool(ead(model, x, model(x).argmax(1), steps=100, options=options).success.all())
    True

    References
    ----------
    P.-Y. Chen, Y. Sharma, H. Zhang, J. Yi, C.-J. Hsieh, "EAD: Elastic-Net Attacks to Deep Neural Networks via
    Adversarial Examples", AAAI 2018, arXiv 1709.04114.
    """
    s = prepare(model, x, y, eps, bounds, chunk_size)
    _check(norm, steps, options, targeted)
    x, y = x.detach(), y.long()
    with frozen_eval(model):
        best = _search(model, x, y, s, steps, options, targeted)
        return finish(model, x, y, best, L1_NORM, s, targeted)
