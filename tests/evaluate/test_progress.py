"""The evaluation's optional ``progress(done, total)`` callback: it counts every pass of an attack over
the N samples as N, ends exactly at its total, never goes back, and changes no result."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from advgrad.data.builtin import Dataset
from advgrad.evaluate import CHECKS, EvalConfig, evaluate_model, minimal_eps, sanity_report, sweep

N = 24


def recorder() -> tuple[list[tuple[int, int]], object]:
    calls: list[tuple[int, int]] = []
    return calls, lambda done, total: calls.append((done, total))


def assert_counts_to(calls: list[tuple[int, int]], total: int) -> None:
    assert calls, "progress was never called"
    assert {t for _, t in calls} == {total}  # one total, known from the first call
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == total and done[0] >= 0


@pytest.fixture(scope="module")
def setup(trained_small: tuple[nn.Module, dict], mnist5k: Dataset) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    model, _ = trained_small
    return model, mnist5k.x_test[:N], mnist5k.y_test[:N]


@pytest.mark.slow
@pytest.mark.parametrize("min_eps,sanity", [(False, False), (True, False), (False, True), (True, True)])
def test_evaluate_model_reports_every_pass_and_changes_nothing(setup, min_eps: bool, sanity: bool) -> None:  # type: ignore[no-untyped-def]
    model, x, y = setup
    config = EvalConfig(eps=(0.0, 0.1, 0.2, 0.1), steps=2, queries=4, block=7, min_eps=min_eps, precision=0.03)
    calls, progress = recorder()
    torch.manual_seed(0)
    with_bar = evaluate_model(model, x, y, config, sanity=sanity, progress=progress)  # type: ignore[arg-type]
    torch.manual_seed(0)
    without = evaluate_model(model, x, y, config, sanity=sanity)
    # Passes, counted by hand: 3 distinct ε × 2 attacks; minimal ε: one pass at ε_max = 0.2 and
    # ⌈log₂(0.2 / 0.03)⌉ = 3 bisection rounds; sanity: N per check of CHECKS (a declining one too).
    passes = 3 * 2 + (1 + math.ceil(math.log2(0.2 / 0.03)) if min_eps else 0) + (len(CHECKS) if sanity else 0)
    assert_counts_to(calls, N * passes)
    # Same process, same ops, same seeds: the callback must not change a single bit of the results.
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in with_bar.records]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in without.records]
    assert [c.to_dict() for c in with_bar.checks] == [c.to_dict() for c in without.checks]
    if min_eps:
        assert with_bar.min_eps is not None and without.min_eps is not None
        assert torch.equal(with_bar.min_eps, without.min_eps)


def test_each_part_counts_its_own_passes(setup) -> None:  # type: ignore[no-untyped-def]
    model, x, y = setup
    calls, progress = recorder()
    result = sweep(model, x, y, eps=(0.0, 0.1), attacks=("pgd",), steps=2, block=5, progress=progress)  # type: ignore[arg-type]
    assert_counts_to(calls, N * 2)
    calls.clear()
    minimal_eps(model, x, y, eps_max=0.25, precision=0.1, steps=2, block=5, progress=progress)  # type: ignore[arg-type]
    assert_counts_to(calls, N * (1 + 2))  # ⌈log₂(0.25 / 0.1)⌉ = 2 rounds
    calls.clear()
    config = EvalConfig(eps=(0.0, 0.1), attacks=("pgd",), steps=2, queries=3, block=5)
    sanity_report(model, x, y, result, config=config, progress=progress)  # type: ignore[arg-type]
    assert_counts_to(calls, N * len(CHECKS))  # N per check; pgd-vs-fgsm declines without FGSM but still counts
