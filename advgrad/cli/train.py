"""``advgrad train``: fit a model by autograd with respect to its parameters and write a checkpoint."""

from __future__ import annotations

from pathlib import Path

import click

from advgrad import data as data_mod
from advgrad import models
from advgrad.checkpoint import save_checkpoint
from advgrad.cli._common import UsageFail, device_option
from advgrad.results import check_writable, provenance, write_json
from advgrad.train import OPTIMIZERS, SCHEDULES, TrainConfig, build_for, checkpoint_meta, fit


def _widths(value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        widths = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise UsageFail(f"--hidden {value!r}: expected comma-separated positive integers, e.g. 256,256") from None
    if not widths or any(w < 1 for w in widths):
        raise UsageFail(f"--hidden {value!r}: expected comma-separated positive integers, e.g. 256,256")
    return widths


@click.command()
@click.option("--dataset", type=click.Choice(data_mod.DATASETS), default="mnist-5k", show_default=True)
@click.option("--data-root", type=click.Path(path_type=Path), default=None,
              help="Folder with the data set's files (torchvision's layout).")
@click.option("--download", is_flag=True, help="Let torchvision download the data set into --data-root.")
@click.option("--model", "model_name", type=click.Choice(models.MODEL_NAMES), default="cnn", show_default=True)
@click.option("--hidden", default=None, help="Hidden widths for mlp / mlp-sigmoid, e.g. 256,256.")
@click.option("--head", type=click.Choice(models.HEADS), default="softmax", show_default=True,
              help="Output layer of mlp-sigmoid: softmax logits or sigmoid units.")
@click.option("--epochs", type=int, default=TrainConfig.epochs, show_default=True)
@click.option("--batch-size", type=int, default=TrainConfig.batch_size, show_default=True)
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=TrainConfig.optimizer, show_default=True)
@click.option("--lr", type=float, default=TrainConfig.lr, show_default=True, help="Peak learning rate.")
@click.option("--schedule", type=click.Choice(SCHEDULES), default=TrainConfig.schedule, show_default=True)
@click.option("--weight-decay", type=float, default=TrainConfig.weight_decay, show_default=True)
@click.option("--momentum", type=float, default=TrainConfig.momentum, show_default=True, help="SGD momentum.")
@click.option("--loss", type=click.Choice(["ce", "mse"]), default="ce", show_default=True,
              help="ce, or mse: J = ½‖onehot(y) − ŷ‖² on the model's output probabilities.")
@click.option("--seed", type=int, default=0, show_default=True)
@device_option
@click.option("--n-train", type=int, default=None, help="Use only the first N training images.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/model.pt"), show_default=True,
              help="Checkpoint path; the metrics JSON goes beside it (same name, .json).")
@click.option("--quiet", is_flag=True, help="No progress bar and no table.")
def train(dataset: str, data_root: Path | None, download: bool, model_name: str, hidden: str | None, head: str,
          epochs: int, batch_size: int, optimizer: str, lr: float, schedule: str, weight_decay: float,
          momentum: float, loss: str, seed: int, device: str, n_train: int | None, out: Path,
          quiet: bool) -> None:
    """Train a model (∂J/∂W by autograd) and write OUT (default runs/model.pt) plus OUT.json."""
    config = TrainConfig(epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr, schedule=schedule,
                         weight_decay=weight_decay, momentum=momentum, seed=seed, device=device, loss=loss)
    try:
        config.validate()
    except ValueError as exc:
        raise UsageFail(str(exc)) from None
    if n_train is not None and n_train < 1:
        raise UsageFail(f"--n-train must be a positive integer, got {n_train}")
    widths = _widths(hidden)
    if (widths is not None or head != "softmax") and model_name not in ("mlp", "mlp-sigmoid"):
        raise UsageFail(f"--hidden/--head apply to mlp and mlp-sigmoid, not {model_name}")
    if head != "softmax" and model_name != "mlp-sigmoid":
        raise UsageFail(f"--head {head} applies to mlp-sigmoid only")
    metrics_path = out.with_suffix(".json")
    try:
        check_writable(out)
        check_writable(metrics_path)
    except ValueError as exc:
        raise UsageFail(str(exc)) from None
    from advgrad.cli._common import resolve_device

    resolve_device(device)  # fail before loading data if cuda is asked for and absent
    try:
        data = data_mod.load_dataset(dataset, data_root, download=download)
    except data_mod.DataNotFound as exc:
        raise UsageFail(str(exc)) from None

    model, model_meta = build_for(model_name, data, seed=seed, hidden=widths, head=head)
    show = not quiet
    if show:
        n = min(n_train or len(data.y_train), len(data.y_train))
        click.echo(f"training {model_name} on {dataset} ({n} train / {len(data.y_test)} test), "
                   f"{epochs} epochs, {optimizer} lr {lr:g} ({schedule}), batch {batch_size}, seed {seed}")
        click.echo(f"{'epoch':>5}  {'loss':>8}  {'train acc':>9}  {'test acc':>8}  {'seconds':>7}")

    def echo_epoch(epoch: int, rec: dict) -> None:  # type: ignore[type-arg]
        if show:
            click.echo(f"{epoch:>5}  {rec['train_loss']:>8.4f}  {rec['train_accuracy']:>9.2%}  "
                       f"{rec['test_accuracy']:>8.2%}  {rec['seconds']:>7.1f}")

    progress = show and click.get_text_stream("stdout").isatty()
    history = fit(model, data, config, on_epoch_end=echo_epoch, progress=progress, max_train=n_train)
    meta = checkpoint_meta(model_meta, data, config, history, n_train=n_train)
    save_checkpoint(out, model, meta)
    record = {"model": model_meta, "dataset": data.meta(), "train_config": config.to_dict(),
              "n_train": n_train, "history": history.epochs, "final": history.final,
              "provenance": provenance(seed=seed, model_path=out)}
    write_json(metrics_path, record)
    if show:
        click.echo(f"wrote {out} and {metrics_path} (test accuracy {history.final['test_accuracy']:.2%})")
