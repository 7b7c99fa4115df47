"""``advgrad train``: the options → a ``TrainingPlan`` → ``advgrad.runs.training.run_training``, echoing its
table as the epochs end.

With ``--adv METHOD --eps E`` the batches are perturbed with the input gradient first (adversarial
training, see advgrad.training.objectives); each epoch a PGD probe on a fixed training batch records robust
accuracy, the best epoch is kept in OUT.best.pt beside the last (OUT), and a collapse is warned about.
OUT carries the optimizer and RNG states after every epoch: ``--resume`` continues an interrupted run
(kill -9 loses at most the epoch in progress; Ctrl-C saves exactly where it stopped).

OUT must be a .pt file, so that OUT, OUT.json and OUT.best.pt are three files; all three are checked
before any data is loaded (see cli._common.check_outputs). torch and the library are imported when the
command runs, not with the module: ``advgrad train --help`` answers at once."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from advgrad._validate import parse_image_size
from advgrad.catalog import DATASETS, HEADS, LR_SCHEDULES, MODELS, OBJECTIVES, OPTIMIZERS, TRAIN_LOSSES
from advgrad.cli._common import (
    Reporter,
    UsageFail,
    check_outputs,
    device_option,
    folder_options,
    progress_bar,
    refuse_directory,
    warn,
)
from advgrad.cli._progress import on_terminal
from advgrad.cli._progress import quiet as run_quiet
from advgrad.cli._types import IntIn, Widths
from advgrad.configs import DEFAULT_BETA, DEFAULT_STEPS, AdvConfig, TrainConfig, TrainingPlan

if TYPE_CHECKING:
    from advgrad.runs.training import TrainingResult, TrainingStart

DEFAULTS = TrainConfig()
POSITIVE = IntIn(min=1, rule="a positive integer")


@click.command()
@click.option("--data", "--dataset", "dataset", default="mnist-5k", show_default=True, metavar="NAME|FOLDER|FILE",
              help=f"A built-in data set ({', '.join(DATASETS)}), or a folder of images (one sub-folder per class) "
                   "or an .npz/.pt file with x and y as the training split, read whole; those need --test-data. "
                   "--dataset is an alias.")
@click.option("--test-data", "test_data", default=None, metavar="FOLDER|FILE",
              help="With --data FOLDER|FILE: the held-out split each epoch's test accuracy is measured on (no split "
                   "is carved out of the training data).")
@folder_options
@click.option("--data-root", type=click.Path(path_type=Path), default=None,
              help="Folder with the data set's files (torchvision's layout).")
@click.option("--download", is_flag=True, help="Let torchvision download the data set into --data-root.")
@click.option("--model", "model_name", type=click.Choice(tuple(MODELS)), default="cnn", show_default=True)
@click.option("--hidden", type=Widths("256,256"), default=None,
              help="Hidden widths for mlp / mlp-sigmoid, e.g. 256,256.")
@click.option("--head", type=click.Choice(HEADS), default="softmax", show_default=True,
              help="Output layer of mlp-sigmoid: softmax logits or sigmoid units.")
@click.option("--epochs", type=int, default=DEFAULTS.epochs, show_default=True)
@click.option("--batch-size", type=int, default=DEFAULTS.batch_size, show_default=True)
@click.option("--optimizer", type=click.Choice(tuple(OPTIMIZERS)), default=DEFAULTS.optimizer, show_default=True)
@click.option("--lr", type=float, default=DEFAULTS.lr, show_default=True, help="Peak learning rate.")
@click.option("--schedule", type=click.Choice(tuple(LR_SCHEDULES)), default=DEFAULTS.schedule, show_default=True)
@click.option("--weight-decay", type=float, default=DEFAULTS.weight_decay, show_default=True)
@click.option("--momentum", type=float, default=DEFAULTS.momentum, show_default=True, help="SGD momentum.")
@click.option("--loss", type=click.Choice(TRAIN_LOSSES), default=DEFAULTS.loss, show_default=True,
              help="ce, or mse: J = ½‖onehot(y) − ŷ‖² on the model's output probabilities.")
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True)
@device_option
@click.option("--n-train", type=POSITIVE, default=None, help="Use only the first N training images.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("out/model.pt"), show_default=True,
              help="Checkpoint path, a .pt file. The metrics JSON goes beside it (same name, .json), and with "
                   "--adv the best epoch's checkpoint too (same name, .best.pt); none of them may be an "
                   "existing folder or the same file as another.")
@click.option("--adv", "adv_method", type=click.Choice(("none", *OBJECTIVES)), default="none", show_default=True,
              help="Adversarial training: fgsm (Goodfellow), fgsm-rs (Wong), pgd (Madry), trades (Zhang).")
@click.option("--eps", type=float, default=None, help="L∞ radius of the training attack (needed with --adv).")
@click.option("--adv-steps", type=int, default=None, help=f"Attack steps K for pgd/trades  [default: {DEFAULT_STEPS}]")
@click.option("--adv-alpha", type=float, default=None,
              help="Attack step size  [default: fgsm ε, fgsm-rs 1.25·ε, pgd/trades 2.5·ε/K]")
@click.option("--beta", type=float, default=None, help=f"TRADES weight of the KL term  [default: {DEFAULT_BETA:g}]")
@click.option("--eps-warmup", type=int, default=0, show_default=True,
              help="Epochs over which ε grows linearly from 0.")
@click.option("--probe-n", type=IntIn(min=1, rule="≥ 1"), default=512, show_default=True,
              help="Training images in the per-epoch PGD probe (the catastrophic-overfitting guard).")
@click.option("--probe-steps", type=IntIn(min=1, rule="≥ 1"), default=10, show_default=True,
              help="PGD steps of the probe.")
@click.option("--resume", is_flag=True,
              help="Continue the run saved in OUT (same options required); starts afresh if OUT is absent.")
@click.option("--quiet", is_flag=True, help="No progress report and no table (`advgrad --quiet train`: no progress "
                                           "report, the table stays).")
def train(dataset: str, test_data: str | None, image_size: str | None, grayscale: bool, data_root: Path | None,
          download: bool, model_name: str,
          hidden: tuple[int, ...] | None, head: str, epochs: int, batch_size: int, optimizer: str, lr: float,
          schedule: str, weight_decay: float, momentum: float, loss: str, seed: int, device: str,
          n_train: int | None, out: Path, adv_method: str, eps: float | None, adv_steps: int | None,
          adv_alpha: float | None, beta: float | None, eps_warmup: int, probe_n: int, probe_steps: int, resume: bool,
          quiet: bool) -> None:
    """Train a model (∂J/∂W by autograd) and write OUT (a .pt file, default out/model.pt) plus the
    metrics OUT.json beside it.

    --data is a built-in set or your images (a folder or an .npz/.pt file) with their held-out split in
    --test-data.
    """
    refuse_directory(out)
    if dataset not in DATASETS and test_data is None:
        raise UsageFail(f"--data {dataset!r} is not a built-in data set ({', '.join(DATASETS)}); training on a folder "
                        "or an .npz/.pt file needs --test-data FOLDER|FILE, the held-out split")
    config = TrainConfig(epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr, schedule=schedule,
                         weight_decay=weight_decay, momentum=momentum, seed=seed, device=device, loss=loss)
    plan = TrainingPlan(out=out, dataset=dataset, model=model_name, hidden=hidden, head=head, train=config,
                        adv=_adv_config(adv_method, eps, adv_steps, adv_alpha, beta, eps_warmup), n_train=n_train,
                        probe_n=probe_n, probe_steps=probe_steps, data_root=data_root, download=download,
                        resume=resume, test_data=test_data, grayscale=grayscale,
                        image_size=_image_size(image_size))
    check_outputs([("--out", plan.out), ("the metrics JSON", plan.metrics_path)]
                  + ([("the best checkpoint", plan.best_path)] if plan.adv is not None else []))
    from advgrad.runs.output import is_main
    from advgrad.runs.training import run_training

    # On a terminal the library draws each epoch's bar of batches; elsewhere a line per epoch (rate-limited).
    report = Reporter("train", "epoch", "off") if quiet else progress_bar("train", "epoch", bar=False)
    table = _Table(plan, show=not quiet, report=report)
    try:
        result = run_training(plan, on_start=table.start, on_epoch=table.row, on_warning=warn,
                              progress=not (quiet or run_quiet()) and on_terminal())  # tqdm: never into a log
    except KeyboardInterrupt:
        if is_main():  # under torchrun: process 0 alone prints
            click.echo(f"interrupted: state saved in {out}; continue with the same command plus --resume", err=True)
        sys.exit(130)
    if is_main():
        table.end(result)


def _image_size(text: str | None) -> tuple[int, ...] | None:
    """--image-size H[,W] as the plan's (H, W); a bad value is one ValueError line (exit 2)."""
    if text is None:
        return None
    return parse_image_size(text)


def _adv_config(method: str, eps: float | None, steps: int | None, alpha: float | None, beta: float | None,
                eps_warmup: int) -> AdvConfig | None:
    """The adversarial options as an ``AdvConfig`` (None for --adv none); each option only where it applies."""
    if method == "none":
        given = [name for name, v in (("--eps", eps), ("--adv-steps", steps), ("--adv-alpha", alpha),
                                      ("--beta", beta)) if v is not None] + (["--eps-warmup"] if eps_warmup else [])
        if given:
            raise UsageFail(f"{given[0]} needs --adv {'|'.join(OBJECTIVES)}")
        return None
    if eps is None:
        raise UsageFail(f"--adv {method} needs --eps (the L∞ radius, e.g. 0.1 for Fashion-MNIST, 0.3 for MNIST)")
    if steps is not None and not OBJECTIVES[method].multi_step:
        multi = " and ".join(name for name, entry in OBJECTIVES.items() if entry.multi_step)
        raise UsageFail(f"--adv-steps applies to {multi}; {method} takes one step")
    if beta is not None and not OBJECTIVES[method].kl:
        raise UsageFail(f"--beta applies to --adv {'/'.join(n for n, e in OBJECTIVES.items() if e.kl)} only")
    return AdvConfig(method=method, eps=eps, steps=steps, alpha=alpha, beta=DEFAULT_BETA if beta is None else beta,
                     eps_warmup=eps_warmup)


class _Table:
    """What the command echoes while the run reports: the header, one row per epoch, the files written."""

    def __init__(self, plan: TrainingPlan, show: bool, report: Reporter) -> None:
        self.plan, self.show, self.report = plan, show, report

    def start(self, start: TrainingStart) -> None:
        plan, c, adv = self.plan, self.plan.train, self.plan.adv
        if start.fresh:
            click.echo(f"--resume: no checkpoint at {plan.out} yet; starting from the beginning", err=True)
        if not self.show:
            return
        what = "" if adv is None else f", adversarial {adv.method} ε {adv.eps:g} (K {adv.k})"
        click.echo(f"training {plan.model} on {plan.dataset} ({start.n_train} train / {start.n_test} test), "
                   f"{c.epochs} epochs, {c.optimizer} lr {c.lr:g} ({c.schedule}), batch {c.batch_size}, "
                   f"seed {c.seed}{what}")
        if start.resumed_at is not None:
            epoch, batch = start.resumed_at
            self.report.initial = self.report.done = epoch  # the estimate counts this run's epochs only
            click.echo(f"resuming from {plan.out}: {epoch} epochs done" + (f" + {batch} batches" if batch else ""))
        click.echo(f"{'epoch':>5}  {'loss':>8}  {'train acc':>9}  {'test acc':>8}  "
                   + ("" if adv is None else f"{'PGD probe':>9}  ") + f"{'seconds':>7}")

    def row(self, rec: dict[str, Any]) -> None:
        if self.show:
            click.echo(f"{rec['epoch']:>5}  {rec['train_loss']:>8.4f}  {rec['train_accuracy']:>9.2%}  "
                       f"{rec['test_accuracy']:>8.2%}  "
                       + ("" if self.plan.adv is None else f"{rec['robust_accuracy']:>9.2%}  ")
                       + f"{rec['seconds']:>7.1f}")
        probe = "" if self.plan.adv is None else f", PGD probe {rec['robust_accuracy']:.2%}"
        self.report.status(f"loss {rec['train_loss']:.4f}, test acc {rec['test_accuracy']:.2%}{probe}")
        self.report(rec["epoch"], self.plan.train.epochs)

    def end(self, result: TrainingResult) -> None:
        plan = self.plan
        if result.done_before:
            click.echo(f"{plan.out} already holds all {plan.train.epochs} epochs of this run; nothing to do")
        elif self.show:
            best = ""
            if result.best_epoch is not None:
                best = f"; best PGD probe {result.best:.2%} at epoch {result.best_epoch} in {plan.best_path}"
            click.echo(f"wrote {plan.out} and {plan.metrics_path} "
                       f"(test accuracy {result.final['test_accuracy']:.2%}{best})")
