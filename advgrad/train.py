"""Training: autograd with respect to the parameters, ∂J/∂W. (The attacks differentiate the same loss with
respect to the input instead; see ``advgrad.attacks``.)

``fit(model, data, config)`` runs mini-batch gradient descent and returns a ``History``. The one seam for
adversarial training is ``objective``: a function (model, x, y, progress) → (loss, logits) that computes
the scalar loss whose parameter gradient is taken for one batch. The default is the clean loss
J(f(x), y); adversarial objectives (``advgrad.adversarial``) perturb x with ∂J/∂X inside theirs.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from advgrad import _validate
from advgrad._runtime import (
    check_batch,
    check_dtype,
    check_labels,
    forward,
    frozen_eval,
    model_device,
    resolve_device,
    spans,
)
from advgrad.catalog import OPTIMIZERS, SCHEDULES
from advgrad.configs import TrainConfig
from advgrad.data import Dataset, batches
from advgrad.losses import resolve_loss


def _constant(t: float) -> float:
    return 1.0


def _cosine(t: float) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * t))


def _one_cycle(t: float) -> float:
    """The triangular cycle of Smith (2018) as used by Wong et al. (2020): linear up from 0 to the peak at
    40 % of training, then linearly down to 0."""
    peak = 0.4
    return t / peak if t < peak else max(0.0, (1.0 - t) / (1.0 - peak))


def _sgd(params: list[nn.Parameter], c: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)


def _adam(params: list[nn.Parameter], c: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)


@dataclass
class History:
    """Per-epoch records: epoch, train_loss, train_accuracy, test_accuracy, lr, seconds (+ extras)."""

    epochs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def final(self) -> dict[str, Any]:
        return dict(self.epochs[-1]) if self.epochs else {}


class Objective(Protocol):
    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, progress: float) -> tuple[Tensor, Tensor]:
        """Return (scalar loss to differentiate with respect to the parameters, logits on x)."""
        ...


def clean_objective(loss: str, model: nn.Module) -> Objective:
    """The standard objective: mean over the batch of J(f(x), y)."""
    loss_fn = resolve_loss(loss, model)

    def objective(model: nn.Module, x: Tensor, y: Tensor, progress: float) -> tuple[Tensor, Tensor]:
        logits = model(x)  # (B, K)
        return loss_fn(logits, y).mean(), logits

    return objective


def lr_factor(schedule: str, t: float) -> float:
    """Learning-rate multiplier of ``schedule`` (a name in ``catalog.SCHEDULES``) at progress t ∈ [0, 1]."""
    factor: float = SCHEDULES.get_entry(schedule).impl(t)
    return factor


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    optimizer: torch.optim.Optimizer = OPTIMIZERS[config.optimizer].impl(
        [p for p in model.parameters() if p.requires_grad], config)
    return optimizer


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 500,
             device: torch.device | str | None = None) -> float:
    """Fraction of x classified as y, in frozen eval mode (the model's mode is restored, also on errors).
    Bad inputs (labels outside the model's classes, a dtype or shape the model cannot take) raise
    ValueError, as the attacks do."""
    check_batch(x, y)
    _validate.count("batch_size", batch_size)
    check_dtype(model, x)
    device = device or model_device(model)
    correct = 0
    with frozen_eval(model):
        for part in spans(len(y), batch_size):
            yb = y[part].to(device)
            logits = forward(model, x[part].to(device))
            check_labels(logits, yb)
            correct += int((logits.argmax(1) == yb).sum())
    return correct / len(y)


EpochCallback = Callable[[int, dict[str, Any]], None]
StateCallback = Callable[[dict[str, Any]], None]


def _plain(obj: Any) -> Any:
    """Tuples → lists, recursively: a checkpoint holds only tensors, dicts, lists and scalars, so that
    ``torch.load(weights_only=True)`` reads it."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


class _InterruptFlag:
    """While training, the first Ctrl-C (SIGINT) only raises a flag, read at the next batch boundary, where
    a consistent state can be saved; a second Ctrl-C interrupts at once."""

    def __init__(self, active: bool) -> None:
        self.raised = False
        self.active = active
        self._previous: Any = None

    def __enter__(self) -> _InterruptFlag:
        if self.active and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.raised:
            raise KeyboardInterrupt
        self.raised = True

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


@dataclass
class _Run:
    """The mutable state of one training run: what a checkpoint must hold to continue it bit for bit."""

    model: nn.Module
    config: TrainConfig
    objective: Objective
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    total_steps: int
    history: History = field(default_factory=History)
    step: int = 0
    first_epoch: int = 1
    skip: int = 0  # batches of the first epoch done before an interruption
    partial: dict[str, Any] = field(default_factory=lambda: {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0})

    def restore(self, resume: dict[str, Any]) -> None:
        # Keep this optimizer's hyper-parameters; take the saved per-parameter state (moments, steps).
        self.optimizer.load_state_dict({"state": resume["optimizer"]["state"],
                                        "param_groups": self.optimizer.state_dict()["param_groups"]})
        self.generator.set_state(resume["shuffle_rng"])
        torch.set_rng_state(resume["torch_rng"])
        load = getattr(self.objective, "load_state_dict", None)
        if resume.get("objective") is not None and load is not None:
            load(resume["objective"])
        self.history.epochs = [dict(r) for r in resume["history"]]
        self.step, self.first_epoch, self.skip = int(resume["step"]), int(resume["epoch"]) + 1, int(resume["batch"])
        if self.skip:
            self.partial = dict(resume["partial"])

    def state(self, epoch_done: int, batch: int, shuffle_rng: Tensor, part: dict[str, Any]) -> dict[str, Any]:
        get_obj = getattr(self.objective, "state_dict", None)
        return _plain({"epoch": epoch_done, "batch": batch, "step": self.step,
                       "optimizer": self.optimizer.state_dict(), "shuffle_rng": shuffle_rng,
                       "torch_rng": torch.get_rng_state(), "objective": get_obj() if get_obj else None,
                       "history": self.history.epochs, "partial": part})

    def lr(self, step: int) -> float:
        return self.config.lr * lr_factor(self.config.schedule, step / self.total_steps)

    def batch(self, xb: Tensor, yb: Tensor) -> tuple[float, int]:
        """One step on ∂J/∂W; returns (summed loss, correct predictions) of the batch."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr(self.step)
        loss, logits = self.objective(self.model, xb, yb, self.step / self.total_steps)
        self.optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)  # ∂J/∂W into .grad: the parameters' gradient, the one training needs
        self.optimizer.step()
        self.step += 1
        return float(loss.detach()) * len(yb), int((logits.detach().argmax(1) == yb).sum())


def fit(model: nn.Module, data: Dataset, config: TrainConfig, *, objective: Objective | None = None,
        on_epoch_end: EpochCallback | None = None, progress: bool = False, max_train: int | None = None,
        resume: dict[str, Any] | None = None, on_checkpoint: StateCallback | None = None) -> History:
    """Train ``model`` on ``data`` with ``config``; returns the per-epoch ``History``.

    Each step: loss = objective(model, x_batch, y_batch, progress); ∂loss/∂W by autograd; optimizer step.
    Batches are shuffled by a generator seeded with ``config.seed`` (the global RNG is only used by whoever
    built the model), so the same seed gives bit-identical weights on the same machine (another CPU's
    kernels round differently). ``on_epoch_end(epoch, record)`` runs after each epoch (checkpointing,
    robustness probes) and may add entries to ``record``. ``max_train`` keeps the first N training examples.

    Resuming: ``on_checkpoint(state)`` receives, after each epoch (after ``on_epoch_end``) and when Ctrl-C is
    pressed (at the next batch boundary, before ``KeyboardInterrupt`` is raised), a plain dict holding
    everything needed to continue — optimizer state, step, the shuffling and global RNG states, the
    objective's ``state_dict()`` if it has one, the history so far and the position inside the epoch. Pass
    that dict (with the model's weights restored) as ``resume`` and training continues where it stopped,
    with bit-identical weights.
    """
    device = resolve_device(config.device)
    model.to(device)
    x_train, y_train = data.x_train[:max_train], data.y_train[:max_train]
    steps_per_epoch = math.ceil(len(y_train) / config.batch_size)
    run = _Run(model, config, objective or clean_objective(config.loss, model), make_optimizer(model, config),
               torch.Generator().manual_seed(config.seed), config.epochs * steps_per_epoch)
    if resume is not None:
        run.restore(resume)
    with _InterruptFlag(active=on_checkpoint is not None) as interrupt:
        for epoch in range(run.first_epoch, config.epochs + 1):
            record = _epoch(run, epoch, (x_train, y_train), data, device, interrupt, progress, on_checkpoint)
            if on_epoch_end is not None:
                on_epoch_end(epoch, record)
            run.history.epochs.append(record)
            if on_checkpoint is not None:
                on_checkpoint(run.state(epoch, 0, run.generator.get_state(), {}))
                if interrupt.raised and epoch < config.epochs:
                    raise KeyboardInterrupt
    model.eval()
    return run.history


def _epoch(run: _Run, epoch: int, train: tuple[Tensor, Tensor], data: Dataset, device: torch.device,
           interrupt: _InterruptFlag, progress: bool, on_checkpoint: StateCallback | None) -> dict[str, Any]:
    """One pass over the shuffled training set (from batch ``run.skip`` when resuming inside it), then the
    test accuracy; the epoch's record."""
    from tqdm.auto import tqdm

    x_train, y_train = train
    start = time.perf_counter()
    epoch_rng = run.generator.get_state()  # the shuffling order of this epoch is drawn from here
    run.model.train()
    part = run.partial if run.skip else {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
    loss_sum, correct, seen, done_seconds = part["loss_sum"], part["correct"], part["seen"], part["seconds"]
    bar = tqdm(batches(x_train, y_train, run.config.batch_size, shuffle=True, generator=run.generator),
               total=math.ceil(len(y_train) / run.config.batch_size), desc=f"epoch {epoch}/{run.config.epochs}",
               leave=False, disable=not progress, unit="batch", initial=run.skip)
    for b, (xb, yb) in enumerate(bar):
        if b < run.skip:
            continue  # done before the interruption
        if interrupt.raised and on_checkpoint is not None:
            now = {"loss_sum": loss_sum, "correct": correct, "seen": seen,
                   "seconds": done_seconds + time.perf_counter() - start}
            on_checkpoint(run.state(epoch - 1, b, epoch_rng, now))
            raise KeyboardInterrupt
        batch_loss, batch_correct = run.batch(xb.to(device), yb.to(device))
        loss_sum, correct, seen = loss_sum + batch_loss, correct + batch_correct, seen + len(yb)
        bar.set_postfix(loss=f"{loss_sum / seen:.4f}")
    run.skip = 0
    return {"epoch": epoch, "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
            "test_accuracy": accuracy(run.model, data.x_test, data.y_test, device=device),
            "lr": run.lr(run.step - 1), "seconds": done_seconds + time.perf_counter() - start}
