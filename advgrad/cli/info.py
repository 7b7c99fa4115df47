"""``advgrad info``: what a checkpoint holds (model, data, training, metrics, versions)."""

from __future__ import annotations

from pathlib import Path

import click

from advgrad.cli._common import model_option, open_checkpoint
from advgrad.results import to_json


@click.command()
@model_option
@click.option("--json", "as_json", is_flag=True, help="Print the metadata as JSON.")
def info(model_path: Path, as_json: bool) -> None:
    """Describe the checkpoint at --model (default runs/model.pt)."""
    ckpt = open_checkpoint(model_path)
    meta = ckpt.meta
    if as_json:
        click.echo(to_json(meta), nl=False)
        return
    ds, model, cfg = meta["dataset"], meta["model"], meta.get("train_config", {})
    n_params = sum(p.numel() for p in ckpt.model.parameters())
    kwargs = ", ".join(f"{k}={v}" for k, v in model.get("kwargs", {}).items())
    click.echo(f"model     {model['name']}{f' ({kwargs})' if kwargs else ''}, {n_params:,} parameters")
    click.echo(f"dataset   {ds['name']}, input {tuple(ds['input_shape'])}, {ds['num_classes']} classes, "
               f"bounds {tuple(ds['bounds'])}")
    if cfg:
        click.echo(f"training  {cfg['epochs']} epochs, {cfg['optimizer']} lr {cfg['lr']:g} ({cfg['schedule']}), "
                   f"batch {cfg['batch_size']}, loss {cfg['loss']}, seed {cfg['seed']}")
    metrics = meta.get("metrics", {})
    if "test_accuracy" in metrics:
        click.echo(f"metrics   test accuracy {metrics['test_accuracy']:.2%}")
    click.echo(f"versions  advgrad {meta.get('advgrad_version')}, torch {meta.get('torch_version')}")
