"""The one gradient loop: PGD (Madry et al. 2018), FGSM (Goodfellow et al. 2015) and MI-FGSM (Dong et al.
2018) under the L∞, L2 and L1 norms.

PGD from x′₀ (x, or a uniform point of the ε-ball): K times x′ ← clip(x + Π_ε(x′ + α·steepest(∇J) − x)),
the norm's geometry (``advgrad.norms``) deciding the steepest step, the projection Π_ε and the random
start. FGSM is that loop's single step from x with α = ε: it cannot leave the ball, so it is not
projected, and x + ε·sign(∇J) clipped is Goodfellow et al.'s formula bit for bit. MI-FGSM steps along a
velocity v ← μ·v + ∇J/mean|∇J| instead of the gradient itself (Dong et al. divide by ‖∇J‖₁ = D·mean|∇J|:
the same direction; the mean is torchattacks' form).

With ``early_stop``, samples the model already gets wrong (or at their target) are frozen and no longer
forwarded: for robust-accuracy evaluation. ``restarts`` R > 1 re-run from new random starts (with early
stop, only the samples not yet fooled) and keep per sample the worst example found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from advgrad._runtime import frozen_eval
from advgrad.attacks._checks import (
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
from advgrad.catalog import ATTACKS
from advgrad.configs import AttackConfig
from advgrad.losses import LossFn, resolve_loss
from advgrad.norms import Norm, Radius, get_norm, per_sample


@dataclass(frozen=True)
class _Plan:
    """One attack, validated and resolved once: what every step of the loop reads."""

    model: nn.Module
    config: AttackConfig
    norm: Norm
    loss_fn: LossFn
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

    ``owned``: x_adv is the loop's own tensor (not the caller's x), free to be overwritten once replaced.
    The step is computed in place in the gradient's buffer, and the previous iterate becomes the next
    gradient's buffer, so a step allocates no (N, ...) tensor: fresh multi-megabyte tensors cost page faults
    on every step (glibc returns them to the kernel when freed)."""
    c = plan.config
    active: Tensor | None = None  # indices still attacked; None = all (no indexing copies)
    free: Tensor | None = None    # an (N, ...) buffer of the loop's own that nothing reads any more; its
    #                               rows [0, n) take the gradient of the n points still attacked
    velocity = torch.zeros_like(x) if c.momentum else None  # (N, ...) MI-FGSM's v
    if c.early_stop:
        x_adv, owned = x_adv.clone(), True  # written in place below; never an alias of the caller's x
    for _ in range(c.steps):
        xs, x0, ys = (x_adv, x, y) if active is None else (x_adv[active], x[active], y[active])
        # The gradient of the batch mean (descended when targeted), as torchattacks takes it: every step
        # direction is scale-free, and with the same 1/N a coordinate within rounding of zero gets the same
        # sign, so the L∞ attacks match torchattacks bit for bit.
        weight = (-1.0 if c.targeted else 1.0) / len(xs)
        out = None if free is None else free[:len(xs)]
        grad, logits = gradient(plan.model, xs, ys, plan.loss_fn, weight, plan.chunk, out=out)
        with torch.no_grad():
            e, a, kept = take(eps, active), take(alpha, active), active
            if c.early_stop:
                keep = ~_success(logits, ys, c.targeted)  # (n,) not yet fooled: these move
                if not bool(keep.all()):
                    kept = (torch.arange(len(x), device=x.device) if active is None else active)[keep]
                    if len(kept) == 0:
                        break
                    xs, x0, grad = xs[keep], x0[keep], grad[keep]
                    e, a = take(e, keep), take(a, keep)
            if velocity is not None:
                grad = _momentum(velocity, kept, _normalised(grad), c.momentum)
            if plan.norm.skip_saturated:  # coordinates on a bound, pushed outward, cannot move
                grad = grad.masked_fill(((xs <= plan.lo) & (grad < 0)) | ((xs >= plan.hi) & (grad > 0)), 0)
            # x′ + step − x, projected, + x, clipped, in place in the gradient's buffer (the same values as
            # torchattacks' out-of-place (x′ + step) − x: addition commutes bit for bit).
            step = plan.norm.steepest_(grad, a).add_(xs)
            new = (plan.norm.project_(step.sub_(x0), e).add_(x0) if plan.project else step).clamp_(plan.lo, plan.hi)
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
    return _success(logits, y, plan.config.targeted), plan.loss_fn(logits, y), logits


def _run(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec, config: AttackConfig,
         generator: torch.Generator | None, evaluate: bool) -> tuple[Tensor, AttackResult | None]:
    xmin, xmax = check_batch(x, y)
    check_dtype(model, x)
    check_generator(generator)
    lo, hi = check_bounds(config.bounds, xmin, xmax)
    eps_ = check_radius("eps", eps, x, positive=False)
    alpha = config.step_size(eps_)  # an explicit α was validated by the config; a default scales with ε
    x = x.detach()
    one_step = config.steps == 1 and not config.random_start and bool(torch.all(torch.as_tensor(alpha <= eps_)))
    plan = _Plan(model, config, get_norm(config.norm), resolve_loss(config.loss, model), lo, hi,
                 chunk_for(config.chunk_size, model, x), project=not one_step)
    with frozen_eval(model):
        if is_zero(eps_):
            x_adv = x.clone()
            return x_adv, (AttackResult(x_adv, *_evaluate(plan, x_adv, y)) if evaluate else None)

        def one_run(idx: Tensor | None) -> Tensor:
            xs, ys, e = (x, y, eps_) if idx is None else (x[idx], y[idx], take(eps_, idx))
            start = plan.norm.random_start(xs, e, generator).add_(xs).clamp_(lo, hi) if config.random_start else xs
            return _descend(plan, xs, ys, start, e, take(alpha, idx), owned=config.random_start)

        x_adv = one_run(None)
        # Without a random start every restart would repeat the first run exactly: one run suffices.
        runs = config.restarts if config.random_start else 1
        if not evaluate and runs == 1:
            return x_adv, None
        success, losses, logits = _evaluate(plan, x_adv, y)
        for _ in range(runs - 1):
            # Early stop: only the samples not yet fooled get another restart (as AutoAttack does).
            idx = (~success).nonzero().squeeze(1) if config.early_stop else torch.arange(len(x), device=x.device)
            if len(idx) == 0:
                break
            cand = one_run(idx)
            s_new, l_new, z_new = _evaluate(plan, cand, y[idx])
            s_old, l_old = success[idx], losses[idx]
            gain_new, gain_old = (-l_new, -l_old) if config.targeted else (l_new, l_old)
            better = (s_new & ~s_old) | ((s_new == s_old) & (gain_new > gain_old))
            chosen = idx[better]
            x_adv[chosen], success[chosen] = cand[better], s_new[better]
            losses[chosen], logits[chosen] = l_new[better], z_new[better]
        return x_adv, AttackResult(x_adv, success, losses, logits)


def gradient_attack(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec, config: AttackConfig,
                    generator: torch.Generator | None = None) -> AttackResult:
    """The catalog's implementation of fgsm, pgd and mifgsm (``catalog.ATTACKS``): the examples plus per-sample
    success, loss and logits (one extra forward pass, without gradients)."""
    _, result = _run(model, x, y, eps, config, generator, evaluate=True)
    assert result is not None
    return result


_LOOP_METHODS = ("fgsm", "pgd", "mifgsm")


def _config(method: str, config: AttackConfig | None, options: dict[str, Any]) -> AttackConfig:
    if config is None:
        return AttackConfig.of(method, **options)
    return config.but(**options) if options else config


def run_attack(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec, *, config: AttackConfig | None = None,
               generator: torch.Generator | None = None, **options: Any) -> AttackResult:
    """Any attack of ``ATTACKS`` with its per-sample success, loss and logits at the returned examples.
    ``options`` are ``AttackConfig`` fields (``method`` defaults to "pgd"), or pass a whole ``config``."""
    cfg = _config(options.pop("method", "pgd"), config, options)
    return ATTACKS.get_entry(cfg.method).impl(model, x, y, eps, cfg, generator)


def perturb(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec, config: AttackConfig,
            generator: torch.Generator | None = None) -> Tensor:
    """The examples of the gradient loop (PGD, FGSM or MI-FGSM, as ``config.method`` says) without the
    final evaluation pass: what training loops and ``pgd``/``fgsm``/``mifgsm`` use."""
    if config.method not in _LOOP_METHODS:
        raise ValueError(f"perturb runs the gradient loop ({', '.join(_LOOP_METHODS)}), not {config.method!r}")
    x_adv, _ = _run(model, x, y, eps, config, generator, evaluate=False)
    return x_adv


def pgd(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec, *, generator: torch.Generator | None = None,
        **options: Any) -> Tensor:
    """Projected gradient descent on the loss (Madry et al. 2018), returning x′ with ‖x′ − x‖ ≤ ε.

    Starts from x, or (``random_start``, the default) from a uniform point of the ε-ball around x (L∞:
    U(−ε, ε) per coordinate), clipped to ``bounds``; then ``steps`` (10) times:
    x′ ← clip(x + Π_ε(x′ + α·steepest(∇J) − x)), α = ``alpha`` or 2.5·ε/steps. ``eps`` is a float or a
    per-sample (N,) tensor. The other options are ``AttackConfig`` fields: ``norm`` ("inf", "2", "1"),
    ``restarts`` (the worst example per sample is kept), ``targeted`` (y holds targets), ``loss``,
    ``bounds``, ``early_stop`` (fooled samples stop moving: faster for evaluation, but the examples then
    stop at the first success), ``chunk_size`` (samples per pass; speed and memory only).

    ``generator``: a ``torch.Generator`` for the random starts, leaving the global RNG untouched. Without
    one, the global RNG draws the L∞ start exactly as torchattacks does, so under the same
    ``torch.manual_seed`` the two give the same examples bit for bit. The model runs in eval mode with its
    parameters' gradients off; both are restored afterwards. ``eps == 0`` returns a copy of x. Bad
    arguments raise ValueError naming the value.
    """
    return perturb(model, x, y, eps, AttackConfig.of("pgd", **options), generator)


def fgsm(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec, **options: Any) -> Tensor:
    """The fast gradient (sign) method (Goodfellow et al. 2015): one steepest-ascent step of size ε from x,
    clipped to ``bounds``. L∞: x′ = clip(x + ε·sign ∇ₓJ); L2: x′ = clip(x + ε·g/‖g‖₂). It is the PGD loop
    with ``steps=1``, no random start and α = ε. Options: ``norm``, ``targeted``, ``loss``, ``bounds``,
    ``chunk_size``."""
    return perturb(model, x, y, eps, AttackConfig.of("fgsm", **options))


def mifgsm(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec, **options: Any) -> Tensor:
    """Momentum iterative FGSM (Dong et al. 2018): ``steps`` (10) steps of α = ε/steps from x along
    v ← μ·v + ∇J/mean|∇J| (``momentum`` μ = 1), projected and clipped: the attack of record for examples
    that transfer to other models. Bit for bit torchattacks' MIFGSM."""
    return perturb(model, x, y, eps, AttackConfig.of("mifgsm", **options))
