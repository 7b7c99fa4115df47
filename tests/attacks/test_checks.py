"""Bad input: every user mistake is a ValueError that names the value."""

from __future__ import annotations

import math

import pytest
import torch
from helpers.batches import make_batch as _batch
from torch import Tensor, nn

from advgrad.attacks import fgsm, input_gradient, pgd

NORMS = ["inf", "2", "1"]


@pytest.mark.parametrize("make,match", [
    (lambda x, y: (x.clone().index_fill_(0, torch.tensor([1]), math.nan), y), "NaN or Inf"),
    (lambda x, y: (x.clone().index_fill_(0, torch.tensor([1]), math.inf), y), "NaN or Inf"),
    (lambda x, y: (x, y[:3]), "x has 4 samples but y has 3 labels"),
    (lambda x, y: (x, torch.tensor([0, 1, 3, 0])), "label 3 is outside the model's 3 classes"),
    (lambda x, y: (x, torch.tensor([0, -1, 2, 0])), "got -1"),
    (lambda x, y: (x[:0], y[:0]), "empty batch"),
    (lambda x, y: (x, y.float()), "integer tensor"),
    (lambda x, y: (x[:, 0, 0, 0], y), "at least 2 dimensions"),
], ids=["nan", "inf", "len", "label-high", "label-negative", "empty", "float-labels", "1d"])
def test_bad_batches_raise_value_error(tiny_mlp: nn.Module, make, match: str) -> None:
    x, y = make(*_batch((4, 1, 4, 4), 3, dtype=torch.float32))
    for call in (lambda: pgd(tiny_mlp, x, y, 0.1).x_adv, lambda: fgsm(tiny_mlp, x, y, 0.1).x_adv,
                 lambda: input_gradient(tiny_mlp, x, y)):
        with pytest.raises(ValueError, match=match):
            call()


@pytest.mark.parametrize("make,match", [
    (lambda x: x.double(), r"x is float64 but the model's parameters are float32: convert"),
    (lambda x: x.half(), r"x is float16 but the model's parameters are float32"),
    (lambda x: x[:, 0, 0], r"the model cannot take x of shape \(4, 4\) \(float32\): mat1 and mat2"),
    (lambda x: x.reshape(4, 1, 2, 8)[:, :, :1], r"the model cannot take x of shape \(4, 1, 1, 8\)"),
], ids=["float64", "float16", "wrong-rank", "wrong-size"])
def test_inputs_the_model_cannot_take_are_value_errors(tiny_mlp: nn.Module, make, match: str) -> None:
    """Caught before torch's own message from deep inside a layer: the dtype up front, the shape at the first
    forward pass (which layer fails depends on the model), with torch's reason kept on the same line."""
    from advgrad.training.train import accuracy

    x, y = _batch((4, 1, 4, 4), 3, dtype=torch.float32)
    x = make(x)
    for call in (lambda: pgd(tiny_mlp, x, y, 0.1).x_adv, lambda: fgsm(tiny_mlp, x, y, 0.1).x_adv,
                 lambda: input_gradient(tiny_mlp, x, y), lambda: pgd(tiny_mlp, x, y, 0.0),
                 lambda: accuracy(tiny_mlp, x, y)):
        with pytest.raises(ValueError, match=match):
            call()


class _NotLogits(nn.Module):
    def __init__(self, out: str) -> None:
        super().__init__()
        self.lin, self.out = nn.Linear(16, 3), out

    def forward(self, x: Tensor) -> object:
        z = self.lin(x.flatten(1))
        return (z, z) if self.out == "tuple" else z[:, :, None] if self.out == "3d" else z[:1]


@pytest.mark.parametrize("out,match", [("tuple", r"logits of shape \(N, K\) = \(4, K\), got tuple"),
                                       ("3d", r"got shape \(4, 3, 1\)"), ("short", r"got shape \(1, 3\)")])
def test_a_model_that_does_not_return_logits_is_a_value_error(out: str, match: str) -> None:
    x, y = _batch((4, 1, 4, 4), 3, dtype=torch.float32)
    with pytest.raises(ValueError, match=match):
        pgd(_NotLogits(out), x, y, 0.1)


@pytest.mark.parametrize("generator", [0, "seed", torch.Generator().get_state()], ids=["int", "str", "state"])
def test_generator_of_the_wrong_type_is_a_value_error(tiny_mlp: nn.Module, generator: object) -> None:
    x, y = _batch((4, 1, 4, 4), 3, dtype=torch.float32)
    expected = f"generator must be a torch.Generator or None, got {type(generator).__name__}"
    with pytest.raises(ValueError, match=expected):
        pgd(tiny_mlp, x, y, 0.1, generator=generator)  # type: ignore[arg-type]


def test_accuracy_refuses_labels_outside_the_models_classes(tiny_mlp: nn.Module) -> None:
    """It once returned 0.0 for labels the model cannot predict (silently a wrong data set)."""
    from advgrad.training.train import accuracy

    x, _ = _batch((4, 1, 4, 4), 3, dtype=torch.float32)
    with pytest.raises(ValueError, match=r"label 7 is outside the model's 3 classes \(0..2\)"):
        accuracy(tiny_mlp, x, torch.tensor([0, 1, 7, 2]))
    with pytest.raises(ValueError, match="batch_size must be an integer ≥ 1, got 0"):
        accuracy(tiny_mlp, x, torch.tensor([0, 1, 2, 2]), batch_size=0)


def test_out_of_range_label_is_a_value_error_also_at_eps_zero(tiny_mlp: nn.Module) -> None:
    """At ε = 0 run_attack still evaluates the model: the label is checked before the loss indexes with it."""
    x, _ = _batch((4, 1, 4, 4), 3, dtype=torch.float32)
    with pytest.raises(ValueError, match="label 3 is outside the model's 3 classes"):
        pgd(tiny_mlp, x, torch.tensor([0, 1, 3, 0]), 0.0)
