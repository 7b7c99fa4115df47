"""What ``advgrad transfer`` and ``advgrad eval --examples`` share: after the options, check --out, one
``runs.transfer.transfer_report`` call, write the record, echo the table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from advgrad.cli._common import check_outputs, suffix, warn


def run_transfer(examples: Path, model_path: Path, *, batch_size: int, device: str, png_dir: Path | None, out: Path,
                 sources: dict[str, Any]) -> None:
    """``advgrad transfer`` after its options (``eval --examples`` comes here too): check --out, one
    ``runs.transfer.transfer_report`` call, write the record, echo the table."""
    suffix("--out", out, ".json")
    check_outputs([("--out", out)], inputs=[("--examples", examples), ("--model", model_path)])
    from advgrad.runs.output import write_json
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
