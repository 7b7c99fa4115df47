"""The model zoo: shapes, the published architectures' parameter counts, Normalize inside the model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advgrad.models.layers import Normalize
from advgrad.models.zoo import MODEL_NAMES, SigmoidMLP, build_model

MNIST = dict(input_shape=(1, 28, 28), num_classes=10, mean=(0.1307,), std=(0.3081,))
CIFAR = dict(input_shape=(3, 32, 32), num_classes=10, mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26))


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_maps_images_to_logits(name: str) -> None:
    spec = CIFAR if name == "preact-resnet18" else MNIST
    model = build_model(name, **spec).eval()
    x = torch.rand(3, *spec["input_shape"])
    assert model(x).shape == (3, 10)
    assert isinstance(next(m for m in model.modules() if isinstance(m, Normalize)), Normalize)


def test_published_parameter_counts() -> None:
    """Closed-form counts of the papers' layers (weights + biases)."""
    # Madry et al.: conv5×5 1→32, conv5×5 32→64, fc 7·7·64→1024, fc 1024→10.
    madry = (5 * 5 * 1 * 32 + 32) + (5 * 5 * 32 * 64 + 64) + (7 * 7 * 64 * 1024 + 1024) + (1024 * 10 + 10)
    assert n_params(build_model("cnn", **MNIST)) == madry == 3_274_634
    # Wong et al.: conv4×4/s2 1→16, conv4×4/s2 16→32, fc 7·7·32→100, fc 100→10.
    wong = (4 * 4 * 16 + 16) + (4 * 4 * 16 * 32 + 32) + (7 * 7 * 32 * 100 + 100) + (100 * 10 + 10)
    assert n_params(build_model("cnn-small", **MNIST)) == wong
    assert n_params(build_model("logreg", **MNIST)) == 784 * 10 + 10
    # PreAct ResNet-18 for CIFAR-10 has about 11.17 M parameters.
    assert 11_100_000 < n_params(build_model("preact-resnet18", **CIFAR)) < 11_200_000


def test_normalize_is_inside_the_model_and_matches_the_formula() -> None:
    torch.manual_seed(0)
    model = build_model("logreg", **MNIST)
    x = torch.rand(4, 1, 28, 28)
    linear = model[2]
    expected = linear(((x - 0.1307) / 0.3081).flatten(1))
    torch.testing.assert_close(model(x), expected)


def test_sigmoid_mlp_is_the_classic_network() -> None:
    torch.manual_seed(0)
    model = build_model("mlp-sigmoid", hidden=[7, 5], head="sigmoid", **MNIST)
    assert isinstance(model, SigmoidMLP) and model.output_activation == "sigmoid"
    assert [tuple(layer.weight.shape) for layer in model.layers] == [(7, 784), (5, 7), (10, 5)]
    x = torch.rand(2, 1, 28, 28)
    a = ((x - 0.1307) / 0.3081).flatten(1)
    for lin in model.linears[:-1]:
        a = torch.sigmoid(a @ lin.weight.T + lin.bias)
    torch.testing.assert_close(model(x), a @ model.linears[-1].weight.T + model.linears[-1].bias)


def test_mlp_depth_and_widths() -> None:
    model = build_model("mlp", hidden=[32, 16, 8], **MNIST)
    widths = [m.out_features for m in model.modules() if isinstance(m, nn.Linear)]
    assert widths == [32, 16, 8, 10]
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == 3


@pytest.mark.parametrize("kwargs,match", [
    (dict(name="vgg"), "unknown model 'vgg'"),
    (dict(name="mlp", hidden=[0]), "hidden widths must be positive"),
    (dict(name="cnn", head="sigmoid"), "only available for mlp-sigmoid"),
    (dict(name="mlp-sigmoid", head="tanh"), "unknown head 'tanh'"),
], ids=["name", "width", "head-on-cnn", "head"])
def test_bad_build_arguments(kwargs: dict, match: str) -> None:
    name = kwargs.pop("name")
    with pytest.raises(ValueError, match=match):
        build_model(name, **MNIST, **kwargs)


def test_normalize_rejects_nonpositive_std() -> None:
    with pytest.raises(ValueError, match="std must be positive"):
        Normalize((0.5,), (0.0,))
