"""The evaluation entry points over the attack loop's state space, against closed forms on FlipModel.

On FlipModel (tests/helpers/flipmodel.py) a clean point x = 0.5 + t·sign(u) has margin z₁ − z₀ = t‖u‖₁ (label 0,
correct iff t < 0), and the worst point of the L∞ ball is its corner x + ε·sign(u). FGSM steps there at
once; PGD with α = 2.5ε/K reaches it within K steps from any start (each coordinate needs at most 2ε).
So a point survives FGSM, PGD and every restart at ε exactly when t + ε < 0, its minimal ε is −t, and
the cross-entropy along sign(∂J/∂X) is softplus((t + τ)‖u‖₁): every number below is known in advance,
whatever the batch size, the chunks, the restarts and the step at which each point falls.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers.flipmodel import FlipModel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import Tensor

from advgrad.evaluate import EvalConfig, evaluate_model, loss_landscape, sweep

pytestmark = pytest.mark.isa

SIDE = 48  # 18 KB of activations per sample in float64: auto_chunk_size cuts batches of a few hundred

def _points(model: FlipModel, t: Tensor) -> tuple[Tensor, Tensor]:
    x = (0.5 + t[:, None] * model.u.sign()[None, :]).view(len(t), 1, SIDE, SIDE)
    return x, torch.zeros(len(t), dtype=torch.long)


def _margins(n: int, grid: tuple[float, ...], seed: int) -> Tensor:
    """n clean t in [−0.22, 0.02] (a few already wrong), none within 1e-4 of a grid ε (no ties)."""
    t = -0.22 + 0.24 * torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    for e in grid:
        t = torch.where((t + e).abs() < 1e-4, t + 3e-4, t)
    return t


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.one_of(st.integers(1, 30), st.integers(200, 600)), batch=st.sampled_from([1, 7, 64, 257, 700]),
       steps=st.integers(1, 5), restarts=st.integers(1, 3), seed=st.integers(0, 2**16),
       grid=st.sampled_from([(0.0, 0.1), (0.05, 0.12, 0.2), (0.03,)]))
def test_sweep_matches_the_closed_form(n: int, batch: int, steps: int, restarts: int, seed: int,
                                       grid: tuple[float, ...]) -> None:
    """Batches of one point to several chunks, restarts with early stop: every record and every
    per-sample mask is the closed form's."""
    if batch == 1 and n > 30:
        batch = 64  # a point per batch over hundreds of points only costs time
    model = FlipModel(side=SIDE)
    t = _margins(n, grid, seed)
    x, y = _points(model, t)
    result = sweep(model, x, y, eps=grid, attacks=("fgsm", "pgd"), steps=steps, restarts=restarts,
                   block=batch, seed=seed)
    assert torch.equal(result.correct, t < 0)
    for e in grid:
        expected = t + e < 0
        for attack in ("fgsm", "pgd", "worst"):
            assert torch.equal(result.robust[(attack, e)], expected), (attack, e)
    acc = {(r["attack"], r["eps"]): r["accuracy"] for r in result.records}
    for e in grid:
        assert acc[("pgd", e)] == pytest.approx(float((t + e < 0).double().mean()))


@pytest.mark.slow
@pytest.mark.parametrize("batch", [257, 700])
def test_sweep_on_600_points_where_the_active_set_shrinks_after_full_steps(batch: int) -> None:
    """600 points in one batch (700) or in 257 + 257 + 86, several chunks each: nobody is fooled before the
    first step, then points fall at every step: the path of the crash the README's evaluation once hit."""
    model = FlipModel(side=SIDE)
    t = -torch.linspace(0.001, 0.3, 600, dtype=torch.float64)
    x, y = _points(model, t)
    result = sweep(model, x, y, eps=(0.1, 0.25), attacks=("pgd",), steps=5, restarts=2, block=batch)
    for e in (0.1, 0.25):
        assert torch.equal(result.robust[("pgd", e)], t + e < 0)


@pytest.mark.slow
def test_evaluate_model_min_eps_and_sanity_on_1000_points() -> None:
    """The whole evaluation (sweep with restarts, bisection, sanity report) over 1,000 points in several
    batches and chunks: the records and minimal ε are the closed form's, every check passes on a model
    with honest gradients."""
    model = FlipModel(side=SIDE)
    grid = (0.0, 0.05, 0.1, 0.2)
    t = _margins(1000, grid, 0)
    x, y = _points(model, t)
    config = EvalConfig(eps=grid, steps=5, restarts=2, block=400, min_eps=True, precision=0.004, queries=20)
    result = evaluate_model(model, x, y, config)
    acc = {(r["attack"], r["eps"]): r["accuracy"] for r in result.records}
    for e in grid:
        assert acc[("worst", e)] == pytest.approx(float((t + e < 0).double().mean()))
    assert result.min_eps is not None
    wrong = t >= 0
    assert bool((result.min_eps[wrong] == 0).all())
    exact = -t[~wrong]
    m = result.min_eps[~wrong]
    beyond = exact > 0.2  # not broken within the largest ε of the grid: inf
    assert bool(torch.isinf(m[beyond]).all())
    assert bool(((m[~beyond] >= exact[~beyond] - 1e-9) & (m[~beyond] <= exact[~beyond] + 0.004 + 1e-9)).all())
    assert [c.name for c in result.checks] == ["monotone", "full-range", "pgd-vs-fgsm", "steps-restarts",
                                               "gradients", "sign-noise", "black-box", "hard-label", "randomised", "logits"]
    assert result.all_ok, [c.message for c in result.checks if not c.ok]


@pytest.mark.parametrize("n", [1, 300])
def test_loss_landscape_along_the_gradient_sign_is_the_closed_form(n: int) -> None:
    model = FlipModel(side=SIDE)
    t = -torch.linspace(0.01, 0.2, n, dtype=torch.float64)
    x, y = _points(model, t)
    taus, along, rand = loss_landscape(model, x, y, eps_max=0.25, points=11, n_random=2,
                                       generator=torch.Generator().manual_seed(0))
    l1 = float(model.u.abs().sum())
    expected = F.softplus((t[:, None] + taus.double()[None, :]) * l1)  # (N, P)
    torch.testing.assert_close(along, expected, rtol=1e-12, atol=1e-12)
    assert rand.shape == (n, 2, 11) and bool(torch.isfinite(rand).all())
