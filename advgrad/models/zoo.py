"""The model zoo, built by name (``build_model``; a checkpoint stores the name and keyword arguments). Every
model takes inputs in [0, 1] and normalizes them itself (a ``Normalize`` first layer), so attacks and bounds
live in pixel space. ``logreg``: Goodfellow et al.'s (2015) "shallow softmax"; ``mlp-sigmoid``: the classic
ŷ = σ(W_L ⋯ σ(W₁x + b₁) ⋯ + b_L), any depth (``hidden``), ``head="softmax"`` (logits) or ``"sigmoid"``
(ŷ = σ(z_L) per unit); ``mlp``: the same with ReLU; ``cnn``: Madry et al.'s (2018) MNIST CNN (conv5×5-32,
pool, conv5×5-64, pool, fc1024, fc10); ``cnn-small``: Wong et al.'s (2020) (conv4×4-16/s2, conv4×4-32/s2,
fc100, fc10); ``preact-resnet18``: He et al.'s (2016) pre-activation ResNet-18 for 32×32 images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from advgrad.catalog import HEADS, MODELS
from advgrad.models.layers import Normalize


class SigmoidMLP(nn.Module):
    """z⁽ⁱ⁾ = Wᵢ a⁽ⁱ⁻¹⁾ + bᵢ, a⁽ⁱ⁾ = σ(z⁽ⁱ⁾), a⁽⁰⁾ = normalize(x) flattened; returns z⁽ᴸ⁾: logits for
    cross-entropy (``head="softmax"``), or ŷ = σ(z⁽ᴸ⁾) is the output (``head="sigmoid"``, ``output_activation``;
    "mse": J = ½‖y − σ(z⁽ᴸ⁾)‖²). ``backprop.py`` reads ``normalize`` and ``linears`` for the chain rule."""

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int,
                 normalize: Normalize, head: str = "softmax") -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}: expected one of {', '.join(HEADS)}")
        self.normalize = normalize
        widths = [in_features, *hidden, num_classes]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.output_activation = head

    @property
    def layers(self) -> list[nn.Linear]:
        """The linear layers, typed (``linears`` is an nn.ModuleList of them)."""
        return [m for m in self.linears if isinstance(m, nn.Linear)]

    def forward(self, x: Tensor) -> Tensor:
        a = self.normalize(x).flatten(1)  # (N, D)
        for linear in self.linears[:-1]:
            a = torch.sigmoid(linear(a))
        return self.linears[-1](a)  # z⁽ᴸ⁾, (N, K)


class PreActBlock(nn.Module):
    """Pre-activation basic block: BN → ReLU → conv3×3 → BN → ReLU → conv3×3, plus the shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + skip


class PreActResNet18(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, normalize: Normalize) -> None:
        super().__init__()
        self.normalize = normalize
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        layers: list[nn.Module] = []
        cin = 64
        for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            layers += [PreActBlock(cin, cout, stride), PreActBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(512)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.layers(self.conv1(self.normalize(x)))  # (N, 512, H/8, W/8)
        out = torch.relu(self.bn(out))
        out = nn.functional.adaptive_avg_pool2d(out, 1).flatten(1)  # (N, 512)
        return self.linear(out)


def _mlp(in_features: int, hidden: Sequence[int], num_classes: int, act: type[nn.Module]) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Flatten()]
    widths = [in_features, *hidden]
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), act()]
    layers.append(nn.Linear(widths[-1], num_classes))
    return layers


def _hidden(hidden: Sequence[int] | None, default: Sequence[int]) -> list[int]:
    widths = list(default if hidden is None else hidden)
    if any(int(w) < 1 for w in widths):
        raise ValueError(f"hidden widths must be positive integers, got {widths}")
    return [int(w) for w in widths]


def _logreg(c: int, h: int, w: int, k: int, normalize: Normalize, hidden: Sequence[int] | None,
            head: str) -> nn.Module:
    return nn.Sequential(normalize, nn.Flatten(), nn.Linear(c * h * w, k))


def _mlp_sigmoid(c: int, h: int, w: int, k: int, normalize: Normalize, hidden: Sequence[int] | None,
                 head: str) -> nn.Module:
    return SigmoidMLP(c * h * w, _hidden(hidden, (100,)), k, normalize, head)


def _mlp_relu(c: int, h: int, w: int, k: int, normalize: Normalize, hidden: Sequence[int] | None,
              head: str) -> nn.Module:
    return nn.Sequential(normalize, *_mlp(c * h * w, _hidden(hidden, (256, 256)), k, nn.ReLU))


def _divisible_by_4(name: str, h: int, w: int) -> None:
    if h % 4 or w % 4:
        raise ValueError(f"{name} needs H and W divisible by 4, got {h}×{w}")


def _cnn(c: int, h: int, w: int, k: int, normalize: Normalize, hidden: Sequence[int] | None, head: str) -> nn.Module:
    _divisible_by_4("cnn", h, w)
    return nn.Sequential(
        normalize,
        nn.Conv2d(c, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),   # (N, 32, H/2, W/2)
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),  # (N, 64, H/4, W/4)
        nn.Flatten(), nn.Linear(64 * (h // 4) * (w // 4), 1024), nn.ReLU(),
        nn.Linear(1024, k),
    )


def _cnn_small(c: int, h: int, w: int, k: int, normalize: Normalize, hidden: Sequence[int] | None,
               head: str) -> nn.Module:
    _divisible_by_4("cnn-small", h, w)
    return nn.Sequential(
        normalize,
        nn.Conv2d(c, 16, 4, stride=2, padding=1), nn.ReLU(),   # (N, 16, H/2, W/2)
        nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.ReLU(),  # (N, 32, H/4, W/4)
        nn.Flatten(), nn.Linear(32 * (h // 4) * (w // 4), 100), nn.ReLU(),
        nn.Linear(100, k),
    )


def _resnet(c: int, h: int, w: int, k: int, normalize: Normalize, hidden: Sequence[int] | None,
            head: str) -> nn.Module:
    return PreActResNet18(c, k, normalize)


MODEL_NAMES = tuple(MODELS)


def build_model(name: str, *, input_shape: Sequence[int], num_classes: int,
                mean: Sequence[float], std: Sequence[float],
                hidden: Sequence[int] | None = None, head: str = "softmax") -> nn.Module:
    """Build a model by name (``catalog.MODELS``, listed above) for inputs (C, H, W) in [0, 1] and K classes.
    Weights follow torch's default init: seed the global RNG (``torch.manual_seed``) first to reproduce one.

    Parameters
    ----------
    name : str
    input_shape, num_classes, mean, std
        (C, H, W), K, and the first layer's per-channel ``Normalize``.
    hidden : sequence of int, optional
        The hidden widths of ``mlp``/``mlp-sigmoid`` (default (256, 256) and (100,)).
    head : {"softmax", "sigmoid"}
        The output of ``mlp-sigmoid`` (the others: "softmax").

    Returns
    -------
    nn.Module

    Raises
    ------
    ValueError
        An unknown name or head, a shape not (C, H, W), or a mean/std not one per channel.

    Examples
    --------
    >>> import torch
    >>> from advgrad import build_model
    >>> _ = torch.manual_seed(0)
    >>> model = build_model("mlp", input_shape=(1, 4, 4), num_classes=3, mean=[0.5], std=[0.5], hidden=[8])
    >>> model(torch.rand(2, 1, 4, 4)).shape
    torch.Size([2, 3])
    """
    entry = MODELS.get_entry(name)
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (C, H, W), got {tuple(input_shape)}")
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}: expected one of {', '.join(HEADS)}")
    if head not in entry.heads:
        raise ValueError(f"head={head!r} is only available for mlp-sigmoid")
    c, h, w = (int(s) for s in input_shape)
    normalize = Normalize(mean, std)
    if len(mean) != c:
        raise ValueError(f"mean/std have {len(mean)} channels but inputs have {c}")
    model: nn.Module = entry.impl(c, h, w, int(num_classes), normalize, hidden, head)
    return model


class DataShape(Protocol):
    """What a model is sized by (``advgrad.data.builtin.Dataset`` has it)."""

    @property
    def input_shape(self) -> tuple[int, int, int]: ...

    @property
    def num_classes(self) -> int: ...

    mean: tuple[float, ...]
    std: tuple[float, ...]


def build_for(model_name: str, data: DataShape, *, seed: int = 0, hidden: Sequence[int] | None = None,
              head: str = "softmax") -> tuple[nn.Module, dict[str, Any]]:
    """Build ``model_name`` sized for ``data``, its weights drawn after ``torch.manual_seed(seed)``.

    Parameters
    ----------
    model_name, seed, hidden, head
        As in ``build_model``.
    data : Dataset
        Anything with ``input_shape``, ``num_classes``, ``mean`` and ``std``.

    Returns
    -------
    (nn.Module, dict)
        The model and the metadata block a checkpoint needs to rebuild it.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from advgrad import build_for
    >>> data = SimpleNamespace(input_shape=(1, 4, 4), num_classes=3, mean=(0.5,), std=(0.5,))
    >>> model, meta = build_for("mlp-sigmoid", data, hidden=[8])
    >>> meta
    {'name': 'mlp-sigmoid', 'kwargs': {'hidden': [8], 'head': 'softmax'}}
    """
    kwargs = model_kwargs(model_name, hidden, head)
    torch.manual_seed(seed)
    model = build_model(model_name, input_shape=data.input_shape, num_classes=data.num_classes,
                        mean=data.mean, std=data.std, **kwargs)
    return model, {"name": model_name, "kwargs": kwargs}


def model_kwargs(name: str, hidden: Sequence[int] | None = None, head: str = "softmax") -> dict[str, Any]:
    """The build arguments a checkpoint stores besides the dataset's shape and normalization."""
    kwargs: dict[str, Any] = {}
    entry = MODELS.get(name)
    if entry is not None and entry.hidden and hidden is not None:
        kwargs["hidden"] = [int(w) for w in hidden]
    if entry is not None and len(entry.heads) > 1:
        kwargs["head"] = head
    return kwargs
