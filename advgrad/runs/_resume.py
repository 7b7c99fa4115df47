"""Resuming a training run (``TrainingPlan.resume``) from the state saved in ``out``: an untrusted file, like
any checkpoint. It must hold a training state of the same run (the model, data, configs and probe it records
are compared with the plan's), and that state is checked part by part before training continues from it, so
that a damaged one is a ``ParameterError`` naming ``resume`` instead of a crash inside ``fit`` (at once, or an
epoch later)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advgrad._validate import ParameterError
from advgrad.configs import TrainConfig
from advgrad.models import checkpoint as _checkpoint
from advgrad.training.objectives import RobustProbe

RECORD_KEYS = ("epoch", "train_loss", "train_accuracy", "test_accuracy", "lr", "seconds")
PARTIAL_KEYS = ("loss_sum", "correct", "seen", "seconds")


@dataclass(frozen=True)
class Saved:
    """What ``out`` holds to continue from: the weights, ``fit``'s state and the probe's (None without one)."""

    state_dict: dict[str, Any]
    resume: dict[str, Any]
    guard: dict[str, Any] | None

    @property
    def position(self) -> tuple[int, int]:
        """(epochs done, batches of the next epoch done)."""
        return int(self.resume["epoch"]), int(self.resume["batch"])


def load_saved(out: Path, identity: dict[str, Any]) -> Saved | None:
    """The state saved in ``out``, or None if there is no file; ``ParameterError`` (``resume``) when it cannot
    be read, holds no training state, or records another run than ``identity``."""
    if not out.exists():
        return None
    try:
        ckpt = _checkpoint.load_checkpoint(out)
    except (FileNotFoundError, ValueError) as exc:
        raise ParameterError("resume", f": {exc}") from None
    if "resume" not in ckpt.extra:
        raise ParameterError("resume", f": {out} holds no training state (written by an older advgrad, or a "
                                       "best-only checkpoint)")
    diff = first_difference({key: ckpt.meta.get(key) for key in identity}, identity)
    if diff:
        raise ParameterError("resume", f": {out} is from a different configuration ({diff}); use the same options "
                                       "or another --out")
    return Saved(ckpt.model.state_dict(), ckpt.extra["resume"], ckpt.extra.get("guard"))


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """Where two records first differ ("adversarial.eps: checkpoint has 0.3, this command 0.2"), else None.
    Lists and tuples compare as lists; a data set's n_train is not compared (the plan's n_train is)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key == "n_train" and path.endswith("dataset"):
                continue
            diff = first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
            if diff:
                return diff
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        a, b = list(a), list(b)
    return None if a == b else f"{path}: checkpoint has {a!r}, this command {b!r}"


def check_saved(saved: Saved, out: Path, *, model: nn.Module, config: TrainConfig, n_train: int, objective: Any,
                probe: RobustProbe | None) -> None:
    """``check_resume`` on the state saved in ``out``, as a ``ParameterError`` naming ``resume``."""
    try:
        check_resume(saved.resume, model=model, config=config, n_train=n_train, objective=objective, probe=probe,
                     guard=saved.guard)
    except ValueError as exc:
        raise ParameterError("resume", f": {out} holds a damaged training state: {exc}") from None


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
