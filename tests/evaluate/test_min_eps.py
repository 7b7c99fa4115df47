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


@pytest.mark.parametrize("attack", ["pgd", "apgd-ce"])
def test_minimal_eps_of_a_linear_model_is_the_closed_form(attack: str) -> None:
    """Two classes, f(x) = Wx + b: the least L∞ radius that flips x is ε* = (z_y − z_o)/‖w_y − w_o‖₁ (the
    corner x − ε·sign(w_y − w_o)), as long as that corner stays in the box (x in [0.3, 0.7], ε* < 0.3).
    No attack can break x below ε*, and PGD or APGD reach that corner in a few steps at any ε above it,
    so the bisection must return a value in [ε*, ε* + precision] (1e-5 of float32 slack), and inf beyond
    eps_max."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)).eval()
    with torch.no_grad():  # the boundary through the middle of the box, where the points are
        model[1].bias.copy_(-model[1].weight.sum(1) * 0.5)
    x = 0.3 + 0.4 * torch.rand(64, 1, 4, 4)
    with torch.no_grad():
        z = model(x).double()
    y = z.argmax(1)
    w = model[1].weight.detach().double()                                   # (2, 16)
    star = (z[:, 0] - z[:, 1]).abs() / (w[0] - w[1]).abs().sum()            # (64,) ε*
    eps_max, precision = 0.05, 0.002
    m = ev.minimal_eps(model, x, y, eps_max=eps_max, precision=precision, steps=10, min_eps_attack=attack)
    inside = star < eps_max
    assert int(inside.sum()) > 20 and int((~inside).sum()) > 0  # both cases occur
    assert bool((m[inside] >= star[inside] - 1e-5).all()) and bool((m[inside] <= star[inside] + precision + 1e-5).all())
    assert bool(torch.isinf(m[~inside & (star > eps_max + 1e-5)]).all())


@pytest.mark.parametrize("bad", ["square", "autoattack", "cw", 3])
def test_min_eps_attack_takes_per_sample_radii_only(bad: object) -> None:
    with pytest.raises(ValueError, match=f"unknown min_eps_attack {bad!r}: expected one of fgsm, pgd"):
        ev.EvalConfig(min_eps_attack=bad)  # type: ignore[arg-type]
