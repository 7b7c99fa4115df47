"""Robust accuracy: accuracy under several attacks at several ε in one call.

Only the points the model classifies correctly are attacked, with the attack's ``early_stop`` (a fooled
point stops moving: it is done); a point is robust at ε only if it survives every attack and every restart
(the "worst" record).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from advgrad._runtime import model_device, predict, spans
from advgrad.attacks import AttackResult, AutoAttackResult
from advgrad.catalog import ATTACKS
from advgrad.configs import AttackConfig, EvalConfig
from advgrad.evaluate.progress import Progress, Tally

WORST = "worst"  # the record of points that survive every attack


@dataclass
class SweepResult:
    """Records (one per attack and ε, plus "worst" per ε when there are several attacks) and, per record,
    the per-sample robustness mask (True: still classified correctly) it was computed from."""

    records: list[dict[str, Any]]
    robust: dict[tuple[str, float], Tensor]
    correct: Tensor  # (N,) bool, clean predictions


class _Cascade:
    """Collects an ensemble's per-member breakdown (``AutoAttackResult.broken_by``) over the batches of a
    pass: robust accuracy after each member, in cascade order, and the members' seconds."""

    def __init__(self, n: int, device: torch.device) -> None:
        self.broken_by = torch.full((n,), -1, dtype=torch.long, device=device)
        self.stages: tuple[str, ...] = ()
        self.seconds: dict[str, float] = {}

    def __call__(self, idx: Tensor, result: AttackResult) -> None:
        if isinstance(result, AutoAttackResult):
            self.broken_by[idx] = result.broken_by.to(self.broken_by.device)
            self.stages = result.stages
            for stage, seconds in result.seconds.items():
                self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def record(self, correct: Tensor) -> dict[str, Any]:
        """{"cascade": {member: accuracy after it}, "seconds_per_attack": {...}}, or {} for a lone attack.
        A point the batch attacked counts as robust after member k when member k and those before it
        failed (broken_by > k); points never attacked were misclassified clean."""
        if not self.stages:
            return {}
        after = {stage: float((correct & (self.broken_by > k)).float().mean()) for k, stage in enumerate(self.stages)}
        return {"cascade": after, "seconds_per_attack": dict(self.seconds)}


def config_from(config: EvalConfig | None, options: dict[str, Any]) -> EvalConfig:
    """The config to run: the one given (with ``options`` changed), or one built from ``options``."""
    if config is None:
        return EvalConfig(**options)
    return config.but(**options) if options else config


def attack_mask(model: nn.Module, x: Tensor, y: Tensor, candidates: Tensor, eps: float | Tensor,
                attack: AttackConfig, *, batch_size: int, seed: int, tally: Tally | None = None,
                on_result: Callable[[Tensor, AttackResult], None] | None = None) -> Tensor:
    """Success (N,) bool of ``attack`` on the samples where ``candidates`` is True (the others: False), in
    batches of ``batch_size``. ``eps`` is a float or an (N,) tensor of per-sample radii. Random starts come
    from a generator seeded with ``seed``. ``tally`` counts the pass's N samples; ``on_result(indices,
    result)`` receives each batch's whole result (an ensemble's per-member breakdown, say)."""
    tally = tally or Tally(None, 0)
    success = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    if not isinstance(eps, Tensor) and eps == 0:
        tally(len(x))
        return success  # nothing moves at ε = 0
    idx = candidates.nonzero().squeeze(1)
    tally(len(x) - len(idx))  # not attacked: done
    generator = torch.Generator(device=x.device).manual_seed(seed)
    run = ATTACKS.get_entry(attack.method).impl
    for part in spans(len(idx), batch_size):
        b = idx[part]
        e = eps[b] if isinstance(eps, Tensor) else eps
        result = run(model, x[b], y[b], e, attack, generator)
        success[b] = result.success
        if on_result is not None:
            on_result(b, result)
        tally(len(b))
    return success


def sweep(model: nn.Module, x: Tensor, y: Tensor, config: EvalConfig | None = None, *,
          progress: Progress | None = None, **options: Any) -> SweepResult:
    """``robust_accuracy`` plus the per-sample masks behind every record (the sanity report reuses them).
    ``config`` or its fields as keywords; ``progress(done, total)``: one pass of N samples per (ε, attack)."""
    config = config_from(config, options)
    device = model_device(model)
    x, y = x.to(device), y.to(device)
    n = len(y)
    tally = Tally(progress, n * len(config.grid) * len(config.attacks))
    correct = predict(model, x, config.batch_size) == y
    records: list[dict[str, Any]] = []
    robust: dict[tuple[str, float], Tensor] = {}
    for e in config.grid:
        survivors = correct.clone()
        for name in config.attacks:
            attack = config.attack(name)
            start = time.perf_counter()
            cascade = _Cascade(len(y), x.device)
            mask = correct & ~attack_mask(model, x, y, correct, e, attack, batch_size=config.batch_size,
                                          seed=config.seed, tally=tally, on_result=cascade)
            robust[(name, e)] = mask
            survivors &= mask
            records.append({"attack": name, "eps": e, "accuracy": float(mask.float().mean()), "n": n,
                            "seconds": time.perf_counter() - start, "steps": attack.steps,
                            "restarts": attack.restarts if attack.random_start else 1, **cascade.record(correct)})
        if len(config.attacks) > 1:
            robust[(WORST, e)] = survivors
            records.append({"attack": WORST, "eps": e, "accuracy": float(survivors.float().mean()), "n": n,
                            "seconds": sum(r["seconds"] for r in records if r["eps"] == e),
                            "steps": config.steps, "restarts": config.restarts})
    return SweepResult(records, robust, correct)


def robust_accuracy(model: nn.Module, x: Tensor, y: Tensor, config: EvalConfig | None = None, *,
                    progress: Progress | None = None, **options: Any) -> list[dict[str, Any]]:
    """Accuracy of ``model`` on (x, y) under each attack at each ε, in one call (``EvalConfig``: ``eps``,
    ``attacks``, ``steps``, ``restarts``, ``norm``, ``bounds``, ``batch_size``, ``seed``, given whole or
    as keywords).

    Returns one record per (attack, ε): ``{"attack", "eps", "accuracy", "n", "seconds", "steps",
    "restarts"}``, and with several attacks a ``"worst"`` record per ε: the share of points that survive
    every attack and every restart. Only correctly classified points are attacked (with ``early_stop``);
    random starts come from a generator seeded with ``seed``.
    """
    return sweep(model, x, y, config, progress=progress, **options).records
