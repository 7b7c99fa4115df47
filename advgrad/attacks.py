"""Attacks from the input gradient ∂J/∂X: FGSM and PGD under the L∞, L2 and L1 norms.

Training differentiates the loss J(f(x; W), y) with respect to the parameters W; an attacker holds W
fixed and differentiates the same loss with respect to the input x, then moves x uphill within an
ε-ball around it. There is one loop (``_descend``); the norm's geometry (``advgrad.norms``) decides the
step, the projection and the random start, and FGSM is that loop's single step from x with α = ε.

While an attack runs, the model is put in eval mode (BatchNorm uses its running statistics and dropout
is off, so the attacked function is the deployed one and an example does not depend on the rest of its
batch) and its parameters' ``requires_grad`` flags are switched off (autograd then records nothing for
the weights: ∂J/∂X is the only gradient computed, and parameter ``.grad`` is never touched). Both are
restored afterwards, also when the attack raises.
"""

from __future__ import annotations

import math
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Union

import torch
from torch import Tensor, nn

from advgrad.losses import LossFn, LossSpec, resolve_loss
from advgrad.norms import Norm, NormSpec, Radius, get_norm

Bounds = tuple[float, float]
EpsSpec = Union[float, Tensor]  # a float, or one radius per sample (N,)


@dataclass(frozen=True)
class AttackResult:
    """What an attack found, per sample. ``success``: misclassified (untargeted) or classified as the
    target (targeted); ``loss``: the loss J at ``x_adv`` (not negated for targeted attacks)."""

    x_adv: Tensor    # (N, ...) within the ε-balls and the bounds
    success: Tensor  # (N,) bool
    loss: Tensor     # (N,)
    logits: Tensor   # (N, K) at x_adv


@contextmanager
def attack_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and parameters with ``requires_grad=False`` inside; the caller's mode and flags after."""
    was_training = model.training
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    model.eval()
    for p in params:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
        model.train(was_training)


# --- validation: every user mistake is a ValueError that names the value --------------------------

def _check_batch(x: Tensor, y: Tensor) -> tuple[float, float]:
    """Validate a batch; returns x's smallest and largest value (one pass over x)."""
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    if x.ndim < 2:
        raise ValueError(f"x must be a batch (N, ...) with at least 2 dimensions, got shape {tuple(x.shape)}")
    if len(x) == 0:
        raise ValueError("x is an empty batch (N = 0)")
    if not isinstance(y, Tensor) or y.ndim != 1 or y.is_floating_point() or y.is_complex():
        raise ValueError(f"y must be a 1-D integer tensor of class labels, got "
                         f"{getattr(y, 'dtype', type(y).__name__)} shape {tuple(getattr(y, 'shape', ()))}")
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)} labels")
    xmin, xmax = (float(v) for v in torch.aminmax(x.detach()))  # NaN propagates into both
    if not (math.isfinite(xmin) and math.isfinite(xmax)):
        raise ValueError("x contains NaN or Inf values")
    if bool((y < 0).any()):
        raise ValueError(f"labels must be class indices ≥ 0, got {int(y.min())}")
    return xmin, xmax


def _check_labels(logits: Tensor, y: Tensor) -> None:
    k = logits.shape[1]
    if bool((y >= k).any()):
        raise ValueError(f"label {int(y.max())} is outside the model's {k} classes (0..{k - 1})")


def _check_dtype(model: nn.Module, x: Tensor) -> None:
    """x must have the floating dtype of the model's parameters (and buffers, for a model without any):
    torch would stop at the first layer with a message about mat1 and mat2."""
    dtypes = {t.dtype for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()}
    if dtypes and x.dtype not in dtypes:
        have = " and ".join(sorted(str(d).removeprefix("torch.") for d in dtypes))
        raise ValueError(f"x is {str(x.dtype).removeprefix('torch.')} but the model's parameters are {have}: "
                         f"convert one to the other (e.g. x.to({have.split(' ')[0]}) or model.to(x.dtype))")


def _check_generator(generator: object) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


def _forward(model: nn.Module, x: Tensor) -> Tensor:
    """model(x) as logits (N, K); a model that cannot take x (wrong rank, channels or size) or returns
    something else is a ValueError naming the shapes, not a traceback from deep inside torch."""
    try:
        z = model(x)
    except torch.OutOfMemoryError:
        raise
    except (RuntimeError, TypeError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"the model cannot take x of shape {tuple(x.shape)} "
                         f"({str(x.dtype).removeprefix('torch.')}): {reason}") from exc
    if not isinstance(z, Tensor) or z.ndim != 2 or len(z) != len(x) or not z.is_floating_point():
        got = f"shape {tuple(z.shape)}" if isinstance(z, Tensor) else type(z).__name__
        raise ValueError(f"the model must return logits of shape (N, K) = ({len(x)}, K), got {got}")
    return z


def _check_bounds(bounds: Bounds, xmin: float, xmax: float) -> tuple[float, float]:
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"bounds must be a pair (lo, hi), got {bounds!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise ValueError(f"bounds must be finite with lo < hi, got {bounds!r}")
    if xmin < lo or xmax > hi:
        raise ValueError(f"x lies outside bounds {(lo, hi)}: its values span [{xmin:.6g}, {xmax:.6g}] "
                         "(advgrad never clamps inputs silently; pass the right bounds)")
    return lo, hi


def _check_radius(name: str, r: EpsSpec, x: Tensor, *, positive: bool) -> Radius:
    """A float, or an (N,) tensor on x's device and dtype; finite, and ≥ 0 (or > 0 if ``positive``)."""
    rule = "> 0" if positive else "≥ 0"
    if isinstance(r, Tensor):
        if r.ndim == 0:
            r = float(r)
        elif r.shape != (len(x),):
            raise ValueError(f"{name} must be a number or a tensor of shape ({len(x)},), got shape "
                             f"{tuple(r.shape)}")
        else:
            r = r.detach().to(device=x.device, dtype=x.dtype)
            if not bool(torch.isfinite(r).all()) or bool((r <= 0).any() if positive else (r < 0).any()):
                raise ValueError(f"{name} must be finite and {rule}, got {r.tolist()}")
            return r
    if isinstance(r, bool) or not isinstance(r, (int, float)):
        raise ValueError(f"{name} must be a number, got {r!r}")
    r = float(r)
    if not math.isfinite(r) or (r <= 0 if positive else r < 0):
        raise ValueError(f"{name} must be finite and {rule}, got {r!r}")
    return r


def _check_count(name: str, n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{name} must be an integer ≥ 1, got {n!r}")
    return n


def _is_zero(r: Radius) -> bool:
    return bool((r == 0).all()) if isinstance(r, Tensor) else r == 0


def _take(r: Radius, idx: Tensor | None) -> Radius:
    return r[idx] if isinstance(r, Tensor) and idx is not None else r


def _check_chunk(chunk_size: int | None, model: nn.Module, x: Tensor) -> int:
    """Samples per forward pass: ``chunk_size`` if given, else ``auto_chunk_size``."""
    if chunk_size is None:
        return auto_chunk_size(model, x)
    return _check_count("chunk_size", chunk_size)


# Why chunks, on the CPU: a pass over a large batch allocates big activation and gradient buffers afresh,
# and glibc's malloc hands such blocks back to the kernel when they are freed, so the next pass pays a page
# fault for every 4 KiB it touches again: on 1,000 MNIST digits, 62 MiB of faults per pass for cnn-small
# and 969 MiB for cnn, against 9 and 0 MiB in chunks of 256 and 164 (advgrad's choices), which run 1.35×
# and 1.58× faster (scripts/bench_chunk_size.py, results/bench_chunk_size.md). A linear model or an MLP
# keeps little per sample, and there one piece is fastest.
CHUNK_MIN_BYTES = 16 * 1024  # activations kept per sample below which the batch stays in one piece
CHUNK_BUDGET = 64 * 2**20    # activations kept per chunk, at most
CHUNK_MIN, CHUNK_MAX = 16, 256


# Bytes autograd keeps per sample, by model and by sample shape and dtype: the probe is a forward pass
# (half a millisecond for cnn-small, 1 % of an FGSM over 1,000 digits), and a training loop attacks the
# same model on every batch. The answer only sets the chunk size, which never changes a result.
_KEPT: weakref.WeakKeyDictionary[nn.Module, dict[tuple[Any, ...], float]] = weakref.WeakKeyDictionary()


def _kept_per_sample(model: nn.Module, x: Tensor) -> float:
    key = (tuple(x.shape[1:]), x.dtype)
    memo = _KEPT.setdefault(model, {})
    if key not in memo:
        own = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
        kept = 0

        def pack(t: Tensor) -> Tensor:
            nonlocal kept
            if t.untyped_storage().data_ptr() not in own:
                kept += t.numel() * t.element_size()
            return t

        probe = x[:2].detach()
        with attack_mode(model), torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            _forward(model, probe.requires_grad_(True))  # what the attack's graph keeps: no parameters' gradients
        memo[key] = kept / len(probe)
    return memo[key]


def auto_chunk_size(model: nn.Module, x: Tensor) -> int:
    """How many samples of x an attack forwards at a time by default.

    Off the CPU: the whole batch (a GPU wants large batches). On the CPU: a probe forward of two samples
    (once per model and sample shape) counts the bytes autograd keeps per sample for ∂J/∂X (parameters
    excluded); below ``CHUNK_MIN_BYTES`` the whole batch, else min(256, 64 MiB / bytes per sample), at
    least 16. Samples do not interact in
    eval mode and each chunk's loss is weighted by the whole batch's 1/N, so the results equal the
    one-piece batch's bit for bit (tested from 16 samples per chunk; for fewer rows the matrix-multiply
    library may pick another kernel and round the last bit differently)."""
    n = len(x)
    if x.device.type != "cpu" or n <= CHUNK_MIN:
        return n
    per_sample = _kept_per_sample(model, x)
    if per_sample < CHUNK_MIN_BYTES:
        return n
    return min(n, max(CHUNK_MIN, min(CHUNK_MAX, int(CHUNK_BUDGET // per_sample))))


# --- the gradient and the loop ---------------------------------------------------------------------

def _slices(n: int, chunk: int) -> list[slice]:
    """⌈n/chunk⌉ consecutive slices of near-equal length (they differ by at most one), never a tiny
    tail: 257 samples in chunks of 256 are 129 + 128, not 256 + 1."""
    k = -(-n // chunk)
    edges = [i * n // k for i in range(k + 1)]
    return [slice(a, b) for a, b in zip(edges, edges[1:])]


def _gradient(model: nn.Module, x: Tensor, y: Tensor, loss_fn: LossFn, weight: float,
              chunk: int, out: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """∂/∂x of Σᵢ weight·J(f(xᵢ), yᵢ), and the logits at x, computed ``chunk`` samples at a time.

    weight = 1/N is the backward of the batch mean (every sample's loss receives exactly 1/N, as in
    torchattacks' ``CrossEntropyLoss()``); weight = 1 gives each row its own ∂J/∂xᵢ. The weight is sent
    as the loss's incoming gradient, so a sample gets the same gradient in whichever chunk it sits.
    With several chunks the gradient is written into ``out`` (a free buffer shaped like x) if given.
    """
    parts = _slices(len(x), chunk)
    grad: Tensor | None = None  # (N, ...) filled chunk by chunk
    if len(parts) > 1:
        grad = out if out is not None else torch.empty_like(x)
    logits: Tensor | None = None                                              # (N, K) on first use
    with torch.enable_grad():  # also when the caller runs under torch.no_grad()
        for part in parts:
            xc, yc = x[part].detach().requires_grad_(True), y[part]
            zc = _forward(model, xc)
            _check_labels(zc, yc)  # before the loss indexes the logits with yc
            losses = loss_fn(zc, yc)  # (n_c,)
            (gc,) = torch.autograd.grad(losses, xc, grad_outputs=torch.full_like(losses, weight))
            if grad is None:
                return gc, zc.detach()
            if logits is None:
                logits = zc.new_empty((len(x), *zc.shape[1:]))
            grad[part], logits[part] = gc, zc.detach()
    assert grad is not None and logits is not None
    return grad, logits


def input_gradient(model: nn.Module, x: Tensor, y: Tensor, *, loss: LossSpec = "ce",
                   chunk_size: int | None = None) -> Tensor:
    """∂J/∂X: the gradient of the per-sample loss with respect to the input, same shape as x.

    The per-sample losses are summed before differentiating, so row i is exactly ∂J(f(xᵢ), yᵢ)/∂xᵢ
    (not divided by the batch size). Computed in eval mode with the parameters' gradients off, in chunks
    of ``chunk_size`` samples (default: ``auto_chunk_size``; the result does not depend on it).
    """
    _check_batch(x, y)
    _check_dtype(model, x)
    loss_fn = resolve_loss(loss, model)
    chunk = _check_chunk(chunk_size, model, x)
    with attack_mode(model):
        grad, _ = _gradient(model, x.detach(), y, loss_fn, 1.0, chunk)
    return grad


def _success(logits: Tensor, y: Tensor, targeted: bool) -> Tensor:
    pred = logits.argmax(dim=1)
    return pred == y if targeted else pred != y


def _descend(model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor, eps: Radius, alpha: Radius,
             steps: int, norm: Norm, loss_fn: LossFn, targeted: bool, lo: float, hi: float,
             early_stop: bool, chunk: int, owned: bool, project: bool = True) -> Tensor:
    """The PGD loop from ``x_adv``: ``steps`` × (gradient → steepest step → project onto the ε-ball
    around x → clip to the bounds). With ``early_stop``, samples the model already gets wrong (or at
    their target) are frozen and no longer forwarded. Returns the new x_adv; x is not modified.

    ``project=False`` skips the projection, for FGSM only: its one step from x, of norm exactly ε, cannot
    leave the ball, and x + ε·sign(g) clipped is the formula of Goodfellow et al. (and of torchattacks).

    ``owned``: x_adv is a tensor of the loop's own (not the caller's x), free to be overwritten once
    replaced. The step is computed in place in the gradient's buffer, and the previous iterate becomes
    the next gradient's buffer, so a step allocates no (N, ...) tensor of its own: fresh multi-megabyte
    tensors cost page faults on every step (glibc returns them to the kernel when freed)."""
    active: Tensor | None = None  # indices still attacked; None = all (no indexing copies)
    free: Tensor | None = None    # an (N, ...) buffer of the loop's own that nothing reads any more; its
    #                               rows [0, n) take the gradient of the n points still attacked
    if early_stop:
        x_adv, owned = x_adv.clone(), True  # written in place below; never an alias of the caller's x
    for _ in range(steps):
        xs, x0, ys = (x_adv, x, y) if active is None else (x_adv[active], x[active], y[active])
        # The gradient of the batch mean (descended when targeted), as torchattacks takes it: every step
        # direction (sign, g/‖g‖, argmax |g|) is scale-free, and with the same 1/N a gradient coordinate
        # within rounding of zero gets the same sign, so L∞ FGSM/PGD match torchattacks bit for bit.
        weight = (-1.0 if targeted else 1.0) / len(xs)
        # The spare buffer holds a full batch (N, ...); once early stop has shrunk the active set to n
        # points, the gradient goes into its first n rows (a contiguous view), never into all N of them.
        out = None if free is None else free[:len(xs)]
        grad, logits = _gradient(model, xs, ys, loss_fn, weight, chunk, out=out)
        with torch.no_grad():
            e, a = _take(eps, active), _take(alpha, active)
            if early_stop:
                keep = ~_success(logits, ys, targeted)  # (n,) not yet fooled: these move
                if not bool(keep.all()):
                    active = (torch.arange(len(x), device=x.device) if active is None else active)[keep]
                    if len(active) == 0:
                        break
                    xs, x0, grad = xs[keep], x0[keep], grad[keep]
                    e, a = _take(e, keep), _take(a, keep)
            if norm.skip_saturated:  # coordinates on a bound, pushed outward, cannot move
                grad = grad.masked_fill(((xs <= lo) & (grad < 0)) | ((xs >= hi) & (grad > 0)), 0)
            # x′ + step − x, projected, + x, clipped, in place in the gradient's buffer (same values as
            # torchattacks' out-of-place (x′ + step) − x: addition commutes bit for bit).
            if project:
                new = norm.project_(norm.steepest_(grad, a).add_(xs).sub_(x0), e).add_(x0).clamp_(lo, hi)
            else:
                new = norm.steepest_(grad, a).add_(xs).clamp_(lo, hi)
            if active is None:
                free = x_adv if owned else None  # the previous iterate: the next gradient's buffer
                x_adv, owned = new, True
            else:
                x_adv[active] = new
    return x_adv


@torch.no_grad()
def _evaluate(model: nn.Module, x_adv: Tensor, y: Tensor, loss_fn: LossFn, targeted: bool,
              chunk: int) -> tuple[Tensor, Tensor, Tensor]:
    logits = torch.cat([_forward(model, x_adv[part]) for part in _slices(len(x_adv), chunk)])
    _check_labels(logits, y)  # before the loss indexes the logits with y
    return _success(logits, y, targeted), loss_fn(logits, y), logits


_ALPHA_IS_EPS: Any = object()  # FGSM's step: α = ε, valid even where ε = 0


def _run(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec, *, alpha: EpsSpec | None, steps: int,
         norm: NormSpec, random_start: bool, restarts: int, targeted: bool, loss: LossSpec,
         bounds: Bounds, early_stop: bool, generator: torch.Generator | None, chunk_size: int | None,
         evaluate: bool) -> tuple[Tensor, AttackResult | None]:
    xmin, xmax = _check_batch(x, y)
    _check_dtype(model, x)
    _check_generator(generator)
    geometry = get_norm(norm)
    loss_fn = resolve_loss(loss, model)
    lo, hi = _check_bounds(bounds, xmin, xmax)
    eps_ = _check_radius("eps", eps, x, positive=False)
    steps = _check_count("steps", steps)
    restarts = _check_count("restarts", restarts)
    if alpha is _ALPHA_IS_EPS:
        alpha_ = eps_
    elif alpha is None:
        alpha_ = 2.5 * eps_ / steps
    else:
        alpha_ = _check_radius("alpha", alpha, x, positive=True)
    x = x.detach()
    chunk = _check_chunk(chunk_size, model, x)
    with attack_mode(model):
        if _is_zero(eps_):
            x_adv = x.clone()
            if not evaluate:
                return x_adv, None
            success, losses, logits = _evaluate(model, x_adv, y, loss_fn, targeted, chunk)
            return x_adv, AttackResult(x_adv, success, losses, logits)

        def one_run(idx: Tensor | None) -> Tensor:
            xs, ys, e = (x, y, eps_) if idx is None else (x[idx], y[idx], _take(eps_, idx))
            start = geometry.random_start(xs, e, generator).add_(xs).clamp_(lo, hi) if random_start else xs
            return _descend(model, xs, ys, start, e, _take(alpha_, idx), steps, geometry, loss_fn,
                            targeted, lo, hi, early_stop, chunk, owned=random_start,
                            project=alpha is not _ALPHA_IS_EPS)

        x_adv = one_run(None)
        # Without a random start every restart would repeat the first run exactly: one run suffices.
        runs = restarts if random_start else 1
        if not evaluate and runs == 1:
            return x_adv, None
        success, losses, logits = _evaluate(model, x_adv, y, loss_fn, targeted, chunk)
        for _ in range(runs - 1):
            # Early stop: only the samples not yet fooled get another restart (as AutoAttack does).
            idx = (~success).nonzero().squeeze(1) if early_stop else torch.arange(len(x), device=x.device)
            if len(idx) == 0:
                break
            cand = one_run(idx)
            s_new, l_new, z_new = _evaluate(model, cand, y[idx], loss_fn, targeted, chunk)
            s_old, l_old = success[idx], losses[idx]
            gain_new, gain_old = (-l_new, -l_old) if targeted else (l_new, l_old)
            better = (s_new & ~s_old) | ((s_new == s_old) & (gain_new > gain_old))
            chosen = idx[better]
            x_adv[chosen], success[chosen] = cand[better], s_new[better]
            losses[chosen], logits[chosen] = l_new[better], z_new[better]
        return x_adv, AttackResult(x_adv, success, losses, logits)


def run_attack(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec, *, alpha: EpsSpec | None = None,
               steps: int = 10, norm: NormSpec = "inf", random_start: bool = True, restarts: int = 1,
               targeted: bool = False, loss: LossSpec = "ce", bounds: Bounds = (0.0, 1.0),
               early_stop: bool = False, generator: torch.Generator | None = None,
               chunk_size: int | None = None) -> AttackResult:
    """``pgd`` plus what an evaluation or a training loop needs: per-sample success, loss and logits at
    the returned examples (one extra forward pass, without gradients). Same arguments as ``pgd``;
    ``steps=1, alpha=eps, random_start=False`` is FGSM."""
    _, result = _run(model, x, y, eps, alpha=alpha, steps=steps, norm=norm, random_start=random_start,
                     restarts=restarts, targeted=targeted, loss=loss, bounds=bounds, early_stop=early_stop,
                     generator=generator, chunk_size=chunk_size, evaluate=True)
    assert result is not None
    return result


def pgd(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec, *, alpha: EpsSpec | None = None,
        steps: int = 10, norm: NormSpec = "inf", random_start: bool = True, restarts: int = 1,
        targeted: bool = False, loss: LossSpec = "ce", bounds: Bounds = (0.0, 1.0), early_stop: bool = False,
        generator: torch.Generator | None = None, chunk_size: int | None = None) -> Tensor:
    """Projected gradient descent on the loss (Madry et al. 2018), returning x′ with ‖x′ − x‖ ≤ ε.

    Starts from x, or (``random_start``) from a uniform point of the ε-ball around x (L∞: U(−ε, ε) per
    coordinate), clipped to ``bounds``; then ``steps`` times: x′ ← clip(x + Π_ε(x′ + α·steepest(∇J) − x)).
    ``alpha`` defaults to 2.5·ε/steps. ``eps`` and ``alpha`` are floats or per-sample (N,) tensors.

    - ``norm``: "inf", "2" or "1" (or float('inf'), 2, 1): see ``advgrad.norms``.
    - ``restarts``: R random starts; per sample the worst example found is kept (a successful one, else
      the one with the highest loss). Without ``random_start`` the runs would be identical: one is made.
    - ``targeted``: y holds target classes and the loss is descended towards them.
    - ``loss``: "ce", "mse", "margin" or a callable (logits, y) → per-sample loss.
    - ``early_stop``: samples already misclassified (or at their target) stop moving and are no longer
      forwarded. This is for robust-accuracy evaluation: it is faster, but it CHANGES the returned
      examples (they stop at the first success instead of climbing the loss further).
    - ``generator``: a ``torch.Generator`` for the random starts, leaving the global RNG untouched.
      Without one, the global RNG draws the L∞ start exactly as torchattacks does, so under the same
      ``torch.manual_seed`` the two give the same examples bit for bit.
    - ``chunk_size``: samples per forward/backward pass (default ``auto_chunk_size``: on the CPU,
      chunks of up to 256 for a convolutional network, where that is faster than one large batch; the
      whole batch otherwise). It changes the speed and the memory, not the result (bit for bit from
      16 samples per chunk up), for a model that treats samples independently, as any classifier in
      eval mode does.

    The model runs in eval mode with its parameters' gradients off; both are restored afterwards.
    ``eps == 0`` returns a copy of x. Bad arguments raise ValueError naming the value.
    """
    x_adv, _ = _run(model, x, y, eps, alpha=alpha, steps=steps, norm=norm, random_start=random_start,
                    restarts=restarts, targeted=targeted, loss=loss, bounds=bounds, early_stop=early_stop,
                    generator=generator, chunk_size=chunk_size, evaluate=False)
    return x_adv


def fgsm(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec, *, norm: NormSpec = "inf",
         targeted: bool = False, loss: LossSpec = "ce", bounds: Bounds = (0.0, 1.0),
         chunk_size: int | None = None) -> Tensor:
    """The fast gradient (sign) method (Goodfellow et al. 2015): one steepest-ascent step of size ε
    from x, clipped to ``bounds``. L∞: x′ = clip(x + ε·sign ∇ₓJ); L2: x′ = clip(x + ε·g/‖g‖₂).
    It is ``pgd`` with ``steps=1, alpha=eps, random_start=False``."""
    x_adv, _ = _run(model, x, y, eps, alpha=_ALPHA_IS_EPS, steps=1, norm=norm, random_start=False,
                    restarts=1, targeted=targeted, loss=loss, bounds=bounds, early_stop=False,
                    generator=None, chunk_size=chunk_size, evaluate=False)
    return x_adv
