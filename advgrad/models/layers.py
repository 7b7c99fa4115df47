"""The layers every model wears: ``Normalize`` in front (inputs in [0, 1], normalized inside the model, so
attacks and bounds live in pixel space) and ``OutputLogits`` behind a model whose forward returns more than
the logits (a tuple, a dict, an output object), reduced to them by ``output_logits``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn


class Normalize(nn.Module):
    """(x − mean) / std per channel; the derivative of this layer is 1/std.

    Parameters
    ----------
    mean, std : sequence of float
        One per channel; ValueError unless as many of each and std > 0.

    Examples
    --------
    >>> import torch
    >>> from advgrad import Normalize
    >>> Normalize([0.5], [0.25])(torch.ones(1, 1, 2, 2)).flatten().tolist()
    [2.0, 2.0, 2.0, 2.0]
    """

    mean: Tensor
    std: Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean has {len(mean)} channels but std has {len(std)}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {list(std)}")
        # (1, C, 1, 1): broadcasts over (N, C, H, W).
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


def output_logits(out: object) -> Tensor:
    """The logits tensor in a model's output: the tensor itself; the first element of a tuple or list
    (``(logits, features)``); a mapping's ``"logits"`` entry, or its only value; an object's ``.logits``
    attribute (Hugging Face's ``ModelOutput``). Anything else is a ValueError naming what came back."""
    if isinstance(out, Tensor):
        return out
    found: object = None
    if isinstance(out, (tuple, list)) and out:
        found = out[0]
    elif isinstance(out, Mapping):
        values = list(out.values())
        found = out["logits"] if "logits" in out else values[0] if len(values) == 1 else None
    else:
        found = getattr(out, "logits", None)
    if isinstance(found, Tensor):
        return found
    what = f"a mapping with keys {sorted(map(str, out))[:5]}" if isinstance(out, Mapping) else type(out).__name__
    raise ValueError(f"the model returned {what}; expected logits: a tensor, a tuple/list whose first element "
                     "is one, a mapping with a 'logits' entry (or a single tensor), or an object with .logits")


class OutputLogits(nn.Module):
    """``output_logits(model(x))``: a model whose forward returns a tuple, a dict or an output object, seen
    as one that returns the logits (N, K). A tensor output passes through untouched (same object).

    Parameters
    ----------
    model : nn.Module

    Examples
    --------
    >>> import torch
    >>> from advgrad import OutputLogits
    >>> OutputLogits(torch.nn.LSTM(3, 2))(torch.ones(1, 3)).shape  # (output, (h, c)) -> output
    torch.Size([1, 2])
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return output_logits(self.model(x))
