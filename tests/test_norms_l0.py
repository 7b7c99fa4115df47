"""The L0 geometry: pixels counted jointly in (N, C, H, W), coordinates elsewhere; the projections are the
exact Euclidean projections (checked against brute force over every set of kept pixels); the step is
PGD-L0's L1-normalised gradient; the random start is uniform over the sets of ⌊ε⌋ pixels."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from advgrad.catalog import NORMS
from advgrad.norms import L0, L0_NORM, L1_NORM, get_norm

COORDS = L0(pixels=False)


def _pixels(t: Tensor, norm: L0) -> Tensor:
    """Independent reference of the convention: (N, P, C) by explicit loops over locations."""
    if norm.pixels and t.ndim == 4:
        n, c, h, w = t.shape
        return torch.stack([torch.stack([t[i, :, a, b] for a in range(h) for b in range(w)]) for i in range(n)])
    return t.reshape(len(t), -1, 1)


@st.composite
def batches(draw: st.DrawFn) -> Tensor:
    """Small batches of every rank the convention distinguishes, values from a small set so that ties
    (and zeros) are common."""
    rank = draw(st.sampled_from([2, 3, 4]))
    n = draw(st.integers(1, 3))
    if rank == 4:
        shape = (n, draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    else:
        shape = (n, *draw(st.lists(st.integers(1, 4), min_size=rank - 1, max_size=rank - 1)))
    values = draw(st.lists(st.sampled_from([0.0, 0.5, -0.5, 1.0, -2.0, 0.25, 3.0]), min_size=math.prod(shape),
                           max_size=math.prod(shape)))
    return torch.tensor(values, dtype=torch.float64).reshape(shape)


@pytest.mark.parametrize("spec", ["0", "l0", "L0", 0, 0.0, L0_NORM])
def test_get_norm_accepts_zero(spec: object) -> None:
    assert get_norm(spec) is L0_NORM and NORMS["0"].impl is L0_NORM  # type: ignore[arg-type]
    assert L0_NORM.name == "0" and L0_NORM.p == 0.0 and L0_NORM.pixels


def test_the_two_conventions_are_different_objects() -> None:
    assert L0() == L0_NORM and COORDS != L0_NORM and get_norm(COORDS) is COORDS


def test_pixels_count_channels_jointly_in_images_only() -> None:
    d = torch.zeros(1, 3, 2, 2)
    d[0, :, 0, 0] = 1.0            # one pixel, three channels
    d[0, 1, 1, 1] = -0.5           # one pixel, one channel
    assert L0_NORM.measure(d).tolist() == [2.0] and COORDS.measure(d).tolist() == [4.0]
    assert L0_NORM.measure(d.flatten(1)).tolist() == [4.0]  # (N, D): coordinates
    assert L0_NORM.measure(d[:, :, :, 0]).tolist() == [3.0]  # 3-D: coordinates
    assert L0_NORM.measure(torch.tensor([[0.0, -0.0, 1e-30]])).tolist() == [1.0]  # −0 is no change


@settings(max_examples=60, deadline=None)
@given(d=batches(), pixels=st.booleans())
def test_measure_counts_changed_pixels(d: Tensor, pixels: bool) -> None:
    norm = L0(pixels)
    expected = (_pixels(d, norm) != 0).any(dim=2).sum(dim=1).double()
    assert torch.equal(norm.measure(d), expected) and norm.measure(d).dtype == d.dtype


def _brute_projection(d: Tensor, k: int, norm: L0, lower: Tensor | None = None,
                      upper: Tensor | None = None) -> float:
    """The smallest ‖δ − δ′‖₂² over every set S of ≤ k pixels, δ′ = clip(δ) on S (0 elsewhere): one sample."""
    c = d if lower is None else torch.maximum(torch.minimum(d, upper), lower)
    pd, pc = _pixels(d[None], norm)[0], _pixels(c[None], norm)[0]  # (P, C)
    best = math.inf
    for size in range(min(k, len(pd)) + 1):
        for s in itertools.combinations(range(len(pd)), size):
            keep = torch.zeros(len(pd), 1, dtype=torch.bool)
            keep[list(s)] = True
            best = min(best, float((pd - torch.where(keep, pc, 0)).square().sum()))
    return best


@settings(max_examples=80, deadline=None)
@given(d=batches(), k=st.integers(0, 9), pixels=st.booleans(), frac=st.sampled_from([0.0, 0.5, 0.99]))
def test_project_keeps_the_largest_k_pixels(d: Tensor, k: int, pixels: bool, frac: float) -> None:
    norm = L0(pixels)
    p = norm.project(d, k + frac)  # a fractional budget is its floor
    kept, dropped = _pixels(p, norm), _pixels(d, norm)
    assert bool((norm.measure(p) <= k).all())
    assert torch.equal(norm.measure(p), torch.minimum(norm.measure(d), torch.tensor(float(k), dtype=d.dtype)))
    whole = (kept == dropped).all(dim=2) | (kept == 0).all(dim=2)  # a pixel is kept whole or zeroed whole
    assert bool(whole.all())
    assert torch.equal(norm.project(p, k), p)  # idempotent
    mag = dropped.square().sum(dim=2)
    on = (kept != 0).any(dim=2)
    for i in range(len(d)):  # no dropped pixel is larger than a kept one
        if bool(on[i].any()) and bool((~on[i]).any()):
            assert float(mag[i][on[i]].min()) >= float(mag[i][~on[i]].max())
    if _pixels(d, norm).shape[1] <= 8:
        for i in range(len(d)):
            assert float((d[i] - p[i]).square().sum()) == pytest.approx(_brute_projection(d[i], k, norm), abs=1e-12)


def test_ties_go_to_the_lower_index() -> None:
    d = torch.tensor([[1.0, -2.0, 2.0, 2.0, 0.5]])
    assert L0_NORM.project(d, 2).tolist() == [[0.0, -2.0, 2.0, 0.0, 0.0]]
    img = torch.zeros(1, 2, 1, 3)
    img[0, 0, 0, 2], img[0, 1, 0, 1] = 1.0, -1.0  # two pixels of equal magnitude: pixel 1 wins
    assert L0_NORM.project(img, 1)[0, :, 0].tolist() == [[0.0, 0.0, 0.0], [0.0, -1.0, 0.0]]


def test_per_sample_budgets_and_extremes() -> None:
    d = torch.arange(1.0, 13.0).reshape(3, 4)
    p = L0_NORM.project(d, torch.tensor([0.0, 2.5, 100.0]))
    assert p.tolist() == [[0.0] * 4, [0.0, 0.0, 7.0, 8.0], [9.0, 10.0, 11.0, 12.0]]
    assert torch.equal(L0_NORM.project(d, math.inf), d)
    buf = d.clone()
    assert L0_NORM.project_(buf, 1) is buf and torch.equal(buf, L0_NORM.project(d, 1))


@settings(max_examples=80, deadline=None)
@given(d=batches(), k=st.integers(0, 9), pixels=st.booleans(), seed=st.integers(0, 2**16))
def test_project_box_is_the_projection_onto_ball_and_box(d: Tensor, k: int, pixels: bool, seed: int) -> None:
    norm = L0(pixels)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(d.shape, generator=g, dtype=d.dtype).round(decimals=1)  # some on the bounds
    p = norm.project_box(d, k, x, 0.0, 1.0)
    assert bool((norm.measure(p) <= k).all())
    assert bool(((x + p) >= 0).all() and ((x + p) <= 1 + 1e-15).all())
    assert torch.equal(norm.project_box(p, k, x, 0.0, 1.0), p)  # idempotent
    if _pixels(d, norm).shape[1] <= 8:
        for i in range(len(d)):
            best = _brute_projection(d[i], k, norm, -x[i], 1 - x[i])
            assert float((d[i] - p[i]).square().sum()) == pytest.approx(best, abs=1e-12)


def test_project_box_spends_no_budget_on_saturated_pixels() -> None:
    """x = 1 pushed up by 5 is the largest |δ| but changes nothing after the clip: plain ``project`` keeps
    it, ``project_box`` (Croce & Hein's gain) keeps the pixel that moves."""
    x, d = torch.tensor([[1.0, 0.2]]), torch.tensor([[5.0, 0.5]])
    assert L0_NORM.project(d, 1).tolist() == [[5.0, 0.0]]
    assert L0_NORM.project_box(d, 1, x, 0.0, 1.0).tolist() == [[0.0, 0.5]]


@pytest.mark.parametrize("shape", [(5, 7), (4, 2, 3), (3, 3, 4, 4)], ids=str)
def test_steepest_is_the_l1_normalised_gradient(shape: tuple[int, ...]) -> None:
    g = torch.randn(shape, dtype=torch.float64)
    size = torch.rand(shape[0], dtype=torch.float64) + 0.5
    eta = L0_NORM.steepest(g, size)
    torch.testing.assert_close(L1_NORM.measure(eta), size)
    torch.testing.assert_close(eta, g / g.abs().flatten(1).sum(1).view(-1, *[1] * (g.ndim - 1)) * size.view(
        -1, *[1] * (g.ndim - 1)))
    buf = g.clone()
    assert torch.equal(L0_NORM.steepest_(buf, size), eta)
    assert torch.equal(L0_NORM.steepest(torch.zeros(3, 4), 2.0), torch.zeros(3, 4))


@pytest.mark.parametrize("shape,pixels", [((4, 10), 10), ((4, 3, 2, 5), 10), ((4, 2, 5), 10)], ids=str)
def test_random_start_changes_k_random_pixels(shape: tuple[int, ...], pixels: int) -> None:
    like = torch.zeros(shape)
    a = L0_NORM.random_start(like, 3, torch.Generator().manual_seed(1))
    b = L0_NORM.random_start(like, 3, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.dtype == like.dtype and a.shape == like.shape
    assert L0_NORM.measure(a).tolist() == [3.0] * shape[0]
    assert bool((a.abs() <= 1).all())
    budgets = torch.tensor([0.0, 1, 2.5, 99])
    assert L0_NORM.measure(L0_NORM.random_start(like, budgets)).tolist() == [0.0, 1.0, 2.0, float(pixels)]
    state = torch.get_rng_state()
    L0_NORM.random_start(like, 2, torch.Generator().manual_seed(4))
    assert torch.equal(torch.get_rng_state(), state)


def test_random_start_is_uniform_over_pixel_sets_and_values() -> None:
    """P = 4, k = 2: each of the 6 pairs with probability 1/6; the values U(−1, 1)."""
    n = 30_000
    a = L0_NORM.random_start(torch.zeros(n, 4, dtype=torch.float64), 2, torch.Generator().manual_seed(0))
    pairs = (a != 0).long() @ torch.tensor([1, 2, 4, 8])
    freq = torch.bincount(pairs, minlength=16).double() / n
    for code in (3, 5, 6, 9, 10, 12):
        assert abs(float(freq[code]) - 1 / 6) < 0.01
    values = a[a != 0]
    for q in (-0.5, 0.0, 0.5):
        assert abs(float((values <= q).double().mean()) - (q + 1) / 2) < 0.01
