"""What an attack returns, per sample."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class AttackResult:
    """``success``: misclassified (untargeted) or classified as the target (targeted) at ``x_adv``;
    ``loss``: the attack's loss J at ``x_adv`` (not negated for targeted attacks)."""

    x_adv: Tensor    # (N, ...) within the ε-balls and the bounds
    success: Tensor  # (N,) bool
    loss: Tensor     # (N,)
    logits: Tensor   # (N, K) at x_adv
