"""``train --resume`` continues from the training state saved in OUT: an untrusted file, like any
checkpoint. The state is checked here, part by part, before training continues from it, so that a damaged
one is a one-line usage error instead of a crash inside ``fit`` (at once, or an epoch later)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from torch import nn

    from advgrad.adversarial import RobustProbe
    from advgrad.train import TrainConfig

RECORD_KEYS = ("epoch", "train_loss", "train_accuracy", "test_accuracy", "lr", "seconds")
PARTIAL_KEYS = ("loss_sum", "correct", "seen", "seconds")


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_resume(resume: Any, *, model: nn.Module, config: TrainConfig, n_train: int, objective: Any,
                 probe: RobustProbe | None, guard: Any) -> None:
    """ValueError naming the first part of a saved training state (what ``fit`` hands ``on_checkpoint``)
    that ``fit(resume=...)`` could not continue from: the position (epoch, batch, step), the history,
    the partial epoch, the RNG states, the optimizer's per-parameter state, the objective's and the
    probe's states. The last two are loaded into ``objective`` and ``probe`` (fit loads the objective's
    again, from the same state)."""
    if not isinstance(resume, dict):
        raise ValueError("the training state is not a dict")
    per_epoch = math.ceil(n_train / config.batch_size)
    epoch: Any = resume.get("epoch")
    batch: Any = resume.get("batch")
    step: Any = resume.get("step")
    if not (_int(epoch) and 0 <= epoch <= config.epochs and _int(batch) and 0 <= batch < per_epoch
            and (batch == 0 or epoch < config.epochs)):
        raise ValueError(f"position epoch {epoch!r}, batch {batch!r} is outside the run "
                         f"({config.epochs} epochs of {per_epoch} batches)")
    if step != epoch * per_epoch + batch:
        raise ValueError(f"step {step!r} is not epoch × {per_epoch} + batch = {epoch * per_epoch + batch}")
    history = resume.get("history")
    if not (isinstance(history, list) and len(history) == epoch and all(
            isinstance(r, dict) and all(_number(r.get(k)) for k in RECORD_KEYS) for r in history)):
        raise ValueError(f"the history must hold {epoch} epoch records with {', '.join(RECORD_KEYS)}")
    partial = resume.get("partial")
    if batch and not (isinstance(partial, dict) and all(_number(partial.get(k)) for k in PARTIAL_KEYS)
                      and _int(partial["correct"]) and _int(partial["seen"]) and partial["seen"] >= 0):
        raise ValueError(f"the partial epoch must hold {', '.join(PARTIAL_KEYS)}")
    for key in ("shuffle_rng", "torch_rng"):
        _check_rng(key, resume.get(key))
    _check_optimizer(resume.get("optimizer"), model)
    try:
        if resume.get("objective") is not None and hasattr(objective, "load_state_dict"):
            objective.load_state_dict(resume["objective"])
        if probe is not None and guard is not None:
            probe.load_state_dict(guard)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise ValueError(f"the attack's or the probe's state cannot be loaded ({type(exc).__name__})") from None


def _check_rng(key: str, state: Any) -> None:
    """A CPU generator state: what ``torch.Generator.set_state`` takes (tried on a new generator)."""
    try:
        if not isinstance(state, torch.Tensor) or state.dtype != torch.uint8:
            raise TypeError
        torch.Generator().set_state(state)
    except (TypeError, RuntimeError, ValueError):
        raise ValueError(f"{key} is not a random generator state") from None


def _check_optimizer(optimizer: Any, model: nn.Module) -> None:
    """Per-parameter state (moments, momentum buffers, step counts): floating-point tensors, each a
    scalar or of its parameter's shape; numbers; or None."""
    state = optimizer.get("state") if isinstance(optimizer, dict) else None
    if not isinstance(state, dict):
        raise ValueError("the optimizer state is missing")
    params = list(model.parameters())
    for index, entry in state.items():
        if not (_int(index) and 0 <= index < len(params) and isinstance(entry, dict)):
            raise ValueError(f"the optimizer state names parameter {index!r}; the model has {len(params)}")
        for name, value in entry.items():
            if value is None or _number(value):
                continue
            if not (isinstance(value, torch.Tensor) and value.is_floating_point()
                    and (value.dim() == 0 or value.shape == params[index].shape)):
                raise ValueError(f"optimizer state {name!r} of parameter {index} does not fit it "
                                 f"(parameter shape {tuple(params[index].shape)})")
