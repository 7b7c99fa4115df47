"""Auto-PGD (APGD) and its targeted version APGD-T (Croce & Hein, "Reliable evaluation of adversarial
robustness with an ensemble of diverse parameter-free attacks", ICML 2020, arXiv 2003.01690, Sec. 3),
under the L∞ and L2 norms, and under L1 as L1-APGD (Croce & Hein, "Mind the box: l1-APGD for sparse
adversarial attacks on image classifiers", ICML 2021, arXiv 2103.01208), as the reference implementation
pyautoattack 0.2.0 runs them. L1 differs (``_apgd_l1``): sparse steps on the largest gradient coordinates,
the projection onto the box ∩ L1 ball, its own step-size rule, and ``use_largereps`` (the iterations at 3ε,
2ε, then ε; off by default as in the reference's APGDAttack, on in AutoAttack's L1 version); ``rho`` is
not used there.

APGD is projected gradient ascent with momentum whose step size needs no tuning. From a random point
x₀ = x + ε·t/‖t‖ of the ε-sphere (clipped to the box) and η = 2ε it iterates

    z_{i+1} = P(x_i + η·s(∇J(x_i))),   s(g) = sign g (L∞) or g/‖g‖₂ (L2)
    x_{i+1} = P(x_i + α·(z_{i+1} − x_i) + (1 − α)·(x_i − x_{i−1})),   α = 0.75 (α = 1 on the first step)

with P the projection onto the ε-ball around x, then the box. At the checkpoints (``checkpoints``) a
sample halves η and restarts from its best point when its loss rose in at most ρ·k of the last k steps
(ρ = 0.75), or when η was not halved at the previous checkpoint and its best loss has not improved since.

Reference quirk, kept: a check after k steps counts how many of the last k consecutive pairs of losses
rose, but at the first checkpoint (i = k₀ − 1) the oldest pair compares the loss after the first step with
slot −1 of the reference's zero-initialised loss history, i.e. with 0: it counts as a rise exactly when
that loss is > 0 (always for cross-entropy; for DLR only once misclassified). advgrad reproduces it in
both modes (the examples then match the reference, and the fast mode's flags the exact mode's) and offers
no "fixed" variant; a reference patched to skip that pair gives other examples (tested).

The result per sample (``AttackResult``): ``success`` = misclassified, by the clean point or by an iterate
of some run; ``x_adv`` = x when not successful (as the reference's perturb() returns it), else the point
that fooled it: in the first run that fooled it (restarts and targets attack only the samples not yet
fooled), the last misclassified iterate of that run (exact mode, as the reference) or the first one
(``early_stop=True``, which drops a sample from the batch as soon as it is misclassified). ``logits`` are
those computed at x_adv during the attack and ``loss`` the attack's untargeted loss there (cross-entropy or
DLR; DLR for APGD-T).

Exact mode (``early_stop=False``) forwards every sample of a run at every iteration, as the reference
(with ``use_largereps`` the fast mode drops samples only in the last phase, at ε).
With ``chunk_size=len(x)`` (one piece), a float32 batch in [0, 1] and ``bounds=(0, 1)``, the examples are
the reference's bit for bit: same random draws (a private generator seeded with ``seed``; torch's global
RNG is never touched), same operations in the same order on the same shapes. Chunks only change which
rows share a matrix multiply (on the test CPU the examples were still the reference's in chunks of 64 and
256: measured, not by construction). Bounds that x's dtype cannot represent are rounded inwards, so that
clipping never leaves them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from advgrad import _validate
from advgrad._runtime import frozen_eval
from advgrad.attacks import _apgd_l1 as l1
from advgrad.attacks import _apgd_run as core
from advgrad.attacks._checks import Bounds, EpsSpec, check_batch, check_bounds, check_radius
from advgrad.attacks._chunks import chunk_for, slices
from advgrad.attacks.result import AttackResult
from advgrad.losses import cross_entropy
from advgrad.losses import dlr as dlr_loss
from advgrad.losses import dlr_targeted as dlr_targeted_loss
from advgrad.norms import NormSpec, get_norm

APGD_LOSSES = ("ce", "dlr")  # the losses APGD runs (catalog.LOSSES lists every per-sample loss)


def checkpoints(steps: int) -> list[int]:
    """After how many iterations APGD checks its step size (1-based counts), e.g. for 100 steps
    [22, 41, 57, 70, 80, 87, 93, 99]."""
    return [i + 1 for i in core.checkpoint_windows(_validate.count("steps", steps))]


def _ce(logits: Tensor, y: Tensor, target: Tensor | None) -> Tensor:
    return cross_entropy(logits, y)


def _dlr(logits: Tensor, y: Tensor, target: Tensor | None) -> Tensor:
    return dlr_loss(logits, y)


def _dlr_t(logits: Tensor, y: Tensor, target: Tensor | None) -> Tensor:
    assert target is not None
    return dlr_targeted_loss(logits, y, target)


def _setup(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec, norm: NormSpec, steps: int, restarts: int,
           rho: float, bounds: Bounds, seed: int, eot: int, early_stop: bool, chunk_size: int | None,
           loss: core.RunLoss, largereps: bool = False) -> tuple[core.Setup, Tensor]:
    """Validate the arguments; the run's settings and ε per sample, shaped (N, 1, ..., 1) (in float64
    for L1, whose run derives its radii from the caller's number)."""
    lo, hi = check_bounds(bounds, *check_batch(x, y))
    radius = check_radius("eps", eps, x, positive=True)
    name = get_norm(norm).name
    if name not in ("inf", "2", "1"):
        raise ValueError(f"APGD supports the norms 'inf', '2' and '1', got {norm!r}")
    _validate.flag("use_largereps", largereps)
    if largereps and name != "1":
        raise ValueError(f"use_largereps applies to norm '1' only (its ε schedule is L1-APGD's), got norm {norm!r}")
    for label, count in (("steps", steps), ("restarts", restarts), ("eot", eot)):
        _validate.count(label, count)
    if largereps and steps == 1:
        raise ValueError("use_largereps splits the steps 30 % / 30 % / 40 % over 3ε, 2ε and ε: steps must be ≥ 2, "
                         "got 1")
    _validate.fraction("rho", rho)
    if isinstance(seed, bool) or not isinstance(seed, int) or not -2**63 <= seed < 2**64:
        raise ValueError(f"seed must be an integer in [-2**63, 2**64), got {seed!r}")
    if early_stop is not True and early_stop is not False:
        raise ValueError(f"early_stop must be True or False, got {early_stop!r}")
    chunk = chunk_for(chunk_size, model, x)
    lo, hi = _inward(lo, x.dtype, math.inf), _inward(hi, x.dtype, -math.inf)
    e = torch.as_tensor(radius, dtype=torch.float64 if name == "1" else x.dtype, device=x.device).expand(len(x))
    return (core.Setup(model, name, steps, float(rho), lo, hi, eot, chunk, early_stop, loss, largereps),
            e.reshape(-1, *[1] * (x.ndim - 1)).clone())


def _inward(bound: float, dtype: torch.dtype, towards: float) -> float:
    """The bound as a value of x's dtype, rounded towards the inside of the box: clipping to it keeps
    the iterates within the caller's bounds (x lies within them, so also within the rounded ones)."""
    b = torch.tensor(bound, dtype=dtype)
    if float(b) < bound if towards > 0 else float(b) > bound:  # rounded outwards
        b = torch.nextafter(b, torch.tensor(towards, dtype=dtype))
    return float(b)


def _clean_logits(setup: core.Setup, x: Tensor) -> Tensor:
    """The model's logits at x, (n, K), ``chunk`` samples per pass."""
    with torch.no_grad():
        return torch.cat([setup.model(x[part]) for part in slices(len(x), setup.chunk)])


def _check_classes(logits: Tensor, y: Tensor, least: int, what: str) -> None:
    k = logits.shape[1]
    if bool((y >= k).any()):
        raise ValueError(f"label {int(y.max())} is outside the model's {k} classes (0..{k - 1})")
    if k < least:
        raise ValueError(f"{what} needs a model with at least {least} classes, got {k}")


class _Found:
    """The attack's answer so far for the whole batch: robust flags, points and their logits."""

    def __init__(self, x: Tensor, logits: Tensor, y: Tensor) -> None:
        self.robust = logits.max(1).indices == y   # (N,) not fooled yet; the clean mistakes are done
        self.x_adv, self.logits = x.clone(), logits.clone()

    def attack(self, setup: core.Setup, x: Tensor, y: Tensor, eps: Tensor, gen: torch.Generator,
               target_rank: int | None = None) -> None:
        """One run on the samples not fooled yet (a targeted run aims at each one's ``target_rank``-th
        largest clean logit); keeps what it fools."""
        idx = self.robust.nonzero().squeeze(1)                                  # (n,)
        if len(idx) == 0:
            return
        xs, ys = x[idx], y[idx]
        target = None
        if target_rank is not None:
            target = _clean_logits(setup, xs).sort(dim=1).indices[:, -target_rank]
        fooled, x_found, z_found = (l1.run if setup.norm == "1" else core.run)(setup, xs, ys, target, eps[idx], gen)
        hit = idx[fooled]
        self.robust[hit] = False
        self.x_adv[hit], self.logits[hit] = x_found[fooled], z_found[fooled]

    def result(self, y: Tensor, loss: core.RunLoss) -> AttackResult:
        return AttackResult(self.x_adv, ~self.robust, loss(self.logits, y, None), self.logits)


def apgd(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec, *, norm: NormSpec = "inf", loss: str = "ce",
         steps: int = 100, restarts: int = 1, rho: float = 0.75, bounds: Bounds = (0.0, 1.0), seed: int = 0,
         eot: int = 1, early_stop: bool = False, chunk_size: int | None = None,
         use_largereps: bool = False) -> AttackResult:
    """APGD-CE (``loss="ce"``) or APGD-DLR (``loss="dlr"``, 3 classes or more) within the ε-ball
    (``norm`` "inf", "2" or "1"; ε a float or one per sample) and ``bounds``; see the module docstring for the
    algorithm, the result and the two modes. ``use_largereps`` (L1 only, steps ≥ 2): run the steps at 3ε,
    2ε, then ε (30 %, 30 %, 40 %), as AutoAttack's L1 version does; default off, as the reference's APGDAttack.

    ``restarts`` runs from fresh random starts, each on the samples not fooled by the previous ones.
    ``eot`` > 1 averages the gradient over that many forward passes (Expectation over Transformation, for
    randomised models: AutoAttack's "rand" version runs APGD-CE and APGD-DLR with eot=20); the logits
    and losses used for the decisions are the last pass's, as in the reference. ``chunk_size``: samples per
    forward pass (default ``auto_chunk_size``). The model runs in eval mode with its parameters' gradients
    off, both restored afterwards; x and y are not modified. Bad arguments raise ValueError.

    Parameters
    ----------
    model : nn.Module
        Returns logits (N, K).
    x, y : Tensor
        (N, ...) inputs within ``bounds`` and (N,) int64 labels.
    eps : float or Tensor
        The radius ε, or one per sample (N,).
    norm : {"inf", "2", "1"}
    loss : {"ce", "dlr"}
    steps, restarts, rho, eot : int, int, float, int
        Iterations per run, runs, the step-size check's threshold ρ, gradient passes averaged per step.
    bounds : (float, float)
    seed : int
        Seeds the private generator of the random starts.
    early_stop, chunk_size, use_largereps
        As above.

    Returns
    -------
    AttackResult
        Per sample the first example that fools the model (else the last run's best), ``success``, the
        run's loss and the logits at ``x_adv``.

    Examples
    --------
    >>> import torch
    >>> from advgrad import apgd
    >>> _ = torch.manual_seed(0)  # the model's initial weights
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x = torch.rand(6, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    >>> result = apgd(model, x, model(x).argmax(1), 0.3, steps=10)
    >>> bool(((result.x_adv - x).abs().amax((1, 2, 3)) <= 0.3 + 1e-6).all()), result.success.shape
    (True, torch.Size([6]))

    References
    ----------
    Croce, Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free
    attacks", ICML 2020, arXiv 2003.01690; Croce, Hein, "Mind the box: l1-APGD for sparse adversarial
    attacks on image classifiers", ICML 2021, arXiv 2103.01208 (L1).
    """
    if loss not in APGD_LOSSES:
        raise ValueError(f"unknown APGD loss {loss!r}: expected one of {', '.join(APGD_LOSSES)}")
    fn = _ce if loss == "ce" else _dlr
    setup, e = _setup(model, x, y, eps, norm, steps, restarts, rho, bounds, seed, eot, early_stop, chunk_size,
                      fn, use_largereps)
    x, y = x.detach(), y.long()
    with frozen_eval(model):
        logits = _clean_logits(setup, x)
        _check_classes(logits, y, 3 if loss == "dlr" else 2, f"APGD with loss {loss!r}")
        found = _Found(x, logits, y)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(restarts):
            found.attack(setup, x, y, e, gen)
        return found.result(y, fn)


def apgd_targeted(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec, *, norm: NormSpec = "inf",
                  steps: int = 100, targets: int = 9, restarts: int = 1, rho: float = 0.75,
                  bounds: Bounds = (0.0, 1.0), seed: int = 0, eot: int = 1, early_stop: bool = False,
                  chunk_size: int | None = None, use_largereps: bool = False) -> AttackResult:
    """APGD-T: APGD on the targeted DLR loss, for target ranks r = 2 … targets + 1 in turn (the class of
    a sample's r-th largest logit at its clean point), ``restarts`` runs each, every run on the samples
    not fooled yet. Succeeds when a sample is misclassified (whichever the class). Needs 4 classes or more
    and ``targets`` ≤ K − 1 (the reference would fail with an IndexError; AutoAttack uses 9 targets for
    10 classes). Other arguments as ``apgd``.

    Parameters
    ----------
    targets : int
        Target ranks tried, 1 ≤ targets ≤ K − 1.
    model, x, y, eps, norm, steps, restarts, rho, bounds, seed, eot, early_stop, chunk_size, use_largereps
        As in ``apgd``.

    Returns
    -------
    AttackResult
        As ``apgd``'s; ``loss`` is the untargeted DLR loss at ``x_adv``.

    Examples
    --------
    >>> import torch
    >>> from advgrad import apgd_targeted
    >>> _ = torch.manual_seed(0)  # the model's initial weights
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 5))
    >>> x = torch.rand(6, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    >>> result = apgd_targeted(model, x, model(x).argmax(1), 0.3, steps=10, targets=2)
    >>> bool(((result.x_adv - x).abs().amax((1, 2, 3)) <= 0.3 + 1e-6).all())
    True

    References
    ----------
    Croce, Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free
    attacks", ICML 2020, arXiv 2003.01690.
    """
    setup, e = _setup(model, x, y, eps, norm, steps, restarts, rho, bounds, seed, eot, early_stop, chunk_size,
                      _dlr_t, use_largereps)
    _validate.count("targets", targets)
    x, y = x.detach(), y.long()
    with frozen_eval(model):
        logits = _clean_logits(setup, x)
        _check_classes(logits, y, 4, "APGD-T (the targeted DLR loss)")
        if targets > logits.shape[1] - 1:
            raise ValueError(f"targets must be at most K − 1 = {logits.shape[1] - 1} for a model with "
                             f"{logits.shape[1]} classes, got {targets}")
        found = _Found(x, logits, y)
        gen = torch.Generator().manual_seed(seed)
        for rank in range(2, targets + 2):
            for _ in range(restarts):
                found.attack(setup, x, y, e, gen, target_rank=rank)
        return found.result(y, _dlr)
