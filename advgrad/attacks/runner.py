"""The attack runner: one or more attacks (a cascade) over N points, block by block — what ``autoattack``,
``advgrad eval`` and ``advgrad attack`` all run, so that each runs the same batches.

Stage k of a cascade attacks the candidates that stages 0 … k−1 did not break, in index order, in blocks of
``block`` consecutive points of that list (``BLOCK`` = 250, the reference AutoAttack's batch). A block is one
call of the stage's attack function (``run_attack``), given the block's own randomness: attacks that take a
generator get one seeded by (seed, block index) (``distributed.stream_seed``); attacks that take a seed (the
AutoAttack members, which reseed every call as the reference does) get the seed itself. So what a stage does
to a point depends only on the points of its block, never on the machine, the thread or the process.

Where the blocks run: on the CPU, ``workers`` threads (``_cascade.pipeline``: stage k+1 starts on its first
known blocks before stage k has finished), each with its share of torch's intra-op threads; a stage whose
points fit in one block runs alone in the caller's thread with all of them. Under torch.distributed the
stages run one after the other, process r taking blocks j ≡ r (mod world size), and every block's result
travels to every process before the next stage, so every process ends with the one-process outcome.

What each stage costs: the model's forward and backward sample-passes (``advgrad.models.counting``), counted
by a ``PassCounter`` around the model per stage — so that stages running at once in the pipeline's threads
are told apart — and summed over torch.distributed's processes; a model that only answers queries
(``QueryModel``) is charged its queries (the rows it answers) as forward passes. Only the attack calls are
counted (nothing the caller runs before or after, such as its clean predictions), and a block read back from
a ``Store`` costs nothing; ``run`` also charges its total to the tallies open around it
(``counting.spending``). The counter returns the model's outputs as they are: no result changes.

A ``Store`` keeps each finished block (``advgrad eval --resume``): a block found there is not run again, and
the outcome is the same, bit for bit, as an uninterrupted run's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from advgrad import _validate, distributed
from advgrad._runtime import frozen_eval, model_device
from advgrad.attacks._calls import run_attack
from advgrad.attacks._cascade import pipeline
from advgrad.attacks.result import AttackResult
from advgrad.catalog import ATTACKS, resolve
from advgrad.configs import AttackConfig
from advgrad.models.counting import PassCounter, Passes, QueryCounter, charge, summed
from advgrad.models.query import QueryModel

BLOCK = 250  # points per attack call: the reference AutoAttack's batch; the unit of seeds, work and resume

Progress = Callable[[int, int], None]  # progress(points done, points in all)
Status = Callable[[str], None]          # status("apgd-t 2/4, robust so far 71.3 %"): where a run stands


class Store(Protocol):
    """Where finished blocks are kept for a resumed run: ``get`` the result of block ``key`` (stage, block)
    saved earlier, or None; ``put`` one just finished (called in the caller's thread, in completion order)."""

    def get(self, key: tuple[int, int], points: Tensor) -> AttackResult | None: ...

    def put(self, key: tuple[int, int], points: Tensor, result: AttackResult) -> None: ...


class Journal(Protocol):
    """A run's stores, one per pass of the runner (an evaluation makes many: per attack and ε, per round of
    the bisection, per sanity check), named by the caller."""

    def store(self, name: str) -> Store: ...


@dataclass
class Outcome:
    """The cascade's answer per point: ``broken_by`` (N,) the stage that broke it (−1: not a candidate,
    ``len(stages)``: no stage did); ``x_adv`` (N, ...) and ``logits`` (N, K) of the stage that broke it, or of
    the last stage for a candidate none broke (x and None-filled rows elsewhere: ``attacked`` says which rows
    hold a result); ``distance`` and ``queries`` (N,) where the attacks report them (queries summed over
    the stages); ``seconds`` per stage (shares of the wall time: each interval in equal parts to the blocks
    running in it); ``passes`` per stage: the sample-passes its attack calls spent, summed over processes."""

    stages: tuple[AttackConfig, ...]
    broken_by: Tensor
    x_adv: Tensor
    logits: Tensor | None
    attacked: Tensor
    distance: Tensor | None
    queries: Tensor | None
    seconds: list[float]
    passes: list[Passes] = field(default_factory=list)

    @property
    def success(self) -> Tensor:
        """(N,) broken by some stage."""
        return (self.broken_by >= 0) & (self.broken_by < len(self.stages))


def stages(config: AttackConfig) -> list[AttackConfig]:
    """The stages ``config`` runs as: an ensemble's members in cascade order (its catalog entry names the
    function that lists them), else the attack alone."""
    entry = ATTACKS[config.method]
    if entry.members is None:
        return [config]
    return list(resolve(entry.members)(config))


def default_workers() -> int:
    """Two workers where torch may use two threads or more, else one: the blocks share torch's thread budget
    (``torch.get_num_threads()``, e.g. set by OMP_NUM_THREADS), so a single-thread budget runs serially."""
    return min(2, torch.get_num_threads())


@contextmanager
def _pool(workers: int) -> Iterator[ThreadPoolExecutor | None]:
    """``workers`` threads (None for one), each with torch.get_num_threads() // workers intra-op threads
    (at least 1); torch's thread count is restored on exit, also when the body raises."""
    if workers == 1:
        yield None
        return
    threads = torch.get_num_threads()
    pool = ThreadPoolExecutor(workers, thread_name_prefix="advgrad-block",
                              initializer=torch.set_num_threads, initargs=(max(1, threads // workers),))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(threads)  # a worker's set_num_threads also changes the default of new threads


class _Meter:
    """Each stage's passes: a counter per stage (``models[k]``, what the stage's blocks call): a
    ``PassCounter`` around an ``nn.Module``, a ``QueryCounter`` (its rows as forward passes) around a
    ``QueryModel``."""

    def __init__(self, model: nn.Module | QueryModel, stages: int) -> None:
        self.counters = [QueryCounter(model) if isinstance(model, QueryModel) else PassCounter(model)
                         for _ in range(stages)]
        for counter in self.counters:  # the blocks run inside the frozen (eval-mode) session of ``run``: the
            if isinstance(counter, PassCounter):  # wrappers say so, or an attack's own frozen_eval would
                counter.training = False  # restore train mode on exit, flipping the shared model under a worker
        self.models = [c.model if isinstance(c, QueryCounter) else c for c in self.counters]

    def spent(self) -> list[Passes]:
        """Per stage, summed over processes (a collective call every process makes), charged to the tallies."""
        per_stage = [summed(c.passes) for c in self.counters]
        charge(sum(per_stage, Passes()))
        return per_stage


class _Collector:
    """Applies each finished block's result to the outcome's tensors (in the caller's thread)."""

    def __init__(self, x: Tensor, stages: int, candidates: Tensor) -> None:
        self.stages = stages
        self.broken_by = torch.where(candidates, stages, -1)      # (N,) on the CPU
        self.x_adv = x.clone()
        self.attacked = torch.zeros(len(x), dtype=torch.bool)
        self.logits: Tensor | None = None
        self.distance: Tensor | None = None
        self.queries: Tensor | None = None

    def __call__(self, k: int, points: Tensor, result: AttackResult) -> None:
        fooled = result.success.cpu()
        rows = torch.ones_like(fooled) if k == self.stages - 1 else fooled  # the last stage keeps every row
        at = points[rows]
        self.broken_by[points[fooled]] = k
        self.x_adv[at] = result.x_adv[rows.to(result.x_adv.device)].to(self.x_adv.device)
        self.attacked[at] = True
        z = result.logits.detach().cpu()
        if self.logits is None:
            self.logits = z.new_zeros((len(self.x_adv), z.shape[1]))
        self.logits[at] = z[rows]
        if result.distance is not None:
            if self.distance is None:
                self.distance = torch.full((len(self.x_adv),), float("inf"), dtype=torch.float64)
            self.distance[at] = result.distance.detach().cpu().to(torch.float64)[rows]
        if result.queries is not None:
            if self.queries is None:
                self.queries = torch.zeros(len(self.x_adv), dtype=torch.int64)
            self.queries[points] += result.queries.detach().cpu().to(torch.int64)


def _device(model: nn.Module | QueryModel) -> torch.device:
    """Where a block's points go: the module's device (a model that only answers queries takes them on the
    CPU and moves them itself)."""
    return torch.device("cpu") if isinstance(model, QueryModel) else model_device(model)


def _block_call(models: Sequence[nn.Module | QueryModel], x: Tensor, y: Tensor, eps: float | Tensor | None,
                stages: Sequence[AttackConfig], seed: int,
                settings: dict[str, Any]) -> Callable[[int, int, Tensor], AttackResult]:
    """(stage k, block j, points (b,)) → the stage's attack on those points (by ``models[k]``, the stage's
    counted model), moved to the model's device."""
    device = _device(models[0])

    def call(k: int, j: int, points: Tensor) -> AttackResult:
        e = eps[points].to(device) if isinstance(eps, Tensor) else eps
        generator = torch.Generator(device=device).manual_seed(distributed.stream_seed(seed, j))
        return run_attack(models[k], x[points].to(device), y[points].to(device), e, stages[k], generator=generator,
                          seed=seed, **settings)

    return call


def run(model: nn.Module | QueryModel, x: Tensor, y: Tensor, eps: float | Tensor | None,
        stages: Sequence[AttackConfig], *, candidates: Tensor | None = None, seed: int = 0,
        bounds: tuple[float, float] = (0.0, 1.0), block: int = BLOCK, workers: int | None = None,
        early_stop: bool = True, chunk_size: int | None = None, store: Store | None = None,
        progress: Progress | None = None, status: Status | None = None) -> Outcome:
    """Run the cascade ``stages`` (one ``AttackConfig`` each; one stage: a single attack) on the points where
    ``candidates`` (N,) is True (default all) at radius ``eps`` (a float or (N,) radii; None for minimal-norm
    attacks; at ε = 0 nothing runs and every point keeps x), as the module docstring says. ``bounds``,
    ``early_stop`` and ``chunk_size`` go to every attack that takes them (unless its config sets them);
    ``progress(done, total)`` counts candidates whose fate is sealed (broken, or past the last stage), and
    before it ``status(text)`` names the stage and block just done and the candidates still robust. x and
    y stay where they are (the CPU, typically): blocks move to the model's device one at a time. Under
    torch.distributed every process must call it."""
    _validate.count("block", block)
    workers = default_workers() if workers is None else _validate.count("workers", workers)
    n = len(x)
    chosen = torch.ones(n, dtype=torch.bool) if candidates is None else candidates.detach().to("cpu", torch.bool)
    collect = _Collector(x.detach(), len(stages), chosen)
    meter = _Meter(model, len(stages))
    call = _block_call(meter.models, x.detach(), y, eps, stages, seed,
                       {"bounds": bounds, "early_stop": early_stop, "chunk_size": chunk_size})
    total, done_points = int(chosen.sum()), [0]

    loaded: set[tuple[int, int]] = set()  # blocks read from the store: not written again

    def done(k: int, j: int, points: Tensor, result: AttackResult) -> None:
        if store is not None and (k, j) not in loaded:
            store.put((k, j), points, result)
        collect(k, points, result)
        if status is not None:
            standing = int((collect.broken_by == len(stages)).sum())
            where = f"{stages[k].method}" + (f" ({k + 1}/{len(stages)})" if len(stages) > 1 else "")
            status(f"{where} block {j + 1}, robust so far {standing / max(n, 1):.1%}")
        if progress is not None:
            done_points[0] += len(points) if k == len(stages) - 1 else int(result.success.sum())
            progress(done_points[0], total)

    def attack(k: int, j: int, points: Tensor) -> AttackResult:
        saved = store.get((k, j), points) if store is not None else None
        if saved is None:
            return call(k, j, points)
        loaded.add((k, j))
        return saved

    first = chosen.nonzero().squeeze(1)
    session = model.session() if isinstance(model, QueryModel) else frozen_eval(model)
    if isinstance(eps, (int, float)) and eps == 0:  # nothing can move: every candidate keeps x and its verdict
        return Outcome(tuple(stages), collect.broken_by, collect.x_adv, None, collect.attacked, None, None,
                       [0.0] * len(stages), [Passes()] * len(stages))
    with session:
        if distributed.world_size() > 1:
            seconds = _stage_by_stage(len(stages), first, block, attack, done)
        else:
            on_cpu = _device(model).type == "cpu"
            with _pool(workers if on_cpu else 1) as pool:
                seconds = pipeline(len(stages), first, block, attack, done, pool, workers)
    return Outcome(tuple(stages), collect.broken_by, collect.x_adv, collect.logits, collect.attacked,
                   collect.distance, collect.queries, seconds, meter.spent())


def _stage_by_stage(stages: int, first: Tensor, block: int, attack: Callable[[int, int, Tensor], AttackResult],
                    done: Callable[[int, int, Tensor, AttackResult], None]) -> list[float]:
    """Under torch.distributed: each stage's blocks shared out (block j to process j mod W), every block's
    result gathered on every process, then the next stage on the survivors."""
    seconds = [0.0] * stages
    survivors = first
    for k in range(stages):
        start = time.perf_counter()
        blocks = [survivors[i:i + block] for i in range(0, len(survivors), block)]
        mine = {j: _to_cpu(attack(k, j, blocks[j])) for j in distributed.owned(len(blocks))}
        results: dict[int, AttackResult] = {}
        for part in distributed.gather_objects(mine):
            results.update(part)
        kept = []
        for j, points in enumerate(blocks):
            done(k, j, points, results[j])
            kept.append(points[~results[j].success.cpu()])
        survivors = torch.cat(kept) if kept else survivors[:0]
        seconds[k] = time.perf_counter() - start
    return seconds


def _to_cpu(result: AttackResult) -> AttackResult:
    fields = {name: getattr(result, name) for name in ("x_adv", "success", "loss", "logits", "distance", "queries")}
    return AttackResult(**{k: v.detach().cpu() if isinstance(v, Tensor) else v for k, v in fields.items()})
