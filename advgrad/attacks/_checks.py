"""Input validation shared by every attack: each user mistake is a ValueError that names the value."""

from __future__ import annotations

from typing import Union

import torch
from torch import Tensor

from advgrad import _validate
from advgrad._runtime import check_batch, check_dtype, check_labels, forward
from advgrad.norms import Radius

Bounds = tuple[float, float]
EpsSpec = Union[float, Tensor]  # a float, or one radius per sample (N,)

__all__ = ["Bounds", "EpsSpec", "check_batch", "check_bounds", "check_dtype", "check_generator", "check_labels",
           "check_radius", "forward", "is_zero", "take"]


def check_bounds(bounds: object, xmin: float, xmax: float) -> Bounds:
    lo, hi = _validate.bounds(bounds)
    if xmin < lo or xmax > hi:
        raise ValueError(f"x lies outside bounds {(lo, hi)}: its values span [{xmin:.6g}, {xmax:.6g}] "
                         "(advgrad never clamps inputs silently; pass the right bounds)")
    return lo, hi


def check_radius(name: str, r: object, x: Tensor, *, positive: bool) -> Radius:
    """A float, or an (N,) tensor on x's device and dtype; finite, and ≥ 0 (or > 0 if ``positive``)."""
    if isinstance(r, Tensor):
        if r.ndim == 0:
            r = float(r)
        elif r.shape != (len(x),):
            raise ValueError(f"{name} must be a number or a tensor of shape ({len(x)},), got shape {tuple(r.shape)}")
        else:
            r = r.detach().to(device=x.device, dtype=x.dtype)
            if not bool(torch.isfinite(r).all()) or bool((r <= 0).any() if positive else (r < 0).any()):
                raise ValueError(f"{name} must be finite and {'>' if positive else '≥'} 0, got {r.tolist()}")
            return r
    return _validate.number(name, r, minimum=0.0, strict=positive)


def check_generator(generator: object) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


def is_zero(r: Radius) -> bool:
    return bool((r == 0).all()) if isinstance(r, Tensor) else r == 0


def take(r: Radius, idx: Tensor | None) -> Radius:
    """The radii of the samples ``idx`` (a float stays a float)."""
    return r[idx] if isinstance(r, Tensor) and idx is not None else r
