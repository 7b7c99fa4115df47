"""The sanity report on a sound and on a deliberately masked model."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from advgrad import evaluate as ev

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
