"""Fixtures for the AutoAttack components: seeded digits and the reference implementation (pyautoattack)."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from advgrad.data.builtin import Dataset

NORM_NAMES = {"inf": "Linf", "2": "L2"}


@pytest.fixture(scope="session")
def digits(mnist5k: Dataset) -> tuple[Tensor, Tensor]:
    """The 1,000 mnist-5k test digits in a seeded random order (float32 in [0, 1], int64 labels)."""
    order = torch.randperm(len(mnist5k.x_test), generator=torch.Generator().manual_seed(0))
    return mnist5k.x_test[order].float(), mnist5k.y_test[order].long()


Reference = Callable[..., Tensor]


def run_reference(model: nn.Module, x: Tensor, y: Tensor, eps: float, *, norm: str, loss: str, steps: int,
                  restarts: int = 1, targets: int = 9, seed: int = 0, eot: int = 1) -> Tensor:
    """pyautoattack 0.2.0's APGDAttack (loss "ce"/"dlr") or APGDAttack_targeted (loss "t").perturb(x, y),
    silent, with torch's global RNG saved and restored around it (the reference reseeds it)."""
    base = pytest.importorskip("pyautoattack.autopgd_base")
    common = {"n_iter": steps, "norm": NORM_NAMES[norm], "n_restarts": restarts, "eps": eps, "seed": seed,
              "eot_iter": eot, "verbose": False, "device": x.device}
    if loss == "t":
        attack = base.APGDAttack_targeted(model, n_target_classes=targets, **common)
    else:
        attack = base.APGDAttack(model, loss=loss, **common)
    with torch.random.fork_rng(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its zero-gradient check warns through `warnings`
        return attack.perturb(x.clone(), y.clone())


@pytest.fixture(scope="session")
def reference() -> Reference:
    return run_reference
