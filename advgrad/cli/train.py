"""``advgrad train``: fit a model by autograd with respect to its parameters and write a checkpoint.

With ``--adv METHOD --eps E`` the batches are perturbed with the input gradient first (adversarial
training, see advgrad.adversarial); each epoch a PGD probe on a fixed training batch records robust
accuracy, the best epoch is kept in OUT.best.pt beside the last (OUT), and a collapse is warned about.
OUT carries the optimizer and RNG states after every epoch: ``--resume`` continues an interrupted run
(kill -9 loses at most the epoch in progress; Ctrl-C saves exactly where it stopped).

OUT must be a .pt file, so that OUT, OUT.json and OUT.best.pt are three files; all three are checked
before any data is loaded (see cli._common.check_outputs). torch and the library are imported when the
command runs, not with the module: ``advgrad train --help`` answers at once."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from advgrad.cli._common import UsageFail, check_outputs, device_option, parse_widths, refuse_directory
from advgrad.cli._names import ADV_METHODS, DATASETS, DEFAULT_BETA, HEADS, MODEL_NAMES, OPTIMIZERS, SCHEDULES
from advgrad.cli._names import TRAIN as DEFAULTS

if TYPE_CHECKING:
    from advgrad.adversarial import AdvConfig


@click.command()
@click.option("--dataset", type=click.Choice(DATASETS), default="mnist-5k", show_default=True)
@click.option("--data-root", type=click.Path(path_type=Path), default=None,
              help="Folder with the data set's files (torchvision's layout).")
@click.option("--download", is_flag=True, help="Let torchvision download the data set into --data-root.")
@click.option("--model", "model_name", type=click.Choice(MODEL_NAMES), default="cnn", show_default=True)
@click.option("--hidden", default=None, help="Hidden widths for mlp / mlp-sigmoid, e.g. 256,256.")
@click.option("--head", type=click.Choice(HEADS), default="softmax", show_default=True,
              help="Output layer of mlp-sigmoid: softmax logits or sigmoid units.")
@click.option("--epochs", type=int, default=DEFAULTS["epochs"], show_default=True)
@click.option("--batch-size", type=int, default=DEFAULTS["batch_size"], show_default=True)
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=DEFAULTS["optimizer"], show_default=True)
@click.option("--lr", type=float, default=DEFAULTS["lr"], show_default=True, help="Peak learning rate.")
@click.option("--schedule", type=click.Choice(SCHEDULES), default=DEFAULTS["schedule"], show_default=True)
@click.option("--weight-decay", type=float, default=DEFAULTS["weight_decay"], show_default=True)
@click.option("--momentum", type=float, default=DEFAULTS["momentum"], show_default=True, help="SGD momentum.")
@click.option("--loss", type=click.Choice(["ce", "mse"]), default="ce", show_default=True,
              help="ce, or mse: J = ½‖onehot(y) − ŷ‖² on the model's output probabilities.")
@click.option("--seed", type=int, default=0, show_default=True)
@device_option
@click.option("--n-train", type=int, default=None, help="Use only the first N training images.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/model.pt"), show_default=True,
              help="Checkpoint path, a .pt file. The metrics JSON goes beside it (same name, .json), and with "
                   "--adv the best epoch's checkpoint too (same name, .best.pt); none of them may be an "
                   "existing folder or the same file as another.")
@click.option("--adv", "adv_method", type=click.Choice(("none",) + ADV_METHODS), default="none", show_default=True,
              help="Adversarial training: fgsm (Goodfellow), fgsm-rs (Wong), pgd (Madry), trades (Zhang).")
@click.option("--eps", type=float, default=None, help="L∞ radius of the training attack (needed with --adv).")
@click.option("--adv-steps", type=int, default=None, help="Attack steps K for pgd/trades  [default: 7]")
@click.option("--adv-alpha", type=float, default=None,
              help="Attack step size  [default: fgsm ε, fgsm-rs 1.25·ε, pgd/trades 2.5·ε/K]")
@click.option("--beta", type=float, default=None, help=f"TRADES weight of the KL term  [default: {DEFAULT_BETA:g}]")
@click.option("--eps-warmup", type=int, default=0, show_default=True,
              help="Epochs over which ε grows linearly from 0.")
@click.option("--probe-n", type=int, default=512, show_default=True,
              help="Training images in the per-epoch PGD probe (the catastrophic-overfitting guard).")
@click.option("--probe-steps", type=int, default=10, show_default=True, help="PGD steps of the probe.")
@click.option("--resume", is_flag=True,
              help="Continue the run saved in OUT (same options required); starts afresh if OUT is absent.")
@click.option("--quiet", is_flag=True, help="No progress bar and no table.")
def train(dataset: str, data_root: Path | None, download: bool, model_name: str, hidden: str | None, head: str,
          epochs: int, batch_size: int, optimizer: str, lr: float, schedule: str, weight_decay: float,
          momentum: float, loss: str, seed: int, device: str, n_train: int | None, out: Path,
          adv_method: str, eps: float | None, adv_steps: int | None, adv_alpha: float | None,
          beta: float | None, eps_warmup: int, probe_n: int, probe_steps: int, resume: bool,
          quiet: bool) -> None:
    """Train a model (∂J/∂W by autograd) and write OUT (a .pt file, default runs/model.pt) plus the
    metrics OUT.json beside it."""
    import torch

    from advgrad import data as data_mod
    from advgrad.adversarial import RobustProbe, make_objective
    from advgrad.checkpoint import save_checkpoint
    from advgrad.train import History, TrainConfig, build_for, checkpoint_meta, fit

    config = TrainConfig(epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr, schedule=schedule,
                         weight_decay=weight_decay, momentum=momentum, seed=seed, device=device, loss=loss)
    try:
        config.validate()
    except ValueError as exc:
        raise UsageFail(str(exc)) from None
    if n_train is not None and n_train < 1:
        raise UsageFail(f"--n-train must be a positive integer, got {n_train}")
    widths = None if hidden is None else parse_widths("--hidden", hidden, "256,256")
    if (widths is not None or head != "softmax") and model_name not in ("mlp", "mlp-sigmoid"):
        raise UsageFail(f"--hidden/--head apply to mlp and mlp-sigmoid, not {model_name}")
    if head != "softmax" and model_name != "mlp-sigmoid":
        raise UsageFail(f"--head {head} applies to mlp-sigmoid only")
    adv = _adv_config(adv_method, eps, adv_steps, adv_alpha, beta, eps_warmup)
    if probe_n < 1 or probe_steps < 1:
        raise UsageFail(f"--probe-n and --probe-steps must be ≥ 1, got {probe_n} and {probe_steps}")
    metrics_path, best_path = _outputs(out, adv is not None)
    from advgrad.cli._common import resolve_device

    resolve_device(device)  # fail before loading data if cuda is asked for and absent
    try:
        data = data_mod.load_dataset(dataset, data_root, download=download)
    except data_mod.DataNotFound as exc:
        raise UsageFail(str(exc)) from None

    model, model_meta = build_for(model_name, data, seed=seed, hidden=widths, head=head)
    probe_meta = {"n": probe_n, "steps": probe_steps} if adv is not None else None
    identity = {"model": model_meta, "dataset": data.meta(), "train_config": config.to_dict(), "n_train": n_train,
                "adversarial": adv.to_dict() if adv is not None else None, "probe": probe_meta}
    state = _resume_state(out, identity) if resume else None
    if state is not None:
        model.load_state_dict(state["state_dict"])

    objective = None
    probe = None
    if adv is not None:
        objective = make_objective(adv, epochs=epochs, seed=seed, loss=loss, bounds=data.bounds)
        xs, ys = data.x_train, data.y_train
        if n_train is not None:
            xs, ys = xs[:n_train], ys[:n_train]
        # A fixed random subset (data sets may be sorted by class), the same every epoch and on resume.
        pick = torch.randperm(len(ys), generator=torch.Generator().manual_seed(seed))[:probe_n]
        probe = RobustProbe(xs[pick], ys[pick], adv.eps, steps=probe_steps, seed=seed, bounds=data.bounds)
    if state is not None:
        from advgrad.cli._resume import check_resume

        used = min(n_train or len(data.y_train), len(data.y_train))
        try:
            check_resume(state["resume"], model=model, config=config, n_train=used, objective=objective, probe=probe,
                         guard=state.get("guard"))
        except ValueError as exc:
            raise UsageFail(f"--resume: {out} holds a damaged training state: {exc}") from None

    show = not quiet
    done = int(state["resume"]["epoch"]) if state is not None else 0
    if state is not None and done >= epochs:
        history_epochs = state["resume"]["history"]
        if _metrics_epochs(metrics_path) != len(history_epochs):  # killed between OUT and its JSON
            _write_metrics(metrics_path, identity, history_epochs, True, seed, out,
                           best_epoch=probe.best_epoch if probe is not None else None)
        click.echo(f"{out} already holds all {epochs} epochs of this run; nothing to do")
        return
    if show:
        n = min(n_train or len(data.y_train), len(data.y_train))
        what = "" if adv is None else f", adversarial {adv.method} ε {adv.eps:g} (K {adv.k})"
        click.echo(f"training {model_name} on {dataset} ({n} train / {len(data.y_test)} test), "
                   f"{epochs} epochs, {optimizer} lr {lr:g} ({schedule}), batch {batch_size}, seed {seed}{what}")
        if state is not None:
            pos = state["resume"]
            click.echo(f"resuming from {out}: {pos['epoch']} epochs done" +
                       (f" + {pos['batch']} batches" if pos["batch"] else ""))
        click.echo(f"{'epoch':>5}  {'loss':>8}  {'train acc':>9}  {'test acc':>8}  "
                   + ("" if adv is None else f"{'PGD probe':>9}  ") + f"{'seconds':>7}")

    def meta_for(history_epochs: list[dict[str, Any]], complete: bool) -> dict[str, Any]:
        hist = History(epochs=list(history_epochs))
        return checkpoint_meta(model_meta, data, config, hist, n_train=n_train,
                               adversarial=identity["adversarial"], probe=probe_meta, complete=complete,
                               best_epoch=probe.best_epoch if probe is not None else None)

    def on_epoch_end(epoch: int, rec: dict) -> None:  # type: ignore[type-arg]
        rec["adversarial_eps"] = adv.eps_at(1.0 if epoch >= epochs else epoch / epochs, epochs) if adv else None
        is_best = False
        if probe is not None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                is_best = probe.update(epoch, rec, model)
            for w in caught:
                click.echo(f"warning: {w.message}", err=True)
        rec["best"] = is_best
        if show:
            click.echo(f"{epoch:>5}  {rec['train_loss']:>8.4f}  {rec['train_accuracy']:>9.2%}  "
                       f"{rec['test_accuracy']:>8.2%}  "
                       + ("" if probe is None else f"{rec['robust_accuracy']:>9.2%}  ")
                       + f"{rec['seconds']:>7.1f}")

    def on_checkpoint(train_state: dict[str, Any]) -> None:
        complete = train_state["epoch"] >= epochs and train_state["batch"] == 0
        history_epochs = train_state["history"]
        # The best checkpoint goes before OUT (the resume point): a kill between the writes makes --resume
        # redo the epoch deterministically and rewrite it. The metrics JSON follows OUT (it names OUT's
        # sha256); a finished run whose JSON lags behind is caught up by --resume.
        if probe is not None and train_state["batch"] == 0 and history_epochs and history_epochs[-1].get("best"):
            save_checkpoint(best_path, model, meta_for(history_epochs, complete))
        save_checkpoint(out, model, meta_for(history_epochs, complete), resume=train_state,
                        guard=probe.state_dict() if probe is not None else None)
        _write_metrics(metrics_path, identity, history_epochs, complete, seed, out,
                       best_epoch=probe.best_epoch if probe is not None else None)

    progress = show and sys.stderr.isatty()  # tqdm draws on stderr: never into a pipe or a log
    try:
        history = fit(model, data, config, objective=objective, on_epoch_end=on_epoch_end, progress=progress,
                      max_train=n_train, resume=state["resume"] if state is not None else None,
                      on_checkpoint=on_checkpoint)
    except KeyboardInterrupt:
        click.echo(f"interrupted: state saved in {out}; continue with the same command plus --resume", err=True)
        sys.exit(130)
    if show:
        best = ""
        if probe is not None and probe.best_epoch is not None:
            best = f"; best PGD probe {probe.best:.2%} at epoch {probe.best_epoch} in {best_path}"
        click.echo(f"wrote {out} and {metrics_path} (test accuracy {history.final['test_accuracy']:.2%}{best})")


def best_path_for(out: Path) -> Path:
    """Where the best-robust-accuracy checkpoint goes: runs/model.pt → runs/model.best.pt."""
    return out.with_name(out.stem + ".best" + (out.suffix or ".pt"))


def _outputs(out: Path, adversarial: bool) -> tuple[Path, Path]:
    """The metrics JSON and best-checkpoint paths of OUT, once all the files the run writes are known to be
    three different, writable files (exit 2 otherwise, before any data is loaded)."""
    refuse_directory(out)
    if out.suffix.lower() != ".pt":
        raise UsageFail(f"--out {str(out)!r}: expected a .pt file (the metrics JSON goes beside it, same name .json)")
    metrics_path, best_path = out.with_suffix(".json"), best_path_for(out)
    check_outputs([("--out", out), ("the metrics JSON", metrics_path)]
                  + ([("the best checkpoint", best_path)] if adversarial else []))
    return metrics_path, best_path


def _adv_config(method: str, eps: float | None, steps: int | None, alpha: float | None, beta: float | None,
                eps_warmup: int) -> AdvConfig | None:
    from advgrad.adversarial import AdvConfig

    if method == "none":
        given = [name for name, v in (("--eps", eps), ("--adv-steps", steps), ("--adv-alpha", alpha),
                                      ("--beta", beta)) if v is not None] + (["--eps-warmup"] if eps_warmup else [])
        if given:
            raise UsageFail(f"{given[0]} needs --adv fgsm|fgsm-rs|pgd|trades")
        return None
    if eps is None:
        raise UsageFail(f"--adv {method} needs --eps (the L∞ radius, e.g. 0.1 for Fashion-MNIST, 0.3 for MNIST)")
    if steps is not None and method in ("fgsm", "fgsm-rs"):
        raise UsageFail(f"--adv-steps applies to pgd and trades; {method} takes one step")
    if beta is not None and method != "trades":
        raise UsageFail("--beta applies to --adv trades only")
    config = AdvConfig(method=method, eps=eps, steps=steps, alpha=alpha,
                       beta=DEFAULT_BETA if beta is None else beta, eps_warmup=eps_warmup)
    try:
        return config.validate()
    except ValueError as exc:
        raise UsageFail(str(exc)) from None


def _first_difference(a: Any, b: Any, path: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key in ("n_train",) and path.endswith("dataset"):
                continue
            diff = _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
            if diff:
                return diff
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        a, b = list(a), list(b)
    return None if a == b else f"{path}: checkpoint has {a!r}, this command {b!r}"


def _resume_state(out: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """Load OUT for --resume, or None if it does not exist; exit 2 if it is from another configuration."""
    from advgrad.checkpoint import load_checkpoint

    if not out.exists():
        click.echo(f"--resume: no checkpoint at {out} yet; starting from the beginning", err=True)
        return None
    try:
        ckpt = load_checkpoint(out)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageFail(f"--resume: {exc}") from None
    if "resume" not in ckpt.extra:
        raise UsageFail(f"--resume: {out} holds no training state (written by an older advgrad, or a best-only "
                        "checkpoint)")
    saved = {"model": ckpt.meta.get("model"), "dataset": ckpt.meta.get("dataset"),
             "train_config": ckpt.meta.get("train_config"), "n_train": ckpt.meta.get("n_train"),
             "adversarial": ckpt.meta.get("adversarial"), "probe": ckpt.meta.get("probe")}
    diff = _first_difference(saved, identity)
    if diff:
        raise UsageFail(f"--resume: {out} is from a different configuration ({diff}); "
                        "use the same options or another --out")
    return {"state_dict": ckpt.model.state_dict(), "resume": ckpt.extra["resume"], "guard": ckpt.extra.get("guard")}


def _metrics_epochs(path: Path) -> int | None:
    import json

    try:
        return len(json.loads(path.read_text())["history"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_metrics(path: Path, identity: dict[str, Any], history: list[dict[str, Any]], complete: bool,
                   seed: int, out: Path, best_epoch: int | None) -> None:
    from advgrad.results import provenance, write_json

    record = {**identity, "history": history, "final": dict(history[-1]) if history else {},
              "complete": complete, "best_epoch": best_epoch,
              "robust_accuracy": [r.get("robust_accuracy") for r in history] if identity["adversarial"] else None,
              "provenance": provenance(seed=seed, model_path=out)}
    write_json(path, record)
