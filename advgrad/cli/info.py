"""``advgrad info``: what a checkpoint holds (model, data, training, metrics, versions); with --attacks, the
attack catalog (read from ``advgrad.catalog``, no torch)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from advgrad.cli._common import model_option, open_checkpoint
from advgrad.results import to_json


@click.command()
@model_option
@click.option("--json", "as_json", is_flag=True, help="Print the metadata as JSON.")
@click.option("--attacks", "list_attacks", is_flag=True,
              help="List the attacks `attack --method` and `eval --attacks` take, with their options.")
def info(model_path: Path, as_json: bool, list_attacks: bool) -> None:
    """Describe the checkpoint at --model (default runs/model.pt)."""
    if list_attacks:
        _attacks()
        return
    ckpt = open_checkpoint(model_path)
    meta = ckpt.meta
    if as_json:
        click.echo(to_json(meta), nl=False)
        return
    ds, model = meta["dataset"], meta["model"]  # both checked when the checkpoint was loaded
    n_params = sum(p.numel() for p in ckpt.model.parameters())
    kwargs = ", ".join(f"{k}={v}" for k, v in model.get("kwargs", {}).items())
    click.echo(f"model     {model['name']}{f' ({kwargs})' if kwargs else ''}, {n_params:,} parameters")
    click.echo(f"dataset   {ds['name']}, input {tuple(ds['input_shape'])}, {ds['num_classes']} classes, "
               f"bounds {ckpt.bounds}")
    cfg, metrics = meta.get("train_config"), meta.get("metrics")
    if cfg is not None:
        click.echo("training  " + _line(lambda: f"{cfg['epochs']} epochs, {cfg['optimizer']} lr {cfg['lr']:g} "
                                        f"({cfg['schedule']}), batch {cfg['batch_size']}, loss {cfg['loss']}, "
                                        f"seed {cfg['seed']}"))
    if isinstance(metrics, dict) and "test_accuracy" in metrics:
        click.echo("metrics   " + _line(lambda: f"test accuracy {metrics['test_accuracy']:.2%}"))
    click.echo(f"versions  advgrad {meta.get('advgrad_version')}, torch {meta.get('torch_version')}")


def _attacks() -> None:
    from advgrad.catalog import ATTACKS
    from advgrad.cli.attack import flags_of

    for name, entry in ATTACKS.items():
        options = flags_of(name).replace("none of these", "none")
        click.echo(f"{name:<11} {entry.summary}")
        click.echo(f"{'':<11} norms {', '.join(entry.norms)}; options {options}; {entry.paper}")


def _line(text: Callable[[], str]) -> str:
    """A line about the training record, which nothing else reads: a damaged record is said to be one."""
    try:
        return text()
    except (KeyError, TypeError, ValueError, IndexError):
        return "(damaged record)"
