"""The Lp geometry: steepest ascent is the argmax, projection is the exact Euclidean projection,
random starts are uniform in the ball, for every norm and any batch shape."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from advgrad.norms import L1_NORM, L2_NORM, LINF, Norm, get_norm

NORMS = [LINF, L2_NORM, L1_NORM]
IDS = ["inf", "2", "1"]
DUAL = {"inf": 1.0, "2": 2.0, "1": math.inf}  # ⟨η, g⟩ ≤ ‖η‖_p ‖g‖_q, 1/p + 1/q = 1
SHAPES = [(5, 7), (4, 2, 3), (3, 1, 4, 4), (2, 3, 2, 2, 2)]


@pytest.mark.parametrize("spec,name", [("inf", "inf"), ("Linf", "inf"), (math.inf, "inf"), ("2", "2"),
                                       (2, "2"), (2.0, "2"), ("l2", "2"), ("1", "1"), (1, "1"), ("L1", "1")])
def test_get_norm_accepts_names_and_numbers(spec: object, name: str) -> None:
    assert get_norm(spec).name == name  # type: ignore[arg-type]
    assert get_norm(get_norm(spec)) is get_norm(spec)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["3", "l3", -1, 3, 1.5, -math.inf, math.nan, True, False, None, "fro"])
def test_get_norm_rejects_other_values_by_name(bad: object) -> None:
    with pytest.raises(ValueError, match="unknown norm " + repr(bad).replace("(", r"\(").replace(")", r"\)")):
        get_norm(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("norm", NORMS, ids=IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_measure_is_the_lp_norm_per_sample(norm: Norm, shape: tuple[int, ...]) -> None:
    d = torch.randn(shape, dtype=torch.float64)
    expected = torch.stack([torch.linalg.vector_norm(row.flatten(), ord=norm.p) for row in d])
    torch.testing.assert_close(norm.measure(d), expected)
    assert norm.measure(d).shape == (shape[0],)


@pytest.mark.parametrize("norm", NORMS, ids=IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_steepest_attains_the_dual_norm_bound(norm: Norm, shape: tuple[int, ...]) -> None:
    """⟨η, g⟩ = size·‖g‖_q with ‖η‖_p = size: the maximum of ⟨η, g⟩ over the ball (Hölder, tight)."""
    g = torch.randn(shape, dtype=torch.float64)
    size = torch.rand(shape[0], dtype=torch.float64) + 0.1
    eta = norm.steepest(g, size)
    assert eta.shape == g.shape
    torch.testing.assert_close(norm.measure(eta), size)
    value = (eta * g).flatten(1).sum(1)
    torch.testing.assert_close(value, size * torch.linalg.vector_norm(g.flatten(1), ord=DUAL[norm.name], dim=1))
    # ... and no random point of the ball does better.
    others = norm.project(torch.randn((50, *shape), dtype=torch.float64).flatten(0, 1), size.repeat(50))
    assert bool(((others * g.repeat(50, *[1] * (g.ndim - 1))).flatten(1).sum(1) <= value.repeat(50) + 1e-12).all())


def test_linf_steepest_is_the_sign_and_l2_the_unit_gradient() -> None:
    g = torch.tensor([[3.0, -0.5, 0.0, 2.0]])
    assert torch.equal(LINF.steepest(g, 0.1), 0.1 * g.sign())
    torch.testing.assert_close(L2_NORM.steepest(g, 2.0), 2.0 * g / g.norm())


def test_l1_steepest_puts_the_mass_on_the_largest_gradient_and_splits_ties() -> None:
    g = torch.tensor([[0.1, -3.0, 2.0, 0.0], [1.0, -1.0, 0.5, 0.0]])
    eta = L1_NORM.steepest(g, 2.0)
    assert torch.equal(eta, torch.tensor([[0.0, -2.0, 0.0, 0.0], [1.0, -1.0, 0.0, 0.0]]))


@pytest.mark.parametrize("norm", NORMS, ids=IDS)
def test_zero_gradient_gives_a_zero_step_not_nan(norm: Norm) -> None:
    assert torch.equal(norm.steepest(torch.zeros(3, 5), 0.5), torch.zeros(3, 5))


@pytest.mark.parametrize("norm", NORMS, ids=IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_project_lands_in_the_ball_and_keeps_inside_points(norm: Norm, shape: tuple[int, ...]) -> None:
    d = 3 * torch.randn(shape, dtype=torch.float64)
    eps = torch.rand(shape[0], dtype=torch.float64)
    p = norm.project(d, eps)
    assert bool((norm.measure(p) <= eps + 1e-12).all())
    torch.testing.assert_close(norm.project(p, eps), p)  # idempotent
    inside = d * 1e-3 / (norm.measure(d).view(-1, *[1] * (d.ndim - 1)))  # ‖·‖ = 1e-3 < ε
    assert torch.equal(norm.project(inside, eps + 1e-3), inside)


def _l1_projection_by_bisection(v: torch.Tensor, eps: float) -> torch.Tensor:
    """Reference: find θ with Σ max(|v| − θ, 0) = ε by bisection (float64)."""
    if v.abs().sum() <= eps:
        return v
    lo, hi = 0.0, float(v.abs().max())
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if float((v.abs() - mid).clamp_min(0).sum()) > eps else (lo, mid)
    return v.sign() * (v.abs() - lo).clamp_min(0)


def test_l1_projection_is_the_exact_euclidean_projection() -> None:
    torch.manual_seed(0)
    v = torch.randn(20, 30, dtype=torch.float64)
    eps = torch.rand(20, dtype=torch.float64) * 5
    p = L1_NORM.project(v, eps)
    for i in range(20):
        torch.testing.assert_close(p[i], _l1_projection_by_bisection(v[i], float(eps[i])))
    # Optimality: no other point of the ball is closer to v (random feasible points).
    dist = (p - v).norm(dim=1)
    for _ in range(20):
        q = L1_NORM.project(torch.randn(20, 30, dtype=torch.float64), eps)
        assert bool(((q - v).norm(dim=1) >= dist - 1e-12).all())


def test_l2_projection_scales_radially() -> None:
    d = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    torch.testing.assert_close(L2_NORM.project(d, 1.0), torch.tensor([[0.6, 0.8], [0.3, 0.4]]))


@pytest.mark.parametrize("norm", NORMS, ids=IDS)
def test_zero_radius_projects_to_zero(norm: Norm) -> None:
    assert torch.equal(norm.project(torch.randn(4, 6), 0.0), torch.zeros(4, 6))
    assert torch.equal(norm.project(torch.zeros(4, 6), 0.0), torch.zeros(4, 6))


@pytest.mark.parametrize("norm", NORMS, ids=IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_random_start_is_in_the_ball_and_reproducible(norm: Norm, shape: tuple[int, ...]) -> None:
    like = torch.zeros(shape)
    eps = torch.linspace(0.1, 2.0, shape[0])
    a = norm.random_start(like, eps, torch.Generator().manual_seed(3))
    b = norm.random_start(like, eps, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == like.shape and a.dtype == like.dtype
    assert bool((norm.measure(a) <= eps * (1 + 1e-6)).all())
    state = torch.get_rng_state()
    norm.random_start(like, 0.5, torch.Generator().manual_seed(4))
    assert torch.equal(torch.get_rng_state(), state)  # a generator leaves the global RNG alone


@pytest.mark.parametrize("norm", NORMS, ids=IDS)
def test_random_start_is_uniform_in_the_ball(norm: Norm) -> None:
    """In d = 2 the ball's volume within radius r·ε is a fraction r² of the whole, for every norm; and
    every orthant is equally likely."""
    g = torch.Generator().manual_seed(0)
    n = 40_000
    pts = norm.random_start(torch.zeros(n, 2, dtype=torch.float64), 1.0, g)
    r = norm.measure(pts)
    for frac in (0.25, 0.5, 0.9):
        assert abs(float((r <= frac).double().mean()) - frac**2) < 0.01
    quadrant = (pts[:, 0] > 0).long() * 2 + (pts[:, 1] > 0).long()
    assert bool((torch.bincount(quadrant, minlength=4).double() / n - 0.25).abs().max() < 0.01)


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=2, max_size=4),
       norm=st.sampled_from(NORMS), eps=st.floats(0.0, 10.0), scale=st.floats(1e-3, 100.0),
       seed=st.integers(0, 2**16))
def test_property_projection_and_steps_stay_in_the_ball(shape: list[int], norm: Norm, eps: float,
                                                        scale: float, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    d = scale * torch.randn(shape, generator=gen, dtype=torch.float64)
    assert bool((norm.measure(norm.project(d, eps)) <= eps + 1e-6).all())
    assert bool((norm.measure(norm.steepest(d, eps)) <= eps + 1e-6).all())
    assert bool((norm.measure(norm.random_start(d, eps, gen)) <= eps + 1e-6).all())


@pytest.mark.parametrize("norm", NORMS, ids=IDS)
@pytest.mark.parametrize("per_sample_radius", [False, True])
def test_in_place_step_and_projection_equal_the_pure_ones_bit_for_bit(norm: Norm, per_sample_radius: bool) -> None:
    """The attack loop uses steepest_/project_ on its own buffers; they must give the pure versions' bits."""
    g = torch.Generator().manual_seed(11)
    grad = torch.randn(6, 3, 5, 5, generator=g)
    grad[2] = 0  # a zero gradient: a zero step, no division by zero
    delta = 2 * torch.randn(6, 3, 5, 5, generator=g)
    r = torch.rand(6, generator=g) + 0.1 if per_sample_radius else 0.7
    step, proj = norm.steepest(grad, r), norm.project(delta, r)
    assert torch.equal(norm.steepest_(grad.clone(), r), step)
    assert torch.equal(norm.project_(delta.clone(), r), proj)
    buf = grad.clone()
    if norm.name != "1":  # L∞ and L2 work in the buffer itself; L1 falls back to a new tensor
        assert norm.steepest_(buf, r) is buf
