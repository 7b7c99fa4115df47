"""``advgrad.norms.l1_box_correction``: the Euclidean projection onto the box ∩ L1 ball, checked against its
definition (a convex-optimality certificate and a brute-force search on tiny vectors), its fixed points, and
the reference's ``L1_projection`` (pyautoattack 0.2.0) bit for bit."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from advgrad.norms import l1_box_correction

BOUNDS = st.sampled_from([(0.0, 1.0), (-1.0, 1.0), (0.0, 255.0), (-0.5, 0.25)])


def _case(seed: int, n: int, d: int, bounds: tuple[float, float], scale: float, dtype: torch.dtype,
          binary: bool = False, zeros: float = 0.0, ties: bool = False) -> tuple[Tensor, Tensor]:
    """x in the box (at its ends when ``binary``), δ Gaussian·scale with a share ``zeros`` of exact zeros
    (or rounded to whole multiples of scale: many equal |δᵢ|)."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = bounds
    x = lo + (hi - lo) * torch.rand((n, d), generator=g, dtype=dtype)
    if binary:
        x = torch.where(x < (lo + hi) / 2, lo, hi).to(dtype)
    delta = scale * (hi - lo) * torch.randn((n, d), generator=g, dtype=dtype)
    if ties:
        delta = (delta / scale).round() * scale
    delta = torch.where(torch.rand((n, d), generator=g, dtype=dtype) < zeros, 0.0, delta).to(dtype)
    return x, delta


def _best_linear(g: Tensor, x: Tensor, eps: float, bounds: tuple[float, float]) -> Tensor:
    """max ⟨g, w⟩ over the feasible steps w (lo − x ≤ w ≤ hi − x, ‖w‖₁ ≤ ε), per row: a fractional knapsack —
    spend the budget on the largest |gᵢ| first, each up to the room the box leaves in gᵢ's direction."""
    lo, hi = bounds
    room = torch.where(g > 0, hi - x, x - lo)
    order = g.abs().argsort(dim=1, descending=True)
    value, room = g.abs().gather(1, order), room.gather(1, order)
    before = room.cumsum(1) - room  # budget spent on the larger ones
    take = torch.clamp(eps - before, min=0.0).minimum(room)
    return (value * take).sum(1)


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 4), d=st.integers(1, 8), bounds=BOUNDS,
       scale=st.floats(0.01, 3.0), eps_frac=st.floats(0.0, 1.5), binary=st.booleans(),
       zeros=st.sampled_from([0.0, 0.5]), ties=st.booleans())
def test_it_is_the_projection(seed: int, n: int, d: int, bounds: tuple[float, float], scale: float,
                              eps_frac: float, binary: bool, zeros: float, ties: bool) -> None:
    """z = x + δ + r is feasible, and optimal: for the convex feasible set C, z is the projection of x + δ
    iff ⟨(x + δ) − z, w − z⟩ ≤ 0 for every w in C, i.e. max over C of ⟨x + δ − z, w⟩ ≤ ⟨x + δ − z, z⟩
    (the maximum of a linear function over the box ∩ L1 ball, in closed form). Float64, any bounds."""
    lo, hi = bounds
    x, delta = _case(seed, n, d, bounds, scale, torch.float64, binary, zeros, ties)
    eps = eps_frac * float(delta.abs().sum(1).max()) + 1e-3
    r = l1_box_correction(x, delta, eps, bounds)
    step = delta + r                                                    # z − x
    tol = 1e-9 * (1 + (hi - lo) * d)
    assert bool((step.abs().sum(1) <= eps + tol).all())
    assert bool((x + step >= lo - tol).all()) and bool((x + step <= hi + tol).all())
    g = delta - step                                                    # (x + δ) − z
    assert bool((_best_linear(g, x, eps, bounds) <= (g * step).sum(1) + tol).all())
    # a fixed point: projecting the projection moves nothing
    assert float(l1_box_correction(x, step, eps, bounds).abs().max()) <= tol


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), d=st.integers(1, 3), bounds=BOUNDS, scale=st.floats(0.1, 2.0),
       eps_frac=st.floats(0.05, 1.2))
def test_no_sampled_feasible_point_is_closer(seed: int, d: int, bounds: tuple[float, float], scale: float,
                                             eps_frac: float) -> None:
    """Brute force on tiny vectors: 4,000 random points of the box ∩ ball (uniform in the box, kept if in
    the ball, plus the ball's vertices clipped) — none is closer to x + δ than the projection."""
    lo, hi = bounds
    x, delta = _case(seed, 1, d, bounds, scale, torch.float64)
    eps = eps_frac * (hi - lo) * d
    step = delta + l1_box_correction(x, delta, eps, bounds)
    g = torch.Generator().manual_seed(seed)
    w = lo - x + (hi - lo) * torch.rand((4000, d), generator=g, dtype=torch.float64)
    w = w[w.abs().sum(1) <= eps]
    vertices = torch.cat([eps * torch.eye(d, dtype=torch.float64), -eps * torch.eye(d, dtype=torch.float64)])
    w = torch.cat([w, torch.maximum(torch.minimum(vertices, hi - x), lo - x)])
    best = float((step - delta).norm())
    assert bool(((w - delta).norm(dim=1) >= best - 1e-12).all())


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 4), d=st.integers(1, 30), bounds=BOUNDS)
def test_points_inside_do_not_move(seed: int, n: int, d: int, bounds: tuple[float, float]) -> None:
    lo, hi = bounds
    x, delta = _case(seed, n, d, bounds, 0.3, torch.float64)
    inside = torch.minimum(torch.maximum(delta, lo - x), hi - x)        # in the box
    r = l1_box_correction(x, inside, float(inside.abs().sum(1).max()) * 1.01 + 1e-9, bounds)
    assert torch.equal(r, torch.zeros_like(r))


def _first_segment(x: Tensor, delta: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Rows (N,) whose threshold θ lies below the second-smallest kink (θ < both aᵢ, |δᵢ| but one), where the
    reference extrapolates the wrong segment, and rows within rounding of that border; in float64, from the
    definition (box [0, 1])."""
    x, d = x.flatten(1).double(), delta.flatten(1).double()
    a = (d.abs() - torch.where(d > 0, 1 - x, x)).clamp(min=0)
    kinks = torch.cat((a, d.abs()), 1).sort(dim=1).values
    second = kinks[:, 1:2] if kinks.shape[1] > 1 else kinks[:, :1]
    need = d.abs().sum(1) - eps                                         # what the threshold must remove
    at_second = torch.maximum(torch.minimum(second, d.abs()), a).sum(1)  # removed at θ = second kink
    first = (a.sum(1) < need) & (at_second >= need)
    return first, (at_second - need).abs() <= 1e-4 * (1 + d.abs().sum(1))


@pytest.mark.isa
@settings(max_examples=120, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 5), d=st.integers(1, 200), scale=st.floats(1e-3, 3.0),
       eps_frac=st.floats(0.0, 1.2), binary=st.booleans(), zeros=st.sampled_from([0.0, 0.3, 0.9]),
       ties=st.booleans(), shape=st.sampled_from(["flat", "image"]))
def test_the_references_l1_projection_bit_for_bit(seed: int, n: int, d: int, scale: float, eps_frac: float,
                                                  binary: bool, zeros: float, ties: bool, shape: str) -> None:
    """float32, box [0, 1] (the reference's): the same bits, also where |δ| has many ties and zeros and x sits
    at the box's ends; a per-sample ε equal to the float gives the same bits too. Except where the threshold
    lies below the second-smallest kink (``_first_segment``; the reference's answer is then not the
    projection, ``test_it_is_the_projection`` checks advgrad's): there the bits differ, by a rounding or more."""
    base = pytest.importorskip("pyautoattack.autopgd_base")
    x, delta = _case(seed, n, d, (0.0, 1.0), scale, torch.float32, binary, zeros, ties)
    if shape == "image":
        x, delta = x.view(n, 1, 1, d), delta.view(n, 1, 1, d)
    eps = eps_frac * float(delta.abs().flatten(1).sum(1).max()) + 1e-4
    theirs = base.L1_projection(x, delta, eps)
    ours = l1_box_correction(x, delta, eps)
    assert ours.shape == delta.shape
    first, border = _first_segment(x, delta, eps)
    same = (ours.view(torch.int32) == theirs.view(torch.int32)).flatten(1).all(1)
    assert bool(same[~first & ~border].all())
    assert bool((~same[first & ~border]).all())  # the one place they differ is that one
    assert torch.equal(l1_box_correction(x, delta, torch.full((n,), eps)).view(torch.int32), ours.view(torch.int32))


def test_the_references_first_segment_case_is_the_only_difference() -> None:
    """One coordinate, inside the box: the projection onto the ball is δ·ε/|δ|; the reference returns δ."""
    base = pytest.importorskip("pyautoattack.autopgd_base")
    x, delta = torch.tensor([[0.5]]), torch.tensor([[0.25]])
    assert float((delta + l1_box_correction(x, delta, 0.1)).squeeze()) == pytest.approx(0.1)
    assert float((delta + base.L1_projection(x, delta, 0.1)).squeeze()) == 0.25
