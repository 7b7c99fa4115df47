"""FAB, the Fast Adaptive Boundary attack (Croce & Hein, ICML 2020, arXiv 1907.02044), untargeted and targeted
(FAB-T), as AutoAttack runs them (Croce & Hein, ICML 2020, arXiv 2003.01690; reference: pyautoattack 0.2.0).

For each target class t (FAB-T: the 2nd, 3rd, … highest clean logit; untargeted FAB: at every iterate the
class whose linearised boundary is nearest, see ``_fab_closest``) and each sample not yet broken, FAB
linearises the boundary between the true class y and t at the current iterate x′:

    f(z) = z_t − z_y ≈ f(x′) + ⟨w, z − x′⟩,   w = ∇ₓf(x′),   i.e. the hyperplane ⟨w, z⟩ = ⟨w, x′⟩ − f(x′).

Both x′ and the original point x are projected onto that hyperplane inside the box, in the attacked norm
(δ₁ from x′, δ₂ from x: ``_fab_projections``), and the iterate moves to a combination biased towards x and
extrapolated by η (the paper's sec. 3):

    x′ ← clip((x′ + η·δ₁)·(1 − α) + (x + η·δ₂)·α),   α = min(‖δ₁‖ / (‖δ₁‖ + ‖δ₂‖), α_max).

Where x′ is then misclassified, ‖x′ − x‖ is recorded if it is the smallest so far and x′ is pulled back
towards x: x′ ← x + β·(x′ − x). After ``steps`` iterations a sample is broken by this target if its
smallest adversarial point is within ε and the model still misclassifies it; broken samples keep that
point and are not attacked with the next targets. Restarts after the first start from a random point at
distance ε/2 (in the norm), drawn from a private generator seeded with ``seed`` exactly as the reference
draws from torch's global RNG after ``torch.manual_seed(seed)`` (the global RNG is never touched).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from advgrad import _validate
from advgrad._runtime import frozen_eval
from advgrad.attacks._checks import Bounds, EpsSpec, check_batch, check_bounds, check_radius
from advgrad.attacks._chunks import chunk_for, slices
from advgrad.attacks._fab_closest import closest_boundary
from advgrad.attacks._fab_projections import length as _length
from advgrad.attacks._fab_projections import project_l1, project_l2, project_linf
from advgrad.attacks.result import AttackResult
from advgrad.losses import margin
from advgrad.norms import NormSpec, Radius, get_norm, per_point

NONE_FOUND = 1e10  # the reference's "no adversarial point yet" distance

_PROJECT = {"inf": project_linf, "2": project_l2, "1": project_l1}


def _column(r: Radius, n: int, like: Tensor) -> Tensor:
    """A radius as an (n, 1, …, 1) tensor in like's dtype and device."""
    r = r if isinstance(r, Tensor) else torch.full((n,), r, dtype=like.dtype)
    return per_point(r.to(dtype=like.dtype, device=like.device), like)


def _random_start(x: Tensor, eps: Radius, name: str, generator: torch.Generator, lo: float, hi: float) -> Tensor:
    """x plus a random direction scaled to norm ε/2, clipped to the box: U(−1, 1) per coordinate for L∞,
    Gaussian for L2 and L1, drawn on the CPU generator with the reference's calls and shapes."""
    if name == "inf":
        u = (2 * torch.rand(x.shape, generator=generator, dtype=x.dtype) - 1).to(x.device)
    else:
        u = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    scale = per_point(_length(name)(u.flatten(1)), x)  # (n, 1, …, 1)
    return (x + _column(eps, len(x), x) * u / scale * 0.5).clamp(lo, hi)


@torch.no_grad()
def _logits(model: nn.Module, x: Tensor, chunk: int) -> Tensor:
    """model(x), ``chunk`` samples at a time, without a graph: (N, K)."""
    return torch.cat([model(x[part]) for part in slices(len(x), chunk)])


def _boundary(model: nn.Module, x: Tensor, y: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """f = z_target − z_y at x, (n,), and its input gradient ∇ₓf, (n, …): one forward and one backward
    of Σᵢ fᵢ (row i's gradient is its own), never the parameters' gradients."""
    rows = torch.arange(len(x), device=x.device)
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        z = model(xg)                                  # (n, K)
        f = -(z[rows, y] - z[rows, target])
        (g,) = torch.autograd.grad(f.sum(), xg)
    return f.detach(), g


@dataclass(frozen=True)
class _Settings:
    """The validated options of one ``fab_targeted`` call."""

    norm: str          # "inf", "2" or "1"
    steps: int
    alpha_max: float
    eta: float
    beta: float
    lo: float
    hi: float
    early_stop: bool
    chunk: int
    targeted: bool = True  # False: untargeted FAB, towards the nearest boundary (``_fab_closest``)


def _step(cur: Tensor, x: Tensor, f: Tensor, g: Tensor, s: _Settings) -> Tensor:
    """One FAB step from the iterate ``cur`` (n, …) of the points x, given f = z_t − z_y at cur (n,) and
    its gradient g (n, …): both cur and x projected onto the linearised boundary in the box (one call for
    the 2n rows), then the biased, extrapolated combination, clipped to the box."""
    m, shape = len(cur), (-1, *[1] * (cur.ndim - 1))
    w = g.flatten(1)                                          # (m, D) the hyperplane ⟨w, z⟩ = b
    b = (g * cur).flatten(1).sum(dim=-1) - f                  # (m,)
    d = _PROJECT[s.norm](torch.cat((cur.flatten(1), x.flatten(1))), torch.cat((w, w)), torch.cat((b, b)),
                         s.lo, s.hi)                          # (2m, D): δ₁ rows, then δ₂ rows
    size = _length(s.norm)(d).clamp_min(1e-8)                 # (2m,) ‖δ₁‖, then ‖δ₂‖
    alpha = (size[:m] / (size[:m] + size[m:])).clamp(0, s.alpha_max).view(shape)
    # In place on d (a temporary): the same products and sums as (cur + η·δ₁)(1 − α) + (x + δ₂·η)·α,
    # each operand in the same role (addition and multiplication commute exactly), fewer fresh tensors.
    d1, d2 = d[:m].view_as(cur), d[m:].view_as(cur)
    moved = d1.mul_(s.eta).add_(cur).mul_(1 - alpha)
    return moved.add_(d2.mul_(s.eta).add_(x).mul_(alpha)).clamp_(s.lo, s.hi)


def _descend(model: nn.Module, x: Tensor, y: Tensor, target: Tensor | None, start: Tensor, eps: Radius,
             s: _Settings) -> tuple[Tensor, Tensor]:
    """FAB's iterations towards ``target`` (None: the nearest boundary) for one chunk, from ``start``.
    Returns (dist (n,), adv (n, …)): per sample the smallest distance ‖adv − x‖ of an adversarial iterate
    (NONE_FOUND if none) and that iterate (x if none). With ``early_stop`` a sample stops at its first
    adversarial iterate within ε and is no longer forwarded: FAB would go on shrinking its perturbation."""
    length = _length(s.norm)
    dist = torch.full((len(x),), NONE_FOUND, dtype=x.dtype, device=x.device)
    adv = x.clone()
    pos = torch.arange(len(x), device=x.device)  # (m,) which of the chunk's samples the active rows are
    xs, ys, ts, e, cur = x, y, target, eps, start
    for _ in range(s.steps):
        f, g = closest_boundary(model, cur, ys, s.norm) if ts is None else _boundary(model, cur, ys, ts)
        with torch.no_grad():
            cur = _step(cur, xs, f, g, s)
            hit = (model(cur).max(dim=1).indices != ys).nonzero().squeeze(1)  # (h,) adversarial rows
            if len(hit) == 0:
                continue
            r = length((cur[hit] - xs[hit]).flatten(1))       # (h,) their distances to x
            better = r < dist[pos[hit]]
            adv[pos[hit[better]]], dist[pos[hit[better]]] = cur[hit[better]], r[better]
            cur[hit] = xs[hit] + (cur[hit] - xs[hit]) * s.beta  # the backward step
            if s.early_stop:
                keep = torch.ones(len(cur), dtype=torch.bool, device=x.device)
                keep[hit[r <= (e[hit] if isinstance(e, Tensor) else e)]] = False
                if not bool(keep.any()):
                    break
                if not bool(keep.all()):
                    xs, ys, cur, pos = xs[keep], ys[keep], cur[keep], pos[keep]
                    ts = None if ts is None else ts[keep]
                    e = e[keep] if isinstance(e, Tensor) else e
    return dist, adv


def _attack_target(model: nn.Module, x: Tensor, y: Tensor, eps: Radius, k: int | None, restart: int, s: _Settings,
                   generator: torch.Generator) -> Tensor:
    """One run of FAB on the samples x (all still unbroken) towards their k-th highest logit (k None:
    untargeted, towards the nearest boundary at each iteration): returns x with each sample's smallest
    adversarial point found (the sample itself where none was found)."""
    z = _logits(model, x, s.chunk)                            # (n, K)
    correct = (z.max(dim=1).indices == y).nonzero().squeeze(1)
    out = x.clone()
    if len(correct) == 0:
        return out
    # ties broken as the reference's sort does
    target = None if k is None else z.sort(dim=-1).indices[:, -k][correct]
    xs, ys = x[correct], y[correct]
    es = eps[correct] if isinstance(eps, Tensor) else eps
    start = _random_start(xs, es, s.norm, generator, s.lo, s.hi) if restart > 0 else xs
    for part in slices(len(xs), s.chunk):
        dist, adv = _descend(model, xs[part], ys[part], None if target is None else target[part], start[part],
                             es[part] if isinstance(es, Tensor) else es, s)
        found = dist < NONE_FOUND
        out[correct[part][found]] = adv[found]
    return out


def _run(model: nn.Module, x: Tensor, y: Tensor, eps: Radius, targets: int, restarts: int, s: _Settings,
         seed: int) -> Tensor:
    """The target (targeted FAB only) and restart loops over the samples still unbroken; returns x_adv
    (x where ``restarts`` is 0, after the labels and ``targets`` are checked against the model's classes)."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    logits = _logits(model, x, s.chunk)
    n_classes = logits.shape[1]
    if bool((y >= n_classes).any()):
        raise ValueError(f"label {int(y.max())} is outside the model's {n_classes} classes (0..{n_classes - 1})")
    if s.targeted and targets > n_classes - 1:
        raise ValueError(f"targets must be ≤ {n_classes - 1} (the model has {n_classes} classes), got {targets}")
    robust = logits.max(dim=1).indices == y                   # (N,) not broken yet
    x_adv = x.clone()
    for k in range(2, targets + 2) if s.targeted else (None,):
        for restart in range(restarts):
            idx = robust.nonzero().squeeze(1)
            if len(idx) == 0:
                return x_adv
            xs, ys, es = x[idx], y[idx], eps[idx] if isinstance(eps, Tensor) else eps
            cand = _attack_target(model, xs, ys, es, k, restart, s, generator)
            # Broken: misclassified, within ε by the reference's float formula (NaN never counts).
            fooled = _logits(model, cand, s.chunk).max(dim=1).indices != ys
            broken = (fooled & ~(_length(s.norm)((xs - cand).flatten(1)) > es)).nonzero().squeeze(1)
            robust[idx[broken]] = False
            x_adv[idx[broken]] = cand[broken]
    return x_adv


@dataclass(frozen=True)
class FabStep:
    """FAB's step rule (Croce & Hein 2020, sec. 3), validated on construction; defaults: the paper's, AutoAttack's.

    Parameters
    ----------
    alpha_max, eta, beta : float
        α_max ∈ [0, 1] bounds the bias towards x, η > 0 extrapolates the step, β ∈ (0, 1] scales the
        backward step after a success.

    Examples
    --------
    >>> from advgrad import FabStep
    >>> FabStep(eta=1.1)
    FabStep(alpha_max=0.1, eta=1.1, beta=0.9)
    """

    alpha_max: float = 0.1
    eta: float = 1.05
    beta: float = 0.9

    def __post_init__(self) -> None:
        rules: tuple[tuple[str, str, Callable[[float], bool]], ...] = (
            ("alpha_max", "in [0, 1]", lambda v: 0 <= v <= 1), ("eta", "> 0", lambda v: v > 0),
            ("beta", "in (0, 1]", lambda v: 0 < v <= 1))
        for name, rule, ok in rules:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not ok(value):
                raise ValueError(f"{name} must be a finite number {rule}, got {value!r}")
            object.__setattr__(self, name, float(value))


def _fab(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec, *, norm: NormSpec, steps: int, targeted: bool,
         targets: int, restarts: int, step: FabStep, bounds: Bounds, seed: int, early_stop: bool,
         chunk_size: int | None) -> AttackResult:
    xmin, xmax = check_batch(x, y)
    name = get_norm(norm).name
    lo, hi = check_bounds(bounds, xmin, xmax)
    eps_ = check_radius("eps", eps, x, positive=False)
    steps, targets, restarts = (_validate.count(n, v) for n, v in
                                (("steps", steps), ("targets", targets), ("restarts", restarts)))
    if not isinstance(step, FabStep):
        raise ValueError(f"step must be a FabStep, got {type(step).__name__}")
    _validate.count("seed", seed, minimum=0)
    _validate.flag("early_stop", early_stop)
    x = x.detach()
    s = _Settings(name, steps, step.alpha_max, step.eta, step.beta, lo, hi, early_stop,
                  chunk_for(chunk_size, model, x), targeted)
    # ε = 0 breaks only the samples misclassified at x: no run is needed (its labels are still checked).
    zero = bool((eps_ == 0).all()) if isinstance(eps_, Tensor) else eps_ == 0
    with frozen_eval(model):
        x_adv = _run(model, x, y, eps_, targets, 0 if zero else restarts, s, seed)
        logits = _logits(model, x_adv, s.chunk)
    return AttackResult(x_adv, logits.max(dim=1).indices != y, margin(logits, y), logits)


def fab(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec, *, norm: NormSpec = "inf", steps: int = 100,
        restarts: int = 1, step: FabStep = FabStep(), bounds: Bounds = (0.0, 1.0), seed: int = 0,
        early_stop: bool = False, chunk_size: int | None = None) -> AttackResult:
    """FAB, untargeted (Croce & Hein, ICML 2020, arXiv 1907.02044; AutoAttack's "plus" member): ``restarts``
    runs, each stepping at every iterate towards the nearest linearised boundary (see the module docstring).

    Parameters
    ----------
    model, x, y : as ``pgd``
    eps, norm : float or Tensor, {"inf", "2", "1"}
        The radius (one or per sample): the success threshold, and the size of the random restarts (ε/2).
    steps, restarts : int
        Iterations per run; runs (the first starts at x, the others at a random point at distance ε/2).
    step, bounds, seed : FabStep, (float, float), int
        α_max, η, β of the step rule; the box; the seed of the restarts' private generator, drawn from exactly
        as the reference draws from torch's global RNG.
    early_stop : bool
        Stop a sample at its first adversarial point within ε (the same successes, maybe a larger x_adv − x).
    chunk_size : int, optional
        Samples per pass. With ``chunk_size=len(x)`` and ``early_stop=False`` the result is the reference's
        (pyautoattack 0.2.0 ``FABAttack_PT``) bit for bit.

    Returns
    -------
    AttackResult
        ``x_adv``: for a sample broken by some run, the smallest adversarial point of the run that broke it,
        within the ε-ball and the bounds; else x. ``success``: argmax model(x_adv) ≠ y; ``loss``: the
        margin max_{j≠y} z_j − z_y at x_adv; ``logits`` at x_adv.

    Raises
    ------
    ValueError
        A bad argument, named in one line.

    Examples
    --------
    >>> import torch
    >>> from advgrad import fab
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x, y = torch.rand(6, 1, 2, 2), torch.randint(0, 3, (6,))
    >>> bool(((fab(model, x, y, 0.3, steps=10).x_adv - x).abs().flatten(1).amax(1) <= 0.3 + 1e-6).all())
    True

    References
    ----------
    Croce, Hein, "Minimally distorted adversarial examples with a fast adaptive boundary attack", ICML 2020,
    arXiv 1907.02044.
    """
    return _fab(model, x, y, eps, norm=norm, steps=steps, targeted=False, targets=1, restarts=restarts, step=step,
                bounds=bounds, seed=seed, early_stop=early_stop, chunk_size=chunk_size)


def fab_targeted(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec, *, norm: NormSpec = "inf",
                 steps: int = 100, targets: int = 9, restarts: int = 1, step: FabStep = FabStep(),
                 bounds: Bounds = (0.0, 1.0), seed: int = 0, early_stop: bool = False,
                 chunk_size: int | None = None) -> AttackResult:
    """FAB-T, AutoAttack's member: ``fab`` towards the boundary with each of ``targets`` target classes in
    turn (the 2nd, 3rd, … highest clean logit), ``restarts`` runs each, every run on the samples not broken
    yet. Succeeds on any misclassification.

    Parameters
    ----------
    targets : int
        Target classes tried, 1 ≤ targets ≤ K − 1; the other arguments as in ``fab``.

    Returns
    -------
    AttackResult
        As ``fab``'s.

    Examples
    --------
    >>> import torch
    >>> from advgrad import fab_targeted
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x, y = torch.rand(6, 1, 2, 2), torch.randint(0, 3, (6,))
    >>> fab_targeted(model, x, y, 0.3, steps=10, targets=2).success.dtype
    torch.bool
    """
    return _fab(model, x, y, eps, norm=norm, steps=steps, targeted=True, targets=targets, restarts=restarts,
                step=step, bounds=bounds, seed=seed, early_stop=early_stop, chunk_size=chunk_size)
