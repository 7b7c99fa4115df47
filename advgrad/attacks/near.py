"""Long attacks on the points nearest the decision boundary: where a cascade spends its last passes.

A robust point that a short attack leaves standing costs a long attack its whole budget whether it lies a
hair from the boundary or far from any. AutoAttack's long runs (APGD-T 9 × 100 steps, Square 5,000 queries)
break the few points its short counterparts miss, and on the models measured (results/fast_eval.md) those
points lie near the boundary at x: by the first-order estimate below, among the nearest tenth of the
survivors. So these attacks rank a batch by that estimate and run the long attack on the nearest ``share``
of it only (⌈share · N⌉ points); the others are returned unattacked (x_adv = x, not successful).

The estimate is DeepFool's first step (Moosavi-Dezfooli et al. 2016): linearise the logit differences
f_t(x) = z_y(x) − z_t(x) for the ``classes`` other classes with the highest logits at x; the boundary between
y and t of the linearised model lies at the Lp distance f_t / ‖∇ₓf_t‖_q (q the dual exponent of p:
``norms.dual_measure``), and the estimate is the least of them. For an affine model it is the exact
distance to the nearest of those boundaries (tested against the closed form). A point the model already
misclassifies gets a negative estimate and comes first.

The selection depends only on the batch (a block of the runner), so the verdicts are the same in any number
of workers or processes. It costs one forward and ``classes`` backward passes per point.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from advgrad import _validate
from advgrad._runtime import frozen_eval
from advgrad.attacks._checks import EpsSpec, check_batch, check_labels, check_radius, forward
from advgrad.attacks._chunks import chunk_for, slices
from advgrad.attacks.apgd import apgd_targeted
from advgrad.attacks.fab import fab_targeted
from advgrad.attacks.result import AttackResult
from advgrad.attacks.square import square
from advgrad.losses import dlr, margin
from advgrad.norms import Norm, NormSpec, dual_measure, get_norm

__all__ = ["apgd_targeted_near", "boundary_distance", "fab_targeted_near", "nearest", "square_near"]

CLASSES = 3  # other classes linearised per point (the ones with the highest logits at x)


def boundary_distance(model: nn.Module, x: Tensor, y: Tensor, *, norm: NormSpec = "inf", classes: int = CLASSES,
                      chunk_size: int | None = None) -> tuple[Tensor, Tensor]:
    """The first-order (DeepFool) estimate of each point's Lp distance to the decision boundary at x.

    d(x) = min over t of (z_y(x) − z_t(x)) / ‖∇ₓ(z_y − z_t)(x)‖_q, t ranging over the ``classes`` other classes
    with the highest logits at x, q the dual exponent of the norm's p (L∞ ↔ L1, L2 ↔ L2, L1 ↔ L∞).

    Parameters
    ----------
    model : nn.Module
        Returns logits (N, K), K ≥ 2; evaluated in eval mode (the caller's mode is restored).
    x, y : Tensor
        (N, ...) points and (N,) labels.
    norm : {"inf", "2", "1"}
    classes : int
        Other classes linearised per point (≥ 1; at most K − 1 are used).
    chunk_size : int, optional
        Samples per forward pass (speed and memory only).

    Returns
    -------
    (Tensor, Tensor)
        d (N,), negative where the model misclassifies x (0 where a gradient vanishes on the boundary), and
        the logits (N, K) at x.

    Examples
    --------
    >>> import torch
    >>> from advgrad import boundary_distance
    >>> model = torch.nn.Linear(2, 2, bias=False)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    >>> d, _ = boundary_distance(model, torch.tensor([[0.75, 0.25]]), torch.tensor([0]), norm=2)
    >>> round(float(d[0]), 4)  # (0.75 − 0.25) / ‖(1, −1)‖₂
    0.3536

    References
    ----------
    Moosavi-Dezfooli, Fawzi, Frossard, "DeepFool: a simple and accurate method to fool deep neural networks",
    CVPR 2016, arXiv 1511.04599.
    """
    check_batch(x, y)
    p = get_norm(norm)
    _validate.count("classes", classes)
    x = x.detach()
    distances, all_logits = [], []
    with frozen_eval(model):
        for part in slices(len(x), chunk_for(chunk_size, model, x)):
            d, z = _estimate(model, x[part], y[part], p, classes)
            distances.append(d)
            all_logits.append(z)
    return torch.cat(distances), torch.cat(all_logits)


def _estimate(model: nn.Module, x: Tensor, y: Tensor, p: Norm, classes: int) -> tuple[Tensor, Tensor]:
    """One chunk: d (n,) and the logits (n, K); one forward, one backward per linearised class."""
    with torch.enable_grad():
        xv = x.requires_grad_(True)
        z = forward(model, xv)  # (n, K)
        check_labels(z, y)
        c = min(classes, z.shape[1] - 1)
        others = z.detach().scatter(1, y[:, None], float("-inf")).topk(c, dim=1).indices  # (n, c)
        f = z.gather(1, y[:, None]) - z.gather(1, others)  # (n, c) z_y − z_t
        grads = [torch.autograd.grad(f[:, j].sum(), xv, retain_graph=j + 1 < c)[0] for j in range(c)]
    dual = torch.stack([dual_measure(p, g) for g in grads], dim=1)  # (n, c) ‖∇f_t‖_q
    f = f.detach()
    d = torch.where(dual > 0, f / dual, torch.where(f > 0, math.inf, 0.0))  # f/0: far (f > 0) or on it
    return d.amin(dim=1), z.detach()


def nearest(distance: Tensor, share: float) -> Tensor:
    """(N,) bool: the ⌈share · N⌉ points of least ``distance`` (ties by index), 0 ≤ share ≤ 1.

    Parameters
    ----------
    distance : Tensor
        (N,) estimates, as ``boundary_distance`` returns them.
    share : float
        The fraction of the points to choose.

    Returns
    -------
    Tensor
        (N,) bool, True on the chosen points.

    Examples
    --------
    >>> import torch
    >>> from advgrad.attacks.near import nearest
    >>> nearest(torch.tensor([0.3, 0.1, 0.2, 0.4]), 0.5).tolist()
    [False, True, True, False]
    """
    share = _validate.fraction("share", share)
    chosen = torch.zeros(len(distance), dtype=torch.bool, device=distance.device)
    count = math.ceil(share * len(distance) - 1e-9)  # 0.1 · 30 is 3, not 4 (binary fractions)
    chosen[torch.sort(distance, stable=True).indices[:count]] = True
    return chosen


def _on_nearest(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec, norm: NormSpec, share: object,
                chunk_size: int | None, loss: Callable[[Tensor, Tensor], Tensor],
                attack: Callable[[Tensor, EpsSpec], AttackResult], *, queries: bool = False) -> AttackResult:
    """``attack(rows, eps of those rows)`` on the ⌈share · N⌉ points nearest the boundary; the batch's result
    is its rows there and, elsewhere, x with its clean logits, ``loss`` at them, not successful (0 queries
    where the attack counts them)."""
    fraction = _validate.fraction("share", share)
    check_batch(x, y)
    check_radius("eps", eps, x, positive=False)
    x = x.detach()
    distance, logits = boundary_distance(model, x, y, norm=norm, chunk_size=chunk_size)
    chosen = nearest(distance, fraction)
    x_adv, success, loss_at = x.clone(), torch.zeros(len(x), dtype=torch.bool, device=x.device), loss(logits, y)
    spent = torch.zeros(len(x), dtype=torch.int64, device=x.device) if queries else None
    if bool(chosen.any()):
        e = eps[chosen] if isinstance(eps, Tensor) and eps.ndim == 1 else eps
        result = attack(chosen, e)
        x_adv[chosen], success[chosen] = result.x_adv, result.success
        logits[chosen], loss_at[chosen] = result.logits.to(logits.dtype), result.loss.to(loss_at.dtype)
        if spent is not None and result.queries is not None:
            spent[chosen] = result.queries.to(torch.int64)
    return AttackResult(x_adv, success, loss_at, logits, queries=spent)


def apgd_targeted_near(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec, *, norm: NormSpec = "inf",
                       share: float = 0.1, steps: int = 100, targets: int = 9, bounds: tuple[float, float] = (0.0, 1.0),
                       seed: int = 0, early_stop: bool = False, chunk_size: int | None = None) -> AttackResult:
    """APGD-T (``apgd_targeted``) on the ``share`` of the points nearest the boundary (``boundary_distance``),
    the others returned unattacked: the long targeted runs where a point can still fall.

    Parameters
    ----------
    model, x, y, eps, norm, steps, targets, bounds, seed, early_stop, chunk_size
        As in ``apgd_targeted`` (its defaults are AutoAttack's: 100 steps, 9 targets).
    share : float
        The fraction of the batch attacked, 0 ≤ share ≤ 1 (⌈share · N⌉ points).

    Returns
    -------
    AttackResult
        ``apgd_targeted``'s result on the chosen points; elsewhere x, not successful, the logits at x and
        the DLR loss there.

    Examples
    --------
    >>> import torch
    >>> from advgrad import apgd_targeted_near
    >>> _ = torch.manual_seed(0)  # the model's initial weights
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 5))
    >>> x = torch.rand(10, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    >>> result = apgd_targeted_near(model, x, model(x).argmax(1), 0.05, share=0.3, steps=10, targets=2)
    >>> int((result.x_adv != x).flatten(1).any(1).sum()) <= 3
    True

    References
    ----------
    Croce, Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free
    attacks", ICML 2020, arXiv 2003.01690. Liu et al., "Practical evaluation of adversarial robustness via
    adaptive auto attack", CVPR 2022, arXiv 2203.05154.
    """
    return _on_nearest(model, x, y, eps, norm, share, chunk_size, dlr, lambda rows, e: apgd_targeted(
        model, x[rows], y[rows], e, norm=norm, steps=steps, targets=targets, bounds=bounds, seed=seed,
        early_stop=early_stop, chunk_size=chunk_size))


def square_near(model: nn.Module, x: Tensor, y: Tensor, eps: float, *, norm: NormSpec = "inf", share: float = 0.03,
                queries: int = 5000, bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0,
                chunk_size: int | None = None) -> AttackResult:
    """Square Attack (``square``) on the ``share`` of the points nearest the boundary (``boundary_distance``,
    which needs the model's gradients), the others returned unattacked.

    Parameters
    ----------
    model, x, y, eps, norm, queries, bounds, seed, chunk_size
        As in ``square`` (its default budget is AutoAttack's: 5,000 queries).
    share : float
        The fraction of the batch attacked, 0 ≤ share ≤ 1 (⌈share · N⌉ points).

    Returns
    -------
    AttackResult
        ``square``'s result on the chosen points; elsewhere x, not successful, the logits at x, the margin
        loss there and 0 queries.

    Examples
    --------
    >>> import torch
    >>> from advgrad import square_near
    >>> _ = torch.manual_seed(0)  # the model's initial weights
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> x = torch.rand(10, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    >>> result = square_near(model, x, model(x).argmax(1), 0.05, share=0.2, queries=20)
    >>> int((result.queries > 0).sum()) <= 2
    True

    References
    ----------
    Andriushchenko, Croce, Flammarion, Hein, "Square Attack: a query-efficient black-box adversarial attack
    via random search", ECCV 2020, arXiv 1912.00049.
    """
    return _on_nearest(model, x, y, eps, norm, share, chunk_size, margin, lambda rows, e: square(
        model, x[rows], y[rows], float(e), norm=norm, queries=queries, bounds=bounds, seed=seed, chunk_size=chunk_size),
        queries=True)


def fab_targeted_near(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec, *, norm: NormSpec = "inf",
                      share: float = 0.1, steps: int = 100, targets: int = 9, bounds: tuple[float, float] = (0.0, 1.0),
                      seed: int = 0, early_stop: bool = False, chunk_size: int | None = None) -> AttackResult:
    """FAB-T (``fab_targeted``) on the ``share`` of the points nearest the boundary (``boundary_distance``),
    the others returned unattacked.

    Parameters
    ----------
    model, x, y, eps, norm, steps, targets, bounds, seed, early_stop, chunk_size
        As in ``fab_targeted`` (its defaults are AutoAttack's: 100 steps, 9 targets).
    share : float
        The fraction of the batch attacked, 0 ≤ share ≤ 1 (⌈share · N⌉ points).

    Returns
    -------
    AttackResult
        ``fab_targeted``'s result on the chosen points; elsewhere x, not successful, the logits at x and
        the margin loss there.

    Examples
    --------
    >>> import torch
    >>> from advgrad import fab_targeted_near
    >>> _ = torch.manual_seed(0)  # the model's initial weights
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 5))
    >>> x = torch.rand(10, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    >>> result = fab_targeted_near(model, x, model(x).argmax(1), 0.05, share=0.3, steps=10, targets=2)
    >>> int((result.x_adv != x).flatten(1).any(1).sum()) <= 3
    True

    References
    ----------
    Croce, Hein, "Minimally distorted adversarial examples with a fast adaptive boundary attack", ICML 2020,
    arXiv 1907.02044.
    """
    return _on_nearest(model, x, y, eps, norm, share, chunk_size, margin, lambda rows, e: fab_targeted(
        model, x[rows], y[rows], e, norm=norm, steps=steps, targets=targets, bounds=bounds, seed=seed,
        early_stop=early_stop, chunk_size=chunk_size))
