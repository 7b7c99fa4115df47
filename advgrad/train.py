"""Training: autograd with respect to the parameters, ∂J/∂W. (The attacks differentiate the same loss
with respect to the input instead; see attacks.py.)

``fit(model, data, config)`` runs mini-batch gradient descent and returns a ``History``. The one seam
for adversarial training is ``objective``: a function (model, x, y, progress) → (loss, logits) that
computes the scalar loss whose parameter gradient is taken for one batch. The default is the clean
loss J(f(x), y); adversarial methods perturb x with ∂J/∂X inside their objective.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Protocol

import torch
from torch import Tensor, nn

from advgrad.attacks import _check_batch, _check_dtype, _check_labels, _forward, attack_mode
from advgrad.data import Dataset, batches
from advgrad.losses import LOSSES, resolve_loss

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine", "one-cycle")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (stored in the checkpoint)."""

    epochs: int = 8
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 2e-3  # peak of the one-cycle schedule; 97.6 % on mnist-5k with the default cnn
    schedule: str = "one-cycle"
    weight_decay: float = 0.0
    momentum: float = 0.9  # SGD only
    seed: int = 0
    device: str = "auto"
    loss: str = "ce"  # "ce" or "mse": J = ½‖onehot(y) − ŷ‖², ŷ the model's output probabilities

    def validate(self) -> "TrainConfig":
        """Raise ValueError naming the first bad field."""
        if int(self.epochs) != self.epochs or self.epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {self.epochs}")
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise ValueError(f"batch size must be a positive integer, got {self.batch_size}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight decay must be ≥ 0, got {self.weight_decay}")
        if not (0 <= self.momentum < 1):
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        for value, allowed, what in ((self.optimizer, OPTIMIZERS, "optimizer"), (self.schedule, SCHEDULES, "schedule"),
                                     (self.device, DEVICES, "device"), (self.loss, ("ce", "mse"), "loss")):
            if value not in allowed:
                raise ValueError(f"unknown {what} {value!r}: expected one of {', '.join(allowed)}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    """Learning-rate multiplier at training progress t ∈ [0, 1] (evaluated every step).

    one-cycle is the triangular cycle of Smith (2018) as used by Wong et al. (2020): linear up from 0
    to the peak at 40 % of training, then linearly down to 0.
    """
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * t))
    if schedule == "one-cycle":
        peak = 0.4
        return t / peak if t < peak else max(0.0, (1.0 - t) / (1.0 - peak))
    return 1.0


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA device is available (use cpu or auto)")
    return torch.device(name)


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 500,
             device: torch.device | str | None = None) -> float:
    """Fraction of x classified as y (eval mode inside; the model's mode is restored, also on errors).
    Bad inputs (labels outside the model's classes, a dtype or shape the model cannot take) raise
    ValueError, as the attacks do."""
    _check_batch(x, y)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer ≥ 1, got {batch_size!r}")
    _check_dtype(model, x)
    device = device or next(model.parameters()).device
    correct = 0
    with attack_mode(model):  # the same save/restore of mode and flags the attacks use
        for xb, yb in batches(x, y, batch_size):
            yb = yb.to(device)
            logits = _forward(model, xb.to(device))
            _check_labels(logits, yb)
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
    """While training, the first Ctrl-C (SIGINT) only raises a flag, read at the next batch boundary,
    where a consistent state can be saved; a second Ctrl-C interrupts at once."""

    def __init__(self, active: bool) -> None:
        self.raised = False
        self.active = active
        self._previous: Any = None

    def __enter__(self) -> "_InterruptFlag":
        import signal
        import threading

        if self.active and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.raised:
            raise KeyboardInterrupt
        self.raised = True

    def __exit__(self, *exc: Any) -> None:
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def fit(model: nn.Module, data: Dataset, config: TrainConfig, *, objective: Objective | None = None,
          on_epoch_end: EpochCallback | None = None, progress: bool = False,
          max_train: int | None = None, resume: dict[str, Any] | None = None,
          on_checkpoint: StateCallback | None = None) -> History:
    """Train ``model`` on ``data`` with ``config``; returns the per-epoch ``History``.

    Each step: loss = objective(model, x_batch, y_batch, progress); ∂loss/∂W by autograd; optimizer
    step. Batches are shuffled by a generator seeded with ``config.seed`` (the global RNG is only used
    by whoever built the model), so the same seed gives bit-identical weights on CPU.
    ``on_epoch_end(epoch, record)`` runs after each epoch (checkpointing, robust-accuracy probes) and may
    add entries to ``record``. ``max_train`` keeps the first N training examples.

    Resuming: ``on_checkpoint(state)`` receives, after each epoch (after ``on_epoch_end``) and when
    Ctrl-C is pressed (at the next batch boundary, before ``KeyboardInterrupt`` is raised), a plain
    dict holding everything needed to continue — optimizer state, step, the shuffling and global RNG
    states, the objective's ``state_dict()`` if it has one, the history so far and the position inside
    the epoch. Pass that dict (with the model's weights restored) as ``resume`` and training continues
    where it stopped, with bit-identical weights on CPU.
    """
    from tqdm.auto import tqdm

    config.validate()
    device = resolve_device(config.device)
    model.to(device)
    x_train, y_train = data.x_train, data.y_train
    if max_train is not None:
        x_train, y_train = x_train[:max_train], y_train[:max_train]
    objective = objective or clean_objective(config.loss, model)
    optimizer = make_optimizer(model, config)
    generator = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = math.ceil(len(y_train) / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    history = History()
    step, first_epoch, skip = 0, 1, 0
    partial = {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
    if resume is not None:
        # Keep this optimizer's hyper-parameters; take the saved per-parameter state (moments, steps).
        optimizer.load_state_dict({"state": resume["optimizer"]["state"],
                                   "param_groups": optimizer.state_dict()["param_groups"]})
        generator.set_state(resume["shuffle_rng"])
        torch.set_rng_state(resume["torch_rng"])
        if resume.get("objective") is not None and hasattr(objective, "load_state_dict"):
            objective.load_state_dict(resume["objective"])  # type: ignore[attr-defined]
        history.epochs = [dict(r) for r in resume["history"]]
        step, first_epoch, skip = int(resume["step"]), int(resume["epoch"]) + 1, int(resume["batch"])
        if skip:
            partial = dict(resume["partial"])

    def state(epoch_done: int, batch: int, shuffle_rng: Tensor, part: dict[str, Any]) -> dict[str, Any]:
        get_obj = getattr(objective, "state_dict", None)
        return _plain({"epoch": epoch_done, "batch": batch, "step": step,
                       "optimizer": optimizer.state_dict(), "shuffle_rng": shuffle_rng,
                       "torch_rng": torch.get_rng_state(), "objective": get_obj() if get_obj else None,
                       "history": history.epochs, "partial": part})

    with _InterruptFlag(active=on_checkpoint is not None) as interrupt:
        for epoch in range(first_epoch, config.epochs + 1):
            start = time.perf_counter()
            epoch_rng = generator.get_state()  # the shuffling order of this epoch is drawn from here
            model.train()
            if skip:
                loss_sum, correct, seen, done_seconds = (partial["loss_sum"], partial["correct"],
                                                         partial["seen"], partial["seconds"])
            else:
                loss_sum, correct, seen, done_seconds = 0.0, 0, 0, 0.0
            bar = tqdm(batches(x_train, y_train, config.batch_size, shuffle=True, generator=generator),
                       total=steps_per_epoch, desc=f"epoch {epoch}/{config.epochs}", leave=False,
                       disable=not progress, unit="batch", initial=skip)
            for b, (xb, yb) in enumerate(bar):
                if b < skip:
                    continue  # done before the interruption
                if interrupt.raised and on_checkpoint is not None:
                    part = {"loss_sum": loss_sum, "correct": correct, "seen": seen,
                            "seconds": done_seconds + time.perf_counter() - start}
                    on_checkpoint(state(epoch - 1, b, epoch_rng, part))
                    raise KeyboardInterrupt
                xb, yb = xb.to(device), yb.to(device)
                lr = config.lr * lr_factor(config.schedule, step / total_steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                loss, logits = objective(model, xb, yb, step / total_steps)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # ∂J/∂W: the parameters' gradient, the one training needs
                optimizer.step()
                step += 1
                loss_sum += float(loss.detach()) * len(yb)
                correct += int((logits.detach().argmax(1) == yb).sum())
                seen += len(yb)
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}")
            skip = 0
            record: dict[str, Any] = {
                "epoch": epoch,
                "train_loss": loss_sum / seen,
                "train_accuracy": correct / seen,
                "test_accuracy": accuracy(model, data.x_test, data.y_test, device=device),
                "lr": config.lr * lr_factor(config.schedule, (step - 1) / total_steps),
                "seconds": done_seconds + time.perf_counter() - start,
            }
            if on_epoch_end is not None:
                on_epoch_end(epoch, record)
            history.epochs.append(record)
            if on_checkpoint is not None:
                on_checkpoint(state(epoch, 0, generator.get_state(), {}))
                if interrupt.raised and epoch < config.epochs:
                    raise KeyboardInterrupt
    model.eval()
    return history


def build_for(model_name: str, data: Dataset, *, seed: int = 0, hidden: list[int] | None = None,
              head: str = "softmax") -> tuple[nn.Module, dict[str, Any]]:
    """Build ``model_name`` sized for ``data``, its weights drawn after ``torch.manual_seed(seed)``.

    Returns the model and the metadata block a checkpoint needs to rebuild it.
    """
    from advgrad.models import build_model, model_kwargs

    kwargs = model_kwargs(model_name, hidden, head)
    torch.manual_seed(seed)
    model = build_model(model_name, input_shape=data.input_shape, num_classes=data.num_classes,
                        mean=data.mean, std=data.std, **kwargs)
    return model, {"name": model_name, "kwargs": kwargs}


def checkpoint_meta(model_meta: dict[str, Any], data: Dataset, config: TrainConfig,
                    history: History, **extra: Any) -> dict[str, Any]:
    """The metadata stored beside the weights: enough to rebuild, evaluate and trace the model."""
    return {"model": model_meta, "dataset": data.meta(), "train_config": config.to_dict(),
            "metrics": history.final, **extra}
