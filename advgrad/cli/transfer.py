"""``advgrad transfer``: adversarial examples saved by ``advgrad attack --save-examples`` → another model →
``advgrad.runs.transfer.transfer_report`` → the JSON record (and, with --png, the examples as PNGs) → a table.

--out is checked before anything is read (not the examples file, not the --model file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from advgrad.cli._common import device_option, model_option, model_source_options
from advgrad.cli._transfer import run_transfer
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
@click.option("--out", type=click.Path(path_type=Path), default=Path("out/transfer.json"), show_default=True,
              help="JSON record (a .json file).")
def transfer(examples: Path, model_path: Path, batch_size: int, device: str, png_dir: Path | None, out: Path,
             **sources: Any) -> None:
    """Evaluate adversarial examples made on one model on another: its accuracy on the clean and the
    adversarial inputs and the transfer success rate (of the points it classifies correctly when clean, the
    share the examples fool)."""
    run_transfer(examples, model_path, batch_size=batch_size, device=device, png_dir=png_dir, out=out,
                 sources=sources)
