"""AutoAttack (Croce & Hein, ICML 2020, arXiv 2003.01690): a cascade of parameter-free attacks, each run only
on the points that survived the ones before it; a point is robust only if it survives them all (the
per-sample worst case, not an average).

Versions, as the reference (pyautoattack 0.2.0) defines them:

- ``standard``: APGD-CE (100 iterations, 1 restart) → APGD-T (9 target classes) → FAB-T (9 targets) →
  Square (5,000 queries, p_init 0.8). What RobustBench reports.
- ``plus``: APGD-CE and APGD-DLR with 5 restarts each → untargeted FAB with 5 restarts → Square → APGD-T
  → FAB-T.
- ``rand``: APGD-CE and APGD-DLR with the gradient averaged over 20 draws (EOT), for randomised models.
- ``custom``: any list of names from ``catalog.ATTACKS``.

Each member draws its random starts from its own generator seeded with ``seed`` for every block of points,
as the reference reseeds every call, and runs in advgrad's fast mode: chunked passes on the CPU and early
stop (a fooled point is done), which by construction changes no member's verdict on a point.

Speed without changing a result: the blocks are fixed (``block`` points of a member's list of survivors, 250
as the reference's batch), so what a member does to a point depends only on its block, never on the machine.
Blocks are independent (each has its own generator and its own forward passes), so on the CPU ``workers``
threads run them concurrently, each with its share of torch's intra-op threads (on 2 cores, two blocks on
one thread each beat one block on two threads: a small batch keeps the second thread mostly idle). A member
may start as soon as its first blocks are known, before the member before it has finished (``_cascade``:
with three blocks a member, the third no longer leaves a worker idle). The model is put in frozen eval mode
once, outside the workers, so no thread flips a train/eval flag under another; torch's thread count is
restored afterwards, also when a member raises. The clean logits are computed once. A block's result is the
serial cascade's bit for bit when it runs on as many intra-op threads (a worker has
torch.get_num_threads() // workers; a member whose points fit in one block runs alone, with all of them):
torch's CPU kernels may round differently with another thread count, which can move a last bit but not,
beyond rounding at a decision boundary, a verdict. ``seconds`` shares the wall time among the members: each
interval goes in equal parts to the blocks running in it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from advgrad import _validate
from advgrad._runtime import check_batch, frozen_eval, logits
from advgrad.attacks._calls import run_attack
from advgrad.attacks._cascade import schedule
from advgrad.attacks._checks import EpsSpec, check_radius
from advgrad.attacks.result import AttackResult
from advgrad.catalog import ATTACKS
from advgrad.configs import AttackConfig
from advgrad.losses import margin

# version → the members in order, each with the AttackConfig fields the version sets.
VERSIONS: dict[str, tuple[tuple[str, dict[str, Any]], ...]] = {
    "standard": (("apgd-ce", {}), ("apgd-t", {}), ("fab-t", {}), ("square", {})),
    "plus": (("apgd-ce", {"restarts": 5}), ("apgd-dlr", {"restarts": 5}), ("fab", {"restarts": 5}), ("square", {}),
             ("apgd-t", {}), ("fab-t", {})),
    "rand": (("apgd-ce", {"eot": 20}), ("apgd-dlr", {"eot": 20})),
}
BLOCK = 250  # points per call of a member, as the reference's default batch (Square's draws follow the block)


@dataclass(frozen=True)
class AutoAttackResult(AttackResult):
    """``AttackResult`` of the whole cascade (``success``: broken by some member, or misclassified at x) plus
    ``broken_by`` (N,): the index into ``stages`` of the member that broke the point, −1 where the model is
    wrong at x already, ``len(stages)`` where the point survived all; ``stages``: the members run;
    ``accuracy``: robust accuracy after each member (a dict in cascade order, "clean" first); ``seconds``
    per member."""

    broken_by: Tensor = field(default_factory=lambda: torch.empty(0))
    stages: tuple[str, ...] = ()
    accuracy: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def robust_after(broken_by: Tensor, stages: Sequence[str], dtype: torch.dtype = torch.float64) -> dict[str, float]:
    """Robust accuracy after each member of a cascade, in cascade order, from the per-sample ``broken_by``
    (N,) of ``AutoAttackResult``: a point is still robust after member k when neither it nor a member before
    it broke the point, i.e. broken_by > k (−1: misclassified at x, ``len(stages)``: survived all). The
    share is a mean in ``dtype`` (float32 or float64, as the caller's other accuracies)."""
    return {stage: float((broken_by > k).to(dtype).mean()) for k, stage in enumerate(stages)}


def members(version: str, attacks: tuple[str, ...] | None = None) -> tuple[tuple[str, dict[str, Any]], ...]:
    """The cascade of ``version`` (``attacks``: the names of a "custom" one)."""
    if version == "custom":
        if not attacks:
            raise ValueError("version 'custom' needs attacks: a list of names from the catalog")
        names = _validate.names("attacks", attacks, [n for n in ATTACKS if n != "autoattack"])
        return tuple((name, {}) for name in names)
    if attacks is not None:
        raise ValueError(f"attacks apply to version 'custom' only (version {version!r} fixes its own)")
    return VERSIONS[_validate.one_of("AutoAttack version", version, [*VERSIONS, "custom"])]


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
    pool = ThreadPoolExecutor(workers, thread_name_prefix="autoattack",
                              initializer=torch.set_num_threads, initargs=(max(1, threads // workers),))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(threads)  # a worker's set_num_threads also changes the default of new threads


@dataclass(frozen=True)
class Budget:
    """A cheaper cascade of the same members, for experiments (AutoAttack proper uses none): iterations of
    APGD and FAB (``steps``), target classes of APGD-T and FAB-T (``targets``), Square's ``queries``, the
    "rand" version's gradient draws (``eot``); None keeps the version's setting. Each applies to the members
    that take it."""

    steps: int | None = None
    targets: int | None = None
    queries: int | None = None
    eot: int | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "targets", "queries", "eot"):
            _validate.optional_count(name, getattr(self, name))

    def options(self) -> dict[str, int]:
        return {k: v for k in ("steps", "targets", "queries", "eot") if (v := getattr(self, k)) is not None}


def autoattack(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec, *, norm: str = "inf",
               version: str = "standard", attacks: tuple[str, ...] | None = None, seed: int = 0,
               bounds: tuple[float, float] = (0.0, 1.0), chunk_size: int | None = None, block: int = BLOCK,
               workers: int | None = None, progress: Callable[[int], None] | None = None,
               budget: Budget | None = None) -> AutoAttackResult:
    """AutoAttack of ``version`` on (x, y) at radius ``eps`` (``norm`` "inf" or "2"): see the module
    docstring. ``block``: points per member call; ``workers``: blocks of a member run at once on the CPU
    (default ``default_workers()``; 1: one after the other; the same results, see the module docstring
    for the bits); ``progress(k)``: called with the points each call handled; ``budget``: a cheaper
    cascade for experiments (AutoAttack proper takes none). The model runs in eval mode with its
    parameters' gradients off; x and y are not modified."""
    check_batch(x, y)
    eps_ = check_radius("eps", eps, x, positive=False)
    if isinstance(eps_, Tensor):
        raise ValueError("autoattack takes one radius for every point (a number), not a per-sample tensor")
    plan = members(version, attacks)
    if budget is not None and not isinstance(budget, Budget):
        raise ValueError(f"budget must be an autoattack.Budget, got {type(budget).__name__}")
    cheaper = budget.options() if budget is not None else {}
    configs = [AttackConfig(name, norm, {**extra, **{k: v for k, v in cheaper.items() if k in ATTACKS[name].options}})
               for name, extra in plan]
    _validate.count("block", block)
    workers = default_workers() if workers is None else _validate.count("workers", workers)
    x, y = x.detach(), y.to(x.device)
    z = logits(model, x, batch_size=max(block, 1)).to(x.device)
    correct = z.argmax(1) == y  # (N,) classified correctly at x: the points the cascade attacks
    broken_by = torch.where(correct, len(plan), -1)  # (N,) robust: len(plan) still at the end
    x_adv, z_adv = x.clone(), z.clone()

    def run(k: int, b: Tensor) -> AttackResult:  # member k on the block b (b,), reseeded as the reference
        return run_attack(model, x[b], y[b], eps_, configs[k], seed=seed, bounds=bounds, early_stop=True,
                          chunk_size=chunk_size)

    def done(k: int, b: Tensor, res: AttackResult) -> None:
        fooled = res.success
        x_adv[b[fooled]], z_adv[b[fooled]] = res.x_adv[fooled], res.logits[fooled].to(z_adv.dtype)
        broken_by[b[fooled]] = k
        if progress is not None:
            progress(len(b))

    stages = len(configs) if eps_ > 0 else 0  # at ε = 0 nothing can move: the clean verdicts
    with frozen_eval(model), _pool(workers) as pool:
        spent = schedule(stages, correct.nonzero().squeeze(1), block, run, done,
                         pool if x.device.type == "cpu" else None, workers)
    accuracy = {"clean": float(correct.float().mean()),
                **robust_after(broken_by, [c.method for c in configs[:stages]], torch.float32)}
    seconds = {c.method: t for c, t in zip(configs, spent)}
    return AutoAttackResult(x_adv, broken_by < len(plan), margin(z_adv, y), z_adv, broken_by=broken_by,
                            stages=tuple(c.method for c in configs), accuracy=accuracy, seconds=seconds)
