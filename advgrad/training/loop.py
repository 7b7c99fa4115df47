"""The epoch loop behind ``advgrad.training.train.fit``: the run's mutable state (``Run``: what a checkpoint holds to
continue bit for bit), Ctrl-C at a batch boundary (``InterruptFlag``), one epoch, and the epochs with their
callbacks. In one process without accelerator options this is the plain loop; under torch.distributed every
process runs it in step with the others (``advgrad.training._ddp``: shares of each global batch, sums added up over
the processes, process 0's BatchNorm statistics, one stop batch on Ctrl-C).
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from advgrad import distributed
from advgrad._runtime import check_batch, check_dtype, check_labels, forward, frozen_eval, spans
from advgrad.catalog import LR_SCHEDULES
from advgrad.configs import TrainConfig
from advgrad.data.builtin import Dataset, batches
from advgrad.training import _ddp

ObjectiveFn = Callable[[nn.Module, Tensor, Tensor, float], tuple[Tensor, Tensor]]
EpochCallback = Callable[[int, dict[str, Any]], None]
StateCallback = Callable[[dict[str, Any]], None]


@dataclass
class History:
    """Per-epoch records: epoch, train_loss, train_accuracy, test_accuracy, lr, seconds (+ extras);
    ``final`` is a copy of the last one ({} before the first epoch).

    Parameters
    ----------
    epochs : list of dict

    Examples
    --------
    >>> from advgrad import History
    >>> History([{"epoch": 1, "test_accuracy": 0.9}, {"epoch": 2, "test_accuracy": 0.95}]).final
    {'epoch': 2, 'test_accuracy': 0.95}
    """

    epochs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def final(self) -> dict[str, Any]:
        return dict(self.epochs[-1]) if self.epochs else {}


def lr_factor(schedule: str, t: float) -> float:
    """Learning-rate multiplier of ``schedule`` (a name in ``catalog.LR_SCHEDULES``) at progress t ∈ [0, 1]."""
    factor: float = LR_SCHEDULES.get_entry(schedule).impl(t)
    return factor


@torch.no_grad()
def count_correct(model: nn.Module, x: Tensor, y: Tensor, parts: list[slice], device: torch.device | str) -> int:
    """Correct predictions on the ``parts`` of (x, y), each moved to ``device`` in turn, in frozen eval mode."""
    correct = 0
    with frozen_eval(model):
        for part in parts:
            yb = y[part].to(device)
            logits = forward(model, x[part].to(device))  # (B, K)
            check_labels(logits, yb)
            correct += int((logits.argmax(1) == yb).sum())
    return correct


def epoch_test_accuracy(model: nn.Module, x: Tensor, y: Tensor, device: torch.device, batch_size: int = 500) -> float:
    """The epoch record's test accuracy; under torch.distributed the batches (the same as in one process)
    are shared out and the integer counts summed, so every process gets the one-process number."""
    check_batch(x, y)
    check_dtype(model, x)
    parts = list(spans(len(y), batch_size))
    if distributed.world_size() == 1:
        return count_correct(model, x, y, parts, device) / len(y)
    return _ddp.shared_count(parts, lambda mine: count_correct(model, x, y, mine, device)) / len(y)


def plain(obj: Any) -> Any:
    """Tuples → lists, recursively: a checkpoint holds only tensors, dicts, lists and scalars, so that
    ``torch.load(weights_only=True)`` reads it."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


class InterruptFlag:
    """While training, the first Ctrl-C (SIGINT) only raises a flag, read at the next batch boundary, where
    a consistent state can be saved; a second Ctrl-C interrupts at once."""

    def __init__(self, active: bool) -> None:
        self.raised = False
        self.active = active
        self._previous: Any = None

    def __enter__(self) -> InterruptFlag:
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
class Run:
    """The mutable state of one training run: what a checkpoint must hold to continue it bit for bit."""

    model: nn.Module
    config: TrainConfig
    objective: ObjectiveFn
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    total_steps: int
    trainee: nn.Module  # what the objective is given: the model, or a _ddp.TrainView around it
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
            saved, world = int(resume.get("world_size", 1)), distributed.world_size()
            if saved != world:  # each process has its own random-start stream
                raise ValueError(f"the checkpoint's random-start streams belong to {saved} process(es): resume it "
                                 f"with {saved}, not {world}")
            load(resume["objective_ranks"][distributed.rank()] if world > 1 else resume["objective"])
        self.history.epochs = [dict(r) for r in resume["history"]]
        self.step, self.first_epoch, self.skip = int(resume["step"]), int(resume["epoch"]) + 1, int(resume["batch"])
        if self.skip:
            self.partial = _ddp.own_partial(resume)

    def state(self, epoch_done: int, batch: int, shuffle_rng: Tensor, part: dict[str, Any]) -> dict[str, Any]:
        """The resume point (a collective call under torch.distributed: every process's objective state)."""
        get_obj = getattr(self.objective, "state_dict", None)
        objective = get_obj() if get_obj else None
        state = {"epoch": epoch_done, "batch": batch, "step": self.step,
                 "optimizer": self.optimizer.state_dict(), "shuffle_rng": shuffle_rng,
                 "torch_rng": torch.get_rng_state(), "objective": objective,
                 "history": self.history.epochs, "partial": part}
        if distributed.world_size() > 1:
            state["world_size"] = distributed.world_size()
            state["objective_ranks"] = distributed.gather_objects(objective) if objective is not None else None
        return plain(state)

    def lr(self, step: int) -> float:
        return self.config.lr * lr_factor(self.config.schedule, step / self.total_steps)

    def batch(self, xb: Tensor, yb: Tensor, weight: float = 1.0) -> tuple[float, int]:
        """One step on ∂J/∂W; returns (summed loss, correct predictions) of the batch. ``weight`` scales the
        loss (a process's share of a global batch under DDP; 0: a stand-in sample, not counted)."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr(self.step)
        loss, logits = self.objective(self.trainee, xb, yb, self.step / self.total_steps)
        self.optimizer.zero_grad(set_to_none=True)
        # ∂J/∂W into .grad: the parameters' gradient, the one training needs (DDP averages it on the way)
        torch.autograd.backward(loss if weight == 1.0 else loss * weight)
        self.optimizer.step()
        self.step += 1
        if weight == 0.0:
            return 0.0, 0
        return float(loss.detach()) * len(yb), int((logits.detach().argmax(1) == yb).sum())


def epochs(run: Run, train: tuple[Tensor, Tensor], data: Dataset, device: torch.device, progress: bool,
           on_epoch_end: EpochCallback | None, on_checkpoint: StateCallback | None) -> None:
    """The epochs from ``run.first_epoch``: each one's record, ``on_epoch_end``, the history, the checkpoint
    (process 0's ``on_checkpoint``) and the stop after Ctrl-C."""
    world = distributed.world_size()
    # Under DDP every process stops at the same batch on Ctrl-C, with or without a checkpoint callback.
    with InterruptFlag(active=on_checkpoint is not None or world > 1) as interrupt:
        for epoch in range(run.first_epoch, run.config.epochs + 1):
            record = _epoch(run, epoch, train, data, device, interrupt, progress, on_checkpoint)
            if on_epoch_end is not None:
                on_epoch_end(epoch, record)
            run.history.epochs.append(record)
            if on_checkpoint is not None or world > 1:
                state = run.state(epoch, 0, run.generator.get_state(), {})  # collective under DDP
                if on_checkpoint is not None and distributed.is_main():
                    on_checkpoint(state)
                if distributed.any_process(interrupt.raised) and epoch < run.config.epochs:
                    raise KeyboardInterrupt


def _stop(run: Run, epoch: int, b: int, epoch_rng: Tensor, sums: tuple[Any, Any, Any], seconds: float,
          on_checkpoint: StateCallback | None) -> None:
    """Save the point before batch ``b`` of ``epoch`` (process 0) and raise KeyboardInterrupt everywhere."""
    local = dict(zip(("loss_sum", "correct", "seen"), sums))
    now = {**_ddp.epoch_sums(*sums), "seconds": seconds}
    state = run.state(epoch - 1, b, epoch_rng, now)  # collective under DDP, like epoch_sums
    if distributed.world_size() > 1:  # each process's own sums too: a resumed epoch adds them up as this one would
        state["partial_ranks"] = plain(distributed.gather_objects(local))
    if on_checkpoint is not None and distributed.is_main():
        on_checkpoint(state)
    raise KeyboardInterrupt


def _epoch(run: Run, epoch: int, train: tuple[Tensor, Tensor], data: Dataset, device: torch.device,
           interrupt: InterruptFlag, progress: bool, on_checkpoint: StateCallback | None) -> dict[str, Any]:
    """One pass over the shuffled training set (from batch ``run.skip`` when resuming inside it; under DDP
    this process's share of every global batch), then the test accuracy; the epoch's record."""
    from tqdm.auto import tqdm

    x_train, y_train = train
    world = distributed.world_size()
    start = time.perf_counter()
    epoch_rng = run.generator.get_state()  # the shuffling order of this epoch is drawn from here
    run.model.train()
    part = run.partial if run.skip else {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
    loss_sum, correct, seen, done_seconds = part["loss_sum"], part["correct"], part["seen"], part["seconds"]
    order = (batches(x_train, y_train, run.config.batch_size, shuffle=True, generator=run.generator) if world == 1
             else _ddp.shards(x_train, y_train, run.config.batch_size, run.generator))
    bar = tqdm(order, total=math.ceil(len(y_train) / run.config.batch_size), desc=f"epoch {epoch}/{run.config.epochs}",
               leave=False, disable=not progress or not distributed.is_main(), unit="batch", initial=run.skip)
    for b, item in enumerate(bar):
        if b < run.skip:
            continue  # done before the interruption
        # Under DDP every process stops at the same batch: the first where any of them saw Ctrl-C.
        if distributed.any_process(interrupt.raised) if world > 1 else interrupt.raised and on_checkpoint is not None:
            _stop(run, epoch, b, epoch_rng, (loss_sum, correct, seen), done_seconds + time.perf_counter() - start,
                  on_checkpoint)
        xb, yb, weight = item if world > 1 else (*item, 1.0)
        batch_loss, batch_correct = run.batch(_to(xb, device, run.config), yb.to(device), weight)
        if weight:
            loss_sum, correct, seen = loss_sum + batch_loss, correct + batch_correct, seen + len(yb)
        bar.set_postfix(loss=f"{loss_sum / max(seen, 1):.4f}")
    run.skip = 0
    sums = _ddp.epoch_sums(loss_sum, correct, seen)
    if world > 1:
        _ddp.sync_buffers(run.model)
    return {"epoch": epoch, "train_loss": sums["loss_sum"] / sums["seen"],
            "train_accuracy": sums["correct"] / sums["seen"],
            "test_accuracy": epoch_test_accuracy(run.model, data.x_test, data.y_test, device),
            "lr": run.lr(run.step - 1), "seconds": done_seconds + time.perf_counter() - start}


def _to(xb: Tensor, device: torch.device, config: TrainConfig) -> Tensor:
    """The batch on ``device``; channels-last for a 4-D batch when the config asks for it."""
    if config.channels_last and xb.ndim == 4:
        return xb.to(device, memory_format=torch.channels_last)
    return xb.to(device)
