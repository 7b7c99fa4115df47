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

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from advgrad import _validate
from advgrad._runtime import check_batch, logits
from advgrad.attacks import runner
from advgrad.attacks._checks import EpsSpec, check_radius
from advgrad.attacks.result import AttackResult
from advgrad.attacks.runner import BLOCK, Progress
from advgrad.catalog import ATTACKS, norm_name
from advgrad.configs import AttackConfig
from advgrad.losses import margin

# version → the members in order, each with the AttackConfig fields the version sets.
VERSIONS: dict[str, tuple[tuple[str, dict[str, Any]], ...]] = {
    "standard": (("apgd-ce", {}), ("apgd-t", {}), ("fab-t", {}), ("square", {})),
    "plus": (("apgd-ce", {"restarts": 5}), ("apgd-dlr", {"restarts": 5}), ("fab", {"restarts": 5}), ("square", {}),
             ("apgd-t", {}), ("fab-t", {})),
    "rand": (("apgd-ce", {"eot": 20}), ("apgd-dlr", {"eot": 20})),
}
# L1's standard version (the reference's _set_version under 'L1'): APGD-CE with 5 restarts and APGD-T with 5
# target classes, both with the radius schedule 3ε → 2ε → ε (``use_largereps``); FAB-T and Square as above.
L1_VERSIONS: dict[str, tuple[tuple[str, dict[str, Any]], ...]] = {
    **VERSIONS,
    "standard": (("apgd-ce", {"restarts": 5, "use_largereps": True}),
                 ("apgd-t", {"targets": 5, "use_largereps": True}), ("fab-t", {}), ("square", {})),
}


@dataclass(frozen=True)
class AutoAttackResult(AttackResult):
    """``AttackResult`` of the whole cascade (``success``: broken by some member, or misclassified at x) plus
    ``broken_by`` (N,): the index into ``stages`` of the member that broke the point, −1 where the model is
    wrong at x already, ``len(stages)`` where the point survived all; ``stages``: the members run;
    ``accuracy``: robust accuracy after each member (a dict in cascade order, "clean" first); ``seconds``
    per member.

    Parameters
    ----------
    x_adv, success, loss, logits, distance, queries
        As in ``AttackResult``.
    broken_by, stages, accuracy, seconds
        As above.

    Examples
    --------
    >>> import torch
    >>> from advgrad import autoattack
    >>> from advgrad.attacks.autoattack import Budget
    >>> _ = torch.manual_seed(0)  # the model's initial weights
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 5))
    >>> x = torch.rand(8, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    >>> result = autoattack(model, x, model(x).argmax(1), 0.1, budget=Budget(steps=5, targets=2, queries=20))
    >>> result.stages, result.broken_by.shape
    (('apgd-ce', 'apgd-t', 'fab-t', 'square'), torch.Size([8]))
    """

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
            norm: str = "inf") -> tuple[tuple[str, dict[str, Any]], ...]:
    """The cascade of ``version`` under ``norm`` (``attacks``: the names of a "custom" one)."""
    if version == "custom":
        if not attacks:
            raise ValueError("version 'custom' needs attacks: a list of names from the catalog")
        names = _validate.names("attacks", attacks, [n for n, e in ATTACKS.items() if e.kind != "ensemble"])
        return tuple((name, {}) for name in names)
    if attacks is not None:
        raise ValueError(f"attacks apply to version 'custom' only (version {version!r} fixes its own)")
    versions = L1_VERSIONS if norm == "1" else VERSIONS
    return versions[_validate.one_of("AutoAttack version", version, [*versions, "custom"])]


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
               workers: int | None = None, progress: Progress | None = None,
               budget: Budget | None = None) -> AutoAttackResult:
    """AutoAttack of ``version`` on (x, y) at radius ``eps``: each member on the points the members before it
    left standing, in blocks of ``block`` (see the module docstring).

    Parameters
    ----------
    model, x, y : as ``pgd``
    eps : float
        One radius for every point.
    norm : {"inf", "2", "1"}
        Under "1" the standard version is the reference's L1 one (``L1_VERSIONS``).
    version : {"standard", "plus", "rand", "custom"}
        The reference's versions; "custom" runs ``attacks`` (names from ``catalog.ATTACKS``) in order.
    seed : int
        Every member call reseeds its own generator with it, as the reference reseeds torch's.
    bounds : (float, float)
    chunk_size : int, optional
        Samples per forward pass inside a member (speed and memory only).
    block : int
        Points per member call (the reference's batch, 250).
    workers : int, optional
        Blocks run at once on the CPU (default ``runner.default_workers()``); the same results whatever it is.
    progress : callable, optional
        ``progress(done, total)``: points whose verdict is sealed.
    budget : Budget, optional
        A cheaper cascade for experiments; AutoAttack proper takes none.

    Returns
    -------
    AutoAttackResult
        ``success`` per point (broken by a member, or misclassified at x), ``x_adv`` (x where robust), the
        member that broke each point, robust accuracy after each member, seconds per member.

    Examples
    --------
    >>> import torch
    >>> from advgrad import autoattack
    >>> from advgrad.attacks.autoattack import Budget
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 5))
    >>> x, y = torch.rand(8, 1, 6, 6), torch.randint(0, 5, (8,))
    >>> result = autoattack(model, x, y, 0.1, budget=Budget(steps=5, targets=2, queries=20))
    >>> list(result.accuracy)
    ['clean', 'apgd-ce', 'apgd-t', 'fab-t', 'square']

    References
    ----------
    Croce, Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free
    attacks", ICML 2020, arXiv 2003.01690.
    """
    check_batch(x, y)
    eps_ = check_radius("eps", eps, x, positive=False)
    if isinstance(eps_, Tensor):
        raise ValueError("autoattack takes one radius for every point (a number), not a per-sample tensor")
    configs = member_configs(norm, version, attacks, budget)
    return run_cascade(model, x, y, eps_, configs, seed=seed, bounds=bounds, chunk_size=chunk_size, block=block,
                       workers=workers, progress=progress)


def run_cascade(model: nn.Module, x: Tensor, y: Tensor, eps: float, configs: list[AttackConfig], *, seed: int,
                bounds: tuple[float, float], chunk_size: int | None, block: int, workers: int | None,
                progress: Progress | None) -> AutoAttackResult:
    """A cascade of ``configs`` at the one radius ``eps`` (checked by the caller), each stage on the points the
    ones before it left standing, by the runner: the clean logits once, the examples, verdicts, robust
    accuracy after each stage and seconds per stage (``autoattack`` and ``fast.aa_fast`` share it)."""
    _validate.count("block", block)
    x, y = x.detach(), y.to(x.device)
    z = logits(model, x, batch_size=block).to(x.device)
    correct = z.argmax(1) == y  # (N,) classified correctly at x: the points the cascade attacks
    x_adv, z_adv = x.clone(), z.clone()
    broken_by = torch.where(correct, len(configs), -1)  # (N,) at ε = 0 nothing can move: the clean verdicts
    seconds = [0.0] * len(configs)
    if eps > 0:
        out = runner.run(model, x, y, eps, configs, candidates=correct.cpu(), seed=seed, bounds=bounds,
                         block=block, workers=workers, chunk_size=chunk_size, progress=progress)
        fooled = out.success.to(x.device)
        x_adv[fooled] = out.x_adv[fooled.cpu()].to(x.device)
        if out.logits is not None:  # None: no point was attacked
            z_adv[fooled] = out.logits[fooled.cpu()].to(z_adv)
        broken_by, seconds = out.broken_by.to(x.device), out.seconds
    names = [c.method for c in configs]
    accuracy = {"clean": float(correct.float().mean()),
                **robust_after(broken_by, names[:len(configs) if eps > 0 else 0], torch.float32)}
    return AutoAttackResult(x_adv, broken_by < len(configs), margin(z_adv, y), z_adv, broken_by=broken_by,
                            stages=tuple(names), accuracy=accuracy, seconds=dict(zip(names, seconds)))


def member_configs(norm: str, version: str = "standard", attacks: tuple[str, ...] | None = None,
                   budget: Budget | None = None) -> list[AttackConfig]:
    """The members of ``version`` as configs under ``norm``, made cheaper by ``budget`` where they take it."""
    if budget is not None and not isinstance(budget, Budget):
        raise ValueError(f"budget must be an autoattack.Budget, got {type(budget).__name__}")
    cheaper = budget.options() if budget is not None else {}
    configs = []
    for name, extra in members(version, attacks, norm_name(norm)):
        takes = ATTACKS[name].options
        fast = {"early_stop": True} if "early_stop" in takes else {}  # a fooled point is done: same verdicts
        configs.append(AttackConfig(name, norm, {**fast, **extra, **{k: v for k, v in cheaper.items() if k in takes}}))
    return configs


def cascade_of(config: AttackConfig) -> list[AttackConfig]:
    """The members an "autoattack" config runs (its version, custom attacks and budget, under its norm): what
    the runner attacks with when an evaluation names autoattack."""
    return member_configs(config.norm, config.get("version"), config.get("attacks"), config.get("budget"))
