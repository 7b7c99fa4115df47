"""The one gradient loop, K times x′ ← clip(x + Π_ε(x′ + α·steepest(v) − x)) (v: ∇J, or MI-FGSM's velocity): PGD
(Madry et al. 2018), FGSM (Goodfellow et al. 2015) and MI-FGSM (Dong et al. 2018) under L∞, L2, L1 (PGD: also L0)."""

from __future__ import annotations

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
    is_zero,
    take,
)
from advgrad.attacks._chunks import chunk_for, slices
from advgrad.attacks.gradient import gradient
from advgrad.attacks.result import AttackResult
from advgrad.losses import LossFn, LossSpec, resolve_loss
from advgrad.norms import Norm, NormSpec, Radius, get_norm, per_sample

# The default step α = factor·ε/steps of each function of the loop (the papers': Madry et al.'s 2.5·ε/K,
# Dong et al.'s ε/K, Goodfellow et al.'s single step of ε).
STEP_FACTORS = {"pgd": 2.5, "mifgsm": 1.0, "fgsm": 1.0}
# PGD-L0's step along g/‖g‖₁ per input coordinate (Croce & Hein 2019: η = 120000/255 for CIFAR-10's 3,072).
L0_STEP = 120000 / 255 / 3072


@dataclass(frozen=True)
class _Plan:
    """One run of the loop, validated and resolved once: what every step reads."""

    model: nn.Module
    norm: Norm
    loss_fn: LossFn
    steps: int
    momentum: float
    targeted: bool
    early_stop: bool
    lo: float
    hi: float
    chunk: int
    project: bool  # False only for a single step of size α ≤ ε from x, which cannot leave the ball


def _success(logits: Tensor, y: Tensor, targeted: bool) -> Tensor:
    pred = logits.argmax(dim=1)
    return pred == y if targeted else pred != y


def _normalised(grad: Tensor) -> Tensor:
    """∇/mean|∇| per sample, in place (MI-FGSM); a zero gradient stays zero."""
    scale = grad.abs().flatten(1).mean(dim=1).clamp_min(torch.finfo(grad.dtype).tiny)
    return grad.div_(per_sample(scale, grad))


def _descend(plan: _Plan, x: Tensor, y: Tensor, x_adv: Tensor, eps: Radius, alpha: Radius, owned: bool) -> Tensor:
    """``steps`` × (gradient → steepest step → project onto the ε-ball around x → clip to the bounds) from
    ``x_adv``; returns the new x_adv, x untouched.

    ``owned``: x_adv is the loop's own tensor (not the caller's x), free to be overwritten once replaced. The step
    is computed in place in the gradient's buffer, and the previous iterate becomes the next gradient's buffer, so
    a step allocates no (N, ...) tensor: fresh multi-megabyte tensors cost page faults on every step (glibc
    returns them to the kernel when freed). ``_reference_pgd`` is the same loop written plainly."""
    active: Tensor | None = None  # indices still attacked; None = all (no indexing copies)
    free: Tensor | None = None    # an (N, ...) buffer of the loop's own that nothing reads any more; its
    #                               rows [0, n) take the gradient of the n points still attacked
    velocity = torch.zeros_like(x) if plan.momentum else None  # (N, ...) MI-FGSM's v
    if plan.early_stop:
        x_adv, owned = x_adv.clone(), True  # written in place below; never an alias of the caller's x
    for _ in range(plan.steps):
        xs, x0, ys = (x_adv, x, y) if active is None else (x_adv[active], x[active], y[active])
        # The gradient of the batch mean (descended when targeted), as torchattacks takes it: every step
        # direction is scale-free, and with the same 1/N a coordinate within rounding of zero gets the same
        # sign, so the L∞ attacks match torchattacks bit for bit.
        weight = (-1.0 if plan.targeted else 1.0) / len(xs)
        out = None if free is None else free[:len(xs)]
        grad, logits = gradient(plan.model, xs, ys, plan.loss_fn, weight, plan.chunk, out=out)
        with torch.no_grad():
            e, a, kept = take(eps, active), take(alpha, active), active
            if plan.early_stop:
                keep = ~_success(logits, ys, plan.targeted)  # (n,) not yet fooled: these move
                if not bool(keep.all()):
                    kept = (torch.arange(len(x), device=x.device) if active is None else active)[keep]
                    if len(kept) == 0:
                        break
                    xs, x0, grad = xs[keep], x0[keep], grad[keep]
                    e, a = take(e, keep), take(a, keep)
            if velocity is not None:
                grad = _momentum(velocity, kept, _normalised(grad), plan.momentum)
            if plan.norm.skip_saturated:  # coordinates on a bound, pushed outward, cannot move
                grad = grad.masked_fill(((xs <= plan.lo) & (grad < 0)) | ((xs >= plan.hi) & (grad > 0)), 0)
            # x′ + step − x, projected, + x, clipped, in place in the gradient's buffer (the same values as
            # torchattacks' out-of-place (x′ + step) − x: addition commutes bit for bit).
            step = plan.norm.steepest_(grad, a).add_(xs)
            if plan.project:
                step = plan.norm.project_box(step.sub_(x0), e, x0, plan.lo, plan.hi).add_(x0)
            new = step.clamp_(plan.lo, plan.hi)
            if kept is None:
                free = x_adv if owned else None  # the previous iterate: the next gradient's buffer
                x_adv, owned = new, True
            else:
                x_adv[kept] = new
            active = kept
    return x_adv


def _momentum(velocity: Tensor, active: Tensor | None, g: Tensor, mu: float) -> Tensor:
    """v ← μ·v + g for the active samples; returns a tensor holding the new v that the step may consume."""
    if active is None:
        velocity.mul_(mu).add_(g)
        return g.copy_(velocity)
    v = velocity[active].mul_(mu).add_(g)  # a copy (advanced indexing)
    velocity[active] = v
    return v


@torch.no_grad()
def _evaluate(plan: _Plan, x_adv: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    logits = torch.cat([forward(plan.model, x_adv[part]) for part in slices(len(x_adv), plan.chunk)])
    check_labels(logits, y)  # before the loss indexes the logits with y
    return _success(logits, y, plan.targeted), plan.loss_fn(logits, y), logits


@dataclass(frozen=True)
class _Run:
    """A validated call: the plan, the clean inputs, ε and α (floats or per-sample tensors)."""

    plan: _Plan
    x: Tensor
    eps: Radius
    alpha: Radius
    random_start: bool


def _prepare(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec, *, steps: int, alpha: float | None,
             factor: float, norm: NormSpec, random_start: bool, momentum: float, targeted: bool, loss: LossSpec,
             bounds: Bounds, early_stop: bool, chunk_size: int | None, generator: torch.Generator | None) -> _Run:
    """Every argument checked once (a ValueError naming the value), α resolved: ``alpha`` or factor·ε/steps."""
    xmin, xmax = check_batch(x, y)
    check_dtype(model, x)
    check_generator(generator)
    lo, hi = check_bounds(bounds, xmin, xmax)
    eps_ = check_radius("eps", eps, x, positive=False)
    steps = _validate.count("steps", steps)
    for name, flag in (("random_start", random_start), ("targeted", targeted), ("early_stop", early_stop)):
        _validate.flag(name, flag)
    momentum = _validate.number("momentum", momentum, minimum=0.0)
    _validate.optional_count("chunk_size", chunk_size)
    geometry = get_norm(norm)
    if alpha is not None:
        a: Radius = _validate.number("alpha", alpha, minimum=0.0, strict=True)
    elif geometry.name == "0":  # ε counts pixels: Croce & Hein's η = 120000/255 on CIFAR-10, per coordinate
        a = L0_STEP * x[0].numel()
    else:
        a = factor * eps_ / steps
    x = x.detach()
    one_step = (steps == 1 and not random_start and geometry.name != "0"  # L0's step is dense: projected
                and bool(torch.all(torch.as_tensor(a <= eps_))))
    plan = _Plan(model, geometry, resolve_loss(loss, model), steps, momentum, targeted, early_stop, lo, hi,
                 chunk_for(chunk_size, model, x), project=not one_step)
    return _Run(plan, x, eps_, a, random_start)


def _one_run(run: _Run, y: Tensor, generator: torch.Generator | None, idx: Tensor | None = None) -> Tensor:
    """The loop on the samples ``idx`` (None: all) from x, or from a random point of their ε-balls."""
    p = run.plan
    xs, ys, e = (run.x, y, run.eps) if idx is None else (run.x[idx], y[idx], take(run.eps, idx))
    start = p.norm.random_start(xs, e, generator).add_(xs).clamp_(p.lo, p.hi) if run.random_start else xs
    return _descend(p, xs, ys, start, e, take(run.alpha, idx), owned=run.random_start)


def _attack(run: _Run, y: Tensor, restarts: int, generator: torch.Generator | None) -> AttackResult:
    """``restarts`` runs (only one without a random start: the others would repeat it), keeping per sample
    the best example: a success over a failure, else the higher loss (lower when targeted)."""
    p = run.plan
    if is_zero(run.eps):
        x_adv = run.x.clone()
        return AttackResult(x_adv, *_evaluate(p, x_adv, y))
    x_adv = _one_run(run, y, generator)
    success, losses, logits = _evaluate(p, x_adv, y)
    for _ in range((restarts if run.random_start else 1) - 1):
        # Early stop: only the samples not yet fooled get another restart (as AutoAttack does).
        idx = (~success).nonzero().squeeze(1) if p.early_stop else torch.arange(len(y), device=y.device)
        if len(idx) == 0:
            break
        cand = _one_run(run, y, generator, idx)
        s_new, l_new, z_new = _evaluate(p, cand, y[idx])
        s_old, l_old = success[idx], losses[idx]
        gain_new, gain_old = (-l_new, -l_old) if p.targeted else (l_new, l_old)
        better = (s_new & ~s_old) | ((s_new == s_old) & (gain_new > gain_old))
        chosen = idx[better]
        x_adv[chosen], success[chosen] = cand[better], s_new[better]
        losses[chosen], logits[chosen] = l_new[better], z_new[better]
    return AttackResult(x_adv, success, losses, logits)


def gradient_steps(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec, *, steps: int = 10,
                   alpha: float | None = None, norm: NormSpec = "inf", random_start: bool = True,
                   momentum: float = 0.0, targeted: bool = False, loss: LossSpec = "ce", bounds: Bounds = (0.0, 1.0),
                   early_stop: bool = False, chunk_size: int | None = None,
                   generator: torch.Generator | None = None) -> Tensor:
    """The projected-steps loop itself, one run, examples only: what ``pgd``, ``fgsm`` and ``mifgsm`` run before
    their evaluation pass, and what adversarial training runs on every batch (it needs no verdicts).

    From x′₀ (x, or with ``random_start`` a uniform point of the ε-ball clipped to ``bounds``), ``steps`` times x′ ←
    clip(x + Π_ε(x′ + α·steepest(v) − x)), with v the input gradient ∇ₓJ (or, with ``momentum`` μ > 0, the velocity v ←
    μ·v + ∇J/mean|∇J|). ``alpha`` defaults to PGD's 2.5·ε/steps.

    Parameters
    ----------
    momentum : float
        μ ≥ 0 (0: plain gradient steps); the other arguments as in ``pgd``.

    Returns
    -------
    Tensor
        x′ (N, ...), detached.

    Examples
    --------
    >>> import torch
    >>> from advgrad import gradient_steps
    >>> model, x = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)), torch.rand(3, 1, 2, 2)
    >>> bool(((gradient_steps(model, x, torch.tensor([0, 1, 2]), 0.1) - x).abs() <= 0.1 + 1e-6).all())
    True
    """
    run = _prepare(model, x, y, eps, steps=steps, alpha=alpha, factor=STEP_FACTORS["pgd"], norm=norm,
                   random_start=random_start, momentum=momentum, targeted=targeted, loss=loss, bounds=bounds,
                   early_stop=early_stop, chunk_size=chunk_size, generator=generator)
    if is_zero(run.eps):
        return run.x.clone()
    with frozen_eval(model):
        return _one_run(run, y, generator)


def pgd(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec, *, norm: NormSpec = "inf", steps: int = 10,
        alpha: float | None = None, random_start: bool = True, restarts: int = 1, targeted: bool = False,
        loss: LossSpec = "ce", bounds: Bounds = (0.0, 1.0), early_stop: bool = False, chunk_size: int | None = None,
        generator: torch.Generator | None = None) -> AttackResult:
    """Projected gradient descent on the loss (Madry et al. 2018): the strongest first-order attack within ‖x′ − x‖ ≤
    ε.

    From x′₀ = x, or (``random_start``) a uniform point of the ε-ball around x clipped to ``bounds``, ``steps`` times:
    x′ ← clip(x + Π_ε(x′ + α·steepest(∇ₓJ) − x)), where the norm's geometry (``advgrad.norms``) gives the steepest step
    (L∞: α·sign g) and the projection Π_ε. With ``restarts`` R > 1 the loop reruns from new random starts and keeps per
    sample the best example (a success, else the highest loss). ``_reference.pgd`` is the same loop written plainly.

    Parameters
    ----------
    model : nn.Module
        Returns logits (N, K); run in eval mode with its parameters' gradients off (both restored).
    x, y, eps : Tensor, Tensor, float or Tensor
        Inputs (N, ...) within ``bounds``, labels (N,) (target classes when ``targeted``), the radius ε ≥ 0 or
        one per sample (N,).
    norm : {"inf", "2", "1", "0"}
        The threat model (also ``float("inf")``, 2, 1, 0). L0 (PGD-L0, Croce & Hein 2019, arXiv 1909.05040)
        counts pixels and projects onto the L0 ball ∩ the box.
    steps, restarts : int
        Iterations K ≥ 1; runs from fresh random starts (only one without ``random_start``).
    alpha : float, optional
        The step α > 0; default 2.5·ε/steps (L0, where ε counts pixels: Croce & Hein's step along g/‖g‖₁,
        120000/255 per 3,072 coordinates, scaled to x's).
    random_start, early_stop : bool
        Start from a uniform point of the ball (L∞: U(−ε, ε) per coordinate); freeze a sample as soon as it is
        fooled (evaluation: faster, the examples stop at the first success).
    targeted, loss : bool, str or callable
        Descend the loss towards y instead of ascending it away from y; the loss: a name in
        ``advgrad.catalog.LOSSES`` or (logits, y) → per-sample loss.
    bounds : (float, float)
        The box the inputs live in; every iterate is clipped to it.
    chunk_size, generator : int or None, torch.Generator or None
        Samples per forward pass (speed and memory only); draws the random starts (without one the global RNG
        draws the L∞ start exactly as torchattacks does: the same examples under the same ``torch.manual_seed``).

    Returns
    -------
    AttackResult
        ``x_adv`` within the ε-balls and the bounds, ``success`` (misclassified, or at the target), the loss and
        logits at ``x_adv`` (one extra forward pass).

    Raises
    ------
    ValueError
        A bad argument, named in one line (x outside ``bounds``, a negative ε, steps = 0, ...).

    Examples
    --------
    >>> import torch
    >>> from advgrad import pgd
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x, y = torch.rand(8, 1, 2, 2), torch.randint(0, 3, (8,))
    >>> result = pgd(model, x, y, 0.1, steps=5, generator=torch.Generator().manual_seed(0))
    >>> bool(((result.x_adv - x).abs() <= 0.1 + 1e-6).all()), result.success.shape
    (True, torch.Size([8]))

    References
    ----------
    Madry, Makelov, Schmidt, Tsipras, Vladu, "Towards deep learning models resistant to adversarial attacks",
    ICLR 2018, arXiv 1706.06083.
    """
    restarts = _validate.count("restarts", restarts)
    run = _prepare(model, x, y, eps, steps=steps, alpha=alpha, factor=STEP_FACTORS["pgd"], norm=norm,
                   random_start=random_start, momentum=0.0, targeted=targeted, loss=loss, bounds=bounds,
                   early_stop=early_stop, chunk_size=chunk_size, generator=generator)
    with frozen_eval(model):
        return _attack(run, y, restarts, generator)


def fgsm(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec, *, norm: NormSpec = "inf", targeted: bool = False,
         loss: LossSpec = "ce", bounds: Bounds = (0.0, 1.0), chunk_size: int | None = None) -> AttackResult:
    """The fast gradient (sign) method (Goodfellow et al. 2015): one steepest-ascent step of size ε from x.

    L∞: x′ = clip(x + ε·sign ∇ₓJ); L2: x′ = clip(x + ε·g/‖g‖₂). It is ``pgd``'s loop with one step of α = ε from x,
    unprojected (it cannot leave the ball), bit for bit torchattacks', Foolbox's and ART's FGSM.

    Parameters
    ----------
    model, x, y, eps, norm, targeted, loss, bounds, chunk_size : as in ``pgd``

    Returns
    -------
    AttackResult

    Examples
    --------
    >>> import torch
    >>> from advgrad import fgsm
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x, y = torch.full((2, 1, 2, 2), 0.5), torch.tensor([0, 1])
    >>> round(float((fgsm(model, x, y, 0.1).x_adv - x).abs().max()), 4)
    0.1

    References
    ----------
    Goodfellow, Shlens, Szegedy, "Explaining and harnessing adversarial examples", ICLR 2015, arXiv 1412.6572.
    """
    run = _prepare(model, x, y, eps, steps=1, alpha=None, factor=STEP_FACTORS["fgsm"], norm=norm, random_start=False,
                   momentum=0.0, targeted=targeted, loss=loss, bounds=bounds, early_stop=False, chunk_size=chunk_size,
                   generator=None)
    with frozen_eval(model):
        return _attack(run, y, 1, None)


def mifgsm(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec, *, norm: NormSpec = "inf", steps: int = 10,
           alpha: float | None = None, momentum: float = 1.0, targeted: bool = False, loss: LossSpec = "ce",
           bounds: Bounds = (0.0, 1.0), early_stop: bool = False, chunk_size: int | None = None) -> AttackResult:
    """Momentum iterative FGSM (Dong et al. 2018): the attack of record for examples that transfer.

    ``steps`` steps of α = ε/steps (default) from x along the velocity v ← μ·v + ∇J/mean|∇J| (``momentum`` μ), projected
    and clipped: Dong et al. divide by ‖∇J‖₁ = D·mean|∇J| (the same direction; the mean is torchattacks' form), so the
    examples are torchattacks' MIFGSM bit for bit.

    Parameters
    ----------
    momentum : float
        μ ≥ 0; the other arguments as in ``pgd``.

    Returns
    -------
    AttackResult

    Examples
    --------
    >>> import torch
    >>> from advgrad import mifgsm
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x, y = torch.rand(4, 1, 2, 2), torch.tensor([0, 1, 2, 0])
    >>> bool(((mifgsm(model, x, y, 0.2).x_adv - x).abs() <= 0.2 + 1e-6).all())
    True

    References
    ----------
    Dong et al., "Boosting adversarial attacks with momentum", CVPR 2018, arXiv 1710.06081.
    """
    run = _prepare(model, x, y, eps, steps=steps, alpha=alpha, factor=STEP_FACTORS["mifgsm"], norm=norm,
                   random_start=False, momentum=momentum, targeted=targeted, loss=loss, bounds=bounds,
                   early_stop=early_stop, chunk_size=chunk_size, generator=None)
    with frozen_eval(model):
        return _attack(run, y, 1, None)
