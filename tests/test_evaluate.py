"""Evaluation: the sweep, bisection against the sweep, the sanity report on a sound and a masked model."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from advgrad import evaluate as ev
from advgrad.data import Dataset

N = 100  # test images per evaluation: small enough to keep this file fast


class Quantized(nn.Module):
    """A deliberately masked model: it rounds its input to multiples of 0.1 before classifying, so the
    input gradient is zero almost everywhere while the decision can still be moved by small changes."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(torch.round(x * 10) / 10)


@pytest.fixture(scope="module")
def batch(mnist5k: Dataset) -> tuple[Tensor, Tensor]:
    return mnist5k.x_test[:N], mnist5k.y_test[:N]


@pytest.fixture(scope="module")
def sound(trained_small: tuple[nn.Module, dict], batch: tuple[Tensor, Tensor]) -> ev.Evaluation:
    model, _ = trained_small
    config = ev.EvalConfig(eps=(0.0, 0.1, 0.2), steps=10, queries=100)
    return ev.evaluate_model(model, *batch, config)


def test_sweep_records_one_per_attack_and_eps(sound: ev.Evaluation, trained_small, batch) -> None:  # type: ignore[no-untyped-def]
    recs = sound.records
    assert [(r["attack"], r["eps"]) for r in recs] == [(a, e) for e in (0.0, 0.1, 0.2) for a in ("fgsm", "pgd", "worst")]
    assert all(r["n"] == N and r["seconds"] >= 0 and 0 <= r["accuracy"] <= 1 for r in recs)
    acc = {(r["attack"], r["eps"]): r["accuracy"] for r in recs}
    model, _ = trained_small
    clean = float((ev.predict(model, batch[0]) == batch[1]).float().mean())
    assert sound.clean_accuracy == clean
    assert acc[("fgsm", 0.0)] == acc[("pgd", 0.0)] == clean  # ε = 0 attacks nothing
    for e in (0.1, 0.2):  # a point is robust only if it survives both attacks
        assert acc[("worst", e)] <= min(acc[("fgsm", e)], acc[("pgd", e)])
    assert acc[("pgd", 0.2)] < acc[("pgd", 0.1)] < clean


def test_sweep_masks_and_model_state(trained_small, batch) -> None:  # type: ignore[no-untyped-def]
    model, _ = trained_small
    model.train()
    try:
        result = ev.sweep(model, *batch, eps=(0.1,), attacks=("pgd",), steps=5)
        assert model.training and all(p.requires_grad for p in model.parameters())
    finally:
        model.eval()
    assert [r["attack"] for r in result.records] == ["pgd"]  # no "worst" line for a single attack
    mask = result.robust[("pgd", 0.1)]
    assert mask.dtype == torch.bool and not bool((mask & ~result.correct).any())  # only correct points survive
    assert result.records[0]["accuracy"] == pytest.approx(float(mask.float().mean()))


def test_sweep_is_reproducible(trained_small, batch) -> None:  # type: ignore[no-untyped-def]
    model, _ = trained_small
    a = ev.robust_accuracy(model, *batch, eps=(0.1,), attacks=("pgd",), steps=3, seed=5)
    b = ev.robust_accuracy(model, *batch, eps=(0.1,), attacks=("pgd",), steps=3, seed=5)
    assert a[0]["accuracy"] == b[0]["accuracy"]


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


def test_sanity_report_passes_a_sound_model(sound: ev.Evaluation) -> None:
    names = [c.name for c in sound.checks]
    assert names == ["monotone", "full-range", "pgd-vs-fgsm", "steps-restarts", "gradients", "sign-noise", "black-box"]
    assert sound.all_ok, [c.to_dict() for c in sound.checks if not c.ok]
    for c in sound.checks:
        assert c.to_dict()["status"] == "ok" and c.message


@pytest.mark.slow
def test_sanity_report_flags_a_masked_model(trained_small, batch) -> None:  # type: ignore[no-untyped-def]
    model, _ = trained_small
    masked = Quantized(model).eval()
    config = ev.EvalConfig(eps=(0.0, 0.2), steps=5, queries=100)
    result = ev.evaluate_model(masked, *batch, config)
    acc = {(r["attack"], r["eps"]): r["accuracy"] for r in result.records}
    assert acc[("pgd", 0.2)] >= result.clean_accuracy - 0.1  # the gradient attacks see nothing
    checks = {c.name: c for c in result.checks}
    assert not result.all_ok
    assert checks["gradients"].status == "warn" and checks["gradients"].values["share"] == 1.0
    assert checks["black-box"].status == "warn" and checks["black-box"].values["extra_fooled"] > 0.05
    assert checks["full-range"].status == "warn"


def test_gradient_free_attacks_stay_in_the_ball(trained_small, batch) -> None:  # type: ignore[no-untyped-def]
    model, _ = trained_small
    x, y = batch[0][:20], batch[1][:20]
    g = torch.Generator().manual_seed(0)
    for x_adv in (ev.sign_noise(x, 0.1, generator=g), ev.square_search(model, x, y, 0.1, queries=20, generator=g)):
        assert x_adv.shape == x.shape
        assert float((x_adv - x).abs().max()) <= 0.1 + 1e-6
        assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    flat = nn.Sequential(nn.Unflatten(1, (1, 28, 28)), model)  # takes (N, 784)
    x_flat = ev.square_search(flat, x.flatten(1), y, 0.1, queries=5, generator=g)  # any shape (N, D)
    assert x_flat.shape == (20, 784) and float((x_flat - x.flatten(1)).abs().max()) <= 0.1 + 1e-6


def test_loss_landscape_gradient_sign_climbs_faster(trained_small, batch) -> None:  # type: ignore[no-untyped-def]
    model, _ = trained_small
    t, along, rand = ev.loss_landscape(model, batch[0][:4], batch[1][:4], eps_max=0.2, points=5, n_random=2,
                                       generator=torch.Generator().manual_seed(0))
    assert t.shape == (5,) and along.shape == (4, 5) and rand.shape == (4, 2, 5)
    assert torch.equal(along[:, 0], rand[:, 0, 0]) and float(t[0]) == 0.0
    assert bool((along[:, -1] > rand[:, :, -1].amax(1)).all())
    with pytest.raises(ValueError):
        ev.loss_landscape(model, batch[0][:2], batch[1][:2], points=1)


@pytest.mark.parametrize("kwargs,match", [
    ({"eps": ()}, "eps"), ({"eps": (-0.1,)}, "eps"), ({"eps": (math.nan,)}, "eps"),
    ({"attacks": ("cw",)}, "unknown attack"), ({"attacks": ()}, "attacks"), ({"steps": 0}, "steps"),
    ({"restarts": 0}, "restarts"), ({"bounds": (1.0, 0.0)}, "bounds"), ({"precision": 0.0}, "precision"),
    ({"attacks": ("pgd", "pgd")}, "repeat"),
], ids=["no-eps", "neg-eps", "nan-eps", "unknown-attack", "no-attacks", "steps", "restarts", "bounds",
        "precision", "repeat"])
def test_config_rejects_bad_values(kwargs: dict, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=match):
        ev.EvalConfig(**kwargs)
