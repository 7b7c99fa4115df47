"""∂J/∂X: the input gradient against central finite differences, per sample, with any loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers.batches import make_batch as _batch
from torch import nn

from advgrad.attacks import input_gradient
from advgrad.losses import resolve_loss

NORMS = ["inf", "2", "1"]


# --- ∂J/∂X -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("loss", ["ce", "mse", "margin"])
def test_input_gradient_equals_central_finite_differences(loss: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 3 * 3, 4)).double().eval()
    x, y = _batch((3, 1, 5, 5), 4)
    grad = input_gradient(model, x, y, loss=loss)
    fn = resolve_loss(loss, model)
    h = 1e-6
    fd = torch.zeros_like(x)
    for idx in range(x[0].numel()):
        e = torch.zeros(x[0].numel(), dtype=x.dtype)
        e[idx] = h
        e = e.view_as(x[0]).expand_as(x)  # one coordinate per sample: the samples are independent
        with torch.no_grad():
            fd.flatten(1)[:, idx] = (fn(model(x + e), y) - fn(model(x - e), y)) / (2 * h)
    torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-8)
    assert torch.autograd.gradcheck(lambda t: fn(model(t), y).sum(), (x.clone().requires_grad_(),))


def test_input_gradient_of_each_sample_is_its_own(tiny_mlp: nn.Module) -> None:
    x, y = _batch((6, 1, 4, 4), 3, dtype=torch.float32)
    batched = input_gradient(tiny_mlp, x, y)
    for i in range(6):
        torch.testing.assert_close(batched[i:i + 1], input_gradient(tiny_mlp, x[i:i + 1], y[i:i + 1]))


def test_input_gradient_accepts_a_callable_loss(tiny_mlp: nn.Module) -> None:
    x, y = _batch((4, 1, 4, 4), 3, dtype=torch.float32)
    ce = input_gradient(tiny_mlp, x, y, loss=lambda z, t: F.cross_entropy(z, t, reduction="none"))
    torch.testing.assert_close(ce, input_gradient(tiny_mlp, x, y, loss="ce"))
