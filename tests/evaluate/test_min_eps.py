"""Minimal ε by bisection against the sweep."""

from __future__ import annotations

import pytest
import torch

from advgrad import evaluate as ev

N = 100  # the conftest's batch of test digits


@pytest.mark.slow
def test_bisection_agrees_with_sweep(trained_small, batch) -> None:  # type: ignore[no-untyped-def]
    model, _ = trained_small
    grid, precision = (0.05, 0.1, 0.15), 0.01
    m = ev.minimal_eps(model, *batch, eps_max=0.2, precision=precision, steps=10)
    assert m.shape == (N,) and bool((m >= 0).all())
    correct = ev.predict(model, batch[0]) == batch[1]
    assert bool((m[~correct] == 0).all()) and bool((m[correct] > 0).all())
    curve = {r["eps"]: r["accuracy"] for r in ev.curve_from_min_eps(m, grid)}
    swept = {r["eps"]: r["accuracy"] for r in ev.robust_accuracy(model, *batch, eps=grid, attacks=("pgd",), steps=10)}
    slack = 3 / N  # PGD's random starts differ between the two computations
    for e in grid:
        above = float((m > e + precision).double().mean())
        below = float((m > e - precision).double().mean())
        assert above - slack <= swept[e] <= below + slack, (e, swept[e], curve[e])
        assert abs(curve[e] - swept[e]) <= 0.05


def test_minimal_eps_inf_beyond_eps_max(trained_small, batch) -> None:  # type: ignore[no-untyped-def]
    model, _ = trained_small
    m = ev.minimal_eps(model, batch[0][:10], batch[1][:10], eps_max=1e-3, precision=5e-4, steps=2)
    correct = ev.predict(model, batch[0][:10]) == batch[1][:10]
    assert bool(torch.isinf(m[correct]).all())
    with pytest.raises(ValueError, match="precision"):
        ev.minimal_eps(model, *batch, precision=0.0)
