"""Robust accuracy: the sweep's records and masks, reproducibility, and EvalConfig's validation."""

from __future__ import annotations

import math

import pytest
import torch

from advgrad import evaluate as ev

N = 100  # the conftest's batch of test digits


@pytest.mark.slow
def test_sweep_records_one_per_attack_and_eps(sound: ev.Evaluation, trained_small, batch) -> None:  # type: ignore[no-untyped-def]
    recs = sound.records
    expected = [(a, e) for e in (0.0, 0.1, 0.2) for a in ("fgsm", "pgd", "worst")]
    assert [(r["attack"], r["eps"]) for r in recs] == expected
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


@pytest.mark.parametrize("kwargs,match", [
    ({"eps": ()}, "eps"), ({"eps": (-0.1,)}, "eps"), ({"eps": (math.nan,)}, "eps"),
    ({"attacks": ("nope",)}, "unknown attack"), ({"attacks": ()}, "attacks"), ({"steps": 0}, "steps"),
    ({"restarts": 0}, "restarts"), ({"bounds": (1.0, 0.0)}, "bounds"), ({"precision": 0.0}, "precision"),
    ({"attacks": ("pgd", "pgd")}, "repeat"),
], ids=["no-eps", "neg-eps", "nan-eps", "unknown-attack", "no-attacks", "steps", "restarts", "bounds",
        "precision", "repeat"])
def test_config_rejects_bad_values(kwargs: dict, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=match):
        ev.EvalConfig(**kwargs)
