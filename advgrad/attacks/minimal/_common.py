"""What the minimal-norm attacks share: one validation of the common arguments, the adversarial test, and
the result (per sample: the example where it succeeds, x elsewhere, and ‖x_adv − x‖ as ``distance``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from advgrad.attacks._checks import (
    EpsSpec,
    check_batch,
    check_bounds,
    check_dtype,
    check_generator,
    check_labels,
    check_radius,
    forward,
)
from advgrad.attacks._chunks import chunk_for, slices
from advgrad.attacks.result import AttackResult
from advgrad.losses import margin
from advgrad.norms import Norm, Radius, per_point


@dataclass(frozen=True)
class Setup:
    """The common arguments of one call, validated: the box, the radius (None: no budget), the chunk."""

    lo: float
    hi: float
    eps: Radius | None
    chunk: int


def prepare(model: nn.Module, x: Tensor, y: Tensor, eps: EpsSpec | None, bounds: object, chunk_size: int | None,
            generator: object = None) -> Setup:
    """Validate x, y, the model's dtype, ``bounds``, ``eps`` (≥ 0, a float or one per sample), ``chunk_size``
    and ``generator``; ValueError naming the first bad one."""
    xmin, xmax = check_batch(x, y)
    check_dtype(model, x)
    check_generator(generator)
    lo, hi = check_bounds(bounds, xmin, xmax)
    radius = None if eps is None else check_radius("eps", eps, x, positive=False)
    return Setup(lo, hi, radius, chunk_for(chunk_size, model, x))


def is_adversarial(logits: Tensor, y: Tensor, targeted: bool) -> Tensor:
    """(N,) bool: classified as y (targeted) or as anything but y (untargeted)."""
    pred = logits.argmax(dim=1)
    return pred == y if targeted else pred != y


@torch.no_grad()
def logits_of(model: nn.Module, x: Tensor, chunk: int) -> Tensor:
    """model(x) as (N, K) logits, ``chunk`` samples at a time, without a graph."""
    return torch.cat([forward(model, x[part]) for part in slices(len(x), chunk)])


@torch.no_grad()
def finish(model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor, norm: Norm, setup: Setup,
           targeted: bool) -> AttackResult:
    """``outcome`` with the radius and chunk of a validated ``Setup``."""
    return outcome(model, x, y, x_adv, norm, setup.eps, targeted, setup.chunk)


@torch.no_grad()
def outcome(model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor, norm: Norm, eps: Radius | None,
            targeted: bool, chunk: int) -> AttackResult:
    """The ``AttackResult`` of a minimal-norm attack whose best example per sample is ``x_adv``.

    Success is decided afresh at x_adv (adversarial there and, with a radius ε, ‖x_adv − x‖ ≤ ε); a point
    adversarial at x itself is a success at distance 0 with x_adv = x; where the attack fails x_adv is x
    and the distance inf. Call inside ``frozen_eval(model)``."""
    z_clean, z_adv = logits_of(model, x, chunk), logits_of(model, x_adv, chunk)  # (N, K) each
    check_labels(z_clean, y)
    at_x = is_adversarial(z_clean, y, targeted)  # (N,)
    distance = norm.measure(x_adv - x)  # (N,)
    success = is_adversarial(z_adv, y, targeted) & ~at_x
    if eps is not None:
        success &= distance <= eps
    keep = per_point(success, x)
    x_out = torch.where(keep, x_adv, x)
    logits = torch.where(success[:, None], z_adv, z_clean)
    distance = torch.where(success, distance, torch.where(at_x, 0.0, torch.inf)).to(x.dtype)
    return AttackResult(x_out, success | at_x, margin(logits, y), logits, distance=distance)
