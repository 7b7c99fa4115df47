"""``advgrad attack``: FGSM or PGD against a trained model on its dataset's test split.

--out (.json) and --save-examples (.npz) are checked before the checkpoint is read: neither may be the
other or the --model file, and both folders must take a new file. torch and the library are imported
when the command runs (``advgrad attack --help`` answers at once)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import click

from advgrad.cli._common import (
    UsageFail, check_data, check_outputs, device_option, model_option, open_checkpoint, progress_bar, resolve_device,
)
from advgrad.cli._names import LOSSES

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

METHODS = ("fgsm", "pgd")
NORM_CHOICES = ("inf", "2", "1")
NORM_SYMBOL = {"inf": "L∞", "2": "L2", "1": "L1"}
PGD_ONLY = ("steps", "alpha", "restarts", "random_start")


def _predict(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """Predicted class and its probability, shape (N,) each."""
    import torch

    from advgrad.losses import output_activation, probabilities

    with torch.no_grad():
        conf, pred = probabilities(model(x), output_activation(model)).max(dim=1)
    return pred, conf


def _targets(y: Tensor, num_classes: int, target_class: int | None, generator: torch.Generator) -> Tensor:
    """--target-class K: K for every sample; --target random: a uniformly drawn class other than y."""
    import torch

    if target_class is not None:
        return torch.full_like(y, target_class)
    shift = torch.randint(1, num_classes, y.shape, generator=generator)
    return (y + shift) % num_classes


def _suffix(option: str, path: Path | None, suffix: str) -> None:
    if path is not None and path.suffix.lower() != suffix:
        raise UsageFail(f"{option} {str(path)!r}: expected a {suffix} file")


@click.command()
@model_option
@click.option("--eps", type=float, required=True, help="Budget ε: the largest ‖x′ − x‖ allowed.")
@click.option("--method", type=click.Choice(METHODS), default="fgsm", show_default=True)
@click.option("--norm", type=click.Choice(NORM_CHOICES), default="inf", show_default=True, help="Lp norm of ε.")
@click.option("--steps", type=int, default=10, show_default=True, help="PGD steps.")
@click.option("--alpha", type=float, default=None, help="PGD step size [default: 2.5·ε/steps].")
@click.option("--restarts", type=int, default=1, show_default=True,
              help="PGD random restarts (the worst example per sample is kept).")
@click.option("--random-start/--no-random-start", "random_start", default=True, show_default=True,
              help="PGD: start from a uniform point of the ε-ball.")
@click.option("--targeted", is_flag=True, help="Push towards a target class (--target-class or --target).")
@click.option("--target-class", "target_class", type=int, default=None, metavar="K", help="Target class K.")
@click.option("--target", "target_mode", type=click.Choice(["random"]), default=None,
              help="random: a random class other than the label, per sample (seeded).")
@click.option("--loss", type=click.Choice(list(LOSSES)), default="ce", show_default=True)
@click.option("--n", "n", type=int, default=None, help="Attack the first N test images (default: all).")
@click.option("--batch-size", type=int, default=500, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Random starts and random targets.")
@device_option
@click.option("--data-root", type=click.Path(path_type=Path), default=None,
              help="Folder with the checkpoint's data set files (torchvision's layout).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/attack.json"), show_default=True,
              help="JSON record of the attack (a .json file, not the --model file).")
@click.option("--save-examples", "save_examples", type=click.Path(path_type=Path), default=None,
              help="Also write x, x_adv, y, predictions and confidences (a .npz file).")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON record to stdout instead of the table.")
@click.pass_context
def attack(ctx: click.Context, model_path: Path, eps: float, method: str, norm: str, steps: int,
           alpha: float | None, restarts: int, random_start: bool, targeted: bool, target_class: int | None,
           target_mode: str | None, loss: str, n: int | None, batch_size: int, seed: int, device: str,
           data_root: Path | None, out: Path, save_examples: Path | None, as_json: bool) -> None:
    """Attack the model's test images with FGSM (one step) or PGD and report what survives.

    FGSM: x′ = clip(x + ε·sign ∂J/∂X) (L∞); PGD: many projected steps, optionally restarted. The attack
    success rate counts only the images the model classified correctly (for targeted attacks: those
    whose label is not the target, now classified as the target).
    """
    if not math.isfinite(eps) or eps < 0:
        raise UsageFail(f"--eps must be a finite number ≥ 0, got {eps}")
    if method == "fgsm":
        given = [p for p in PGD_ONLY if ctx.get_parameter_source(p) is not click.core.ParameterSource.DEFAULT]
        if given:
            raise UsageFail(f"--{given[0].replace('_', '-')} applies to --method pgd only")
    for option, value in (("--steps", steps), ("--restarts", restarts), ("--batch-size", batch_size), ("--n", n)):
        if value is not None and value < 1:
            raise UsageFail(f"{option} must be a positive integer, got {value}")
    if alpha is not None and not (math.isfinite(alpha) and alpha > 0):
        raise UsageFail(f"--alpha must be a finite number > 0, got {alpha}")
    if targeted and (target_class is None) == (target_mode is None):
        raise UsageFail("--targeted needs exactly one of --target-class K or --target random")
    if not targeted and (target_class is not None or target_mode is not None):
        raise UsageFail("--target-class/--target need --targeted")
    _suffix("--out", out, ".json")
    _suffix("--save-examples", save_examples, ".npz")
    check_outputs([("--out", out)] + ([("--save-examples", save_examples)] if save_examples is not None else []),
                  inputs=[("--model", model_path)])
    import torch

    from advgrad import data as data_mod
    from advgrad.results import provenance, to_json, write_json, write_npz

    dev = resolve_device(device)
    ckpt = open_checkpoint(model_path, dev)
    model = ckpt.model
    try:
        data = data_mod.load_dataset(ckpt.meta["dataset"]["name"], data_root)
    except data_mod.DataNotFound as exc:
        raise UsageFail(str(exc)) from None
    check_data(ckpt, data)
    if target_class is not None and not 0 <= target_class < data.num_classes:
        raise UsageFail(f"--target-class {target_class} is out of range: {data.name} has classes "
                        f"0..{data.num_classes - 1}")
    x, y = data.x_test, data.y_test
    if n is not None:
        x, y = x[:n], y[:n]
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)  # CPU draws, moved to the device: same on any device
    labels = _targets(y, data.num_classes, target_class, generator) if targeted else y
    if method == "fgsm":
        steps, restarts, random_start = 1, 1, False
        alpha = eps
    elif alpha is None:
        alpha = 2.5 * eps / steps

    start = time.perf_counter()
    with progress_bar(len(y), "attack", "image") as bar:
        p_clean, c_clean, p_adv, c_adv, xs_adv = _run(model, x, labels, batch_size, dev, bar.update, method=method,
                                                    eps=eps, alpha=alpha, steps=steps, norm=norm,
                                                    random_start=random_start, restarts=restarts, targeted=targeted,
                                                    loss=loss, bounds=ckpt.bounds, generator=generator)
    seconds = time.perf_counter() - start

    delta = (xs_adv - x).flatten(1)
    correct = p_clean == y
    eligible = correct & (labels != y) if targeted else correct
    fooled = (p_adv == labels) if targeted else (p_adv != y)
    record: dict[str, Any] = {
        "method": method, "norm": norm, "eps": eps, "alpha": alpha, "steps": steps, "restarts": restarts,
        "random_start": random_start, "targeted": targeted,
        "target": None if not targeted else (target_class if target_class is not None else "random"),
        "loss": loss, "model": ckpt.meta["model"], "dataset": data.name, "bounds": list(ckpt.bounds),
        "n": len(y), "clean_accuracy": float(correct.double().mean()),
        "adversarial_accuracy": float((p_adv == y).double().mean()),
        "attack_success_rate": float(fooled[eligible].double().mean()) if bool(eligible.any()) else None,
        "attacked": int(eligible.sum()),
        "mean_confidence_adv": float(c_adv.double().mean()),
        "max_linf": float(delta.abs().amax()) if delta.numel() else 0.0,
        "mean_l2": float(delta.norm(dim=1).double().mean()),
        "seconds": seconds, "images_per_second": len(y) / seconds if seconds > 0 else None,
        "device": str(dev), "provenance": provenance(seed=seed, model_path=model_path),
    }
    write_json(out, record)
    if save_examples is not None:
        arrays = dict(x=x.numpy(), x_adv=xs_adv.numpy(), y=y.numpy(), pred_clean=p_clean.numpy(),
                      pred_adv=p_adv.numpy(), conf_clean=c_clean.numpy(), conf_adv=c_adv.numpy())
        if targeted:
            arrays["target"] = labels.numpy()
        write_npz(save_examples, **arrays)
    if as_json:
        click.echo(to_json(record), nl=False)
        return
    _print_table(record, model_path, ckpt.meta["model"]["name"], data.name, seed)
    click.echo(f"wrote {out}" + (f" and {save_examples}" if save_examples is not None else ""))


def _run(model: nn.Module, x: Tensor, labels: Tensor, batch_size: int, dev: torch.device,
         done: Callable[[int], Any], *, method: str, eps: float, alpha: float, steps: int, norm: str,
         random_start: bool, restarts: int, targeted: bool, loss: str, bounds: tuple[float, float],
         generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The attack, batch by batch: clean and adversarial predictions and confidences (N,) and x_adv
    (N, C, H, W), on the CPU; ``done(k)`` after each batch of k images."""
    import torch

    from advgrad.attacks import fgsm, pgd

    pred_clean: list[Tensor] = []
    conf_clean: list[Tensor] = []
    pred_adv: list[Tensor] = []
    conf_adv: list[Tensor] = []
    x_adv: list[Tensor] = []
    for i in range(0, len(labels), batch_size):
        xb, yb = x[i:i + batch_size].to(dev), labels[i:i + batch_size].to(dev)
        if method == "fgsm":
            xa = fgsm(model, xb, yb, eps, norm=norm, targeted=targeted, loss=loss, bounds=bounds)
        else:
            xa = pgd(model, xb, yb, eps, alpha=alpha if eps > 0 else None, steps=steps, norm=norm,
                     random_start=random_start, restarts=restarts, targeted=targeted, loss=loss,
                     bounds=bounds, generator=generator)
        for store, value in zip((pred_clean, conf_clean), _predict(model, xb)):
            store.append(value.cpu())
        for store, value in zip((pred_adv, conf_adv), _predict(model, xa)):
            store.append(value.cpu())
        x_adv.append(xa.cpu())
        done(len(yb))
    p_clean, c_clean, p_adv, c_adv, xs_adv = (torch.cat(v) for v in (pred_clean, conf_clean, pred_adv, conf_adv, x_adv))
    return p_clean, c_clean, p_adv, c_adv, xs_adv


def _print_table(record: dict[str, Any], model_path: Path, model_name: str, dataset: str, seed: int) -> None:
    method, steps, restarts = record["method"], record["steps"], record["restarts"]
    name = "FGSM" if method == "fgsm" else f"PGD-{steps}" + (f"×{restarts}" if restarts > 1 else "")
    goal = "" if not record["targeted"] else f", targeted ({record['target']})"
    click.echo(f"model {model_path} ({model_name}), {dataset} test, n = {record['n']}; "
               f"{name} {NORM_SYMBOL[record['norm']]} ε = {record['eps']:g}"
               + (f", α = {record['alpha']:g}" if method == "pgd" else "")
               + f", loss {record['loss']}{goal}, seed {seed}")
    rate = record["attack_success_rate"]
    rows = [("clean accuracy", f"{record['clean_accuracy']:.2%}"),
            ("adversarial accuracy", f"{record['adversarial_accuracy']:.2%}"),
            ("attack success rate", "n/a" if rate is None else f"{rate:.2%} of {record['attacked']} attacked"),
            ("mean confidence (adv)", f"{record['mean_confidence_adv']:.3f}"),
            ("max ‖x′ − x‖∞ / mean ‖x′ − x‖₂", f"{record['max_linf']:.4g} / {record['mean_l2']:.4g}"),
            ("time", f"{record['seconds']:.2f} s ({record['images_per_second'] or 0:.0f} images/s)")]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"  {key:<{width}}  {value}")
