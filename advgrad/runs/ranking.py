"""The ranking of ``advgrad rank``: several attacks on one model and one data set, in one norm, each under the
same budget of sample-passes, scored as AttackBench scores them (Cinà et al., AAAI 2025, arXiv 2404.19460).

Each attack gives every point's minimal ‖δ‖ (``advgrad.evaluate.min_norm.minimal_norms``: a minimal-norm
attack as it is, a fixed-ε attack through the bisection of ``min_eps`` up to ``eps_max`` to ``precision``);
from those: each attack's optimality against the per-sample best of all of them, its median ‖δ‖, the share
of points it broke, the points where it was best, its passes and seconds.

The budget — forward + backward sample-passes per point — is enforced through the attack's iteration count
(``steps``, else ``queries`` for the attacks that have no steps), whose cost is linear in it: a probe runs
the attack (without early stop, on the first ``PROBE`` points) at two counts, fits passes per point =
a·count + b, and the attack runs at the largest count whose cost fits 99 % of the budget (``SLACK``) — for
a bisected attack, the budget shared among its 1 + ⌈log₂(eps_max / precision)⌉ passes. The probe's own
passes are in no record. What each attack then spent is counted (the runner's counters, summed over
processes) and reported beside the budget (``within_budget``): early stop and the bisection's shrinking
sets of points make most attacks spend less, and an attack whose cost depends on the points more than the
probe saw may spend more, which the record says.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from advgrad import distributed, plots
from advgrad.attacks import runner
from advgrad.catalog import ATTACKS, NORMS
from advgrad.configs import EvalConfig
from advgrad.evaluate.min_eps import bisection_rounds
from advgrad.evaluate.min_norm import ENSEMBLE, MinNorms, minimal_norms
from advgrad.evaluate.progress import Progress
from advgrad.models.counting import Passes
from advgrad.records.write import provenance
from advgrad.runs._sources import Warn, open_sources

PROBE = 8  # points the probe runs on
SLACK = 0.99  # the share of the budget the probe's fit may plan for: the rest for what the probe did not see
EPS_MAX = {"inf": 0.3, "2": 5.0, "1": 40.0, "0": 100.0}  # bisection tops: the whole range an MNIST attack needs
CSV_FIELDS = ("attack", "optimality", "median", "broken", "best_on", "forward", "backward", "passes_per_point",
              "within_budget", "iterations", "seconds")


@dataclass(frozen=True)
class RankReport:
    """The JSON ``record`` (attacks sorted by optimality), the CSV ``rows`` (columns ``CSV_FIELDS``) and the
    per-attack result ``norms`` (distances, passes, scores)."""

    record: dict[str, Any]
    rows: list[dict[str, Any]]
    norms: MinNorms


def iteration_option(name: str) -> str:
    """The option that sets how long attack ``name`` runs: ``steps``, else ``queries``."""
    options = ATTACKS[name].options
    for option in ("steps", "queries"):
        if option in options:
            return option
    raise ValueError(f"{name} has neither steps nor queries: no budget can be set on it")


def _probe(model: nn.Module, x: Tensor, y: Tensor, name: str, config: EvalConfig, eps_max: float,
           count: int) -> float:
    """Passes per point of one run of ``name`` at ``count`` iterations, without early stop."""
    attack = config.attack(name, **{iteration_option(name): count})
    if "early_stop" in ATTACKS[name].options:
        attack = attack.but(early_stop=False)
    eps = None if ATTACKS[name].kind == "minimal" else eps_max
    outcome = runner.run(model, x, y, eps, [attack], seed=config.seed, bounds=config.bounds, block=config.block)
    return sum(outcome.passes, Passes()).total / len(y)


def iterations_for(model: nn.Module, x: Tensor, y: Tensor, name: str, config: EvalConfig, *, budget: int,
                   eps_max: float) -> int:
    """The largest iteration count of ``name`` whose passes per point, by the probe's linear fit, fit the
    ``budget`` (a bisected attack: ``budget`` over its number of passes); ValueError when not even one fits."""
    runs = 1 if ATTACKS[name].kind == "minimal" else 1 + bisection_rounds(eps_max, config.precision)
    low, high = (10, 20) if iteration_option(name) == "steps" else (100, 200)
    p_low, p_high = (_probe(model, x, y, name, config, eps_max, c) for c in (low, high))
    slope = (p_high - p_low) / (high - low)
    if slope <= 0:  # no growth seen (the probe's points all fell): keep the attack's own count
        default = ATTACKS[name].parameters[iteration_option(name)].default
        return int(default)
    count = math.floor((SLACK * budget / runs - (p_low - slope * low)) / slope)
    if count < 1:
        need = math.ceil(runs * (p_low + slope * (1 - low)))
        raise ValueError(f"--budget {budget} is too small for {name}: one iteration costs about {need} passes per "
                         f"point" + (f" over its {runs} bisection passes" if runs > 1 else ""))
    return count


def _summary(norms: MinNorms, name: str, n: int, budget: int, iterations: int | None) -> dict[str, Any]:
    spent = norms.passes.get(name, Passes())
    return {**norms.summary(name), "passes_per_point": spent.total / n,
            "within_budget": spent.total <= budget * n if iterations is not None else None,
            "iterations": iterations}


def ranked(norms: MinNorms, *, budget: int, iterations: Mapping[str, int | None]) -> dict[str, dict[str, Any]]:
    """Per attack, best first (optimality, then median ‖δ‖), then the ensemble: its summary (median, mean,
    broken, best_on, optimality, seconds, forward, backward), passes per point, whether they fit the budget,
    its iteration count and its distances ("values", None for not broken)."""
    n = len(next(iter(norms.distances.values())))
    names = [k for k in norms.distances if k != ENSEMBLE]

    def key(name: str) -> tuple[float, float]:
        score = norms.optimality.get(name, math.nan)
        return (-score if math.isfinite(score) else math.inf, float(norms.distances[name].median()))

    out = {}
    for name in [*sorted(names, key=key), ENSEMBLE]:
        values = [None if math.isinf(v) else v for v in norms.distances[name].tolist()]
        out[name] = {**_summary(norms, name, n, budget, iterations.get(name)), "values": values}
    return out


def csv_rows(attacks: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"attack": name, **{k: a.get(k) for k in CSV_FIELDS[1:]}} for name, a in attacks.items()]


def run_rank(model_path: str | os.PathLike[str], attacks: Sequence[str], *, norm: str = "2", budget: int = 1000,
             eps_max: float | None = None, precision: float | None = None, n: int | None = None, block: int = 250,
             seed: int = 0, device: str = "auto", data: str | os.PathLike[str] | None = None,
             data_root: str | os.PathLike[str] | None = None, on_warning: Warn | None = None,
             progress: Progress | None = None, **options: Any) -> RankReport:
    """Rank ``attacks`` on the first ``n`` points of ``data`` (default: a checkpoint's test split) of the
    model ``model_path`` (``options``: as ``runs.evaluation.run_eval``) in ``norm``, each under ``budget``
    forward + backward sample-passes per point (see the module docstring). ``eps_max``: the bisection's top
    (default ``EPS_MAX[norm]``); ``precision``: its resolution (default eps_max / 64: six rounds)."""
    budget = int(budget)
    if isinstance(budget, bool) or budget < 1:
        raise ValueError(f"budget must be a positive number of passes per point, got {budget!r}")
    if len(attacks) < 2 or len(set(attacks)) != len(attacks):
        raise ValueError(f"rank needs two attacks or more, each once, got {', '.join(attacks) or 'none'}")
    for name in attacks:
        iteration_option(name)
    top = float(eps_max if eps_max is not None else EPS_MAX[norm])
    config = EvalConfig(eps=(top,), norm=norm, attacks=tuple(attacks), min_norm=tuple(attacks), block=block,
                        seed=seed, precision=precision if precision is not None else top / 64)
    distributed.setup(device)
    if not distributed.is_main():
        on_warning = progress = None
    inputs = open_sources(model_path, data=data, data_root=data_root, device=device, n=n, on_warning=on_warning,
                          **options)
    config = config.but(bounds=inputs.bounds)
    x, y = inputs.source.tensors()
    torch.manual_seed(seed)
    start = time.perf_counter()
    model = inputs.module("advgrad rank")  # the probe and the budget count a torch module's passes
    steps = {name: iterations_for(model, x[:PROBE], y[:PROBE], name, config, budget=budget, eps_max=top)
             for name in attacks}
    norms = minimal_norms(model, x, y, config, eps_max=top, progress=progress,
                          options={name: {iteration_option(name): s} for name, s in steps.items()})
    table = ranked(norms, budget=budget, iterations=steps)
    record = {"model": inputs.model_meta, "dataset": inputs.dataset_name, "n": len(y), "norm": norm,
              "budget": budget, "eps_max": top, "precision": config.precision,
              "clean_accuracy": float((norms.distances[ENSEMBLE] > 0).double().mean()), "attacks": table,
              "seconds": time.perf_counter() - start,
              "provenance": provenance(seed=seed, model_path=model_path if os.path.isfile(model_path) else None)}
    return RankReport(record, csv_rows(table), norms)


def rank_figure(record: Mapping[str, Any], *, title: str | None = None) -> Figure:
    """The robust-accuracy-vs-ε curves of a rank record's attacks and their ensemble, up to the largest
    distance the ensemble found (AttackBench's clipping)."""
    attacks = record["attacks"]
    best = [v for v in attacks[ENSEMBLE]["values"] if v is not None]
    return plots.rank_curves([(name, a["values"]) for name, a in attacks.items()],
                             max_distance=max(best, default=0.0) * 1.05, norm=NORMS[record["norm"]].symbol,
                             title=title or f"{record['model'].get('name', '')} on {record['dataset']}, "
                                            f"{NORMS[record['norm']].symbol}, {record['budget']} passes per point")
