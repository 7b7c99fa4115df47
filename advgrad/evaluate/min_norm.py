"""The other half of robustness: per point, the smallest perturbation that fools the model, ‖δ‖ in the
evaluation's norm, for several attacks at once — and from those distances the whole robust-accuracy-vs-ε
curve, the per-sample best over the attacks (the ensemble), and how often each attack is that best.

A minimal-norm attack (``catalog.ATTACKS[name].kind == "minimal"``: FMN, σ-zero, DDN, HopSkipJump, …)
gives its distances directly; a fixed-budget attack that takes one radius per point (PGD, APGD, …) gives
them through the bisection of ``min_eps`` (to ``EvalConfig.precision``, up to the largest ε of the grid).
A point the model misclassifies at x has distance 0; one an attack could not break, ``inf``. What each
attack cost is counted as the runner counts it (``advgrad.models.counting``): the sample-passes of its attack
calls — a bisection's every round — without the clean predictions' forward pass.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from advgrad.attacks.runner import Journal
from advgrad.catalog import ATTACKS
from advgrad.configs import EvalConfig
from advgrad.evaluate.min_eps import minimal_eps
from advgrad.evaluate.optimality import ensemble, optimality
from advgrad.evaluate.progress import Progress, parts
from advgrad.evaluate.robust import _fraction, attack_pass, correct_at_x, passes_record
from advgrad.models.counting import Passes, spending
from advgrad.models.query import Classifier

ENSEMBLE = "ensemble"  # the per-sample best over the attacks


@dataclass
class MinNorms:
    """Per attack (in the order asked, then ``ENSEMBLE``): the distances (N,) float64, the seconds and the
    sample-passes (``passes``, summed over processes); ``best_on``:
    the points each attack broke at the smallest distance of all (ties count for each); ``optimality``:
    AttackBench's score of each attack against the ensemble (``evaluate.optimality``)."""

    norm: str
    distances: dict[str, Tensor]
    seconds: dict[str, float] = field(default_factory=dict)
    best_on: dict[str, int] = field(default_factory=dict)
    optimality: dict[str, float] = field(default_factory=dict)
    passes: dict[str, Passes] = field(default_factory=dict)

    def curve(self, eps: list[float]) -> list[dict[str, Any]]:
        """Accuracy records at each ε read off the distances: the share of points with distance > ε."""
        return [{"attack": f"{name} (min-norm)", "eps": float(e), "accuracy": float((d > e).double().mean()),
                 "n": len(d), "seconds": self.seconds.get(name),
                 **passes_record(self.passes.get(name, Passes()))}
                for name, d in self.distances.items() for e in eps]

    def summary(self, name: str) -> dict[str, Any]:
        """Median and mean ‖δ‖ (over every point: inf counts, so the median is inf when most stay unbroken;
        the mean over the broken points), the share broken, best-on count, optimality, seconds, passes."""
        d = self.distances[name]
        broken = torch.isfinite(d)
        return {"median": _number(float(d.median())) if len(d) else None,
                "mean": float(d[broken].mean()) if bool(broken.any()) else None,
                "broken": float(broken.double().mean()), "best_on": self.best_on.get(name),
                "optimality": _number(self.optimality.get(name)), "seconds": self.seconds.get(name),
                **passes_record(self.passes.get(name, Passes()))}


def merged(parts: list[MinNorms]) -> MinNorms:
    """The distances of consecutive chunks of points (a folder evaluated chunk by chunk) as one result: the
    attacks' distances concatenated, seconds and passes added, the ensemble, best-on counts and optimality
    recomputed."""
    names = [k for k in parts[0].distances if k != ENSEMBLE]
    return scored(parts[0].norm, {k: torch.cat([p.distances[k] for p in parts]) for k in names},
                  {k: sum(p.seconds.get(k, 0.0) for p in parts) for k in names},
                  {k: sum((p.passes.get(k, Passes()) for p in parts), Passes()) for k in names})


def scored(norm: str, distances: dict[str, Tensor], seconds: dict[str, float],
           passes: dict[str, Passes] | None = None) -> MinNorms:
    """Per-sample distances of several attacks (and what each cost) with their ensemble, best-on counts and
    optimality."""
    scores = optimality(distances)
    spent = dict(passes or {})
    return MinNorms(norm, {**distances, ENSEMBLE: ensemble(distances)}, {**seconds, ENSEMBLE: sum(seconds.values())},
                    dict(scores.best_on), dict(scores.optimality),
                    {**spent, ENSEMBLE: sum(spent.values(), Passes())} if spent else {})


def _number(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else v


def _distances(model: Classifier, x: Tensor, y: Tensor, name: str, config: EvalConfig, correct: Tensor,
               eps_max: float, journal: Journal | None, progress: Progress | None,
               changes: Mapping[str, Any]) -> Tensor:
    """One attack's minimal distance per point (N,), float64 on the CPU (``changes``: its config's options)."""
    attack = config.attack(name, **changes)
    if ATTACKS[name].kind == "minimal":
        outcome = attack_pass(model, x, y, correct, None, attack, config, journal=journal,
                              name=f"min-norm {name}", progress=_fraction(progress, len(y)))
        d = outcome.distance if outcome.distance is not None else torch.full((len(y),), math.inf)
        d = d.to(torch.float64).clone()
        d[~correct.cpu()] = 0.0
        return d
    bisected = config.but(min_eps_attack=name)
    renamed = _Renamed(journal, name) if journal is not None else None
    return minimal_eps(model, x, y, bisected, eps_max=eps_max, journal=renamed, progress=progress,
                       attack=attack).to(torch.float64)


class _Renamed:
    """A journal whose passes carry the attack's name (two bisections must not share blocks)."""

    def __init__(self, journal: Journal, name: str) -> None:
        self.journal, self.name = journal, name

    def store(self, name: str) -> Any:
        return self.journal.store(f"min-norm {self.name} {name}")


def minimal_norms(model: Classifier, x: Tensor, y: Tensor, config: EvalConfig, *, eps_max: float | None = None,
                  journal: Journal | None = None, progress: Progress | None = None,
                  options: Mapping[str, Mapping[str, Any]] | None = None) -> MinNorms:
    """Every attack of ``config.min_norm`` on (x, y) in ``config.norm``: the per-sample minimal distances, the
    ensemble, best-on counts and optimality, each attack's seconds and sample-passes (see the module
    docstring). ``eps_max``: the bisection's top (default: the largest ε of the grid, else the bounds' range).
    ``progress(done, total)``: N per attack. ``options``: per attack name, options of its config beyond
    ``config.attack(name)`` (its steps, say).

    Examples
    --------
    >>> import torch
    >>> from advgrad import EvalConfig
    >>> from advgrad.evaluate.min_norm import minimal_norms
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x, y = torch.rand(6, 1, 2, 2), torch.randint(0, 3, (6,))
    >>> config = EvalConfig(eps=(0.5,), norm="2", attacks=("pgd",), min_norm=("fmn", "pgd"), steps=5)
    >>> result = minimal_norms(model, x, y, config)
    >>> list(result.distances), result.distances["ensemble"].shape
    (['fmn', 'pgd', 'ensemble'], torch.Size([6]))
    """
    if not config.min_norm:
        raise ValueError("config.min_norm names no attack: give minimal-norm attacks (e.g. min_norm=('fmn',))")
    lo, hi = config.bounds
    top = eps_max if eps_max is not None else (max(config.eps) if max(config.eps) > 0 else float(hi - lo))
    correct = correct_at_x(model, x, y, config)
    passes = iter(parts(progress, [len(y)] * len(config.min_norm)))
    distances: dict[str, Tensor] = {}
    seconds: dict[str, float] = {}
    spent: dict[str, Passes] = {}
    for name in config.min_norm:
        start = time.perf_counter()
        entry = ATTACKS[name]
        steps = ({"steps": config.min_norm_steps} if config.min_norm_steps is not None and entry.kind == "minimal"
                 and "steps" in entry.options else {})  # (N,) distances below: one attack at a time
        with spending() as tally:
            distances[name] = _distances(model, x, y, name, config, correct, top, journal, next(passes),
                                         {**steps, **(options or {}).get(name, {})})
        seconds[name], spent[name] = time.perf_counter() - start, tally.passes
    return scored(config.norm, distances, seconds, spent)
