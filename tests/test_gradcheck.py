"""Gradient checking: finite differences against closed forms, and check_gradients on a smooth and a
piecewise-linear network."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advgrad.gradcheck import central_differences, check_gradients, one_sided_differences
from advgrad.models.zoo import build_model


def test_central_differences_of_a_cubic_are_3t_squared() -> None:
    t = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    fd = central_differences(lambda: float((t ** 3).sum()), t, [0, 1, 2], h=1e-6)
    torch.testing.assert_close(fd, 3 * t ** 2, rtol=1e-8, atol=1e-9)
    assert torch.equal(t, torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64))  # restored in place


def test_one_sided_slopes_disagree_at_a_kink() -> None:
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    fwd, bwd = one_sided_differences(lambda: float(torch.relu(t).sum()), t, [0, 1])
    assert fwd[0] == pytest.approx(1.0) and bwd[0] == pytest.approx(0.0)  # |x| kink of relu at 0
    assert fwd[1] == pytest.approx(1.0) and bwd[1] == pytest.approx(1.0)


def test_check_gradients_on_the_sigmoid_network_compares_all_three() -> None:
    torch.manual_seed(0)
    model = build_model("mlp-sigmoid", input_shape=(1, 4, 4), num_classes=3, mean=[0.5], std=[0.25], hidden=[5],
                        head="sigmoid")
    x, y = torch.rand(2, 1, 4, 4), torch.tensor([0, 2])
    check = check_gradients(model, x, y, fd_coords=8, generator=torch.Generator().manual_seed(0))
    assert check.by_hand and check.loss == "mse" and [s for s, _, _ in check.layers] == [(5, 16), (3, 5)]
    assert max(check.hand_vs_autograd.values()) < 1e-12
    assert check.hand_vs_fd is not None and check.hand_vs_fd < 1e-7 and check.autograd_vs_fd < 1e-7
    assert check.kinks == 0 and check.input_grad.dtype == torch.float64


def test_check_gradients_on_a_relu_network_leaves_kinks_out() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.ReLU(), nn.Linear(6, 3))
    x, y = torch.rand(3, 1, 4, 4), torch.tensor([0, 1, 2])
    check = check_gradients(model, x, y, "ce", fd_coords=16, generator=torch.Generator().manual_seed(1))
    assert not check.by_hand and check.hand_vs_fd is None and check.autograd_vs_fd < 1e-7
    with pytest.raises(ValueError, match="fd_coords must be ≥ 0, got -1"):
        check_gradients(model, x, y, "ce", fd_coords=-1)
    with pytest.raises(ValueError, match="unknown loss 'margin'"):
        check_gradients(model, x, y, "margin")
