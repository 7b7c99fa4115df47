"""Attacks on the points nearest the boundary (``advgrad.attacks.near``): the first-order distance is the
closed form on affine models (float64, every norm), the choice is a plain sort's, and each attack is its
long attack run on exactly the chosen rows (bits: the same function on the same rows, one torch thread),
the others returned untouched.

References in the same test: the affine model's distance to the boundary between y and t,
((w_y − w_t)·x + b_y − b_t) / ‖w_y − w_t‖_q, computed from the weights in plain torch; Python's ``sorted``
for the choice; ``apgd_targeted`` and ``square`` called directly on the chosen rows."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from advgrad import (
    apgd_targeted,
    apgd_targeted_near,
    boundary_distance,
    fab_targeted,
    fab_targeted_near,
    square,
    square_near,
)
from advgrad.attacks.near import nearest

DUAL = {"inf": 1.0, "2": 2.0, "1": math.inf}


def _affine(d: int, k: int, seed: int) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(d, k).double()


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 12), d=st.integers(2, 9), k=st.integers(2, 7), classes=st.integers(1, 8),
       norm=st.sampled_from(["inf", "2", "1"]), chunk=st.sampled_from([None, 1, 5]), seed=st.integers(0, 2**16))
def test_the_distance_is_the_affine_closed_form(n: int, d: int, k: int, classes: int, norm: str, chunk: int | None,
                                                seed: int) -> None:
    model = _affine(d, k, seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, k, (n,), generator=g)
    got, logits = boundary_distance(model, x, y, norm=norm, classes=classes, chunk_size=chunk)
    w, b = model.weight.detach(), model.bias.detach()
    z = x @ w.T + b  # (n, k)
    assert torch.allclose(logits, z, rtol=0, atol=1e-12)
    for i in range(n):
        others = sorted((t for t in range(k) if t != y[i]), key=lambda t: -float(z[i, t]))[:classes]
        want = min(float(z[i, y[i]] - z[i, t]) / float(torch.linalg.vector_norm(w[y[i]] - w[t], ord=DUAL[norm]))
                   for t in others)
        assert math.isclose(float(got[i]), want, rel_tol=1e-9, abs_tol=1e-12), (i, float(got[i]), want)
    assert torch.equal(got < 0, z.argmax(1) != y)  # negative exactly where x is misclassified


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.sampled_from([-1.0, 0.0, 0.25, 0.5, 2.0, math.inf]), min_size=0, max_size=40),
       share=st.sampled_from([0.0, 0.03, 0.1, 0.25, 1 / 3, 0.5, 0.99, 1.0]))
def test_the_choice_is_a_plain_sort(values: list[float], share: float) -> None:
    """⌈share · N⌉ points of least distance, ties by index (Python's stable ``sorted``)."""
    chosen = nearest(torch.tensor(values, dtype=torch.float64), share)
    count = math.ceil(round(share * len(values), 9))
    want = set(sorted(range(len(values)), key=lambda i: values[i])[:count])
    assert set(chosen.nonzero().squeeze(1).tolist()) == want


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 16), nn.ReLU(), nn.Linear(16, 6))


def _batch(model: nn.Module, n: int, seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 6, 6, generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[::5] = (y[::5] + 1) % 6  # some points misclassified at x: they come first
    return x, y


def _threads_one() -> int:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    return threads


@settings(max_examples=10, deadline=None)
@given(n=st.integers(1, 30), share=st.sampled_from([0.0, 0.1, 0.3, 1.0]), norm=st.sampled_from(["inf", "2"]),
       seed=st.integers(0, 2**16))
def test_each_attack_is_its_long_attack_on_the_chosen_rows(n: int, share: float, norm: str, seed: int) -> None:
    model = _model(seed)
    x, y = _batch(model, n, seed)
    eps = 0.08 if norm == "inf" else 0.6
    x0, y0 = x.clone(), y.clone()
    threads = _threads_one()
    try:
        distance, _ = boundary_distance(model, x, y, norm=norm)
        chosen = nearest(distance, share)
        near_t = apgd_targeted_near(model, x, y, eps, norm=norm, share=share, steps=6, targets=3, seed=seed)
        near_s = square_near(model, x, y, eps, norm=norm, share=share, queries=30, seed=seed)
        near_f = fab_targeted_near(model, x, y, eps, norm=norm, share=share, steps=5, targets=2, seed=seed)
        with torch.no_grad():
            clean = model(x)
        some = bool(chosen.any())
        xc, yc = x[chosen], y[chosen]
        for near, direct in ((near_t, apgd_targeted(model, xc, yc, eps, norm=norm, steps=6, targets=3, seed=seed)
                              if some else None),
                             (near_s, square(model, xc, yc, eps, norm=norm, queries=30, seed=seed) if some else None),
                             (near_f, fab_targeted(model, xc, yc, eps, norm=norm, steps=5, targets=2, seed=seed)
                              if some else None)):
            assert int(chosen.sum()) == math.ceil(round(share * n, 9))
            if direct is not None:
                assert torch.equal(near.x_adv[chosen], direct.x_adv) and torch.equal(near.success[chosen], direct.success)
                assert torch.equal(near.logits[chosen], direct.logits)
            assert torch.equal(near.x_adv[~chosen], x[~chosen]) and not bool(near.success[~chosen].any())
            assert torch.allclose(near.logits[~chosen], clean[~chosen])
        assert near_s.queries is not None and not bool(near_s.queries[~chosen].any())
        if share == 1.0:  # every row: the long attack on the whole batch, bit for bit
            whole = apgd_targeted(model, x, y, eps, norm=norm, steps=6, targets=3, seed=seed)
            assert torch.equal(near_t.x_adv, whole.x_adv) and torch.equal(near_t.success, whole.success)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(x, x0) and torch.equal(y, y0)


def test_the_nearest_points_are_the_ones_attacked_first() -> None:
    """The misclassified points (negative distance) are chosen before any correctly classified one, and a
    share that leaves the far points out spends no query on them."""
    model = _model(7)
    x, y = _batch(model, 20, 7)
    with torch.no_grad():
        wrong = model(x).argmax(1) != y
    distance, _ = boundary_distance(model, x, y, norm="inf")
    chosen = nearest(distance, int(wrong.sum()) / 20)
    assert torch.equal(chosen, wrong)
    r = square_near(model, x, y, 0.05, share=0.5, queries=20)
    assert r.queries is not None and int((r.queries > 0).sum()) <= 10


def test_the_caller_is_untouched_and_bad_arguments_are_one_line_errors() -> None:
    model = _model(3).train()
    x, y = _batch(model, 8, 3)
    apgd_targeted_near(model, x, y, 0.1, share=0.5, steps=4, targets=2)
    assert model.training and all(p.grad is None for p in model.parameters())
    calls = [(lambda s: apgd_targeted_near(model, x, y, 0.1, share=s, steps=2, targets=2)),
             (lambda s: square_near(model, x, y, 0.1, share=s, queries=2)),
             (lambda s: fab_targeted_near(model, x, y, 0.1, share=s, steps=2, targets=2))]
    for call in calls:
        for bad in (-0.1, 1.5, True, "a", math.nan):
            with pytest.raises(ValueError, match="share") as info:
                call(bad)
            assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="classes"):
        boundary_distance(model, x, y, classes=0)
    with pytest.raises(ValueError, match="eps"):
        apgd_targeted_near(model, x, y, -0.1, share=0.0)
