"""Robust accuracy: accuracy under several attacks at several ε in one call.

Only the points the model classifies correctly are attacked, each attack by the runner
(``advgrad.attacks.runner``): blocks of ``EvalConfig.block`` (250) points, each with its own seeded
randomness, an ensemble such as AutoAttack run as its cascade over the same blocks ``advgrad.autoattack``
runs, with early stop (a fooled point is done). A point is robust at ε only if it survives every attack
(the "worst" record). Under torch.distributed the blocks are shared out and every process returns the same
records.

Every record says what it cost: ``forward`` and ``backward``, the sample-passes of its attack calls (the
runner's count, ``advgrad.attacks.runner``, summed over processes; the clean predictions' forward pass, once
per sweep, is in none of them), and an ensemble's ``passes_per_attack`` per member.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from advgrad._runtime import predict
from advgrad.attacks import runner
from advgrad.attacks.autoattack import robust_after
from advgrad.attacks.runner import Journal, Outcome, Status
from advgrad.configs import AttackConfig, EvalConfig
from advgrad.evaluate.progress import Progress, parts
from advgrad.models.counting import Passes
from advgrad.models.query import Classifier, QueryModel

WORST = "worst"  # the record of points that survive every attack


@dataclass
class SweepResult:
    """Records (one per attack and ε, plus "worst" per ε when there are several attacks) and, per record,
    the per-sample robustness mask (True: still classified correctly) it was computed from.

    Parameters
    ----------
    records : list of dict
        ``robust_accuracy``'s records.
    robust : dict
        (attack, ε) → (N,) bool mask.
    correct : Tensor
        (N,) bool: the clean predictions that are right, on x's device.

    Examples
    --------
    >>> import torch
    >>> from advgrad import sweep
    >>> _ = torch.manual_seed(0)  # the model's initial weights
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x = torch.rand(12, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    >>> y = model(x).argmax(1)  # every point correct when clean
    >>> result = sweep(model, x, y, eps=(0.0, 0.1), attacks=("fgsm", "pgd"), steps=3)
    >>> type(result).__name__, list(result.robust)[:3], result.correct.all().item()
    ('SweepResult', [('fgsm', 0.0), ('pgd', 0.0), ('worst', 0.0)], True)
    """

    records: list[dict[str, Any]]
    robust: dict[tuple[str, float], Tensor]
    correct: Tensor  # (N,) bool, clean predictions, on x's device


def config_from(config: EvalConfig | None, options: dict[str, Any]) -> EvalConfig:
    """The config to run: the one given (with ``options`` changed), or one built from ``options``."""
    if config is None:
        return EvalConfig(**options)
    return config.but(**options) if options else config


def correct_at_x(model: Classifier, x: Tensor, y: Tensor, config: EvalConfig) -> Tensor:
    """(N,) the points the model classifies correctly, on x's device; forward passes of ``config.block``
    points, as the runner's blocks (a batch of another size may round a near-tie the other way)."""
    if isinstance(model, QueryModel):
        with model.session():
            labels = [model.labels(x[i:i + config.block]) for i in range(0, len(x), config.block)]
        return torch.cat(labels).to(x.device) == y.to(x.device) if labels else y.new_zeros(0, dtype=torch.bool)
    return predict(model, x, config.block) == y.to(x.device)


def attack_pass(model: Classifier, x: Tensor, y: Tensor, candidates: Tensor, eps: float | Tensor | None,
                attack: AttackConfig, config: EvalConfig, *, seed: int | None = None,
                progress: Callable[[int, int], None] | None = None, journal: Journal | None = None,
                name: str = "", status: Status | None = None) -> Outcome:
    """``attack`` (an ensemble expanded into its members: ``runner.stages``) at ``eps`` (a float or (N,)
    radii) on the points where ``candidates`` is True, by the runner with this evaluation's block size,
    bounds and seed (``seed`` overrides it); its finished blocks kept in ``journal`` under ``name``;
    ``status`` hears where the pass stands."""
    return runner.run(model, x, y, eps, runner.stages(attack), candidates=candidates.cpu(),
                      seed=config.seed if seed is None else seed, bounds=config.bounds, block=config.block,
                      progress=progress, store=journal.store(name) if journal is not None else None,
                      status=status)


def attack_mask(model: Classifier, x: Tensor, y: Tensor, candidates: Tensor, eps: float | Tensor,
                attack: AttackConfig, config: EvalConfig, *, seed: int | None = None,
                progress: Callable[[int, int], None] | None = None, journal: Journal | None = None,
                name: str = "") -> Tensor:
    """Success (N,) bool on x's device of ``attack_pass`` (False where not a candidate)."""
    outcome = attack_pass(model, x, y, candidates, eps, attack, config, seed=seed, progress=progress,
                          journal=journal, name=name)
    return outcome.success.to(x.device)


def passes_record(passes: Passes) -> dict[str, int]:
    """{"forward": ..., "backward": ...}: sample-passes as records write them."""
    return {"forward": passes.forward, "backward": passes.backward}


def total_passes(outcome: Outcome) -> Passes:
    """What all the stages of a runner's pass spent."""
    return sum(outcome.passes, Passes())


def cascade_record(outcome: Outcome) -> dict[str, Any]:
    """An ensemble's breakdown: {"cascade": {member: robust accuracy after it}, "seconds_per_attack": {...},
    "passes_per_attack": {member: {"forward", "backward"}}}, float32 means as the sweep's other accuracies;
    {} for a single attack."""
    if len(outcome.stages) < 2:
        return {}
    names = [s.method for s in outcome.stages]
    return {"cascade": robust_after(outcome.broken_by, names, torch.float32),
            "seconds_per_attack": dict(zip(names, outcome.seconds)),
            "passes_per_attack": {m: passes_record(p) for m, p in zip(names, outcome.passes)}}


def _prefixed(status: Status | None, what: str) -> Status | None:
    """``status`` with the pass named in front: "pgd at ε = 0.1: …"."""
    return None if status is None else (lambda text: status(f"{what}: {text}"))


def _fraction(part: Progress | None, n: int) -> Callable[[int, int], None] | None:
    """A pass's progress (points sealed of its candidates) as a share of n points of the whole."""
    if part is None:
        return None
    return lambda done, total: part(n * done // max(total, 1), n)


def sweep(model: Classifier, x: Tensor, y: Tensor, config: EvalConfig | None = None, *,
          progress: Progress | None = None, journal: Journal | None = None, status: Status | None = None,
          **options: Any) -> SweepResult:
    """``robust_accuracy`` plus the per-sample masks behind every record (the sanity report reuses them).
    ``config`` or its fields as keywords; ``progress(done, total)``: one pass of N samples per (ε, attack);
    ``journal``: where finished blocks are kept, for a resumed run.

    Parameters
    ----------
    model : nn.Module
    x, y : Tensor
        (N, ...) inputs within ``config.bounds`` and (N,) labels.
    config : EvalConfig, optional
        Or its fields as keywords (``**options``).
    progress, journal, status
        As above; ``status`` hears where each pass stands.

    Returns
    -------
    SweepResult

    Examples
    --------
    >>> import torch
    >>> from advgrad import sweep
    >>> _ = torch.manual_seed(0)  # the model's initial weights
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x = torch.rand(12, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    >>> y = model(x).argmax(1)  # every point correct when clean
    >>> result = sweep(model, x, y, eps=(0.1,), attacks=("fgsm", "pgd"), steps=3)
    >>> [r["attack"] for r in result.records], result.robust[("worst", 0.1)].shape
    (['fgsm', 'pgd', 'worst'], torch.Size([12]))
    """
    config = config_from(config, options)
    n = len(y)
    correct = correct_at_x(model, x, y, config)
    records: list[dict[str, Any]] = []
    robust: dict[tuple[str, float], Tensor] = {}
    passes = iter(parts(progress, [n] * (len(config.grid) * len(config.attacks))))
    for e in config.grid:
        survivors = correct.clone()
        for name in config.attacks:
            attack = config.attack(name)
            start = time.perf_counter()
            outcome = attack_pass(model, x, y, correct, e, attack, config, progress=_fraction(next(passes), n),
                                  journal=journal, name=f"sweep {name} {e!r}",
                                  status=_prefixed(status, f"{name} at ε = {e:g}"))
            mask = correct & ~outcome.success.to(x.device)
            robust[(name, e)] = mask
            survivors &= mask
            records.append({"attack": name, "eps": e, "accuracy": float(mask.float().mean()), "n": n,
                            "seconds": time.perf_counter() - start, **passes_record(total_passes(outcome)),
                            "steps": attack.get("steps"),
                            "restarts": attack.get("restarts") if attack.get("random_start") is not False else 1,
                            **cascade_record(outcome)})
        if len(config.attacks) > 1:
            robust[(WORST, e)] = survivors
            at_e = [r for r in records if r["eps"] == e]
            records.append({"attack": WORST, "eps": e, "accuracy": float(survivors.float().mean()), "n": n,
                            "seconds": sum(r["seconds"] for r in at_e),
                            "forward": sum(r["forward"] for r in at_e), "backward": sum(r["backward"] for r in at_e),
                            "steps": config.steps, "restarts": config.restarts})
    return SweepResult(records, robust, correct)


def robust_accuracy(model: Classifier, x: Tensor, y: Tensor, config: EvalConfig | None = None, *,
                    progress: Progress | None = None, **options: Any) -> list[dict[str, Any]]:
    """Accuracy of ``model`` on (x, y) under each attack at each ε, in one call (``EvalConfig``: ``eps``,
    ``attacks``, ``steps``, ``restarts``, ``norm``, ``bounds``, ``block``, ``seed``, given whole or as
    keywords).

    Returns one record per (attack, ε): ``{"attack", "eps", "accuracy", "n", "seconds", "forward",
    "backward", "steps", "restarts"}`` (``forward``/``backward``: the attack's sample-passes; an ensemble adds
    its per-member ``"cascade"``), and with several attacks a ``"worst"``
    record per ε: the share of points that survive every attack and every restart. Only correctly
    classified points are attacked (with early stop), block by block (``advgrad.attacks.runner``). Under
    torch.distributed (``advgrad.distributed.setup``) every process must call it: the blocks are shared out
    and every process returns the same records.

    Parameters
    ----------
    model : nn.Module
        Returns logits (N, K).
    x, y : Tensor
        (N, ...) inputs within ``config.bounds`` and (N,) labels.
    config : EvalConfig, optional
        Or its fields as keywords (``**options``).
    progress : callable, optional
        ``progress(done, total)``, in samples.

    Returns
    -------
    list of dict

    Examples
    --------
    >>> import torch
    >>> from advgrad import robust_accuracy
    >>> _ = torch.manual_seed(0)  # the model's initial weights
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> g = torch.Generator().manual_seed(0)
    >>> x, y = torch.rand(20, 1, 2, 2, generator=g), torch.randint(0, 3, (20,), generator=g)
    >>> records = robust_accuracy(model, x, y, eps=(0.0, 0.1), attacks=("pgd",), steps=3)
    >>> [(r["attack"], r["eps"]) for r in records]
    [('pgd', 0.0), ('pgd', 0.1)]

    References
    ----------
    Madry et al., "Towards deep learning models resistant to adversarial attacks", ICLR 2018, arXiv 1706.06083;
    Carlini et al., "On evaluating adversarial robustness", 2019, arXiv 1902.06705.
    """
    return sweep(model, x, y, config, progress=progress, **options).records
