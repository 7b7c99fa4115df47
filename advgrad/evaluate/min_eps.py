"""Minimal ε per sample, by bisection, and the whole accuracy-versus-ε curve from it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from advgrad import _validate
from advgrad.attacks.runner import Journal
from advgrad.configs import AttackConfig, EvalConfig
from advgrad.evaluate.progress import Progress, Tally
from advgrad.evaluate.robust import attack_mask, config_from, correct_at_x
from advgrad.models.query import Classifier


def bisection_rounds(eps_max: float, precision: float) -> int:
    """Halvings of [0, eps_max] until an interval is narrower than ``precision``: ⌈log₂(eps_max / precision)⌉."""
    return max(0, math.ceil(math.log2(eps_max / precision)))


def minimal_eps(model: Classifier, x: Tensor, y: Tensor, config: EvalConfig | None = None, *,
                eps_max: float | None = None, progress: Progress | None = None, journal: Journal | None = None,
                attack: AttackConfig | None = None, **options: Any) -> Tensor:
    """Per-sample minimal ε at which ``config.min_eps_attack`` (default PGD with ``config.steps``, ``restarts``,
    α = 2.5·ε/steps; APGD-CE with its own 100 steps, say) finds an adversarial example, by bisection on a
    per-sample ε: every sample's interval [lo, hi] halves each round until it is narrower than
    ``config.precision``. Returns hi (N,) float64 — an ε at which the attack succeeded — with 0
    for points misclassified already and ``inf`` for points it cannot break at ``eps_max`` (default: the full
    bounds range, hi − lo). Rounds: ⌈log₂(eps_max / precision)⌉; ``progress``: one pass at eps_max and one
    per round. ``attack``: bisect with this config instead (its steps, say). Each pass is ``attack_mask`` (the
    runner's blocks, the pass's randomness seeded by seed + pass); under torch.distributed every process must
    call it and gets the same values.

    Parameters
    ----------
    model : nn.Module
    x, y : Tensor
        (N, ...) inputs within ``config.bounds`` and (N,) labels.
    config : EvalConfig, optional
        Or its fields as keywords (``**options``): ``min_eps_attack``, ``precision``, ``steps``, ...
    eps_max : float, optional
    attack : AttackConfig, optional
        The attack to bisect with (default: ``config.min_eps_attack`` with the config's steps).
    progress, journal
        Progress callback; the store of finished blocks (to resume).

    Returns
    -------
    Tensor
        (N,) float64 minimal ε per sample.

    Examples
    --------
    >>> import torch
    >>> from advgrad import minimal_eps
    >>> _ = torch.manual_seed(0)  # the model's initial weights
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x = torch.rand(12, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    >>> y = model(x).argmax(1)  # every point correct when clean
    >>> min_eps = minimal_eps(model, x, y, steps=5, precision=0.01, eps_max=0.5)
    >>> min_eps.shape, min_eps.dtype, bool(((min_eps > 0) & (min_eps <= 0.5)).all())
    (torch.Size([12]), torch.float64, True)
    """
    config = config_from(config, options)
    lo_b, hi_b = config.bounds
    eps_max = _validate.number("eps_max", hi_b - lo_b if eps_max is None else eps_max, minimum=0.0, strict=True)
    device = x.device  # x stays where it is: the runner moves it block by block
    attack = config.attack(config.min_eps_attack) if attack is None else attack
    rounds = bisection_rounds(eps_max, config.precision)
    tally = Tally(progress, len(y) * (1 + rounds))
    correct = correct_at_x(model, x, y, config)
    result = torch.zeros(len(y), dtype=torch.float64, device=device)
    broken = attack_mask(model, x, y, correct, eps_max, attack, config, journal=journal, name="min-eps max")
    tally(len(y))
    result[correct & ~broken] = math.inf
    active = correct & broken
    lo = torch.zeros(len(y), dtype=torch.float64, device=device)
    hi = torch.full((len(y),), eps_max, dtype=torch.float64, device=device)
    for r in range(rounds):
        mid = (lo + hi) / 2
        ok = attack_mask(model, x, y, active, mid.to(x.dtype), attack, config, seed=config.seed + 1 + r,
                         journal=journal, name=f"min-eps {r}")
        tally(len(y))
        hi = torch.where(active & ok, mid, hi)
        lo = torch.where(active & ~ok, mid, lo)
    result[active] = hi[active]
    return result.cpu()


def curve_from_min_eps(min_eps: Tensor, eps: Sequence[float]) -> list[dict[str, Any]]:
    """Accuracy at each ε read off the minimal-ε values: the share of samples with minimal ε > ε.

    Parameters
    ----------
    min_eps : Tensor
        (N,) ``minimal_eps``'s values.
    eps : sequence of float
        The radii (sorted, duplicates dropped).

    Returns
    -------
    list of dict
        ``{"attack": "min-eps", "eps", "accuracy", "n"}`` per ε.

    Examples
    --------
    >>> import math, torch
    >>> from advgrad import curve_from_min_eps
    >>> curve = curve_from_min_eps(torch.tensor([0.0, 0.05, 0.2, math.inf]), [0.1, 0.0])
    >>> [(r["eps"], r["accuracy"]) for r in curve]
    [(0.0, 0.75), (0.1, 0.5)]
    """
    m = torch.as_tensor(min_eps, dtype=torch.float64)
    return [{"attack": "min-eps", "eps": float(e), "accuracy": float((m > e).double().mean()), "n": len(m)}
            for e in sorted({float(v) for v in eps})]
