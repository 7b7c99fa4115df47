"""``advgrad plot KIND FILES... --out FIG.png``: figures from the files the other commands write, one
subcommand per kind, each options → ``advgrad.runs.figures`` → ``records.write.write_figure``:

- ``examples ATTACK.npz``: clean | perturbation | adversarial (from ``advgrad attack --save-examples``),
  the examples the attack fooled first.
- ``curve EVAL.json...``: accuracy against ε, every attack of every file overlaid (``advgrad eval``).
- ``training MODEL.json``: loss and accuracy per epoch (the metrics JSON ``advgrad train`` writes).
- ``min-eps EVAL.json...``: histogram and CDF of the minimal ε (``advgrad eval --min-eps``).
- ``landscape MODEL.pt``: loss along sign(∂J/∂X) vs random sign directions, for a few test images.

--out must not be one of FILES and its folder must take a new file; both are checked before any file is
read. numpy, matplotlib and torch are imported when a subcommand runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from advgrad.cli._common import UsageFail, check_outputs, figure_path, not_a_directory, warn
from advgrad.cli._types import FloatIn, IntIn

F = TypeVar("F", bound=Callable[..., Any])
POSITIVE = IntIn(min=1, rule="a positive integer")


@click.group()
def plot() -> None:
    """Draw a figure (examples, curve, training, min-eps, landscape) from the files the other commands write.

    Each kind is a subcommand: advgrad plot KIND FILES... --out FIG (.png, .svg or .pdf).
    """


def _figure_options(f: F) -> F:
    """FILES, --out and --title: what every kind takes."""
    f = click.option("--title", default=None, help="Replace the figure's title.")(f)
    f = click.option("--out", type=click.Path(path_type=Path), required=True,
                     help="Figure file: .png, .svg or .pdf (not one of FILES).")(f)
    return click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))(f)


def _start(out: Path, files: tuple[Path, ...], kind: str | None = None) -> Path:
    """Before any file is read: --out names a figure format and is none of FILES, its folder takes a new
    file; ``kind`` (a kind drawn from one file) gets exactly one. Returns the first file."""
    figure_path("--out", out)
    check_outputs([("--out", out)], inputs=[("FILES", path) for path in files])
    if kind is not None and len(files) != 1:
        raise UsageFail(f"plot {kind} takes one file, got {len(files)}")
    return files[0]


def _write(out: Path, fig: Any) -> None:
    from advgrad.runs.output import write_figure

    write_figure(out, fig)
    click.echo(f"wrote {out}")


@plot.command()
@_figure_options
@click.option("--n", "n", type=POSITIVE, default=8, show_default=True, help="Images shown.")
def examples(files: tuple[Path, ...], out: Path, title: str | None, n: int) -> None:
    """Clean | perturbation | adversarial from ATTACK.npz (`advgrad attack --save-examples`), fooled first."""
    path = _start(out, files, "examples")
    from advgrad.runs import figures

    _write(out, figures.examples(path, n=n, title=title))


@plot.command()
@_figure_options
def curve(files: tuple[Path, ...], out: Path, title: str | None) -> None:
    """Accuracy against ε from EVAL.json files (`advgrad eval`), every attack of every file overlaid."""
    _start(out, files)
    from advgrad.runs import figures

    _write(out, figures.curve(files, title=title))


@plot.command()
@_figure_options
def training(files: tuple[Path, ...], out: Path, title: str | None) -> None:
    """Loss and accuracy per epoch from MODEL.json (the metrics `advgrad train` writes)."""
    path = _start(out, files, "training")
    from advgrad.runs import figures

    _write(out, figures.training(path, title=title))


@plot.command("min-eps")
@_figure_options
def min_eps(files: tuple[Path, ...], out: Path, title: str | None) -> None:
    """Histogram and CDF of the minimal ε from EVAL.json files (`advgrad eval --min-eps`)."""
    _start(out, files)
    from advgrad.runs import figures

    _write(out, figures.min_eps(files, title=title))


@plot.command()
@_figure_options
@click.option("--n", "n", type=POSITIVE, default=3, show_default=True, help="Test images.")
@click.option("--eps-max", type=FloatIn(0.0, min_open=True, rule="a finite number > 0"), default=0.3,
              show_default=True, help="The largest step.")
@click.option("--seed", type=int, default=0, show_default=True, help="The random directions.")
@click.option("--data-root", type=click.Path(path_type=Path), default=None, help="The data set's folder.")
def landscape(files: tuple[Path, ...], out: Path, title: str | None, n: int, eps_max: float, seed: int,
              data_root: Path | None) -> None:
    """Loss along sign(∂J/∂X) vs random sign directions for a few test images of MODEL.pt."""
    path = not_a_directory("MODEL", _start(out, files, "landscape"))
    from advgrad.runs import figures

    _write(out, figures.landscape(path, n=n, eps_max=eps_max, seed=seed, data_root=data_root, title=title,
                                  on_warning=warn))
