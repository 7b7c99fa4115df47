"""Ranking minimal-norm attacks by how close they come to the best: AttackBench's optimality (Cinà, Rony,
Pintor, Demetrio, Demontis, Biggio, Ben Ayed & Roli, "AttackBench: Evaluating Gradient-based Attacks for
Adversarial Examples", AAAI 2025, arXiv 2404.19460).

Each attack gives, per point, the smallest perturbation it found, ``d`` (N,): 0 where the model misclassifies
the clean point, ``inf`` where the attack found nothing. Its robust-accuracy curve is the right-continuous
step function

    RA(ε) = #{i : dᵢ > ε} / N,

and its area up to the largest distance D of the reference (the per-sample best over all attacks, d*ᵢ =
min over attacks; D the largest finite d*ᵢ) is

    A = ∫₀^D RA(ε) dε = (1/N) Σᵢ min(dᵢ, D).

The best curve has the least area A*, no attack at all (RA = clean accuracy c up to D) the most, c·D, and

    optimality = 1 − (A − A*) / (c·D − A*),

1 for an attack that is best on every point, 0 for one that breaks nothing. It is NaN where it cannot tell
attacks apart (c·D = A*: no point is broken at a distance in (0, D), e.g. when none is broken at all).

AttackBench's own code (``analysis/utils.py``, ``eval_optimality``) integrates with the trapezoidal rule over
the distinct distances, interpolating linearly between the steps and starting at the smallest distance;
``trapezoid=True`` reproduces that arithmetic (for comparing with their published numbers). The default
integrates the step curve exactly, which is what makes "no attack" score exactly 0 (the trapezoid rule
gives it about 1/2, and above 1 on a model that classifies every point correctly).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Optimality", "curve_area", "ensemble", "optimality", "robust_curve"]


def _checked(name: str, d: object) -> Tensor:
    if not isinstance(d, Tensor) or d.ndim != 1 or len(d) == 0 or d.is_complex() or d.dtype == torch.bool:
        raise ValueError(f"distances of {name!r} must be a non-empty 1-D tensor (N,), got "
                         f"{tuple(d.shape) if isinstance(d, Tensor) else type(d).__name__}")
    d = d.detach().to("cpu", torch.float64)
    if bool(torch.isnan(d).any()) or bool((d < 0).any()):
        raise ValueError(f"distances of {name!r} must be ≥ 0 or inf (not broken), got NaN or a negative value")
    return d


def _all_checked(distances: Mapping[str, Tensor]) -> dict[str, Tensor]:
    if not isinstance(distances, Mapping) or not distances:
        raise ValueError("distances must map at least one attack name to its per-sample distances")
    out = {str(name): _checked(str(name), d) for name, d in distances.items()}
    sizes = {len(d) for d in out.values()}
    if len(sizes) > 1:
        raise ValueError(f"every attack needs a distance for the same points, got sizes {sorted(sizes)}")
    return out


def robust_curve(distances: Tensor) -> tuple[Tensor, Tensor]:
    """The robust-accuracy curve of per-sample minimal distances (N,) (0: misclassified clean, inf: not
    broken), as its knots: ε (m,) = 0 and the distinct finite positive distances, ascending, and the
    accuracy (m,) at each, #{i : dᵢ > ε}/N; between knots the curve keeps the value of the knot on its
    left (float64)."""
    d = _checked("distances", distances)
    knots = torch.unique(torch.cat([d.new_zeros(1), d[torch.isfinite(d)]]))  # sorted, 0 first
    above = len(d) - torch.searchsorted(d.sort().values, knots, right=True)  # (m,) #{d > ε}
    return knots, above.to(torch.float64) / len(d)


def curve_area(distances: Tensor, max_distance: float, *, trapezoid: bool = False) -> float:
    """∫₀^max_distance RA(ε) dε of the curve of ``distances`` (see ``robust_curve``): exactly, the mean of
    min(dᵢ, max_distance); with ``trapezoid``, AttackBench's trapezoidal rule over the distinct distances
    clipped at max_distance."""
    d = _checked("distances", distances)
    if not math.isfinite(max_distance) or max_distance < 0:
        raise ValueError(f"max_distance must be a finite number ≥ 0, got {max_distance!r}")
    clipped = d.clamp(max=max_distance)
    if not trapezoid:
        return float(clipped.mean())
    values, counts = torch.unique(clipped, return_counts=True)
    accuracy = 1.0 - counts.cumsum(0).to(torch.float64) / len(d)
    return float(torch.trapezoid(accuracy, values))


def ensemble(distances: Mapping[str, Tensor]) -> Tensor:
    """The per-sample best (smallest) distance over the attacks (N,), float64 on the CPU."""
    return torch.stack(list(_all_checked(distances).values())).amin(0)


@dataclass(frozen=True)
class Optimality:
    """Attacks compared with the per-sample best: ``optimality`` and ``area`` per attack, in the order given;
    ``best_on``: per attack, the points it broke at the smallest distance of all (ties count for each);
    ``best``: the per-sample best distances (N,); ``best_area`` A*, ``max_distance`` D and
    ``clean_accuracy`` c of the formula in the module docstring."""

    optimality: dict[str, float]
    area: dict[str, float]
    best_on: dict[str, int]
    best: Tensor
    best_area: float
    max_distance: float
    clean_accuracy: float


def optimality(distances: Mapping[str, Tensor], *, trapezoid: bool = False) -> Optimality:
    """AttackBench's optimality of each attack against the per-sample best of all (see the module docstring).

    Parameters
    ----------
    distances : {name: (N,) tensor}
        Each attack's minimal distance per point, in one norm: 0 where the clean point is misclassified,
        ``inf`` where the attack found no adversarial example.
    trapezoid : bool
        Integrate as AttackBench's code does (trapezoidal rule over the distinct distances) instead of the
        exact area of the step curve.

    Returns
    -------
    Optimality

    Raises
    ------
    ValueError
        No attack, tensors that are not 1-D, of different lengths, or holding NaN or negative values.

    Examples
    --------
    >>> import math, torch
    >>> inf = math.inf
    >>> r = optimality({"a": torch.tensor([0.0, 1, 2, 4]), "b": torch.tensor([0.0, 2, 2, inf])})
    >>> r.optimality["a"], r.optimality["b"], r.best_on
    (1.0, 0.8, {'a': 3, 'b': 1})

    References
    ----------
    A. E. Cinà, J. Rony, M. Pintor, L. Demetrio, A. Demontis, B. Biggio, I. Ben Ayed, F. Roli, "AttackBench:
    Evaluating Gradient-based Attacks for Adversarial Examples", AAAI 2025, arXiv 2404.19460.
    """
    checked = _all_checked(distances)
    best = torch.stack(list(checked.values())).amin(0)                # (N,)
    finite = best[torch.isfinite(best)]
    max_d = float(finite.max()) if len(finite) else 0.0
    clean = float((best > 0).to(torch.float64).mean())
    best_area = curve_area(best, max_d, trapezoid=trapezoid)
    area = {name: curve_area(d, max_d, trapezoid=trapezoid) for name, d in checked.items()}
    span = clean * max_d - best_area
    scores = {name: 1.0 - (a - best_area) / span if span > 0 else math.nan for name, a in area.items()}
    broken = torch.isfinite(best) & (best > 0)
    best_on = {name: int(((d == best) & broken).sum()) for name, d in checked.items()}
    return Optimality(scores, area, best_on, best, best_area, max_d, clean)
