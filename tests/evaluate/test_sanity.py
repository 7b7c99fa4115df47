"""The sanity report on a sound and on a deliberately masked model."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from advgrad import evaluate as ev
from advgrad.evaluate import _sanity_base as sanity_base
from advgrad.evaluate import sanity

N = 100  # test images per evaluation: small enough to keep this file fast


class Quantized(nn.Module):
    """A deliberately masked model: it rounds its input to multiples of 0.1 before classifying, so the
    input gradient is zero almost everywhere while the decision can still be moved by small changes."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(torch.round(x * 10) / 10)


def test_sanity_report_passes_a_sound_model(sound: ev.Evaluation) -> None:
    names = [c.name for c in sound.checks]
    assert names == ["monotone", "full-range", "pgd-vs-fgsm", "steps-restarts", "gradients", "sign-noise", "black-box",
                     "hard-label", "randomised", "logits"]  # autoattack-vs-pgd declines: this evaluation ran no AutoAttack
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
    # RayS sees only labels, so the zero gradient does not stop it either
    assert checks["hard-label"].status == "warn" and checks["hard-label"].values["extra_fooled"] > 0.05
    assert checks["hard-label"].values["attack"] == "rays"
    assert checks["full-range"].status == "warn"


class _Noisy(nn.Module):
    """A randomised defence: fresh Gaussian noise on the input at every forward pass, in eval mode too."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(x + 0.05 * torch.randn_like(x))


def _context(model: nn.Module, batch, records: list[dict] | None = None, attacks=("fgsm", "pgd")):  # type: ignore[no-untyped-def]
    x, y = batch
    config = ev.EvalConfig(eps=(0.0, 0.1), attacks=attacks, steps=2, queries=10)
    correct = torch.ones(len(y), dtype=torch.bool)
    result = ev.SweepResult(records or [], {}, correct)
    return sanity_base.Context(model, x, y, result, config, 0.1)


def test_randomised_and_probability_outputs_are_flagged(trained_small, batch) -> None:  # type: ignore[no-untyped-def]
    model, _ = trained_small
    assert sanity.randomised(_context(model, batch)).ok
    noisy = sanity.randomised(_context(_Noisy(model).eval(), batch))
    assert not noisy.ok and "version 'rand'" in noisy.message and noisy.values["largest_difference"] > 0
    assert sanity.logits_check(_context(model, batch)).ok
    softmax = sanity.logits_check(_context(nn.Sequential(model, nn.Softmax(dim=1)).eval(), batch))
    assert not softmax.ok and "rows sum to 1" in softmax.message
    sigmoid = sanity.logits_check(_context(nn.Sequential(model, nn.Sigmoid()).eval(), batch))
    assert not sigmoid.ok and "all in [0, 1]" in sigmoid.message


def test_autoattack_above_the_best_pgd_is_flagged_as_a_bug(trained_small, batch) -> None:  # type: ignore[no-untyped-def]
    model, _ = trained_small
    attacks = ("pgd", "autoattack")
    records = [{"attack": "pgd", "eps": 0.1, "accuracy": 0.50}, {"attack": "autoattack", "eps": 0.1, "accuracy": 0.47}]
    assert sanity.autoattack_vs_pgd(_context(model, batch, records, attacks)).ok
    records[1]["accuracy"] = 0.55
    check = sanity.autoattack_vs_pgd(_context(model, batch, records, attacks))
    assert check is not None and not check.ok and "a bug" in check.message
    assert check.values["largest_gap"] == pytest.approx(0.05)
    assert sanity.autoattack_vs_pgd(_context(model, batch, records[:1], ("pgd",))) is None  # nothing to compare


def test_the_module_docstring_lists_every_check_in_report_order() -> None:
    """The numbered list in ``advgrad.evaluate.sanity``'s docstring names each of ``CHECKS``, in order."""
    import re

    listed = re.findall(r"^\s*\d+\. ``([a-z-]+)``", sanity.__doc__ or "", re.M)
    assert listed == [name for name, _ in sanity.CHECKS]
