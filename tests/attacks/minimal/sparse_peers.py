"""The peers of FMN and σ-zero, run on copies of the caller's tensors, and how far a result agrees with a
peer's examples (the issue's tolerance: the same success flags on ≥ 99 % of the points, our median norm
at most 2 % above the peer's over the points both break)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

from advgrad.attacks import AttackResult

FOOLBOX_FMN = {math.inf: "LInfFMNAttack", 2.0: "L2FMNAttack", 1.0: "L1FMNAttack", 0.0: "L0FMNAttack"}


def bits(t: Tensor) -> Tensor:
    """The raw bits of a float tensor (so −0 and +0, or two NaNs, are told apart)."""
    return t.contiguous().view(torch.int64 if t.dtype == torch.float64 else torch.int32)


def ball_projection_(δ: Tensor, ε: Tensor) -> Tensor:  # adv-lib passes δ= and ε=
    """adv-lib 0.2.8's ``l2_projection_`` with its parenthesis where the paper has it: δ·min(1, ε/‖δ‖₂).
    adv-lib multiplies δ by ε/‖δ‖₂ and clamps *δ* at 1, which puts every δ on the sphere of radius ε."""
    flat = δ.flatten(1)
    flat.mul_((ε.unsqueeze(1) / flat.norm(p=2, dim=1, keepdim=True).clamp_(min=1e-12)).clamp_(max=1))
    return flat


def adv_lib_fmn(model: nn.Module, x: Tensor, y: Tensor, p: float, steps: int, *, targeted: bool = False,
                ball: bool = False) -> Tensor:
    """adv-lib's ``fmn``; ``ball``: with ``ball_projection_`` in place of its L2 projection."""
    module = pytest.importorskip("adv_lib.attacks.fast_minimum_norm")
    with pytest.MonkeyPatch.context() as patch:
        if ball:
            patch.setattr(module, "l2_projection_", ball_projection_)
        return module.fmn(model, x.clone(), y.clone(), norm=p, steps=steps, targeted=targeted)


def foolbox_fmn(model: nn.Module, x: Tensor, y: Tensor, p: float, steps: int) -> Tensor:
    """Foolbox 3.3.4's ``L{0,1,2,Inf}FMNAttack(steps=steps)`` (untargeted, bounds [0, 1])."""
    fb = pytest.importorskip("foolbox")
    attack = getattr(fb.attacks, FOOLBOX_FMN[float(p)])(steps=steps)
    _, x_adv, _ = attack(fb.PyTorchModel(model, bounds=(0, 1)), x.clone(), y.clone(), epsilons=None)
    return x_adv


def adv_lib_sigma_zero(model: nn.Module, x: Tensor, y: Tensor, steps: int) -> Tensor:
    attacks = pytest.importorskip("adv_lib.attacks")
    return attacks.sigma_zero(model, x.clone(), y.clone(), num_steps=steps)


@dataclass(frozen=True)
class Agreement:
    """``same``: share of points with the same success flag; ``ours``/``peer``: median ‖δ‖ over the points
    both break; ``ours_rate``/``peer_rate``: share of points each breaks."""

    same: float
    ours: float
    peer: float
    ours_rate: float
    peer_rate: float

    def __str__(self) -> str:
        return (f"same flags {100 * self.same:.1f} %, median ours {self.ours:.4g} vs peer {self.peer:.4g} "
                f"({100 * (self.ours / self.peer - 1):+.2f} %), success ours {100 * self.ours_rate:.1f} % "
                f"peer {100 * self.peer_rate:.1f} %")

    def holds(self, flags: float = 0.99, norm: float = 0.02) -> bool:
        return self.same >= flags and self.ours <= (1 + norm) * self.peer


@torch.no_grad()
def agreement(model: nn.Module, x: Tensor, y: Tensor, ours: AttackResult, peer_x: Tensor, p: float) -> Agreement:
    """``ours`` against a peer's untargeted examples ``peer_x``, both judged by the model; distances in
    float64 (L0: coordinates changed, the peers' count; the same as pixels for one channel)."""
    peer_ok = model(peer_x).argmax(1) != y
    peer_d = torch.linalg.vector_norm((peer_x - x).flatten(1).double(), ord=p, dim=1)
    ours_d = torch.linalg.vector_norm((ours.x_adv - x).flatten(1).double(), ord=p, dim=1)
    both = ours.success & peer_ok

    def med(d: Tensor) -> float:
        return float(d[both].median()) if bool(both.any()) else math.nan

    return Agreement(float((ours.success == peer_ok).double().mean()), med(ours_d), med(peer_d),
                     float(ours.success.double().mean()), float(peer_ok.double().mean()))
