"""``advgrad grad``: the options → ``advgrad.runs.gradients.gradient_report`` → a table (and a figure):
∂J/∂W and ∂J/∂X for a few test samples, by hand, by autograd and by finite differences.

torch, matplotlib and the library are imported when the command runs (``advgrad grad --help`` answers at
once); --plot is checked before any of it (not the --model file, its folder takes a new file)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from advgrad.catalog import DATASETS, HAND_LOSSES
from advgrad.cli._common import (
    UsageFail,
    check_outputs,
    data_option,
    figure_path,
    model_option,
    model_source_options,
    warn,
)
from advgrad.cli._types import FloatIn, IntIn, Widths

if TYPE_CHECKING:
    from advgrad.runs.gradients import GradientReport


@click.command()
@model_option
@model_source_options
@data_option
@click.option("--random-sigmoid", "random_sigmoid", default=None, metavar="D,H,...,K",
              type=Widths("784,64,10", least=2, too_few="give at least the input and output widths"),
              help="Instead of --model: a fresh seeded mlp-sigmoid (sigmoid output, J = ½‖y − ŷ‖²) with these "
                   "widths, e.g. 784,64,10, run on mnist-5k test digits.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Weights of --random-sigmoid and the sampled finite-difference coordinates.")
@click.option("--index", "indices", type=int, multiple=True, default=(0,), show_default=True,
              help="Sample(s) of --data (default: the checkpoint's test split); repeat for several (gradients of their "
                   "summed loss).")
@click.option("--loss", type=click.Choice(HAND_LOSSES), default=None,
              help="Default: mse (½‖y − ŷ‖²) for a sigmoid output layer, ce otherwise.")
@click.option("--eps", type=FloatIn(0.0, rule="a finite number ≥ 0"), default=0.1, show_default=True,
              help="Step of x + ε·sign(∂J/∂X) (FGSM).")
@click.option("--fd-coords", type=IntIn(min=0, rule="≥ 0"), default=16, show_default=True,
              help="Coordinates of X and of each Wᵢ, bᵢ checked by central finite differences.")
@click.option("--data-root", type=click.Path(path_type=Path), default=None,
              help="Folder with the checkpoint's data set files (torchvision's layout).")
@click.option("--plot", type=click.Path(path_type=Path), default=None,
              help="Figure: input, ∂J/∂X, sign(∂J/∂X), x + ε·sign(∂J/∂X) with predictions (.png/.svg/.pdf; "
                   "not the --model file).")
@click.pass_context
def grad(ctx: click.Context, /, model_path: Path, random_sigmoid: tuple[int, ...] | None, seed: int,
         indices: tuple[int, ...], loss: str | None, eps: float, fd_coords: int, data_root: Path | None,
         plot: Path | None, **sources: Any) -> None:
    """Show ∂J/∂Wᵢ, ∂J/∂bᵢ and ∂J/∂X for test samples, by hand vs autograd vs finite differences.

    Training needs ∂J/∂W; an attacker needs ∂J/∂X, the same chain rule one layer further. For mlp-sigmoid
    models the backward pass is written out by hand (advgrad.backprop) and checked here; for other models
    autograd's ∂J/∂X is shown. --model takes what `attack` and `eval` take; a model that is not an advgrad
    checkpoint needs --data.
    """
    if plot is not None:
        figure_path("--plot", plot)
        check_outputs([("--plot", plot)], inputs=[] if random_sigmoid is not None else [("--model", model_path)])
    if random_sigmoid is not None and ctx.get_parameter_source("model_path") is not click.core.ParameterSource.DEFAULT:
        raise UsageFail("give either --model or --random-sigmoid, not both")
    given = [name for name, value in sources.items() if value not in (None, False, 0)]
    if random_sigmoid is not None and given:
        raise UsageFail(f"--{given[0].replace('_', '-')} applies to --model; --random-sigmoid runs on the mnist-5k "
                        "test digits")
    from advgrad.runs.gradients import gradient_report

    report = gradient_report(None if random_sigmoid is not None else model_path, random_widths=random_sigmoid,
                             indices=indices, loss=loss, eps=eps, fd_coords=fd_coords, seed=seed, data_root=data_root,
                             on_warning=warn, **sources)
    _print_report(report)
    if plot is not None:
        from advgrad.runs.output import write_figure

        write_figure(plot, report.figure())
        click.echo(f"wrote {plot}")


def _print_report(report: GradientReport) -> None:
    check, indices = report.check, report.indices
    click.echo(f"model: {report.description}")
    split = " test" if report.dataset in DATASETS else ""  # a built-in set's test split; else the file itself
    click.echo(f"data: {report.dataset}{split}, index {', '.join(map(str, indices))} "
               f"(label {', '.join(report.labels)}); loss {check.loss}, J = "
               f"{', '.join(f'{float(v):.4g}' for v in check.losses)}; float64")
    if check.by_hand:
        click.echo(f"{'layer':>5}  {'Wᵢ shape':>10}  {'‖∂J/∂Wᵢ‖':>10}  {'‖∂J/∂bᵢ‖':>10}")
        for i, (shape, gw, gb) in enumerate(check.layers, start=1):
            click.echo(f"{i:>5}  {'×'.join(map(str, shape)):>10}  {gw:>10.4g}  {gb:>10.4g}")
    else:
        click.echo(f"({report.model_type}: the hand-written backward pass covers mlp-sigmoid models; "
                   "∂J/∂X below is autograd's)")
    for i, g in zip(indices, check.input_grad):
        click.echo(f"‖∂J/∂X‖₂ index {i}: {float(g.norm()):.4g}   (max |∂J/∂X| {float(g.abs().max()):.3g})")
    where = f"{check.fd_coords} sampled coordinates of X" + (" and of each Wᵢ, bᵢ" if check.by_hand else "")
    if check.kinks:
        where += f"; {check.kinks} on a kink (ReLU or max-pool tie: no derivative there) left out"
    if check.by_hand:
        d = check.hand_vs_autograd
        click.echo(f"max |hand − autograd|: ∂J/∂W {d['W']:.2g}, ∂J/∂b {d['b']:.2g}, ∂J/∂X {d['X']:.2g}")
        click.echo(f"max |hand − finite differences| ({where}): {check.hand_vs_fd:.2g}")
    click.echo(f"max |autograd − finite differences| ({where}): {check.autograd_vs_fd:.2g}")
    for i, (pb, cb), (pa, ca) in zip(indices, report.before, report.after):
        click.echo(f"index {i}: predicted {pb} ({cb:.1%}) → after x + {report.eps:g}·sign(∂J/∂X): {pa} ({ca:.1%})")
