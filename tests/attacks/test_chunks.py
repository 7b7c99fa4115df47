"""Chunks: a speed knob on the CPU that changes no mathematics (bit for bit where that holds by construction,
to rounding elsewhere)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from helpers.batches import make_batch as _batch
from helpers.batches import well_conditioned
from torch import Tensor, nn

from advgrad.attacks import fgsm, input_gradient, pgd

NORMS = ["inf", "2", "1"]


# --- chunks: a speed knob that never changes a bit -------------------------------------------------

@pytest.mark.slow
@pytest.mark.isa
@pytest.mark.parametrize("norm", NORMS)
def test_chunk_size_changes_nothing_in_float64(trained_small, mnist5k, norm: str) -> None:
    """Each chunk's loss receives the whole batch's 1/N, so in exact arithmetic 1, 16, 21, 40 or all 60
    samples per pass (and the default) compute the same gradients, examples and kept worst cases. In
    floating point a pass over fewer rows may get another matrix-multiply kernel and round the last bit
    differently; in float64 that moves a gradient by ~1e-16 relative, which cannot turn the sign of a
    coordinate (it would have to be that close to zero) nor a prediction: flags agree exactly and the
    examples to 1e-10, with early stop and restarts deciding something."""
    model = copy.deepcopy(trained_small[0]).double()
    x, y = mnist5k.x_test[:60].double(), mnist5k.y_test[:60]
    eps = {"inf": 0.1, "2": 1.5, "1": 10.0}[norm]

    def attack(chunk: int | None) -> list[Tensor]:
        g = torch.Generator().manual_seed(5)
        result = pgd(model, x, y, eps, steps=4, norm=norm, restarts=2, early_stop=True, generator=g,
                            chunk_size=chunk)
        return [pgd(model, x, y, eps, steps=3, norm=norm, random_start=False, chunk_size=chunk).x_adv,
                result.x_adv, result.success, result.loss, result.logits,
                input_gradient(model, x, y, chunk_size=chunk), fgsm(model, x, y, eps, norm=norm, chunk_size=chunk).x_adv]

    whole = attack(60)
    assert bool(whole[2].any()) and not bool(whole[2].all())  # a budget where restarts decide something
    for chunk in (1, 16, 21, 40, None):
        got = attack(chunk)
        assert torch.equal(got[2], whole[2]), chunk
        for a, b in zip(got[:2] + got[3:], whole[:2] + whole[3:]):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10 * float(b.abs().max()), msg=str(chunk))


@pytest.mark.slow
@pytest.mark.isa
def test_chunked_float32_gradient_equals_one_piece_to_rounding(trained_small, mnist5k) -> None:
    """In float32, the precision users run at: every chunk size gives each well-conditioned sample's
    gradient to within 1e-4 of that sample's largest entry, and 97 % of them to within 1e-5. A coordinate
    of ∂J/∂X is a float32 sum of thousands of terms that largely cancel, rounded to ~1e-7 of the terms'
    size, not of the sum's, and a one-row pass (a matrix-vector kernel) sums them in another order. (On
    samples the model is all but certain of, the gradient is rounding noise: conftest.well_conditioned.)
    L∞ PGD gives the same robust accuracy to within one sample in 200."""
    model, _ = trained_small
    x, y = mnist5k.x_test[:200], mnist5k.y_test[:200]
    good = well_conditioned(model, x, y)
    whole = input_gradient(model, x, y, chunk_size=200)
    scale = whole.flatten(1).abs().amax(1).clamp_min(1e-30).view(-1, 1, 1, 1)  # (N, 1, 1, 1)
    for chunk in (1, 16, 50, None):
        diff = ((input_gradient(model, x, y, chunk_size=chunk) - whole).abs() / scale).flatten(1).amax(1)[good]
        assert float(diff.max()) <= 1e-4 and float((diff <= 1e-5).double().mean()) >= 0.97, chunk
    kw = dict(steps=10, restarts=2, early_stop=True)
    one = pgd(model, x, y, 0.1, generator=torch.Generator().manual_seed(0), chunk_size=200, **kw)
    for chunk in (16, None):
        res = pgd(model, x, y, 0.1, generator=torch.Generator().manual_seed(0), chunk_size=chunk, **kw)
        assert abs(int(res.success.sum()) - int(one.success.sum())) <= 1, chunk


def test_slices_are_near_equal_and_cover_the_batch() -> None:
    from advgrad.attacks._chunks import slices as _slices

    for n, chunk in [(1, 256), (256, 256), (257, 256), (1000, 256), (1001, 256), (10, 3), (7, 1)]:
        parts = _slices(n, chunk)
        sizes = [p.stop - p.start for p in parts]
        assert parts[0].start == 0 and parts[-1].stop == n and sum(sizes) == n
        assert all(a.stop == b.start for a, b in zip(parts, parts[1:]))
        assert len(parts) == math.ceil(n / chunk) and max(sizes) <= chunk and max(sizes) - min(sizes) <= 1


def test_auto_chunk_size_cuts_conv_nets_and_keeps_small_models_whole() -> None:
    """The probe counts what autograd keeps per sample: cnn-small keeps ~34 KB (ReLU feature maps) and is
    cut into chunks of 256; a linear model keeps nearly nothing and stays in one piece; a deep ResNet
    keeps megabytes per sample and gets the smallest chunks. The model's mode and flags are restored."""
    from advgrad.attacks import CHUNK_MAX, CHUNK_MIN, auto_chunk_size
    from advgrad.models.zoo import build_model

    def chunk(name: str, shape: tuple[int, int, int], n: int) -> int:
        torch.manual_seed(0)
        model = build_model(name, input_shape=shape, num_classes=10, mean=[0.5] * shape[0], std=[0.25] * shape[0])
        model.train()
        c = auto_chunk_size(model, torch.rand(n, *shape))
        assert model.training and all(p.requires_grad and p.grad is None for p in model.parameters())
        return c

    assert chunk("logreg", (1, 28, 28), 1000) == 1000
    assert chunk("mlp", (1, 28, 28), 1000) == 1000
    assert chunk("cnn-small", (1, 28, 28), 1000) == CHUNK_MAX
    assert chunk("cnn-small", (1, 28, 28), 100) == 100  # a batch smaller than a chunk stays whole
    assert CHUNK_MIN < chunk("cnn", (1, 28, 28), 1000) < CHUNK_MAX  # ~400 KB per sample: 64 MiB / that
    assert chunk("preact-resnet18", (3, 32, 32), 64) == CHUNK_MIN
    assert chunk("cnn", (1, 28, 28), CHUNK_MIN) == CHUNK_MIN  # too few samples to cut


def test_auto_chunk_size_probes_a_model_once_per_sample_shape() -> None:
    from advgrad.attacks import auto_chunk_size

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 16, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    calls: list[int] = []
    model.register_forward_hook(lambda mod, inp, out: calls.append(len(inp[0])))
    x = torch.rand(300, 1, 28, 28)
    first = auto_chunk_size(model, x)
    assert calls == [2]  # the probe: two samples
    assert auto_chunk_size(model, x[:200]) == min(first, 200) and calls == [2]  # same shape: no new probe
    auto_chunk_size(model, torch.rand(300, 1, 32, 32))
    assert calls == [2, 2]  # a new sample shape is probed


@pytest.mark.isa
def test_chunks_of_a_targeted_attack_descend_like_the_whole_batch(trained_small, mnist5k) -> None:
    """Targeted, the loss is descended: the chunks carry the whole batch's −1/N. Float64, as above."""
    model = copy.deepcopy(trained_small[0]).double()
    x, y = mnist5k.x_test[:40].double(), (mnist5k.y_test[:40] + 1) % 10
    whole = pgd(model, x, y, 0.2, steps=5, targeted=True, random_start=False, chunk_size=40).x_adv
    torch.testing.assert_close(pgd(model, x, y, 0.2, steps=5, targeted=True, random_start=False, chunk_size=20).x_adv,
                               whole, rtol=0, atol=1e-10)


def test_chunked_input_gradient_is_each_samples_own(tiny_mlp: nn.Module) -> None:
    x, y = _batch((9, 1, 4, 4), 3, dtype=torch.float32)
    rows = torch.cat([input_gradient(tiny_mlp, x[i:i + 1], y[i:i + 1]) for i in range(9)])
    torch.testing.assert_close(input_gradient(tiny_mlp, x, y, chunk_size=2), rows, rtol=1e-6, atol=0)
