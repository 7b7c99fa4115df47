"""``advgrad info``: what a checkpoint holds (model, data, training, metrics, versions), or what any other
model `attack`/`eval` take is (kind, class, parameters, input shape and classes where the file records them,
file hashes); with --attacks, the attack catalog (read from ``advgrad.catalog``, no torch)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from advgrad.cli._common import model_option, model_source_options, open_checkpoint, warn
from advgrad.runs.output import to_json


@click.command()
@model_option
@model_source_options
@click.option("--json", "as_json", is_flag=True, help="Print the metadata as JSON.")
@click.option("--attacks", "list_attacks", is_flag=True,
              help="List the attacks `attack --method` and `eval --attacks` take, with their options.")
def info(model_path: Path, as_json: bool, list_attacks: bool, **sources: Any) -> None:
    """Describe the model at --model (default out/model.pt).

    A checkpoint, or any model `attack` and `eval` take (file.py:factory, module:factory, torchvision:NAME,
    TorchScript, .pt2, with --weights etc.; an ONNX graph .onnx: its input, outputs, opset and the attacks
    that apply).
    """
    if list_attacks:
        _attacks()
        return
    from advgrad.runs.info import model_kind_of

    given = {k: v for k, v in sources.items() if v is not None}
    if given or model_kind_of(model_path) != "checkpoint":
        _other(model_path, as_json, given)
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


def _other(model_path: Path, as_json: bool, options: dict[str, Any]) -> None:
    """A model that is not an advgrad checkpoint (or a checkpoint with model options, which open_model
    refuses in one line): ``runs.info.describe``."""
    from advgrad.runs.info import describe

    described = describe(model_path, on_warning=warn, **options)
    if as_json:
        click.echo(to_json(described), nl=False)
        return
    d = described
    if d["kind"] == "onnx":
        _onnx(d)
        return
    args = ", ".join(f"{k}={v}" for k, v in d["model_args"].items())
    click.echo(f"model     {d['source']} ({d['kind']}, {d['class']}{f'; {args}' if args else ''}), "
               f"{d['parameters']:,} parameters")
    shape = "not recorded in the file (attack/eval check it on --data)" if d["input_shape"] is None else \
        str(tuple(d["input_shape"]))
    classes = "" if d["num_classes"] is None else f", {d['num_classes']} classes"
    click.echo(f"input     {shape}{classes}, bounds [0, 1]")
    if d["mean"] is not None:
        click.echo(f"normalize mean {d['mean']}, std {d['std']} (Normalize in front)")
    key = f"[{d['weights_key']!r}]" if d["weights_key"] else ""
    for what, name, digest in (("file", d["source"], d["sha256"]), ("weights", f"{d['weights']}{key}",
                                                                     d["weights_sha256"])):
        if digest is not None:
            click.echo(f"{what:<9} {name} sha256 {digest[:16]}…")


def _onnx(d: dict[str, Any]) -> None:
    """An ONNX graph: what it takes and returns, its operator sets, and the attacks that apply to it."""
    from advgrad.catalog import LABEL_ATTACKS, QUERY_ATTACKS

    def shape(node: dict[str, Any]) -> str:
        return "(" + ", ".join(str(s) for s in node["shape"]) + ")"

    node = d["input"]
    opset = ", ".join(f"{k} {v}" for k, v in d["opset"].items()) if d["opset"] else "not read (pip install onnx)"
    click.echo(f"model     {d['source']} (ONNX graph, run by ONNX Runtime; answers queries only, no gradient)")
    click.echo(f"input     {node['name']}: {node['type']} {shape(node)}, bounds [0, 1]")
    for i, out in enumerate(d["outputs"]):
        use = " (read: scores or labels)" if i == 0 else ""
        click.echo(f"output    {out['name']}: {out['type']} {shape(out)}{use}")
    click.echo(f"opset     {opset}")
    if d["outputs"][0]["type"].startswith("tensor(int"):  # it answers labels: the decision-based attacks
        click.echo(f"attacks   {', '.join(LABEL_ATTACKS)} (it answers labels only)")
    else:
        click.echo(f"attacks   {', '.join(QUERY_ATTACKS)} (with --labels-only: {', '.join(LABEL_ATTACKS)})")
    click.echo(f"file      {d['source']} sha256 {d['sha256'][:16]}…")


def _attacks() -> None:
    from advgrad.catalog import ATTACKS
    from advgrad.cli._attack_options import flags_of

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
