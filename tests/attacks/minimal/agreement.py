"""How far a minimal-norm attack agrees with a peer's examples on the same points: the share of points on
which both succeed or both fail, and the median distance of each over the points where both succeed."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from advgrad.attacks import AttackResult
from advgrad.losses import margin


@dataclass(frozen=True)
class Agreement:
    """``same``: share of points with the same success flag; ``ours``/``peer``: median ‖δ‖ over the points
    both attacks break; ``ours_rate``/``peer_rate``: share of points each breaks."""

    same: float
    ours: float
    peer: float
    ours_rate: float
    peer_rate: float

    def __str__(self) -> str:
        return (f"same flags {100 * self.same:.1f} %, median ‖δ‖ ours {self.ours:.4f} vs peer {self.peer:.4f} "
                f"({100 * (self.ours / self.peer - 1):+.2f} %), success ours {100 * self.ours_rate:.1f} % "
                f"peer {100 * self.peer_rate:.1f} %")

    def holds(self, flags: float = 0.99, norm: float = 0.02) -> bool:
        """The issue's tolerance: the same flags on ≥ ``flags`` of the points and our median at most
        (1 + ``norm``) times the peer's (lower is better, and allowed)."""
        return self.same >= flags and self.ours <= (1 + norm) * self.peer


@torch.no_grad()
def agreement(model: nn.Module, x: Tensor, y: Tensor, ours: AttackResult, peer_x: Tensor, p: float,
              targeted: bool = False, tie: float = 0.0) -> Agreement:
    """Compare ``ours`` with a peer's examples ``peer_x``, judged by the model (argmax ≠ y, or = y when
    targeted) and measured in the Lp norm p (an example the peer returns unbroken counts as a failure).
    ``tie`` > 0 (untargeted): a peer example whose true logit is within ``tie`` of the largest other one
    also counts as broken, for a peer that stops on the boundary itself, where rounding decides."""
    z = model(peer_x)
    pred = z.argmax(1)
    flag = pred == y if targeted else (pred != y) | (margin(z, y) >= -tie) & (tie > 0)
    dist = torch.linalg.vector_norm((peer_x - x).flatten(1), ord=p, dim=1)
    both = flag & ours.success
    assert ours.distance is not None

    def median(d: Tensor) -> float:
        return float(d[both].median()) if bool(both.any()) else math.nan

    return Agreement(float((flag == ours.success).float().mean()), median(ours.distance), median(dist),
                     float(ours.success.float().mean()), float(flag.float().mean()))


def bits(t: Tensor) -> Tensor:
    """The raw bits of a float32 tensor (equal bits, not merely equal values: −0.0 ≠ 0.0, NaN = NaN)."""
    return t.contiguous().view(torch.int32)
