"""A training run as ``advgrad train`` runs it (``run_training(TrainingPlan)``): ``fit`` (∂J/∂W by autograd),
adversarially when the plan says so, writing after every epoch

- ``out``: the weights and everything needed to continue (optimizer and RNG states, the attack's and the
  probe's states), so that ``resume`` continues an interrupted run with bit-identical weights (kill -9 loses
  at most the epoch in progress; Ctrl-C saves exactly where it stopped, then ``KeyboardInterrupt`` goes on);
- ``metrics_path``: the JSON of the run (identity, per-epoch history, provenance naming out's sha256);
- with ``adv``, ``best_path``: the epoch whose PGD probe on a fixed batch of training images (the
  catastrophic-overfitting guard, ``RobustProbe``) was best; a collapse of the probe is a warning.

A run resumed after its last epoch trains nothing: it only catches up a metrics JSON that lags behind
``out`` (a kill between the two writes). Nothing here prints: ``on_start``, ``on_epoch(record)`` and
``on_warning(text)`` report, and the result says what was done.

Under torchrun (``torchrun --nproc_per_node N -m advgrad train ...``) every process runs the plan:
``distributed.setup`` joins the group, the global batch size is checked against N (ValueError on every
process), ``fit`` trains with DDP, and only process 0 reports (the callbacks) and writes files.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from advgrad import distributed
from advgrad._runtime import resolve_device
from advgrad.configs import TrainingPlan

# ``fit`` and ``load_dataset`` are called through their modules: a test replacing one sees every call.
from advgrad.data import builtin as _data
from advgrad.data.training import load_training_data
from advgrad.models.checkpoint import checkpoint_meta, save_checkpoint
from advgrad.models.zoo import build_for
from advgrad.records.read import epochs_recorded
from advgrad.records.write import provenance, write_json
from advgrad.runs._resume import Saved, check_saved, load_saved
from advgrad.training import train as _train
from advgrad.training.objectives import AdversarialObjective, RobustProbe, make_objective


@dataclass(frozen=True)
class TrainingStart:
    """What a run is about to do: train on ``n_train`` images, test on ``n_test``; ``resumed_at``: (epochs,
    batches) done before, when it continues a saved run; ``fresh``: resuming was asked for but ``out`` does
    not exist yet, so it starts from the beginning."""

    n_train: int
    n_test: int
    resumed_at: tuple[int, int] | None
    fresh: bool


@dataclass(frozen=True)
class TrainingResult:
    """The per-epoch records of the whole run; ``done_before``: ``out`` already held every epoch, nothing was
    trained; ``best_epoch``/``best``: the probe's best epoch and robust accuracy (None without a probe)."""

    history: list[dict[str, Any]]
    done_before: bool
    best_epoch: int | None
    best: float | None

    @property
    def final(self) -> dict[str, Any]:
        return dict(self.history[-1]) if self.history else {}


@dataclass
class _Session:
    """One run, prepared: the data, the model (weights restored when resuming), what the checkpoints
    record as the run's identity, the adversarial objective and probe, and the saved state."""

    plan: TrainingPlan
    data: _data.Dataset
    model: nn.Module
    identity: dict[str, Any]
    objective: AdversarialObjective | None
    probe: RobustProbe | None
    saved: Saved | None

    @property
    def n_train(self) -> int:
        return min(self.plan.n_train or len(self.data.y_train), len(self.data.y_train))

    @property
    def best_epoch(self) -> int | None:
        return self.probe.best_epoch if self.probe is not None else None

    def meta(self, history: list[dict[str, Any]], complete: bool) -> dict[str, Any]:
        """The checkpoint metadata after ``history``."""
        return checkpoint_meta(self.identity["model"], self.data, self.plan.train, _train.History(list(history)),
                               n_train=self.plan.n_train, adversarial=self.identity["adversarial"],
                               probe=self.identity["probe"], complete=complete, best_epoch=self.best_epoch)

    def write_metrics(self, history: list[dict[str, Any]], complete: bool) -> None:
        record = {**self.identity, "history": history, "final": dict(history[-1]) if history else {},
                  "complete": complete, "best_epoch": self.best_epoch,
                  "robust_accuracy": [r.get("robust_accuracy") for r in history] if self.plan.adv else None,
                  "provenance": provenance(seed=self.plan.train.seed, model_path=self.plan.out)}
        write_json(self.plan.metrics_path, record)


def _adversarial(plan: TrainingPlan, data: _data.Dataset) -> tuple[AdversarialObjective | None, RobustProbe | None]:
    """The objective that perturbs each batch and the probe: PGD on a fixed random subset of the training
    images (data sets may be sorted by class), the same every epoch and on resume."""
    adv, config = plan.adv, plan.train
    if adv is None:
        return None, None
    objective = make_objective(adv, epochs=config.epochs, seed=config.seed, loss=config.loss, bounds=data.bounds)
    xs, ys = data.x_train[:plan.n_train], data.y_train[:plan.n_train]
    pick = torch.randperm(len(ys), generator=torch.Generator().manual_seed(config.seed))[:plan.probe_n]
    probe = RobustProbe(xs[pick], ys[pick], adv.eps, steps=plan.probe_steps, seed=config.seed, bounds=data.bounds,
                        norm=adv.norm)
    return objective, probe


def prepare(plan: TrainingPlan) -> _Session:
    """Everything before the first batch, each check before the next costly step: the device, the data, the
    model; when resuming, the saved state (same run, undamaged) with the weights loaded."""
    resolve_device(plan.train.device)  # a missing CUDA device fails before any data is read
    if plan.test_data is None:
        data = _data.load_dataset(plan.dataset, plan.data_root, download=plan.download)
    else:  # a data file or folder and its held-out split
        data = load_training_data(plan.dataset, plan.test_data, image_size=plan.image_size,
                                  grayscale=plan.grayscale)
    # models.DataShape declares mean/std as settable attributes, which the frozen Dataset's are not: the
    # protocol (models/zoo.py) should declare them read-only; until then mypy is told so here.
    model, model_meta = build_for(plan.model, data, seed=plan.train.seed, hidden=plan.hidden,  # type: ignore[arg-type]
                                  head=plan.head)
    adv = plan.adv.to_dict() if plan.adv is not None else None
    identity = {"model": model_meta, "dataset": data.meta(), "train_config": plan.train.to_dict(),
                "n_train": plan.n_train, "adversarial": adv,
                "probe": {"n": plan.probe_n, "steps": plan.probe_steps} if adv is not None else None}
    saved = load_saved(plan.out, identity) if plan.resume else None
    if saved is not None:
        model.load_state_dict(saved.state_dict)
    objective, probe = _adversarial(plan, data)
    session = _Session(plan, data, model, identity, objective, probe, saved)
    if saved is not None:
        check_saved(saved, plan.out, model=model, config=plan.train, n_train=session.n_train, objective=objective,
                    probe=probe)
    return session


def _hooks(session: _Session, on_epoch: Callable[[dict[str, Any]], None] | None,
           on_warning: Callable[[str], None] | None) -> tuple[_train.EpochCallback, _train.StateCallback]:
    """``fit``'s callbacks: after each epoch the training ε, the probe and the best flag go into the record;
    at each checkpoint the best checkpoint (if this epoch is the best), then ``out``, then the metrics."""
    plan, probe = session.plan, session.probe
    epochs = plan.train.epochs

    def on_epoch_end(epoch: int, record: dict[str, Any]) -> None:
        adv = plan.adv
        record["adversarial_eps"] = adv.eps_at(1.0 if epoch >= epochs else epoch / epochs, epochs) if adv else None
        is_best = False
        if probe is not None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                is_best = probe.update(epoch, record, session.model)
            for w in caught:
                if on_warning is not None:
                    on_warning(str(w.message))
        record["best"] = is_best
        if on_epoch is not None:
            on_epoch(record)

    def on_checkpoint(state: dict[str, Any]) -> None:
        complete = state["epoch"] >= epochs and state["batch"] == 0
        history = state["history"]
        # The best checkpoint goes before OUT (the resume point): a kill between the writes makes resuming redo
        # the epoch deterministically and rewrite it. The metrics JSON follows OUT (it names OUT's sha256); a
        # finished run whose JSON lags behind is caught up by resuming.
        if probe is not None and state["batch"] == 0 and history and history[-1].get("best"):
            save_checkpoint(plan.best_path, session.model, session.meta(history, complete))
        save_checkpoint(plan.out, session.model, session.meta(history, complete), resume=state,
                        guard=probe.state_dict() if probe is not None else None)
        session.write_metrics(history, complete)

    return on_epoch_end, on_checkpoint


def run_training(plan: TrainingPlan, *, on_start: Callable[[TrainingStart], None] | None = None,
                 on_epoch: Callable[[dict[str, Any]], None] | None = None,
                 on_warning: Callable[[str], None] | None = None, progress: bool = False) -> TrainingResult:
    """Run ``plan`` (see the module docstring); ``progress``: ``fit``'s per-epoch bar on stderr. Bad plans and
    damaged or foreign saved states raise ValueError (``ParameterError`` naming ``resume`` for the latter)
    before anything is written; Ctrl-C saves the state in ``out`` and raises ``KeyboardInterrupt``."""
    # Before joining the group: a bad batch is one line on every process, and no process joins to be left.
    distributed.check_batch_size(plan.train.batch_size, distributed.launched_world_size())
    distributed.setup(plan.train.device)  # under torchrun: join the group (else: nothing)
    if not distributed.is_main():  # process 0 alone reports
        on_start = on_epoch = on_warning = None
    session = prepare(plan)
    saved, probe = session.saved, session.probe
    if saved is not None and saved.position[0] >= plan.train.epochs:
        done = list(saved.resume["history"])
        if distributed.is_main() and epochs_recorded(plan.metrics_path) != len(done):  # killed between OUT and JSON
            session.write_metrics(done, True)
        return TrainingResult(done, True, session.best_epoch, probe.best if probe is not None else None)
    if on_start is not None:
        on_start(TrainingStart(session.n_train, len(session.data.y_test), saved.position if saved else None,
                               plan.resume and saved is None))
    on_epoch_end, on_checkpoint = _hooks(session, on_epoch, on_warning)
    history = _train.fit(session.model, session.data, plan.train, objective=session.objective,
                         on_epoch_end=on_epoch_end, progress=progress, max_train=plan.n_train,
                         resume=saved.resume if saved is not None else None, on_checkpoint=on_checkpoint)
    return TrainingResult(history.epochs, False, session.best_epoch, probe.best if probe is not None else None)
