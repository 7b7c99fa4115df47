"""The minimal-norm geometry of ``advgrad.norms``: dual norms (Hölder's equality against the steepest step
and the closed formulas), the rescaling onto a sphere, and the unnormalised steepest directions."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from advgrad.norms import L1_NORM, L2_NORM, LINF, Norm, ascent_direction, dual_measure, rescale

NORMS = [LINF, L2_NORM, L1_NORM]
DUAL = {"inf": 1.0, "2": 2.0, "1": math.inf}


def _batch(seed: int, n: int, shape: tuple[int, ...]) -> Tensor:
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a.flatten(1) * b.flatten(1)).sum(dim=1)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 5), shape=st.sampled_from([(3,), (2, 3), (1, 3, 3)]),
       norm=st.sampled_from(NORMS))
def test_dual_measure_is_the_largest_inner_product_on_the_unit_ball(seed: int, n: int, shape: tuple[int, ...],
                                                                     norm: Norm) -> None:
    v = _batch(seed, n, shape)
    dual = dual_measure(norm, v)
    torch.testing.assert_close(dual, torch.linalg.vector_norm(v.flatten(1), ord=DUAL[norm.name], dim=1))
    torch.testing.assert_close(_dot(norm.steepest(v, 1.0), v), dual)  # Hölder: attained by the steepest step
    for _ in range(5):  # and never exceeded on the unit ball
        eta = norm.project(_batch(seed + 1, n, shape), 1.0)
        assert bool((_dot(eta, v) <= dual * (1 + 1e-12)).all())


def test_dual_measure_refuses_a_norm_without_a_dual() -> None:
    with pytest.raises(ValueError, match="L0"):
        dual_measure(Norm("0", 0.0, "L0"), torch.ones(2, 3))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 5), norm=st.sampled_from(NORMS),
       per_sample=st.booleans())
def test_rescale_lands_on_the_sphere_along_the_same_ray(seed: int, n: int, norm: Norm, per_sample: bool) -> None:
    delta = _batch(seed, n, (2, 3))
    delta[0] = 0.0  # a zero sample stays zero
    radius: float | Tensor = torch.rand(n, dtype=torch.float64) + 0.1 if per_sample else 0.7
    out = rescale(norm, delta, radius)
    expected = radius if isinstance(radius, Tensor) else torch.full((n,), radius, dtype=torch.float64)
    torch.testing.assert_close(norm.measure(out)[1:], expected[1:])
    assert bool((out[0] == 0).all())
    scale = out.flatten(1)[1:] / delta.flatten(1)[1:]  # one positive factor per sample
    torch.testing.assert_close(scale, scale[:, :1].expand_as(scale))
    assert bool((scale > 0).all())


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 5), norm=st.sampled_from(NORMS))
def test_ascent_direction_scales_to_the_steepest_step(seed: int, n: int, norm: Norm) -> None:
    w = _batch(seed, n, (1, 2, 3))
    u, length = ascent_direction(norm, w)
    torch.testing.assert_close(norm.measure(u), length)
    torch.testing.assert_close(_dot(u, w), length * dual_measure(norm, w))
    size = torch.rand(n, dtype=torch.float64) + 0.5
    step = u * (size / length).view(-1, 1, 1, 1)
    torch.testing.assert_close(step, norm.steepest(w, size))
