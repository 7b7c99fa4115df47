"""DeepFool (Moosavi-Dezfooli, Fawzi & Frossard, CVPR 2016, arXiv 1511.04599), L2 and L∞: step to the
nearest boundary of the model linearised at the current point, until the point is misclassified.

At x′ (first x), for each candidate class k ≠ y, f_k = z_k − z_y and w_k = ∇ₓf_k(x′). The linearised
boundary of class k lies at the Lp distance d_k = |f_k|/‖w_k‖_q (q the dual exponent: ``norms.dual_measure``);
with l the nearest class and d = d_l + 10⁻⁴ (the authors' constant, which carries the step just past the
boundary), the iterate moves by (1 + overshoot)·d along w_l's steepest direction (``norms.ascent_direction``):

    x′ ← clip(x′ + (1 + overshoot)·(d/‖u‖_p)·u,  lo, hi),     u = w_l (L2) or sign(w_l) (L∞).

A sample stops at the first iterate the model misclassifies; that iterate is its example. On an affine
model the first step lands past the boundary, (1 + overshoot)·(d* + 10⁻⁴) from x (d* the exact distance).

The peers differ in where the overshoot applies and how many classes they linearise:
- adv-lib 0.2.8 ``df`` (followed here, operation for operation, so the examples are the same bits): the
  overshoot scales each step, taken from the clipped iterate; every class is a candidate; 100 steps.
- Foolbox 3.3.4 ``L2DeepFoolAttack``/``LinfDeepFoolAttack`` (as the authors' code): the overshoot scales the
  unclipped sum of the steps, x′ = clip(x + (1 + overshoot)·Σr); the 10 most likely classes (``candidates``);
  10⁻⁸ added to the norms; 50 steps. Without clipping the two agree (the overshoot then scales the sum).
- torchattacks 3.5.1 ``DeepFool``: adv-lib's update without the 10⁻⁴, all classes, one sample at a time.
Each computes the logit differences (Foolbox's loss="logits"), as here.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from advgrad import _validate
from advgrad._runtime import frozen_eval
from advgrad.attacks._checks import Bounds, EpsSpec, check_labels, forward
from advgrad.attacks._chunks import slices
from advgrad.attacks.minimal._common import Setup, finish, is_adversarial, logits_of, prepare
from advgrad.attacks.result import AttackResult
from advgrad.norms import Norm, NormSpec, ascent_direction, dual_measure, get_norm, per_point

NORMS = ("2", "inf")
PAST_BOUNDARY = 1e-4   # added to the distance to the linearised boundary (the authors' constant)
MIN_DUAL = 1e-6        # the dual norms of the gradients are clamped here (adv-lib's guard against 0)


def _candidates(logits: Tensor, y: Tensor, count: int | None) -> Tensor:
    """(N, C) the C classes other than y to linearise, in increasing class order: all K − 1 of them, or
    those of the ``count`` − 1 largest clean logits besides y's."""
    check_labels(logits, y)
    k = logits.shape[1]
    if k < 2:
        raise ValueError(f"deepfool needs a model with 2 classes or more, got {k}")
    if count is None or count >= k:
        others = torch.arange(k - 1, device=y.device).expand(len(y), k - 1)
        return others + (others >= y[:, None])  # (N, K − 1): 0 … K−1 without y
    masked = logits.scatter(1, y[:, None], float("-inf"))
    return masked.topk(count - 1, dim=1).indices.sort(dim=1).values


def _linearise(model: nn.Module, xa: Tensor, ya: Tensor, cand: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """At the points xa (n, ...): the logits (n, K), and for the rows not yet adversarial the differences
    f (m, C) and their gradients w (m, C, ...): one forward pass, one backward pass per candidate."""
    with torch.enable_grad():
        xv = xa.detach().requires_grad_(True)
        z = forward(model, xv)  # (n, K)
        keep = ~is_adversarial(z, ya, False)
        zk, yk, ck = z[keep], ya[keep], cand[keep]
        f = zk.gather(1, ck) - zk.gather(1, yk[:, None])  # (m, C)
        cols = f.unbind(dim=1)
        w = [torch.autograd.grad(fj.sum(), xv, retain_graph=j + 1 < len(cols))[0] for j, fj in enumerate(cols)]
    return z.detach(), f.detach(), torch.stack(w, dim=1)[keep]


def _step(norm: Norm, f: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """The scale (m,) and direction (m, ...) of the step to the nearest linearised boundary."""
    m, c = f.shape
    dual = dual_measure(norm, w.flatten(0, 1)).view(m, c).clamp_(min=MIN_DUAL)  # (m, C) ‖w_k‖_q
    distance = f.abs().div_(dual).add_(PAST_BOUNDARY)  # (m, C)
    rows, nearest = torch.arange(m, device=f.device), distance.argmin(dim=1)
    u, length = ascent_direction(norm, w[rows, nearest])  # (m, ...), (m,)
    return distance[rows, nearest] / length.clamp_(min=MIN_DUAL), u


def _search(model: nn.Module, x: Tensor, y: Tensor, s: Setup, norm: Norm, steps: int, overshoot: float,
            candidates: int | None) -> Tensor:
    """The DeepFool loop over the samples not yet adversarial; returns the first adversarial iterate per
    sample (x where none was)."""
    cand = _candidates(logits_of(model, x, s.chunk), y, candidates)  # (N, C)
    active = torch.arange(len(x), device=x.device)  # the samples still moving
    x_cur, out = x.clone(), x.clone()
    for _ in range(steps):
        xa, ya = x_cur[active], y[active]
        parts = [_linearise(model, xa[p], ya[p], cand[active][p]) for p in slices(len(active), s.chunk)]
        z = torch.cat([p[0] for p in parts])
        adv = is_adversarial(z, ya, False)  # (n,)
        out[active[adv]] = xa[adv]
        if bool(adv.all()):
            break
        f, w = torch.cat([p[1] for p in parts]), torch.cat([p[2] for p in parts])
        active, xa = active[~adv], xa[~adv]
        scale, u = _step(norm, f, w)
        x_cur[active] = xa.addcmul_(per_point(scale, x), u, value=1 + overshoot).clamp_(s.lo, s.hi)
    else:
        out[active] = x_cur[active]  # the last iterates, not linearised again: ``finish`` tests them
    return out


def _check(norm: NormSpec, steps: object, overshoot: object, candidates: object) -> Norm:
    geometry = get_norm(norm)
    if geometry.name not in NORMS:
        raise ValueError(f"deepfool implements the norms {', '.join(NORMS)}, not {geometry.name!r}")
    _validate.count("steps", steps)
    _validate.number("overshoot", overshoot, minimum=0.0)
    _validate.optional_count("candidates", candidates, minimum=2)
    return geometry


def deepfool(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec | None = None, *, norm: NormSpec = 2,
             steps: int = 50, overshoot: float = 0.02, candidates: int | None = 10, bounds: Bounds = (0.0, 1.0),
             chunk_size: int | None = None) -> AttackResult:
    r"""DeepFool: per sample, a small L2 or L∞ perturbation to the nearest boundary of the linearised model.

    Steps (1 + overshoot)·min_k |f_k|/‖∇f_k‖_q, f_k = z_k − z_y (module docstring; also the peers). Untargeted.

    Parameters
    ----------
    model : nn.Module
        Returns logits (N, K); run in eval mode with its parameters' gradients off, both restored.
    x, y : Tensor
        Inputs (N, ...) within ``bounds`` and labels (N,); not modified.
    eps : float or Tensor, optional
        A radius (or one per sample): success then also needs ‖δ‖ ≤ ε; the search is the same.
    norm : "2" or "inf"
        The norm minimised (also 2, float("inf")).
    steps, overshoot : int, float
        At most this many linearisations (a forward pass and C backward passes each); the overshoot ≥ 0.
    candidates : int, optional
        Linearise only the ``candidates`` − 1 classes besides y with the largest logits at x (Foolbox's
        count, the true class included; ≥ 2); None: every class. With 10 classes, 10 is all of them.
    bounds : (float, float)
        The box (lo, hi) of valid inputs; every iterate is clipped to it.
    chunk_size : int, optional
        Samples per forward pass (speed and memory only).

    Returns
    -------
    AttackResult
        The first adversarial iterate (x where none), success, the margin and logits at x_adv, and
        ``distance`` ‖x_adv − x‖ (0 where x is misclassified already, inf where the attack fails).

    Raises
    ------
    ValueError
        For a bad argument, a norm other than L2 and L∞ included: the message names it.

    Examples
    --------
    >>> import torch
    >>> from advgrad import deepfool
    >>> _ = torch.manual_seed(0)  # the model's initial weights
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> x = torch.rand(8, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    >>> result = deepfool(model, x, model(x).argmax(1), norm="inf", bounds=(-10.0, 10.0))
    >>> bool(result.success.all())
    True

    References
    ----------
    S.-M. Moosavi-Dezfooli, A. Fawzi, P. Frossard, "DeepFool: a simple and accurate method to fool deep
    neural networks", CVPR 2016, arXiv 1511.04599.
    """
    s = prepare(model, x, y, eps, bounds, chunk_size)
    geometry = _check(norm, steps, overshoot, candidates)
    x, y = x.detach(), y.long()
    with frozen_eval(model):
        out = _search(model, x, y, s, geometry, steps, overshoot, candidates)
        return finish(model, x, y, out, geometry, s, False)
