"""``advgrad transfer``: adversarial examples saved by ``advgrad attack --save-examples`` → another model →
``advgrad.runs.transfer.transfer_report`` → the JSON record (and, with --png, the examples as PNGs) → a table.

--out is checked before anything is read (not the examples file, not the --model file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from advgrad.cli._common import check_outputs, device_option, model_option, model_source_options, suffix, warn
from advgrad.cli._types import IntIn


@click.command()
@click.option("--examples", type=click.Path(path_type=Path), required=True,
              help="The .npz that `advgrad attack --save-examples` wrote (made on the source model).")
@model_option
@model_source_options
@click.option("--batch-size", type=IntIn(min=1, rule="a positive integer"), default=500, show_default=True)
@device_option
@click.option("--png", "png_dir", type=click.Path(path_type=Path), default=None,
              help="Also write the examples as 8-bit PNGs under this folder (lossy: rounding can undo an attack).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/transfer.json"), show_default=True,
              help="JSON record (a .json file).")
def transfer(examples: Path, model_path: Path, batch_size: int, device: str, png_dir: Path | None, out: Path,
             **sources: Any) -> None:
    """Evaluate adversarial examples made on one model on another: its accuracy on the clean and the
    adversarial inputs and the transfer success rate (of the points it classifies correctly when clean, the
    share the examples fool)."""
    run_transfer(examples, model_path, batch_size=batch_size, device=device, png_dir=png_dir, out=out,
                 sources=sources)


def run_transfer(examples: Path, model_path: Path, *, batch_size: int, device: str, png_dir: Path | None, out: Path,
                 sources: dict[str, Any]) -> None:
    """``advgrad transfer`` after its options (``eval --examples`` comes here too): check --out, one
    ``runs.transfer.transfer_report`` call, write the record, echo the table."""
    suffix("--out", out, ".json")
    check_outputs([("--out", out)], inputs=[("--examples", examples), ("--model", model_path)])
    from advgrad.records.write import write_json
    from advgrad.runs.transfer import transfer_report

    report = transfer_report(examples, model_path, batch_size=batch_size, device=device, png_dir=png_dir,
                             on_warning=warn, **{k: v for k, v in sources.items() if v is not None})
    write_json(out, report.record)
    r, src = report.record, report.record["source"]
    clean = "n/a (no clean inputs saved)" if r["clean_accuracy"] is None else f"{r['clean_accuracy']:.2%}"
    click.echo(f"examples {examples} ({src['attack']} L{src['norm']} ε = {src['eps']:g}, n = {r['n']}) on model "
               f"{model_path}")
    for key, value in (("clean accuracy", clean), ("adversarial accuracy", f"{r['adv_accuracy']:.2%}"),
                       ("transfer success", f"{r['success_rate']:.2%} of {r['n_clean_correct']} correct")):
        click.echo(f"  {key:<20}  {value}")
    if "png" in r:
        warn(f"{r['png']['files']} PNGs in {png_dir}: {r['png']['warning']} (max rounding "
             f"{r['png']['max_rounding']:.4f})")
    click.echo(f"wrote {out}")
