"""Evaluation: how robust is a model, and can that number be trusted?

- ``robust_accuracy`` / ``sweep``: accuracy under several attacks at several ε in one call. Only points the
  model classifies correctly are attacked, with the attack's ``early_stop`` (fooled points stop moving);
  a point is robust at ε only if it survives every attack and every restart (the "worst" record).
- ``minimal_eps``: the per-sample smallest ε at which PGD succeeds, by bisection on a per-sample ε. One
  computation gives the whole accuracy-versus-ε curve (``curve_from_min_eps``).
- ``sanity_report``: checks that flag gradient masking and broken evaluations, after Carlini et al.
  (2019, "On evaluating adversarial robustness") and AutoAttack's ``checks.py``: accuracy non-increasing
  in ε; at or below chance at the full bounds range; PGD ≤ FGSM; more steps and restarts never raise
  accuracy; few zero or non-finite input gradients; gradient-free attacks (random sign noise, and the
  score-based ``square_search``) never stronger than PGD.
- ``evaluate_model``: all of the above for one model and one ``EvalConfig`` (what ``advgrad eval`` runs).
- ``loss_landscape``: the loss along sign(∂J/∂X) and along random sign directions (Goodfellow et al.'s
  linearity argument).

Everything runs on the model's device, in eval mode, with the parameters' gradients off (the attacks
restore mode and flags). ε is an L∞ radius by default (``norm``) on the pixel scale of ``bounds``.

``progress`` (optional, on ``sweep``, ``minimal_eps``, ``sanity_report``, ``evaluate_model``) is called as
``progress(done, total)``: samples processed so far and in all, where every pass of an attack over the N
samples counts N (the samples a pass skips, e.g. those already misclassified, count as done). The
library never prints; the CLI draws a bar from it.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from advgrad.attacks import attack_mode, input_gradient, run_attack
from advgrad.losses import cross_entropy, margin

ATTACKS = ("fgsm", "pgd")
WORST = "worst"  # the record of points that survive every attack
Progress = Callable[[int, int], None]  # (samples done, samples in all), see the module docstring


@dataclass(frozen=True)
class EvalConfig:
    """Everything that decides an evaluation (recorded beside its results)."""

    eps: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3)
    attacks: tuple[str, ...] = ATTACKS
    steps: int = 20          # PGD steps (α = 2.5·ε/steps)
    restarts: int = 1        # PGD random restarts
    norm: str = "inf"
    bounds: tuple[float, float] = (0.0, 1.0)
    batch_size: int = 500
    seed: int = 0
    min_eps: bool = False    # also bisect the per-sample minimal ε
    precision: float = 0.005  # bisection precision (absolute, on the ε scale)
    tolerance: float = 0.01  # slack (fraction of samples) allowed by the sanity checks
    queries: int = 300       # forward passes of the score-based black-box search

    def validate(self) -> "EvalConfig":
        """Raise ValueError naming the first bad field."""
        if not self.eps:
            raise ValueError("eps: give at least one radius")
        for e in self.eps:
            if not (isinstance(e, (int, float)) and math.isfinite(e) and e >= 0):
                raise ValueError(f"eps must be finite and ≥ 0, got {e!r}")
        if not self.attacks:
            raise ValueError("attacks: give at least one of " + ", ".join(ATTACKS))
        for a in self.attacks:
            if a not in ATTACKS:
                raise ValueError(f"unknown attack {a!r}: expected one of {', '.join(ATTACKS)}")
        if len(set(self.attacks)) != len(self.attacks):
            raise ValueError(f"attacks repeat: {', '.join(self.attacks)}")
        for name in ("steps", "restarts", "batch_size", "queries"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name.replace('_', ' ')} must be an integer ≥ 1, got {v!r}")
        lo, hi = self.bounds
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"bounds must be finite with lo < hi, got {self.bounds!r}")
        if not (math.isfinite(self.precision) and self.precision > 0):
            raise ValueError(f"precision must be > 0, got {self.precision!r}")
        if not (0 <= self.tolerance < 1):
            raise ValueError(f"tolerance must be in [0, 1), got {self.tolerance!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SweepResult:
    """Records (one per attack and ε, plus "worst" per ε when there are several attacks) and, per record,
    the per-sample robustness mask (True: still classified correctly) it was computed from."""

    records: list[dict[str, Any]]
    robust: dict[tuple[str, float], Tensor]
    correct: Tensor  # (N,) bool, clean predictions


@dataclass(frozen=True)
class SanityCheck:
    """One line of the sanity report: ``ok`` or not (then "warn"), what was compared, the numbers."""

    name: str
    ok: bool
    message: str
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "ok" if self.ok else "warn"

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.name, "status": self.status, "message": self.message, "values": self.values}


@dataclass
class Evaluation:
    config: EvalConfig
    clean_accuracy: float
    records: list[dict[str, Any]]
    checks: list[SanityCheck]
    min_eps: Tensor | None = None  # (N,) 0 = misclassified clean, inf = not broken within eps_max
    min_eps_max: float | None = None

    @property
    def all_ok(self) -> bool:
        return all(c.ok for c in self.checks)


# --- helpers ---------------------------------------------------------------------------------------

def _device(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def _chunks(idx: Tensor, size: int) -> Iterator[Tensor]:
    for start in range(0, len(idx), size):
        yield idx[start:start + size]


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


class _Tally:
    """Counts samples done against a planned total for a ``progress`` callback (a no-op without one)."""

    def __init__(self, progress: Progress | None, total: int, done: int = 0) -> None:
        self.progress, self.total, self.done = progress, total, done

    def __call__(self, k: int) -> None:
        self.done += k
        if self.progress is not None:
            self.progress(self.done, self.total)


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 500) -> Tensor:
    """Predicted classes (N,), in eval mode (the model's mode is restored)."""
    with attack_mode(model):
        return torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


def _attack_mask(model: nn.Module, x: Tensor, y: Tensor, candidates: Tensor, eps: float | Tensor, attack: str, *,
                 steps: int, restarts: int, norm: str, bounds: tuple[float, float], batch_size: int,
                 seed: int, tally: _Tally | None = None) -> Tensor:
    """Success (N,) bool of ``attack`` on the samples where ``candidates`` is True (others: False).
    ``eps`` is a float or an (N,) tensor of per-sample radii. ``tally`` counts the pass's N samples."""
    tally = tally or _Tally(None, 0)
    success = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    if not isinstance(eps, Tensor) and eps == 0:
        tally(len(x))
        return success  # nothing moves at ε = 0
    idx = candidates.nonzero().squeeze(1)
    tally(len(x) - len(idx))  # not attacked: done
    generator = _generator(x.device, seed)
    for b in _chunks(idx, batch_size):
        e = eps[b] if isinstance(eps, Tensor) else eps
        if attack == "fgsm":
            res = run_attack(model, x[b], y[b], e, alpha=e, steps=1, norm=norm, random_start=False,
                             bounds=bounds)
        else:
            res = run_attack(model, x[b], y[b], e, steps=steps, norm=norm, restarts=restarts, bounds=bounds,
                             early_stop=True, generator=generator)
        success[b] = res.success
        tally(len(b))
    return success


# --- robust accuracy ---------------------------------------------------------------------------------

def sweep(model: nn.Module, x: Tensor, y: Tensor, eps: Sequence[float] = EvalConfig.eps,
          attacks: Sequence[str] = ATTACKS, *, steps: int = 20, restarts: int = 1, norm: str = "inf",
          bounds: tuple[float, float] = (0.0, 1.0), batch_size: int = 500, seed: int = 0,
          progress: Progress | None = None) -> SweepResult:
    """``robust_accuracy`` plus the per-sample masks behind every record (the sanity report reuses them).
    ``progress``: one pass per (ε, attack)."""
    EvalConfig(eps=tuple(eps), attacks=tuple(attacks), steps=steps, restarts=restarts, norm=norm,
               bounds=bounds, batch_size=batch_size, seed=seed).validate()
    device = _device(model)
    x, y = x.to(device), y.to(device)
    n = len(y)
    grid = sorted(set(float(v) for v in eps))
    tally = _Tally(progress, n * len(grid) * len(attacks))
    correct = predict(model, x, batch_size) == y
    records: list[dict[str, Any]] = []
    robust: dict[tuple[str, float], Tensor] = {}
    for e in grid:
        survivors = correct.clone()
        for attack in attacks:
            start = time.perf_counter()
            mask = correct & ~_attack_mask(model, x, y, correct, e, attack, steps=steps, restarts=restarts,
                                           norm=norm, bounds=bounds, batch_size=batch_size, seed=seed, tally=tally)
            robust[(attack, e)] = mask
            survivors &= mask
            records.append({"attack": attack, "eps": e, "accuracy": float(mask.float().mean()), "n": n,
                            "seconds": time.perf_counter() - start,
                            "steps": 1 if attack == "fgsm" else steps,
                            "restarts": 1 if attack == "fgsm" else restarts})
        if len(attacks) > 1:
            robust[(WORST, e)] = survivors
            records.append({"attack": WORST, "eps": e, "accuracy": float(survivors.float().mean()), "n": n,
                            "seconds": sum(r["seconds"] for r in records if r["eps"] == e), "steps": steps,
                            "restarts": restarts})
    return SweepResult(records, robust, correct)


def robust_accuracy(model: nn.Module, x: Tensor, y: Tensor, eps: Sequence[float] = EvalConfig.eps,
                    attacks: Sequence[str] = ATTACKS, *, steps: int = 20, restarts: int = 1, norm: str = "inf",
                    bounds: tuple[float, float] = (0.0, 1.0), batch_size: int = 500,
                    seed: int = 0) -> list[dict[str, Any]]:
    """Accuracy of ``model`` on (x, y) under each attack ("fgsm", "pgd") at each ε, in one call.

    Returns one record per (attack, ε): ``{"attack", "eps", "accuracy", "n", "seconds", "steps",
    "restarts"}``, and with several attacks a ``"worst"`` record per ε: the share of points that survive
    every attack and every restart. Only correctly classified points are attacked (PGD with
    ``early_stop``); PGD's random starts come from a generator seeded with ``seed``.
    """
    return sweep(model, x, y, eps, attacks, steps=steps, restarts=restarts, norm=norm, bounds=bounds,
                 batch_size=batch_size, seed=seed).records


# --- minimal ε by bisection --------------------------------------------------------------------------

def minimal_eps(model: nn.Module, x: Tensor, y: Tensor, *, eps_max: float | None = None, precision: float = 0.005,
                steps: int = 20, restarts: int = 1, norm: str = "inf", bounds: tuple[float, float] = (0.0, 1.0),
                batch_size: int = 500, seed: int = 0, progress: Progress | None = None) -> Tensor:
    """Per-sample minimal ε at which PGD (``steps``, ``restarts``, α = 2.5·ε/steps) finds an adversarial
    example, by bisection on a per-sample ε: every sample's interval [lo, hi] halves each round until it
    is narrower than ``precision``. Returns hi (N,) float64 — an ε at which PGD succeeded — with 0 for
    points misclassified already and ``inf`` for points PGD cannot break at ``eps_max`` (default: the
    full bounds range, hi − lo). Rounds: ⌈log₂(eps_max / precision)⌉; ``progress``: one pass at eps_max and
    one per round."""
    lo_b, hi_b = bounds
    eps_max = float(hi_b - lo_b) if eps_max is None else float(eps_max)
    if not (math.isfinite(eps_max) and eps_max > 0):
        raise ValueError(f"eps_max must be finite and > 0, got {eps_max!r}")
    if not (math.isfinite(precision) and precision > 0):
        raise ValueError(f"precision must be > 0, got {precision!r}")
    device = _device(model)
    x, y = x.to(device), y.to(device)
    kw = dict(steps=steps, restarts=restarts, norm=norm, bounds=bounds, batch_size=batch_size)
    rounds = max(0, math.ceil(math.log2(eps_max / precision)))
    tally = _Tally(progress, len(y) * (1 + rounds))
    correct = predict(model, x, batch_size) == y
    result = torch.zeros(len(y), dtype=torch.float64, device=device)
    broken = _attack_mask(model, x, y, correct, eps_max, "pgd", seed=seed, tally=tally, **kw)  # type: ignore[arg-type]
    result[correct & ~broken] = math.inf
    active = correct & broken
    lo = torch.zeros(len(y), dtype=torch.float64, device=device)
    hi = torch.full((len(y),), eps_max, dtype=torch.float64, device=device)
    for r in range(rounds):
        mid = (lo + hi) / 2
        ok = _attack_mask(model, x, y, active, mid.to(x.dtype), "pgd", seed=seed + 1 + r, tally=tally, **kw)  # type: ignore[arg-type]
        hi = torch.where(active & ok, mid, hi)
        lo = torch.where(active & ~ok, mid, lo)
    result[active] = hi[active]
    return result.cpu()


def curve_from_min_eps(min_eps: Tensor, eps: Sequence[float]) -> list[dict[str, Any]]:
    """Accuracy at each ε read off the minimal-ε values: the share of samples with minimal ε > ε."""
    m = torch.as_tensor(min_eps, dtype=torch.float64)
    return [{"attack": "min-eps", "eps": float(e), "accuracy": float((m > e).double().mean()), "n": len(m)}
            for e in sorted(set(float(v) for v in eps))]


# --- gradient-free attacks -----------------------------------------------------------------------------

@torch.no_grad()
def sign_noise(x: Tensor, eps: float, *, bounds: tuple[float, float] = (0.0, 1.0),
               generator: torch.Generator | None = None) -> Tensor:
    """x + ε·s with s a uniformly random sign per coordinate, clipped to the bounds: the L∞ corner a
    gradient-free adversary tries first. No model is queried."""
    u = torch.rand(x.shape, generator=generator, device=generator.device if generator else x.device)
    return (x + eps * torch.where(u.to(x.device) < 0.5, -1.0, 1.0).to(x.dtype)).clamp(*bounds)


def _p_selection(p_init: float, it: int, queries: int) -> float:
    """Square Attack's schedule for the fraction of pixels changed per query, rescaled to ``queries``."""
    t = int(it / queries * 10000)
    for k, step in enumerate((10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)):
        if t <= step:
            return p_init / 2 ** k
    return p_init / 2 ** 9


@torch.no_grad()
def square_search(model: nn.Module, x: Tensor, y: Tensor, eps: float, *, queries: int = 300, p_init: float = 0.5,
                  bounds: tuple[float, float] = (0.0, 1.0), generator: torch.Generator | None = None) -> Tensor:
    """A score-based black-box L∞ attack that never looks at a gradient: a simplified Square Attack
    (Andriushchenko et al. 2020). Start from vertical stripes of ±ε; each query redraws the signs in a
    random square window (its area shrinking on Square Attack's schedule) and keeps the change wherever
    it raises the margin max_{j≠y} z_j − z_y. Samples stop once fooled. Returns x_adv (N, ...) in the
    ε-ball and the bounds. Works on (N, C, H, W) images; other shapes are searched as (N, 1, 1, D)."""
    lo, hi = bounds
    n = len(x)
    shape = x.shape
    xs = x.detach().reshape(n, *(shape[1:] if x.ndim == 4 else (1, 1, -1)))
    _, c, h, w = xs.shape
    g = generator

    def rand(*size: int) -> Tensor:
        return torch.rand(size, generator=g, device=g.device if g else x.device).to(x.device)

    def signs(*size: int) -> Tensor:
        return torch.where(rand(*size) < 0.5, -eps, eps).to(x.dtype)

    with attack_mode(model):
        best = (xs + signs(n, c, 1, w)).clamp(lo, hi)  # stripes: one sign per column and channel
        best_margin = margin(model(best.view(shape)), y)
        for it in range(queries):
            active = (best_margin <= 0).nonzero().squeeze(1)
            if len(active) == 0:
                break
            p = _p_selection(p_init, it, queries)
            if h > 1:  # a square window covering a share p of the image
                s_h = s_w = max(1, min(h, w, int(round(math.sqrt(p * h * w)))))
            else:  # flat inputs: a run of p·D coordinates
                s_h, s_w = 1, max(1, int(round(p * w)))
            r0 = int(rand(1).item() * (h - s_h + 1))
            c0 = int(rand(1).item() * (w - s_w + 1))
            cand = best[active].clone()
            window = (slice(None), slice(None), slice(r0, r0 + s_h), slice(c0, c0 + s_w))
            cand[window] = (xs[active][window] + signs(len(active), c, 1, 1)).clamp(lo, hi)
            m = margin(model(cand.view(-1, *shape[1:])), y[active])
            better = m > best_margin[active]
            best[active[better]] = cand[better]
            best_margin[active[better]] = m[better]
    return best.view(shape)


# --- sanity report -------------------------------------------------------------------------------------

def _lower_median(values: Sequence[float]) -> float:
    vals = sorted(values)
    return vals[(len(vals) - 1) // 2]


def sanity_report(model: nn.Module, x: Tensor, y: Tensor, result: SweepResult | None = None, *,
                  config: EvalConfig | None = None, check_eps: float | None = None,
                  progress: Progress | None = None) -> list[SanityCheck]:
    """Checks that flag gradient masking and broken evaluations; each is ok or warn with its numbers.

    ``result`` is a ``sweep`` over (x, y) with ``config``'s attacks and ε (computed if absent). The checks
    that need extra attacks run them at ``check_eps`` (default: the lower median of the positive ε), with
    slack ``config.tolerance`` (a fraction of the samples):

    1. ``monotone``: accuracy never rises with ε, for every attack.
    2. ``full-range``: PGD at ε = hi − lo (any image within the bounds is reachable) is at or below
       chance, 1/K.
    3. ``pgd-vs-fgsm``: PGD accuracy ≤ FGSM accuracy at every ε.
    4. ``steps-restarts``: PGD with twice the steps and one more restart does not raise accuracy (and
       does not lower it by more than 3× the slack: the base attack had converged).
    5. ``gradients``: the share of correctly classified points whose input gradient ∂J/∂X (cross-entropy)
       is all zero or not finite.
    6. ``sign-noise``: random sign noise at ε fools no point that PGD left standing.
    7. ``black-box``: the score-based ``square_search`` fools no point that PGD left standing.

    ``progress`` covers the six passes of checks 2, 4 (PGD at ``check_eps`` and the stronger PGD), 5, 6
    and 7, not the sweep computed when ``result`` is absent.
    """
    config = (config or EvalConfig()).validate()
    device = _device(model)
    x, y = x.to(device), y.to(device)
    if result is None:
        result = sweep(model, x, y, config.eps, config.attacks, steps=config.steps, restarts=config.restarts,
                       norm=config.norm, bounds=config.bounds, batch_size=config.batch_size, seed=config.seed)
    n, tol = len(y), config.tolerance
    tally = _Tally(progress, 6 * n)
    kw = dict(steps=config.steps, restarts=config.restarts, norm=config.norm, bounds=config.bounds,
              batch_size=config.batch_size)
    acc = {(r["attack"], r["eps"]): r["accuracy"] for r in result.records}
    eps_grid = sorted({e for _, e in acc})
    positive = [e for e in eps_grid if e > 0]
    lo, hi = config.bounds
    if check_eps is None:
        check_eps = _lower_median(positive) if positive else 0.1 * (hi - lo)
    checks: list[SanityCheck] = []

    # 1. accuracy non-increasing in ε
    rises = []
    for attack in dict.fromkeys(a for a, _ in acc):
        curve = [acc[(attack, e)] for e in eps_grid if (attack, e) in acc]
        rises += [(attack, b - a) for a, b in zip(curve, curve[1:]) if b > a + tol]
    checks.append(SanityCheck(
        "monotone", not rises,
        "accuracy never rises with ε" if not rises else
        "accuracy rises with ε: " + ", ".join(f"{a} +{d:.1%}" for a, d in rises),
        {"largest_rise": max((d for _, d in rises), default=0.0)}))

    # 2. full bounds range → at or below chance
    full = float(hi - lo)
    k = int(_logits_width(model, x[:1]))
    robust_full = result.correct & ~_attack_mask(model, x, y, result.correct, full, "pgd", seed=config.seed,
                                                 tally=tally, **kw)  # type: ignore[arg-type]
    acc_full = float(robust_full.float().mean())
    checks.append(SanityCheck(
        "full-range", acc_full <= 1.0 / k + tol,
        f"PGD accuracy at ε = {full:g} (the full bounds range) is {acc_full:.1%}; chance is {1 / k:.1%}",
        {"eps": full, "accuracy": acc_full, "chance": 1.0 / k}))

    # 3. PGD ≤ FGSM
    if "fgsm" in config.attacks and "pgd" in config.attacks:
        gaps = [(e, acc[("pgd", e)] - acc[("fgsm", e)]) for e in eps_grid if ("pgd", e) in acc and ("fgsm", e) in acc]
        worse = [(e, d) for e, d in gaps if d > tol]
        checks.append(SanityCheck(
            "pgd-vs-fgsm", not worse,
            "PGD accuracy ≤ FGSM accuracy at every ε" if not worse else
            "PGD is weaker than FGSM at " + ", ".join(f"ε={e:g} (+{d:.1%})" for e, d in worse),
            {"largest_gap": max((d for _, d in gaps), default=0.0)}))

    # 4. more steps and restarts
    base = _pgd_robust(result, config, check_eps, model, x, y, kw, tally)
    acc_base = float(base.float().mean())
    strong_kw = {**kw, "steps": 2 * config.steps, "restarts": config.restarts + 1}
    strong = result.correct & ~_attack_mask(model, x, y, result.correct, check_eps, "pgd", seed=config.seed + 7919,
                                           tally=tally, **strong_kw)  # type: ignore[arg-type]
    acc_strong = float(strong.float().mean())
    ok = acc_base - 3 * tol <= acc_strong <= acc_base + tol
    checks.append(SanityCheck(
        "steps-restarts", ok,
        f"at ε = {check_eps:g}: PGD-{config.steps}×{config.restarts} {acc_base:.1%}, "
        f"PGD-{2 * config.steps}×{config.restarts + 1} {acc_strong:.1%}"
        + ("" if ok else (" (stronger attack raised accuracy)" if acc_strong > acc_base
                          else " (the base attack has not converged)")),
        {"eps": check_eps, "accuracy": acc_base, "accuracy_stronger": acc_strong}))

    # 5. zero or non-finite input gradients
    idx = result.correct.nonzero().squeeze(1)
    tally(n - len(idx))
    bad = 0
    for b in _chunks(idx, config.batch_size):
        g = input_gradient(model, x[b], y[b]).flatten(1)
        bad += int(((g == 0).all(1) | ~torch.isfinite(g).all(1)).sum())
        tally(len(b))
    share = bad / max(1, len(idx))
    checks.append(SanityCheck(
        "gradients", share <= tol,
        f"{share:.1%} of {len(idx)} correctly classified points have a zero or non-finite ∂J/∂X",
        {"share": share, "count": bad, "n": len(idx)}))

    # 6–7. gradient-free attacks never stronger than PGD
    generator = _generator(device, config.seed + 104729)
    survivors = base.nonzero().squeeze(1)
    noise_fooled = torch.zeros(len(y), dtype=torch.bool, device=device)
    box_fooled = torch.zeros(len(y), dtype=torch.bool, device=device)
    tally(n - len(idx))
    for b in _chunks(result.correct.nonzero().squeeze(1), config.batch_size):
        noise_fooled[b] = predict(model, sign_noise(x[b], check_eps, bounds=config.bounds, generator=generator),
                                  config.batch_size) != y[b]
        tally(len(b))
    tally(n - len(survivors))
    for b in _chunks(survivors, config.batch_size):
        x_box = square_search(model, x[b], y[b], check_eps, queries=config.queries, bounds=config.bounds,
                              generator=generator)
        box_fooled[b] = predict(model, x_box, config.batch_size) != y[b]
        tally(len(b))
    acc_noise = float((result.correct & ~noise_fooled).float().mean())
    extra_noise = float((base & noise_fooled).float().mean())
    checks.append(SanityCheck(
        "sign-noise", extra_noise <= tol,
        f"at ε = {check_eps:g}: random sign noise {acc_noise:.1%} vs PGD {acc_base:.1%}; "
        f"noise fools {extra_noise:.1%} of points PGD missed",
        {"eps": check_eps, "accuracy": acc_noise, "accuracy_pgd": acc_base, "extra_fooled": extra_noise}))
    extra_box = float(box_fooled.float().mean())
    acc_box = float((base & ~box_fooled).float().mean())
    checks.append(SanityCheck(
        "black-box", extra_box <= tol,
        f"at ε = {check_eps:g}: square search ({config.queries} queries) on PGD's survivors fools "
        f"{extra_box:.1%} more (PGD {acc_base:.1%} → PGD + black-box {acc_box:.1%})",
        {"eps": check_eps, "queries": config.queries, "accuracy_pgd": acc_base,
         "accuracy_combined": acc_box, "extra_fooled": extra_box}))
    return checks


@torch.no_grad()
def _logits_width(model: nn.Module, x: Tensor) -> int:
    with attack_mode(model):
        return int(model(x).shape[1])


def _pgd_robust(result: SweepResult, config: EvalConfig, eps: float, model: nn.Module, x: Tensor, y: Tensor,
                kw: dict[str, Any], tally: _Tally) -> Tensor:
    """PGD's robustness mask at ``eps``: from the sweep when it ran PGD there, else computed now."""
    mask = result.robust.get(("pgd", eps))
    if mask is not None:
        tally(len(y))  # this pass is already done
        return mask
    return result.correct & ~_attack_mask(model, x, y, result.correct, eps, "pgd", seed=config.seed, tally=tally, **kw)


# --- the whole evaluation ----------------------------------------------------------------------------

def evaluate_model(model: nn.Module, x: Tensor, y: Tensor, config: EvalConfig | None = None, *,
             sanity: bool = True, progress: Progress | None = None) -> Evaluation:
    """The sweep, the optional minimal-ε bisection (up to the largest ε of the grid) and the sanity report.
    ``progress`` runs over all three: (done, total) with total = N × (passes of each part)."""
    config = (config or EvalConfig()).validate()
    n = len(y)
    eps_max = max(config.eps) if max(config.eps) > 0 else float(config.bounds[1] - config.bounds[0])
    parts = [n * len(set(float(e) for e in config.eps)) * len(config.attacks),
             n * (1 + max(0, math.ceil(math.log2(eps_max / config.precision)))) if config.min_eps else 0,
             6 * n if sanity else 0]
    total = sum(parts)

    def part(i: int) -> Progress | None:  # a part's own (done, total) as a point of the whole run
        return None if progress is None else (lambda done, _: progress(sum(parts[:i]) + done, total))

    result = sweep(model, x, y, config.eps, config.attacks, steps=config.steps, restarts=config.restarts,
                   norm=config.norm, bounds=config.bounds, batch_size=config.batch_size, seed=config.seed,
                   progress=part(0))
    records = list(result.records)
    min_eps = None
    if config.min_eps:
        start = time.perf_counter()
        min_eps = minimal_eps(model, x, y, eps_max=eps_max, precision=config.precision, steps=config.steps,
                              restarts=config.restarts, norm=config.norm, bounds=config.bounds,
                              batch_size=config.batch_size, seed=config.seed, progress=part(1))
        seconds = time.perf_counter() - start
        records += [{**r, "seconds": seconds, "steps": config.steps, "restarts": config.restarts}
                    for r in curve_from_min_eps(min_eps, config.eps)]
    checks = sanity_report(model, x, y, result, config=config, progress=part(2)) if sanity else []
    return Evaluation(config, float(result.correct.float().mean()), records, checks, min_eps,
                      eps_max if config.min_eps else None)


# --- loss landscape ----------------------------------------------------------------------------------

@torch.no_grad()
def _losses(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return cross_entropy(model(x), y)


def loss_landscape(model: nn.Module, x: Tensor, y: Tensor, *, eps_max: float = 0.3, points: int = 31,
                   n_random: int = 2, bounds: tuple[float, float] = (0.0, 1.0),
                   generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Cross-entropy J(x + t·d) for t in linspace(0, eps_max, points), clipped to ``bounds``:
    d = sign(∂J/∂X) and d = ``n_random`` random sign vectors per sample. Returns (t (P,), loss along the
    gradient's sign (N, P), loss along the random directions (N, R, P))."""
    if points < 2 or n_random < 1:
        raise ValueError(f"points must be ≥ 2 and n_random ≥ 1, got {points} and {n_random}")
    device = _device(model)
    x, y = x.to(device), y.to(device)
    d_grad = input_gradient(model, x, y).sign()
    d_rand = [sign_noise(torch.zeros_like(x), 1.0, bounds=(-1.0, 1.0), generator=generator) for _ in range(n_random)]
    t = torch.linspace(0.0, eps_max, points)
    along_grad, along_rand = [], []
    with attack_mode(model):
        for step in t.tolist():
            along_grad.append(_losses(model, (x + step * d_grad).clamp(*bounds), y))
            along_rand.append(torch.stack([_losses(model, (x + step * d).clamp(*bounds), y) for d in d_rand], 1))
    return t, torch.stack(along_grad, 1).cpu(), torch.stack(along_rand, 2).cpu()
