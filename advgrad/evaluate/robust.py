"""Robust accuracy: accuracy under several attacks at several ε in one call.

Only the points the model classifies correctly are attacked, with the attack's ``early_stop`` (a fooled
point stops moving: it is done); a point is robust at ε only if it survives every attack and every restart
(the "worst" record).

Random starts are drawn per block of ``BLOCK`` (256) consecutive samples, from a generator seeded by
(seed, block index): the one scheme, in one process as under torch.distributed, where the blocks are the
unit of work shared between processes (``attack_blocks``). So the per-sample results do not depend on the
number of processes, nor the random starts on the batch size.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from advgrad import distributed
from advgrad._runtime import model_device, predict, spans
from advgrad.attacks import AttackResult, AutoAttackResult, run_attack
from advgrad.attacks.autoattack import robust_after
from advgrad.configs import AttackConfig, EvalConfig
from advgrad.distributed import stream_seed
from advgrad.evaluate.progress import Progress, Tally

WORST = "worst"  # the record of points that survive every attack
BLOCK = 256  # samples per block: the unit of random starts and of the work shared between processes


@dataclass
class SweepResult:
    """Records (one per attack and ε, plus "worst" per ε when there are several attacks) and, per record,
    the per-sample robustness mask (True: still classified correctly) it was computed from."""

    records: list[dict[str, Any]]
    robust: dict[tuple[str, float], Tensor]
    correct: Tensor  # (N,) bool, clean predictions


class Cascade:
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

    def shared(self) -> Cascade:
        """Every process's batches in one breakdown (a collective call under torch.distributed; identity in
        one process): ``broken_by`` assembled from the blocks' owners, the members' seconds summed."""
        if distributed.world_size() == 1:
            return self
        self.broken_by = distributed.share(self.broken_by, BLOCK)
        parts = distributed.gather_objects((self.stages, self.seconds))
        self.stages = next((stages for stages, _ in parts if stages), ())
        self.seconds = {s: sum(seconds.get(s, 0.0) for _, seconds in parts) for s in self.stages}
        return self

    def record(self) -> dict[str, Any]:
        """{"cascade": {member: accuracy after it}, "seconds_per_attack": {...}}, or {} for a lone attack
        (``robust_after``; points never attacked keep broken_by −1: they were misclassified clean). float32
        means, as the sweep's other accuracies."""
        if not self.stages:
            return {}
        after = robust_after(self.broken_by, self.stages, torch.float32)
        return {"cascade": after, "seconds_per_attack": dict(self.seconds)}


def config_from(config: EvalConfig | None, options: dict[str, Any]) -> EvalConfig:
    """The config to run: the one given (with ``options`` changed), or one built from ``options``."""
    if config is None:
        return EvalConfig(**options)
    return config.but(**options) if options else config


def block_generator(seed: int, block: int, device: torch.device) -> torch.Generator:
    """The generator of block ``block``'s random starts: seeded by (seed, block) alone (``stream_seed``), so
    a sample's starts depend neither on the batch size nor on the number of processes."""
    return torch.Generator(device=device).manual_seed(stream_seed(seed, block))


OnResult = Callable[[Tensor, AttackResult], None]


def attack_blocks(model: nn.Module, x: Tensor, y: Tensor, candidates: Tensor, eps: float | Tensor,
                  attack: AttackConfig, *, batch_size: int, seed: int, bounds: tuple[float, float] = (0.0, 1.0),
                  tally: Tally | None = None,
                  examples: bool = False, on_result: OnResult | None = None) -> tuple[Tensor, Tensor | None]:
    """(success (N,) bool on the model's device, the examples (N, ...) on x's device or None) of ``attack``
    on the samples where ``candidates`` is True; the others: no success, x itself.

    The N samples are cut into blocks of ``BLOCK`` consecutive indices. Block k's candidates are attacked
    in batches of at most ``batch_size`` (moved to the model's device one at a time) with random starts
    from ``block_generator(seed, k)``; under torch.distributed, process k mod W attacks block k and every
    process then holds all the results (``distributed.share``). Each block sees the same inputs, shapes
    and generator whatever the number of processes, so the result is the same bit for bit with 1, 2 or 3
    processes on one machine. A collective call under torch.distributed: every process must make it.
    ``tally`` counts the pass's N samples (this process's blocks ×W, then the rest at the end);
    ``on_result(indices, result)`` receives each of this process's batches whole."""
    tally = tally or Tally(None, 0)
    device = model_device(model)
    n, world = len(x), distributed.world_size()
    success = torch.zeros(n, dtype=torch.bool, device=device)
    x_adv = x.detach().clone() if examples else None
    if not isinstance(eps, Tensor) and eps == 0:
        tally(n)
        return success, x_adv  # nothing moves at ε = 0
    chosen = candidates.detach().to("cpu", torch.bool)  # (N,) index arithmetic on the CPU
    counted = 0
    for k in distributed.owned(-(-n // BLOCK)):
        rows = slice(k * BLOCK, min(n, (k + 1) * BLOCK))
        idx = chosen[rows].nonzero().squeeze(1) + rows.start  # (n_k,) this block's candidates
        counted += _count(tally, (rows.stop - rows.start - len(idx)) * world, n - counted)
        generator = block_generator(seed, k, device) if len(idx) else None
        for part in spans(len(idx), batch_size):
            b = idx[part]
            bx = b.to(x.device)
            e = eps[b.to(eps.device)] if isinstance(eps, Tensor) else eps
            result = run_attack(model, x[bx].to(device), y[bx].to(device), e, attack, generator=generator,
                                seed=stream_seed(seed, k), bounds=bounds)
            success[b.to(device)] = result.success
            if x_adv is not None:
                x_adv[bx] = result.x_adv.to(x.device)
            if on_result is not None:
                on_result(b.to(device), result)
            counted += _count(tally, len(b) * world, n - counted)
    success = distributed.share(success, BLOCK)
    x_adv = distributed.share(x_adv, BLOCK) if x_adv is not None else None
    tally(n - counted)
    return success, x_adv


def _count(tally: Tally, k: int, left: int) -> int:
    k = min(k, left)
    tally(k)
    return k


def attack_mask(model: nn.Module, x: Tensor, y: Tensor, candidates: Tensor, eps: float | Tensor,
                attack: AttackConfig, *, batch_size: int, seed: int, bounds: tuple[float, float] = (0.0, 1.0),
                tally: Tally | None = None, on_result: OnResult | None = None) -> Tensor:
    """Success (N,) bool, on the model's device, of ``attack`` on the samples where ``candidates`` is True
    (the others: False). ``eps`` is a float or an (N,) tensor of per-sample radii. Random starts: one
    generator per block of ``BLOCK`` samples, seeded by (``seed``, block); shared out between processes
    under torch.distributed (see ``attack_blocks``). ``tally`` counts the pass's N samples;
    ``on_result(indices, result)`` receives each batch's whole result (an ensemble's per-member breakdown,
    say; under torch.distributed only this process's batches)."""
    success, _ = attack_blocks(model, x, y, candidates, eps, attack, batch_size=batch_size, seed=seed,
                               bounds=bounds, tally=tally, on_result=on_result)
    return success


def sweep(model: nn.Module, x: Tensor, y: Tensor, config: EvalConfig | None = None, *,
          progress: Progress | None = None, **options: Any) -> SweepResult:
    """``robust_accuracy`` plus the per-sample masks behind every record (the sanity report reuses them).
    ``config`` or its fields as keywords; ``progress(done, total)``: one pass of N samples per (ε, attack)."""
    config = config_from(config, options)
    device = model_device(model)
    n = len(y)
    tally = Tally(progress, n * len(config.grid) * len(config.attacks))
    # x stays where it is (the CPU, typically): batches move to the model's device one at a time.
    correct = (predict(model, x, config.batch_size) == y.to(x.device)).to(device)  # (N,) on every process
    records: list[dict[str, Any]] = []
    robust: dict[tuple[str, float], Tensor] = {}
    for e in config.grid:
        survivors = correct.clone()
        for name in config.attacks:
            attack = config.attack(name)
            start = time.perf_counter()
            cascade = Cascade(len(y), device)
            mask = correct & ~attack_mask(model, x, y, correct, e, attack, batch_size=config.batch_size,
                                          seed=config.seed, bounds=config.bounds, tally=tally, on_result=cascade)
            cascade.shared()
            robust[(name, e)] = mask
            survivors &= mask
            records.append({"attack": name, "eps": e, "accuracy": float(mask.float().mean()), "n": n,
                            "seconds": time.perf_counter() - start, "steps": attack.get("steps"),
                            "restarts": attack.get("restarts") if attack.get("random_start") is not False else 1,
                            **cascade.record()})
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
    random starts come from one generator per block of ``BLOCK`` samples, seeded by (``seed``, block).
    Under torch.distributed (``advgrad.distributed.setup``) every process must call it: the blocks are
    shared out and every process returns the same records.
    """
    return sweep(model, x, y, config, progress=progress, **options).records
