"""``advgrad grad``: ∂J/∂W and ∂J/∂X for a few test samples, by hand, by autograd and by finite differences.

torch, matplotlib and the library are imported when the command runs (``advgrad grad --help`` answers at
once); --plot is checked before any of it (not the --model file, its folder takes a new file)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import click

from advgrad.cli._common import UsageFail, check_data, check_outputs, model_option, open_checkpoint, parse_widths
from advgrad.cli._names import HAND_LOSSES

if TYPE_CHECKING:
    import torch
    from torch import nn

    from advgrad import data as data_mod

FIGURE_FORMATS = (".png", ".svg", ".pdf")
RANDOM_DATASET = "mnist-5k"  # what --random-sigmoid networks are fed: its 1×28×28 test digits, 10 classes


def _random_sigmoid(spec: str, data: data_mod.Dataset, seed: int) -> nn.Module:
    """A seeded mlp-sigmoid with a sigmoid output layer, widths D,H₁,…,K (D = 784, K = 10 for mnist-5k)."""
    from advgrad.train import build_for

    widths = parse_widths("--random-sigmoid", spec, "784,64,10")
    if len(widths) < 2:
        raise UsageFail(f"--random-sigmoid {spec!r}: give at least the input and output widths, e.g. 784,64,10")
    d, k = math.prod(data.input_shape), data.num_classes
    if widths[0] != d or widths[-1] != k:
        raise UsageFail(f"--random-sigmoid {spec!r}: it runs on {data.name} test digits, so the first width "
                        f"must be {d} (1×28×28) and the last {k} (classes)")
    model, _ = build_for("mlp-sigmoid", data, seed=seed, hidden=widths[1:-1], head="sigmoid")
    return model.eval()


def _predict(model: nn.Module, x: torch.Tensor, class_names: tuple[str, ...]) -> list[tuple[str, float]]:
    import torch

    from advgrad.losses import output_activation, probabilities

    with torch.no_grad():
        p = probabilities(model(x), output_activation(model))
    conf, pred = p.max(dim=1)
    return [(class_names[int(c)], float(v)) for c, v in zip(pred, conf)]


@click.command()
@model_option
@click.option("--random-sigmoid", "random_sigmoid", default=None, metavar="D,H,...,K",
              help="Instead of --model: a fresh seeded mlp-sigmoid (sigmoid output, J = ½‖y − ŷ‖²) with these "
                   "widths, e.g. 784,64,10, run on mnist-5k test digits.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Weights of --random-sigmoid and the sampled finite-difference coordinates.")
@click.option("--index", "indices", type=int, multiple=True, default=(0,), show_default=True,
              help="Test sample(s) of the model's dataset; repeat for several (gradients of their summed loss).")
@click.option("--loss", type=click.Choice(HAND_LOSSES), default=None,
              help="Default: mse (½‖y − ŷ‖²) for a sigmoid output layer, ce otherwise.")
@click.option("--eps", type=float, default=0.1, show_default=True, help="Step of x + ε·sign(∂J/∂X) (FGSM).")
@click.option("--fd-coords", type=int, default=16, show_default=True,
              help="Coordinates of X and of each Wᵢ, bᵢ checked by central finite differences.")
@click.option("--data-root", type=click.Path(path_type=Path), default=None,
              help="Folder with the checkpoint's data set files (torchvision's layout).")
@click.option("--plot", type=click.Path(path_type=Path), default=None,
              help="Figure: input, ∂J/∂X, sign(∂J/∂X), x + ε·sign(∂J/∂X) with predictions (.png/.svg/.pdf; "
                   "not the --model file).")
@click.pass_context
def grad(ctx: click.Context, model_path: Path, random_sigmoid: str | None, seed: int, indices: tuple[int, ...],
         loss: str | None, eps: float, fd_coords: int, data_root: Path | None, plot: Path | None) -> None:
    """Show ∂J/∂Wᵢ, ∂J/∂bᵢ and ∂J/∂X for test samples, by hand vs autograd vs finite differences.

    Training needs ∂J/∂W; an attacker needs ∂J/∂X, the same chain rule one layer further. For mlp-sigmoid
    models the backward pass is written out by hand (advgrad.backprop) and checked here; for other models
    autograd's ∂J/∂X is shown.
    """
    if not math.isfinite(eps) or eps < 0:
        raise UsageFail(f"--eps must be a finite number ≥ 0, got {eps}")
    if fd_coords < 0:
        raise UsageFail(f"--fd-coords must be ≥ 0, got {fd_coords}")
    if plot is not None:
        if plot.suffix.lower() not in FIGURE_FORMATS:
            raise UsageFail(f"--plot {str(plot)!r}: the suffix picks the format, one of {', '.join(FIGURE_FORMATS)}")
        check_outputs([("--plot", plot)], inputs=[] if random_sigmoid is not None else [("--model", model_path)])
    import torch

    from advgrad import data as data_mod
    from advgrad.backprop import check_gradients

    bounds = (0.0, 1.0)
    if random_sigmoid is not None:
        if ctx.get_parameter_source("model_path") is not click.core.ParameterSource.DEFAULT:
            raise UsageFail("give either --model or --random-sigmoid, not both")
        data = data_mod.load_dataset(RANDOM_DATASET)
        model = _random_sigmoid(random_sigmoid, data, seed)
        name = f"random mlp-sigmoid {random_sigmoid} (seed {seed}, sigmoid output)"
    else:
        ckpt = open_checkpoint(model_path, "cpu")
        model, bounds = ckpt.model, ckpt.bounds
        try:
            data = data_mod.load_dataset(ckpt.meta["dataset"]["name"], data_root)
        except data_mod.DataNotFound as exc:
            raise UsageFail(str(exc)) from None
        check_data(ckpt, data)
        kwargs = ckpt.meta["model"].get("kwargs", {})
        name = f"{model_path} ({ckpt.meta['model']['name']}{', ' + str(kwargs) if kwargs else ''})"
    n_test = len(data.y_test)
    bad = [i for i in indices if not 0 <= i < n_test]
    if bad:
        raise UsageFail(f"--index {bad[0]} is out of range: {data.name} has {n_test} test samples (0..{n_test - 1})")
    idx = torch.tensor(indices)
    x, y = data.x_test[idx], data.y_test[idx]  # (N, C, H, W) float32, (N,)

    check = check_gradients(model, x, y, loss, fd_coords=fd_coords, generator=torch.Generator().manual_seed(seed))
    names = data.class_names
    click.echo(f"model: {name}")
    click.echo(f"data: {data.name} test, index {', '.join(map(str, indices))} "
               f"(label {', '.join(names[int(c)] for c in y)}); loss {check.loss}, J = "
               f"{', '.join(f'{float(v):.4g}' for v in check.losses)}; float64")
    if check.by_hand:
        click.echo(f"{'layer':>5}  {'Wᵢ shape':>10}  {'‖∂J/∂Wᵢ‖':>10}  {'‖∂J/∂bᵢ‖':>10}")
        for i, (shape, gw, gb) in enumerate(check.layers, start=1):
            click.echo(f"{i:>5}  {'×'.join(map(str, shape)):>10}  {gw:>10.4g}  {gb:>10.4g}")
    else:
        click.echo(f"({type(model).__name__}: the hand-written backward pass covers mlp-sigmoid models; "
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

    from advgrad.attacks import fgsm

    x_adv = fgsm(model, x, y, eps, loss=check.loss, bounds=bounds)
    before, after = _predict(model, x, names), _predict(model, x_adv, names)
    for i, (pb, cb), (pa, ca) in zip(indices, before, after):
        click.echo(f"index {i}: predicted {pb} ({cb:.1%}) → after x + {eps:g}·sign(∂J/∂X): {pa} ({ca:.1%})")
    if plot is not None:
        from advgrad.backprop import plot_input_gradient
        from advgrad.results import write_figure

        fig = plot_input_gradient(x, check.input_grad, x_adv, eps=eps, before=before, after=after,
                                  labels=[names[int(c)] for c in y])
        write_figure(plot, fig)
        click.echo(f"wrote {plot}")
