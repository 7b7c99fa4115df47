"""What every minimal-norm attack does with its best point per sample: one more forward pass, the success
flags (adversarial there and, with ε, within it), x itself and distance ∞ wherever that fails."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from advgrad.attacks._checks import forward
from advgrad.attacks._chunks import slices
from advgrad.attacks.result import AttackResult
from advgrad.losses import margin
from advgrad.norms import Norm, Radius


def fooled(logits: Tensor, y: Tensor, targeted: bool) -> Tensor:
    """(N,) bool: classified as the target y (targeted) or other than the label y (untargeted)."""
    pred = logits.argmax(dim=1)
    return pred == y if targeted else pred != y


@torch.no_grad()
def outcome(model: nn.Module, x: Tensor, y: Tensor, x_best: Tensor, norm: Norm, eps: Radius | None,
            targeted: bool, chunk: int) -> AttackResult:
    """The ``AttackResult`` of a minimal-norm attack whose best point per sample is ``x_best`` (x where it
    found none). The model is asked again at x_best, and a point counts only if it is adversarial there and
    ‖x_best − x‖ ≤ ε (when ε is given); elsewhere x_adv = x, distance ∞ and the logits are x's. Call inside
    ``frozen_eval``."""
    logits = torch.cat([forward(model, x_best[part]) for part in slices(len(x), chunk)])  # (N, K)
    dist = norm.measure(x_best - x)  # (N,)
    success = fooled(logits, y, targeted)
    if eps is not None:
        success &= dist <= eps
    undo = ~success & (x_best != x).flatten(1).any(dim=1)  # found, but not adversarial now or beyond ε
    x_adv = x_best
    if bool(undo.any()):
        x_adv = torch.where(undo.view(-1, *[1] * (x.ndim - 1)), x, x_best)
        logits[undo] = torch.cat([forward(model, x[undo][part]) for part in slices(int(undo.sum()), chunk)])
    distance = torch.where(success, dist, torch.full_like(dist, math.inf))
    return AttackResult(x_adv, success, margin(logits, y), logits, distance=distance)
