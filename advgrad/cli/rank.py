"""``advgrad rank``: the options → ``advgrad.runs.ranking.run_rank`` → the JSON record, the CSV beside it and
the optional figure → a table sorted by optimality. torch and the library are imported when the command runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from advgrad.catalog import MIN_NORM_ATTACKS, NORMS
from advgrad.cli._common import (
    UsageFail,
    check_outputs,
    data_option,
    device_option,
    figure_path,
    follow,
    model_option,
    model_source_options,
    progress_bar,
    warn,
)
from advgrad.cli._types import IntIn, Names


@click.command("rank")
@model_option
@model_source_options
@data_option
@click.option("--attacks", type=Names(MIN_NORM_ATTACKS), required=True,
              help=f"Comma-separated, two or more: {', '.join(MIN_NORM_ATTACKS)} (minimal-norm attacks as they "
                   "are, the others through the bisection of their ε).")
@click.option("--norm", type=click.Choice(tuple(NORMS)), default="2", show_default=True,
              help="Lp norm of the distances.")
@click.option("--budget", type=IntIn(min=1, rule="a positive integer"), default=1000, show_default=True,
              help="Forward + backward sample-passes per point each attack may spend (its steps or queries are "
                   "set from it; a bisected attack shares it among its passes).")
@click.option("--eps-max", type=float, default=None,
              help="Top of the bisection of the fixed-ε attacks [default: 0.3 L∞, 5 L2, 40 L1, 100 L0].")
@click.option("--precision", type=float, default=None, help="Bisection precision [default: eps-max / 64].")
@click.option("--n", "--n-test", "n", type=IntIn(min=1, rule="a positive integer"), default=None,
              help="Rank on the first N test images (default: all).")
@click.option("--block", type=IntIn(min=1, rule="a positive integer"), default=250, show_default=True,
              help="Points per attack call.")
@click.option("--seed", type=int, default=0, show_default=True)
@device_option
@click.option("--data-root", type=click.Path(path_type=Path), default=None,
              help="Folder with the checkpoint's data set files (torchvision's layout).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("out/rank.json"), show_default=True,
              help="JSON record, a .json file; the CSV table goes beside it (same name, .csv).")
@click.option("--plot", "plot", type=click.Path(path_type=Path), default=None,
              help="Also draw the robust-accuracy-vs-ε curves of every attack and their best into this figure "
                   "(.png, .svg, .pdf).")
def rank(model_path: Path, attacks: tuple[str, ...], norm: str, budget: int, eps_max: float | None,
         precision: float | None, n: int | None, block: int, seed: int, device: str, data_root: Path | None,
         out: Path, plot: Path | None, **sources: Any) -> None:
    """Rank attacks as AttackBench does: each attack's per-point minimal ‖δ‖ under the same budget of
    forward + backward passes per point, scored by its optimality against the per-point best of all."""
    csv_path = out.with_suffix(".csv")
    if out.suffix.lower() != ".json":
        raise UsageFail(f"--out {str(out)!r}: expected a .json file (the CSV goes beside it)")
    outputs = [("--out", out), ("the CSV beside --out", csv_path)]
    if plot is not None:
        figure_path("--plot", plot)
        outputs.append(("--plot", plot))
    check_outputs(outputs, inputs=[("--model", model_path)])
    from advgrad.runs.output import is_main, write_csv, write_figure, write_json
    from advgrad.runs.ranking import CSV_FIELDS, rank_figure, run_rank

    with progress_bar("rank", "image") as bar:
        report = run_rank(model_path, attacks, norm=norm, budget=budget, eps_max=eps_max, precision=precision,
                          n=n, block=block, seed=seed, device=device, data_root=data_root, on_warning=warn,
                          progress=follow(bar), **sources)
    if not is_main():
        return
    write_json(out, report.record)
    write_csv(csv_path, report.rows, CSV_FIELDS)
    if plot is not None:
        write_figure(plot, rank_figure(report.record))
    _print_table(report.record, model_path)
    click.echo(f"wrote {out} and {csv_path}" + (f" and {plot}" if plot is not None else "")
               + f" ({report.record['seconds']:.0f} s)")


def _print_table(record: dict[str, Any], model_path: Path) -> None:
    symbol = NORMS[record["norm"]].symbol
    click.echo(f"model {model_path} ({record['model'].get('name')}), {record['dataset']}, n = {record['n']}, "
               f"{symbol}, budget {record['budget']} passes per point, clean accuracy {record['clean_accuracy']:.2%}")
    click.echo(f"  {'attack':>12}  {'optimality':>10}  {'median':>8}  {'broken':>7}  {'best on':>7}  "
               f"{'passes/pt':>9}  {'iters':>6}  {'seconds':>7}")
    for name, a in record["attacks"].items():
        score = "" if a["optimality"] is None else f"{a['optimality']:.3f}"
        median = "∞" if a["median"] is None else f"{a['median']:.4g}"
        best = "" if a["best_on"] is None else str(a["best_on"])
        iters = "" if a["iterations"] is None else str(a["iterations"])
        over = "" if a["within_budget"] in (None, True) else " (over budget)"
        click.echo(f"  {name:>12}  {score:>10}  {median:>8}  {a['broken']:>7.1%}  {best:>7}  "
                   f"{a['passes_per_point']:>9.1f}  {iters:>6}  {a['seconds']:>7.1f}{over}")
