"""AutoAttack (Croce & Hein, ICML 2020, arXiv 2003.01690): a cascade of parameter-free attacks, each run only
on the points that survived the ones before it; a point is robust only if it survives them all (the
per-sample worst case, not an average).

Versions, as the reference (pyautoattack 0.2.0) defines them:

- ``standard``: APGD-CE (100 iterations, 1 restart) → APGD-T (9 target classes) → FAB-T (9 targets) →
  Square (5,000 queries, p_init 0.8). What RobustBench reports. Under L1 (the reference's L1 setting, from
  Croce & Hein, "Mind the box", ICML 2021, arXiv 2103.01208): APGD-CE with 5 restarts and APGD-T with 5 target
  classes, both over the ε schedule 3ε → 2ε → ε (``use_largereps``), then FAB-T and Square as above.
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

import inspect
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import Tensor, nn

from advgrad import _validate
from advgrad._runtime import check_batch, frozen_eval, logits, model_device
from advgrad.attacks._cascade import schedule
from advgrad.attacks._checks import EpsSpec, check_radius, seed_of
from advgrad.attacks.apgd import apgd, apgd_targeted
from advgrad.attacks.fab import fab
from advgrad.attacks.result import AttackResult
from advgrad.attacks.square import square
from advgrad.catalog import ATTACKS
from advgrad.configs import AttackConfig
from advgrad.losses import margin
from advgrad.norms import NormSpec, get_norm

# version → the members in order, each with the AttackConfig fields the version sets.
VERSIONS: dict[str, tuple[tuple[str, dict[str, Any]], ...]] = {
    "standard": (("apgd-ce", {}), ("apgd-t", {}), ("fab-t", {}), ("square", {})),
    "plus": (("apgd-ce", {"restarts": 5}), ("apgd-dlr", {"restarts": 5}), ("fab", {"restarts": 5}), ("square", {}),
             ("apgd-t", {}), ("fab-t", {})),
    "rand": (("apgd-ce", {"eot": 20}), ("apgd-dlr", {"eot": 20})),
}
# L1's standard version (the reference's _set_version for 'L1'): APGD-CE with 5 restarts and APGD-T with 5 target
# classes, both with the ε schedule 3ε → 2ε → ε (``use_largereps``); FAB-T and Square as for L∞ and L2.
L1_VERSIONS: dict[str, tuple[tuple[str, dict[str, Any]], ...]] = {
    **VERSIONS,
    "standard": (("apgd-ce", {"restarts": 5, "use_largereps": True}), ("apgd-t", {"targets": 5, "use_largereps": True}),
                 ("fab-t", {}), ("square", {})),
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


def members(version: str, attacks: tuple[str, ...] | None = None,
            norm: NormSpec = "inf") -> tuple[tuple[str, dict[str, Any]], ...]:
    """The cascade of ``version`` under ``norm`` (``attacks``: the names of a "custom" one)."""
    if version == "custom":
        if not attacks:
            raise ValueError("version 'custom' needs attacks: a list of names from the catalog")
        names = _validate.names("attacks", attacks, [n for n in ATTACKS if n != "autoattack"])
        return tuple((name, {}) for name in names)
    if attacks is not None:
        raise ValueError(f"attacks apply to version 'custom' only (version {version!r} fixes its own)")
    versions = L1_VERSIONS if get_norm(norm).name == "1" else VERSIONS
    return versions[_validate.one_of("AutoAttack version", version, [*versions, "custom"])]


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


Member = Callable[[nn.Module, Tensor, Tensor, float, torch.Generator], AttackResult]  # (model, x, y, eps, generator)
# Under L1 the members are called by their functions (``_member``): the attack, and the options it fixes.
_L1_CALLS: dict[str, tuple[Callable[..., AttackResult], dict[str, Any]]] = {
    "apgd-ce": (apgd, {"loss": "ce"}), "apgd-dlr": (apgd, {"loss": "dlr"}), "apgd-t": (apgd_targeted, {}),
    "fab": (fab, {}), "fab-t": (fab, {"targeted": True}), "square": (square, {})}


def _member(name: str, options: dict[str, Any]) -> Member:
    """Member ``name`` with ``options`` (AttackConfig fields): through ``catalog.ATTACKS`` and its AttackConfig;
    under L1, by its function with the options it takes as keywords (the catalog does not list L1 for APGD and
    Square, and AttackConfig has no ``use_largereps``), seeded as ``seed_of`` seeds the catalog's."""
    if get_norm(options["norm"]).name != "1" or name not in _L1_CALLS:
        config = AttackConfig.of(name, **options)
        impl = ATTACKS[name].impl
        return lambda model, x, y, eps, gen: impl(model, x, y, eps, config, gen)
    known = {f.name for f in fields(AttackConfig)} | {"use_largereps"}
    for key in options:
        if key not in known or (key == "targeted" and options[key]):
            raise ValueError(f"{key}={options[key]!r} is not an option of the AutoAttack members "
                             f"(allowed: {', '.join(sorted(known - {'method', 'targeted'}))})")
    _validate.flag("use_largereps", options.get("use_largereps", False))
    rest = {key: value for key, value in options.items() if key != "use_largereps"}
    AttackConfig.of(name, **{**rest, "norm": "inf"})  # the other values checked now, as the catalog's path does
    fn, fixed = _L1_CALLS[name]
    takes = inspect.signature(fn).parameters
    kw = {key: value for key, value in options.items() if key in takes and key != "targeted"} | fixed
    return lambda model, x, y, eps, gen: fn(model, x, y, eps, seed=seed_of(gen), **kw)


def autoattack(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec, *, norm: str = "inf",
               version: str = "standard", attacks: tuple[str, ...] | None = None, seed: int = 0,
               bounds: tuple[float, float] = (0.0, 1.0), chunk_size: int | None = None, block: int = BLOCK,
               workers: int | None = None, progress: Callable[[int], None] | None = None,
               **overrides: Any) -> AutoAttackResult:
    """AutoAttack of ``version`` on (x, y) at radius ``eps`` (``norm`` "inf", "2" or "1"): see the module
    docstring. ``block``: points per member call; ``workers``: blocks of a member run at once on the CPU
    (default ``default_workers()``; 1: one after the other; the same results, see the module docstring
    for the bits); ``progress(k)``: called with the points each call handled; ``overrides``: AttackConfig
    fields set on every member (``steps``, ``targets``, ``queries``: a cheaper cascade for experiments;
    AutoAttack proper takes none; under L1 also ``use_largereps``). The model runs in eval mode with its
    parameters' gradients off; x and y are not modified."""
    check_batch(x, y)
    eps_ = check_radius("eps", eps, x, positive=False)
    if isinstance(eps_, Tensor):
        raise ValueError("autoattack takes one radius for every point (a number), not a per-sample tensor")
    plan = members(version, attacks, norm)
    names = [name for name, _ in plan]
    calls = [_member(name, {"norm": norm, "bounds": bounds, "early_stop": True, "chunk_size": chunk_size,
                            **extra, **overrides}) for name, extra in plan]
    _validate.count("block", block)
    workers = default_workers() if workers is None else _validate.count("workers", workers)
    x, y = x.detach(), y.to(x.device)
    z = logits(model, x, batch_size=max(block, 1)).to(x.device)
    correct = z.argmax(1) == y  # (N,) classified correctly at x: the points the cascade attacks
    broken_by = torch.where(correct, len(plan), -1)  # (N,) robust: len(plan) still at the end
    x_adv, z_adv = x.clone(), z.clone()

    def run(k: int, b: Tensor) -> AttackResult:  # member k on the block b (b,), its own generator
        return calls[k](model, x[b], y[b], eps_, torch.Generator().manual_seed(seed))

    def done(k: int, b: Tensor, res: AttackResult) -> None:
        fooled = res.success
        x_adv[b[fooled]], z_adv[b[fooled]] = res.x_adv[fooled], res.logits[fooled].to(z_adv.dtype)
        broken_by[b[fooled]] = k
        if progress is not None:
            progress(len(b))

    stages = len(calls) if eps_ > 0 else 0  # at ε = 0 nothing can move: the clean verdicts
    with frozen_eval(model), _pool(workers) as pool:
        spent = schedule(stages, correct.nonzero().squeeze(1), block, run, done,
                         pool if x.device.type == "cpu" else None, workers)
    accuracy = {"clean": float(correct.float().mean()),
                **robust_after(broken_by, names[:stages], torch.float32)}
    seconds = dict(zip(names, spent))
    return AutoAttackResult(x_adv, broken_by < len(plan), margin(z_adv, y), z_adv, broken_by=broken_by,
                            stages=tuple(names), accuracy=accuracy, seconds=seconds)


def autoattack_entry(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec, config: AttackConfig,
                     generator: torch.Generator | None = None) -> AutoAttackResult:
    """``catalog.ATTACKS`` "autoattack": the standard version with the config's norm, bounds and chunks,
    seeded from the generator (``seed_of``)."""
    if config.targeted:
        raise ValueError("autoattack is untargeted: targeted=True is not allowed")
    device = model_device(model)
    return autoattack(model, x.to(device), y.to(device), eps, norm=config.norm, seed=seed_of(generator),
                      bounds=config.bounds, chunk_size=config.chunk_size)
