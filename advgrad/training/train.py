"""Training: autograd with respect to the parameters, ∂J/∂W. (The attacks differentiate the same loss with
respect to the input instead; see ``advgrad.attacks``.)

``fit(model, data, config)`` runs mini-batch gradient descent and returns a ``History``. The one seam for
adversarial training is ``objective``: a function (model, x, y, progress) → (loss, logits) that computes
the scalar loss whose parameter gradient is taken for one batch. The default is the clean loss
J(f(x), y); adversarial objectives (``advgrad.training.objectives``) perturb x with ∂J/∂X inside theirs.

The epoch loop is ``advgrad.training.loop``. Past one process (``advgrad.distributed.setup`` under torchrun),
``fit`` trains with PyTorch's DistributedDataParallel: every process draws the same shuffled order and
takes its share of each global batch, DDP averages ∂J/∂W over the processes, and only process 0
checkpoints (``advgrad.training._ddp``).
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from advgrad import _validate, distributed
from advgrad._runtime import check_batch, check_dtype, model_device, resolve_device, spans
from advgrad.catalog import OPTIMIZERS
from advgrad.configs import TrainConfig
from advgrad.data.builtin import Dataset
from advgrad.losses import resolve_loss
from advgrad.training import _ddp
from advgrad.training.loop import EpochCallback as EpochCallback
from advgrad.training.loop import History as History
from advgrad.training.loop import Run, count_correct, epochs
from advgrad.training.loop import StateCallback as StateCallback
from advgrad.training.loop import lr_factor as lr_factor


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


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    optimizer: torch.optim.Optimizer = OPTIMIZERS[config.optimizer].impl(
        [p for p in model.parameters() if p.requires_grad], config)
    return optimizer


def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 500,
             device: torch.device | str | None = None) -> float:
    """Fraction of x classified as y, in frozen eval mode (the model's mode is restored, also on errors).
    Bad inputs (labels outside the model's classes, a dtype or shape the model cannot take) raise
    ValueError, as the attacks do.

    Parameters
    ----------
    model : nn.Module
    x, y : Tensor
        (N, ...) inputs and (N,) labels.
    batch_size : int
    device : str or torch.device, optional
        Where the batches go (default: the model's device).

    Returns
    -------
    float

    Examples
    --------
    >>> import torch
    >>> from advgrad import accuracy
    >>> model = torch.nn.Linear(2, 2, bias=False)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.eye(2))
    >>> accuracy(model, torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 2.0]]), torch.tensor([0, 1, 0]))
    0.666...
    """
    check_batch(x, y)
    _validate.count("batch_size", batch_size)
    check_dtype(model, x)
    return count_correct(model, x, y, list(spans(len(y), batch_size)), device or model_device(model)) / len(y)


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

    Under torch.distributed (``advgrad.distributed.setup``; every process calls ``fit`` with the same
    arguments): DistributedDataParallel. ``config.batch_size`` is the global batch, which the number of
    processes W must divide (else ValueError); each process takes its share of every global batch of the
    one shuffled order (``_ddp.shards``), DDP averages ∂J/∂W, the loss and accuracy sums are added up over
    the processes and the test accuracy is shared out, so every process gets the same record.
    ``on_epoch_end`` runs on every process (a robustness probe there gives the same numbers everywhere:
    same weights, process 0's BatchNorm statistics); ``on_checkpoint`` on process 0 only, and Ctrl-C stops
    every process at the same batch. Adversarial objectives attack the local share through the model
    itself (``_ddp.TrainView``), with a random-start stream of each process's own (``_ddp.own_stream``;
    their states are saved, so a resume needs the same W). ``config.amp``/``channels_last``/``compile``:
    bf16 autocast of the training forward, channels-last memory, torch.compile (``_ddp.trainee``).

    Parameters
    ----------
    model : nn.Module
        Trained in place (left in eval mode).
    data : Dataset
    config : TrainConfig
    objective : callable, optional
        ``(model, x, y, progress) -> (loss, logits)``; default the clean ``config.loss``; adversarial
        training: ``make_objective``.
    on_epoch_end, on_checkpoint, resume, max_train
        As above.
    progress : bool
        Show a progress bar.

    Returns
    -------
    History

    Raises
    ------
    ValueError
        A global batch the processes do not divide, or data the model cannot take.

    Examples
    --------
    >>> import torch
    >>> from advgrad import Dataset, TrainConfig, build_model, fit
    >>> g = torch.Generator().manual_seed(0)
    >>> x, y = torch.rand(8, 1, 2, 2, generator=g), torch.arange(8) % 3
    >>> data = Dataset("toy", x, y, x, y, ("a", "b", "c"), (0.5,), (0.5,))
    >>> _ = torch.manual_seed(0)
    >>> model = build_model("logreg", input_shape=(1, 2, 2), num_classes=3, mean=[0.5], std=[0.5])
    >>> history = fit(model, data, TrainConfig(epochs=2, batch_size=4, device="cpu"))
    >>> [record["epoch"] for record in history.epochs], sorted(history.final)
    ([1, 2], ['epoch', 'lr', 'seconds', 'test_accuracy', 'train_accuracy', 'train_loss'])
    """
    distributed.check_batch_size(config.batch_size)  # before any collective call: the same error on every process
    device = _ddp.process_device(resolve_device(config.device))
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    x_train, y_train = data.x_train[:max_train], data.y_train[:max_train]
    steps_per_epoch = math.ceil(len(y_train) / config.batch_size)
    objective = objective or clean_objective(config.loss, model)
    trainee = _ddp.trainee(model, device, amp=config.amp, compile=config.compile)
    run = Run(model, config, objective, make_optimizer(model, config), torch.Generator().manual_seed(config.seed),
              config.epochs * steps_per_epoch, trainee)
    if distributed.world_size() > 1:
        _ddp.own_stream(objective)
    if resume is not None:
        run.restore(resume)
    try:
        epochs(run, (x_train, y_train), data, device, progress, on_epoch_end, on_checkpoint)
    finally:
        if config.channels_last:
            model.to(memory_format=torch.contiguous_format)
    model.eval()
    return run.history
