"""The program tests/test_distributed.py runs: alone (one process, no torchrun: the library as it always ran)
or under torchrun with gloo (2 and 3 processes). Every process runs the same tasks; what the test compares
goes to OUT/w{world}/, written by process 0 unless a file name carries the rank.

    python tests/helpers/distworker.py OUT CHECKPOINT TASK[,TASK...]
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
from pathlib import Path
from typing import Any

import torch

torch.set_num_threads(1)  # every run, alone or not, on the same kernels: bits comparable across runs

from torch import Tensor, nn  # noqa: E402

from advgrad import distributed  # noqa: E402
from advgrad.attacks import runner  # noqa: E402
from advgrad.configs import AdvConfig, EvalConfig, TrainConfig  # noqa: E402
from advgrad.data.builtin import Dataset, load_dataset  # noqa: E402
from advgrad.evaluate import evaluate_model  # noqa: E402
from advgrad.models.loading import load_model  # noqa: E402
from advgrad.models.zoo import build_for  # noqa: E402
from advgrad.training.objectives import RobustProbe, make_objective  # noqa: E402
from advgrad.training.train import fit  # noqa: E402

N_EVAL = 520  # three blocks of 256, 256 and 8 test points: 2 + 1 or 1 + 1 + 1 per process


def subset(data: Dataset, n_train: int, n_test: int) -> Dataset:
    return Dataset(data.name, data.x_train[:n_train], data.y_train[:n_train], data.x_test[:n_test],
                   data.y_test[:n_test], data.class_names, data.mean, data.std)


def eval_task(out: Path, data: Dataset, checkpoint: str) -> None:
    """The whole evaluation (sweep, minimal ε, sanity report) and one attack keeping its examples; the sweep's
    per-sample masks are those of evaluate_model's own sweep (captured, not run a second time)."""
    from advgrad.evaluate import report

    model = load_model(checkpoint)
    x, y = data.x_test[:N_EVAL], data.y_test[:N_EVAL]
    config = EvalConfig(eps=(0.0, 0.1, 0.2), attacks=("fgsm", "pgd"), steps=3, restarts=2, block=100,
                        min_eps=True, precision=0.03, queries=10, seed=3)
    swept, real_sweep = [], report.sweep

    def capturing(*args: Any, **kwargs: Any) -> Any:
        swept.append(real_sweep(*args, **kwargs))
        return swept[-1]

    report.sweep = capturing  # type: ignore[assignment]
    try:
        result = evaluate_model(model, x, y, config)
    finally:
        report.sweep = real_sweep  # type: ignore[assignment]
    assert result.min_eps is not None and len(swept) == 1
    outcome = runner.run(model, x, y, 0.15, [config.attack("pgd")], seed=11, bounds=config.bounds, block=64)
    success, x_adv = outcome.success, outcome.x_adv
    record = {"clean_accuracy": result.clean_accuracy,
              "records": [{k: v for k, v in r.items() if k != "seconds"} for r in result.records],
              "sanity": [c.to_dict() for c in result.checks],
              "min_eps": [None if math.isinf(v) else v for v in result.min_eps.tolist()]}
    if distributed.is_main():
        (out / "eval.json").write_text(json.dumps(record, indent=1))
        masks = {f"{a}@{e}": m.cpu() for (a, e), m in {**swept[0].robust, ("correct", 0.0): swept[0].correct}.items()}
        torch.save({"masks": masks, "min_eps": result.min_eps, "success": success, "x_adv": x_adv}, out / "eval.pt")


def train_task(out: Path, data: Dataset, checkpoint: str) -> None:
    """One epoch of clean training on 241 images in global batches of 48: five full batches (24 + 24 or
    16 + 16 + 16 per process) and a last batch of one image (an empty share on processes 1 and 2)."""
    rank = distributed.rank()
    sub = subset(data, 241, 300)
    for optimizer, lr in (("adam", 2e-3), ("sgd", 0.05)):
        model, _ = build_for("cnn-small", sub, seed=1)

        def on_checkpoint(state: dict[str, Any]) -> None:
            torch.save(state, out / f"checkpoint-rank{rank}.pt")

        history = fit(model, sub, TrainConfig(epochs=1, batch_size=48, optimizer=optimizer, lr=lr, device="cpu", seed=1),
                      on_checkpoint=on_checkpoint)
        torch.save({"weights": model.state_dict(), "history": history.epochs}, out / f"{optimizer}-rank{rank}.pt")


class TinyBN(nn.Module):
    """A conv net with BatchNorm: each process normalises its share; the running statistics are process 0's."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                                 nn.Linear(4 * 13 * 13, 10))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def bn_task(out: Path, data: Dataset, checkpoint: str) -> None:
    model = TinyBN()
    history = fit(model, subset(data, 192, 200), TrainConfig(epochs=1, batch_size=48, device="cpu"))
    torch.save({"buffers": [b.clone() for b in model.buffers()], "history": history.epochs},
               out / f"bn-rank{distributed.rank()}.pt")


def adversarial_run(out: Path, sub: Dataset, interrupt_at: int | None, resume: dict[str, Any] | None,
                    weights: dict[str, Tensor] | None) -> tuple[nn.Module, list[dict[str, Any]]]:
    """TRADES (K = 2: a random start, then two forward passes per step through DDP) with the PGD probe on
    every process; with ``interrupt_at``, the last process sends itself SIGINT during that global step."""
    config = TrainConfig(epochs=2, batch_size=48, lr=3e-3, device="cpu", seed=4)
    model, _ = build_for("cnn-small", sub, seed=4)
    if weights is not None:
        model.load_state_dict(weights)
    objective = make_objective(AdvConfig("trades", 0.2, steps=2), epochs=2, seed=4)
    probe = RobustProbe(sub.x_train[:40], sub.y_train[:40], 0.2, steps=3, seed=4)
    if resume is not None and resume.get("guard") is not None:
        probe.load_state_dict(resume["guard"])
    calls = {"n": 0}
    last = distributed.rank() == distributed.world_size() - 1

    def interrupting(model: nn.Module, x: Tensor, y: Tensor, progress: float) -> tuple[Tensor, Tensor]:
        calls["n"] += 1
        if interrupt_at is not None and last and calls["n"] == interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)  # on one process only: all must stop at the same batch
        return objective(model, x, y, progress)

    interrupting.state_dict = objective.state_dict  # type: ignore[attr-defined]
    interrupting.load_state_dict = objective.load_state_dict  # type: ignore[attr-defined]
    interrupting.generator = objective.generator  # type: ignore[attr-defined]

    def on_epoch_end(epoch: int, record: dict[str, Any]) -> None:
        probe.update(epoch, record, model)

    def on_checkpoint(state: dict[str, Any]) -> None:
        torch.save({"resume": state, "weights": model.state_dict(), "guard": probe.state_dict()},
                   out / "adv-checkpoint.pt")

    history = fit(model, sub, config, objective=interrupting, on_epoch_end=on_epoch_end,
                  on_checkpoint=on_checkpoint, resume=resume["resume"] if resume else None)
    return model, history.epochs


def adversarial_task(out: Path, data: Dataset, checkpoint: str) -> None:
    """TRADES for two epochs straight, and again interrupted mid-epoch 2 then resumed from process 0's file."""
    rank = distributed.rank()
    sub = subset(data, 192, 100)  # 4 batches of 48 per epoch
    model, history = adversarial_run(out, sub, None, None, None)
    torch.save({"weights": model.state_dict(), "history": history}, out / f"adv-rank{rank}.pt")
    try:
        adversarial_run(out, sub, interrupt_at=6, resume=None, weights=None)
        raise AssertionError("not interrupted")
    except KeyboardInterrupt:
        pass
    distributed.barrier()  # process 0 has written the checkpoint
    saved = torch.load(out / "adv-checkpoint.pt", weights_only=True)
    resumed, history = adversarial_run(out, sub, None, saved, saved["weights"])
    torch.save({"weights": resumed.state_dict(), "history": history, "stopped_at": saved["resume"]["step"]},
               out / f"adv-resumed-rank{rank}.pt")


def bad_batch_task(out: Path, data: Dataset, checkpoint: str) -> None:
    model, _ = build_for("logreg", data, seed=0)
    try:
        fit(model, subset(data, 64, 10), TrainConfig(epochs=1, batch_size=64, device="cpu"))
        message = "no error"
    except ValueError as exc:
        message = str(exc)
    (out / f"bad-batch-rank{distributed.rank()}.txt").write_text(message)


def ctrl_c_task(out: Path, data: Dataset, checkpoint: str) -> None:
    """Train until torchrun passes Ctrl-C on (SIGINT to every process): each process records how many
    steps it took; process 0's last checkpoint says where the run stopped."""
    from advgrad.records.write import write_torch
    from advgrad.training.train import clean_objective

    sub = subset(data, 480, 50)
    model, _ = build_for("cnn-small", sub, seed=0)
    objective = clean_objective("ce", model)
    steps = {"n": 0}

    def counting(model: nn.Module, x: Tensor, y: Tensor, progress: float) -> tuple[Tensor, Tensor]:
        steps["n"] += 1
        return objective(model, x, y, progress)

    def on_checkpoint(state: dict[str, Any]) -> None:
        write_torch(out / "ctrl-c-state.pt", {k: state[k] for k in ("epoch", "batch", "step")})

    try:
        fit(model, sub, TrainConfig(epochs=1000, batch_size=48, device="cpu"), objective=counting,
            on_checkpoint=on_checkpoint)
    except KeyboardInterrupt:
        (out / f"ctrl-c-rank{distributed.rank()}.txt").write_text(str(steps["n"]))


def cascade_task(out: Path, data: Dataset, checkpoint: str) -> None:
    """A sweep with an AutoAttack ensemble, its cascade record gathered from every process's blocks. The
    standard cascade (APGD 100 steps, FAB-T, Square 5,000 queries) is minutes here: the catalog's entry is
    replaced by a cheap custom cascade (APGD-CE 3 steps, then Square 10 queries), seeded as the entry is."""
    import importlib

    from advgrad.evaluate import sweep

    aa = importlib.import_module("advgrad.attacks.autoattack")  # the module: the package exports a function of that name

    def cheap(config: Any) -> Any:  # what the runner expands "autoattack" into: a cheap custom cascade
        return aa.member_configs(config.norm, "custom", ("apgd-ce", "square"), aa.Budget(steps=3, queries=10))

    aa.cascade_of = cheap  # catalog.ATTACKS["autoattack"].members names it; resolved on every expansion
    model = load_model(checkpoint)
    x, y = data.x_test[:N_EVAL], data.y_test[:N_EVAL]
    result = sweep(model, x, y, EvalConfig(eps=(0.0, 0.2), attacks=("fgsm", "autoattack"), block=100, seed=5))
    if distributed.is_main():
        drop = ("seconds", "seconds_per_attack")
        records = [{k: v for k, v in r.items() if k not in drop} | {"keys": sorted(r)} for r in result.records]
        (out / "cascade.json").write_text(json.dumps(records, indent=1))
        torch.save({f"{a}@{e}": m.cpu() for (a, e), m in result.robust.items()}, out / "cascade.pt")


TASKS = {"cascade": cascade_task, "ctrl-c": ctrl_c_task, "eval": eval_task, "train": train_task, "bn": bn_task, "adversarial": adversarial_task,
         "bad-batch": bad_batch_task}


def main(argv: list[str]) -> None:
    root, checkpoint, tasks = Path(argv[0]), argv[1], argv[2].split(",")
    with distributed.session("cpu"):
        out = root / f"w{distributed.world_size()}"
        out.mkdir(parents=True, exist_ok=True)
        data = load_dataset("mnist-5k")
        for task in tasks:
            TASKS[task](out, data, checkpoint)
            distributed.barrier()


if __name__ == "__main__":
    main(sys.argv[1:])
