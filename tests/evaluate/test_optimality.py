"""AttackBench's optimality (advgrad/evaluate/optimality.py) on hand-made curves, against a numerical integral
of the step curve, against AttackBench's trapezoidal arithmetic rewritten here in numpy, and its properties
over random distances (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from advgrad.evaluate.optimality import curve_area, ensemble, optimality, robust_curve

inf = math.inf


def t(*values: float) -> Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_curve_knots_and_values() -> None:
    knots, acc = robust_curve(t(0, 1, 2, inf, 1))
    assert knots.tolist() == [0, 1, 2]
    assert acc.tolist() == [0.8, 0.4, 0.2]  # share with d > ε: 4/5, 2/5, 1/5


def test_area_is_the_integral_of_the_step_curve() -> None:
    """Against a midpoint Riemann sum of RA(ε) = share of d > ε on a fine grid (exact for a step function
    up to the cells that hold a step)."""
    d = t(0, 0.3, 0.3, 1.7, 2.5, inf)
    grid = (torch.arange(200000, dtype=torch.float64) + 0.5) * (2.5 / 200000)
    riemann = float((d[None, :] > grid[:, None]).double().mean(1).sum() * (2.5 / 200000))
    assert curve_area(d, 2.5) == pytest.approx(riemann, abs=1e-4)
    assert curve_area(d, 2.5) == pytest.approx((0 + 0.3 + 0.3 + 1.7 + 2.5 + 2.5) / 6, abs=1e-15)


def test_best_attack_scores_one_no_attack_zero_and_a_hand_computed_middle() -> None:
    """best [0, 1, 2, 4]: c = 3/4, D = 4, A* = 7/4; "middle" [0, 2, 2, inf]: A = 8/4, so
    optimality = 1 − (2 − 7/4) / (3 − 7/4) = 1 − 0.25/1.25 = 0.8."""
    r = optimality({"best": t(0, 1, 2, 4), "middle": t(0, 2, 2, inf), "none": t(0, inf, inf, inf)})
    assert r.optimality["best"] == 1.0
    assert r.optimality["none"] == 0.0
    assert r.optimality["middle"] == pytest.approx(0.8, abs=1e-15)
    assert (r.clean_accuracy, r.max_distance, r.best_area) == (0.75, 4.0, 1.75)
    assert r.best_on == {"best": 3, "middle": 1, "none": 0}
    assert r.best.tolist() == [0, 1, 2, 4]
    assert ensemble({"a": t(1, inf), "b": t(2, 0.5)}).tolist() == [1, 0.5]


def _attackbench(adv: np.ndarray, best: np.ndarray) -> float:
    """AttackBench's eval_optimality as its paper's code computes it (trapezoidal rule over the distinct
    distances), written from its description for finite best distances."""
    trapz = getattr(np, "trapezoid", None) or np.trapz
    d, c = np.unique(best, return_counts=True)
    best_area = trapz(1 - c.cumsum() / len(best), d)
    clean, max_d = np.count_nonzero(best) / len(best), d.max()
    d, c = np.unique(adv.clip(max=max_d), return_counts=True)
    area = trapz(1 - c.cumsum() / len(adv), d)
    return float(1 - (area - best_area) / (clean * max_d - best_area))


@given(st.lists(st.tuples(st.floats(0, 10), st.floats(0, 10)), min_size=3, max_size=40), st.integers(0, 3))
@settings(max_examples=60, deadline=None)
def test_trapezoid_mode_matches_attackbenchs_arithmetic(pairs: list[tuple[float, float]], zeros: int) -> None:
    a, b = (np.array([p[i] for p in pairs] + [0.0] * zeros) for i in (0, 1))
    best = np.minimum(a, b)
    r = optimality({"a": torch.from_numpy(a), "b": torch.from_numpy(b)}, trapezoid=True)
    for name, d in (("a", a), ("b", b)):
        with np.errstate(divide="ignore", invalid="ignore"):
            expected = _attackbench(d, best)
        if math.isfinite(expected):
            assert r.optimality[name] == pytest.approx(expected, rel=1e-9, abs=1e-12)
        else:  # nothing broken in (0, D): AttackBench divides by zero, advgrad says NaN
            assert math.isnan(r.optimality[name])


distances = st.lists(st.one_of(st.just(0.0), st.just(inf), st.floats(1e-3, 5)), min_size=1, max_size=30)


@given(st.lists(distances, min_size=2, max_size=4), st.data())
@settings(max_examples=80, deadline=None)
def test_order_of_attacks_and_points_does_not_matter(lists: list[list[float]], data: st.DataObject) -> None:
    n = min(len(v) for v in lists)
    named = {f"atk{i}": t(*v[:n]) for i, v in enumerate(lists)}
    base = optimality(named)
    names = data.draw(st.permutations(list(named)))
    perm = torch.tensor(data.draw(st.permutations(list(range(n)))))
    shuffled = optimality({k: named[k][perm] for k in names})
    for k in named:
        same = (math.isnan(base.optimality[k]) and math.isnan(shuffled.optimality[k])) or \
            base.optimality[k] == pytest.approx(shuffled.optimality[k], abs=1e-12)
        assert same and base.best_on[k] == shuffled.best_on[k]
    assert list(shuffled.optimality) == names


@given(distances, st.lists(st.floats(0, 3), min_size=30, max_size=30), distances)
@settings(max_examples=80, deadline=None)
def test_smaller_distances_never_score_lower(d: list[float], shrink: list[float], other: list[float]) -> None:
    """An attack whose every distance is at most another's scores at least as high, in [0, 1] when the
    zeros (misclassified points) agree, as they do for attacks on the same model."""
    n = min(len(d), len(other))
    worse = t(*d[:n])
    better = torch.where(worse > 0, (worse - t(*shrink[:n])).clamp(min=1e-4), worse)  # keeps the zeros
    third = torch.where(worse > 0, t(*other[:n]).clamp(min=1e-4), 0.0)
    r = optimality({"worse": worse, "better": better, "third": third})
    if not math.isnan(r.optimality["better"]):
        assert r.optimality["better"] >= r.optimality["worse"] - 1e-12
        assert all(-1e-12 <= v <= 1 + 1e-12 for v in r.optimality.values())
    for name in r.optimality:  # the per-sample best has the least area
        assert curve_area(r.best, r.max_distance) <= r.area[name] + 1e-12


def test_nothing_broken_is_nan() -> None:
    r = optimality({"a": t(inf, inf, 0), "b": t(inf, inf, 0)})
    assert math.isnan(r.optimality["a"]) and r.best_on == {"a": 0, "b": 0}


@pytest.mark.parametrize(("value", "match"), [
    ({}, "at least one attack"),
    ({"a": t(1, 2), "b": t(1)}, "same points"),
    ({"a": t(1, -1)}, "negative"),
    ({"a": t(1, math.nan)}, "NaN"),
    ({"a": torch.zeros(2, 2)}, "1-D"),
    ({"a": [1.0, 2.0]}, "1-D"),
])
def test_bad_distances_are_one_line_value_errors(value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        optimality(value)  # type: ignore[arg-type]


def test_bad_max_distance() -> None:
    with pytest.raises(ValueError, match="max_distance"):
        curve_area(t(1, 2), inf)
