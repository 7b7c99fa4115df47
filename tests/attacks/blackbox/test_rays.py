"""RayS (advgrad/attacks/blackbox/rays.py) against the closed form of an affine model and a random-ray
baseline written here.

On an affine model (no box in the way) the minimal L∞ distance to class j is (z_y − z_j)/‖w_y − w_j‖₁, reached
along the ray sign(w_j − w_y) (tests/attacks/minimal/closed_forms.py). With two classes the sign flips only
ever bring RayS closer to that ray, so it ends there, up to its bisection tolerance 10⁻³/√D. With more
classes the minimum over j is a union of half-spaces and the greedy flips can settle on another class's
best ray (a local optimum): there it must still reach the closed form on most points, never go below it,
and never do worse than random rays given the same queries.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from advgrad.attacks.blackbox.rays import blocks, rays
from tests.attacks.blackbox.conftest import affine, min_distance

WIDE = (-10.0, 11.0)  # bounds wide enough that no ray is clipped before the boundary


def test_blocks_halve_down_to_single_coordinates() -> None:
    assert blocks(5) == [(0, 5), (0, 3), (3, 5), (0, 2), (2, 4), (4, 5)] + [(i, i + 1) for i in range(5)]
    assert blocks(1) == [(0, 1)]
    for d in (7, 16, 784):
        levels = blocks(d)
        assert levels[0] == (0, d) and levels[-d:] == [(i, i + 1) for i in range(d)]


def test_two_classes_reach_the_closed_form_within_the_bisection_tolerance() -> None:
    g = torch.Generator().manual_seed(5)
    weight = torch.randn(2, 16, generator=g, dtype=torch.float64)
    bias = torch.randn(2, generator=g, dtype=torch.float64) * 0.1
    x = torch.rand(16, 1, 4, 4, generator=g, dtype=torch.float64)
    model = affine(weight, bias)
    y = model(x).argmax(1)
    res = rays(model, x, y, queries=300, bounds=WIDE)
    best = min_distance(weight, bias, x, y, math.inf)
    tol = 1e-3 / math.sqrt(16)
    assert bool(res.success.all())
    assert bool((res.distance >= best - 1e-12).all())
    assert bool((res.distance <= best + tol).all()), (res.distance - best).max()


@torch.no_grad()
def random_rays(model: nn.Module, x: Tensor, y: Tensor, queries: int, tol: float, seed: int) -> Tensor:
    """The baseline: rays along uniformly random sign vectors, each checked at the best radius so far and, if
    adversarial there, bisected as RayS does; the best L∞ distance per point within ``queries`` queries."""
    g = torch.Generator().manual_seed(seed)
    n, d = len(x), x[0].numel()
    flat = x.flatten(1)
    best = torch.full((n,), 2.0 * (WIDE[1] - WIDE[0]), dtype=x.dtype)
    spent = torch.zeros(n, dtype=torch.long)
    steps = math.ceil(math.log2(2 * (WIDE[1] - WIDE[0]) / tol))

    def adversarial(r: Tensor, s: Tensor, rows: Tensor) -> Tensor:
        return model((flat[rows] + r[:, None] * s).clamp(*WIDE).view(-1, *x.shape[1:])).argmax(1) != y[rows]

    while int(spent.max()) + 1 + steps <= queries:
        s = torch.randint(0, 2, (n, d), generator=g).to(x.dtype) * 2 - 1
        hit = adversarial(best, s, torch.arange(n)).nonzero().squeeze(1)
        spent += 1
        lo, hi = torch.zeros(len(hit), dtype=x.dtype), best[hit]
        for _ in range(steps if len(hit) else 0):
            mid = (lo + hi) / 2
            adv = adversarial(mid, s[hit], hit)
            hi, lo = torch.where(adv, mid, hi), torch.where(adv, lo, mid)
        spent[hit] += steps
        best[hit] = hi
    return best


def test_four_classes_closed_form_and_random_ray_baseline(affine_problem: tuple) -> None:
    """Measured: 31 of 32 points at the closed form (within 10⁻³/√D); one settles on another class's ray at
    1.23× the minimum. Held to ≥ 28 of 32, never below the closed form, never above the baseline."""
    model, weight, bias, x, y = affine_problem
    res = rays(model, x, y, queries=300, bounds=WIDE)
    best = min_distance(weight, bias, x, y, math.inf)
    tol = 1e-3 / math.sqrt(16)
    assert bool(res.success.all()) and bool((res.distance >= best - 1e-12).all())
    assert int((res.distance <= best + tol).sum()) >= 28
    baseline = random_rays(model, x, y, queries=300, tol=tol, seed=0)
    assert bool((res.distance <= baseline + tol).all())
    assert float(res.distance.median()) < 0.9 * float(baseline.median())


@pytest.mark.heavy
def test_digits_beat_random_rays(digits_model: tuple[nn.Module, Tensor, Tensor]) -> None:
    """cnn-small, 30 digits, 500 queries: RayS's median L∞ distance well below random rays' (measured 0.118
    against 0.332 on the shared mnist5k-small model) and no point worse."""
    model, x, y = digits_model
    x, y = x[:30], y[:30]
    res = rays(model, x, y, queries=500)
    assert bool(res.success.all())
    baseline = random_rays(model, x, y, queries=500, tol=1e-3 / 28, seed=0)
    assert bool((res.distance <= baseline + 1e-3).all())
    assert float(res.distance.median()) < 0.5 * float(baseline.median())
