"""Per-sample losses against their closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from advgrad.losses import cross_entropy, margin, resolve_loss, squared_error


def test_cross_entropy_closed_form() -> None:
    z = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 2])
    expected = [-(2.0 - math.log(math.exp(2) + 1 + math.exp(-1))), math.log(3.0)]
    torch.testing.assert_close(cross_entropy(z, y), torch.tensor(expected, dtype=torch.float64))


def test_squared_error_on_softmax_and_sigmoid_outputs() -> None:
    z = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    y = torch.tensor([1])
    p = torch.softmax(z, 1)[0]
    assert squared_error(z, y).item() == pytest.approx(0.5 * (p[0] ** 2 + (1 - p[1]) ** 2).item())
    s = torch.sigmoid(z)[0]
    assert squared_error(z, y, "sigmoid").item() == pytest.approx(0.5 * (s[0] ** 2 + (1 - s[1]) ** 2).item())


def test_margin_is_best_other_minus_true() -> None:
    z = torch.tensor([[3.0, 1.0, 2.5], [0.0, 4.0, 1.0]])
    torch.testing.assert_close(margin(z, torch.tensor([0, 0])), torch.tensor([2.5 - 3.0, 4.0 - 0.0]))


def test_resolve_loss_follows_the_models_output_activation() -> None:
    z = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 0])
    sigmoid_model = nn.Identity()
    sigmoid_model.output_activation = "sigmoid"  # type: ignore[assignment]
    torch.testing.assert_close(resolve_loss("mse", sigmoid_model)(z, y), squared_error(z, y, "sigmoid"))
    torch.testing.assert_close(resolve_loss("mse", nn.Identity())(z, y), squared_error(z, y, "softmax"))
    custom = lambda logits, target: logits.sum(1)  # noqa: E731
    assert resolve_loss(custom) is custom
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        resolve_loss("hinge")
