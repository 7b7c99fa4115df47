"""``advgrad eval``: robust accuracy over a grid of ε and attacks, minimal ε, and the sanity report.

--out (.json) and the CSV beside it are checked before the checkpoint is read (neither may be the --model
file; both folders must take a new file). torch and the library are imported when the command runs."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable

import click

from advgrad.cli._common import (
    UsageFail, check_data, check_outputs, device_option, model_option, open_checkpoint, progress_bar, resolve_device,
)
from advgrad.cli._names import EVAL as DEFAULTS

CSV_FIELDS = ("attack", "eps", "accuracy", "n", "steps", "restarts", "seconds")


def _floats(option: str, value: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise UsageFail(f"{option} {value!r}: expected comma-separated numbers, e.g. 0,0.05,0.1") from None
    if not values or any(not math.isfinite(v) or v < 0 for v in values):
        raise UsageFail(f"{option} {value!r}: expected comma-separated finite numbers ≥ 0, e.g. 0,0.05,0.1")
    return values


def _names(value: str) -> tuple[str, ...]:
    from advgrad.evaluate import ATTACKS

    names = tuple(v.strip().lower() for v in value.split(",") if v.strip())
    bad = [n for n in names if n not in ATTACKS]
    if not names or bad:
        raise UsageFail(f"--attacks {value!r}: expected a comma-separated list of {', '.join(ATTACKS)}")
    return tuple(dict.fromkeys(names))


@click.command("eval")
@model_option
@click.option("--eps", default="0,0.05,0.1,0.2,0.3", show_default=True, help="Comma-separated L∞ radii.")
@click.option("--attacks", default="fgsm,pgd", show_default=True, help="Comma-separated: fgsm, pgd.")
@click.option("--steps", type=int, default=DEFAULTS["steps"], show_default=True, help="PGD steps (α = 2.5·ε/steps).")
@click.option("--restarts", type=int, default=DEFAULTS["restarts"], show_default=True, help="PGD random restarts.")
@click.option("--n", "n", type=int, default=None, help="Evaluate the first N test images (default: all).")
@click.option("--batch-size", type=int, default=DEFAULTS["batch_size"], show_default=True)
@click.option("--min-eps", "min_eps", is_flag=True,
              help="Also bisect each sample's minimal ε with PGD (up to the largest --eps).")
@click.option("--precision", type=float, default=DEFAULTS["precision"], show_default=True,
              help="Bisection precision for --min-eps.")
@click.option("--queries", type=int, default=DEFAULTS["queries"], show_default=True,
              help="Queries of the black-box search in the sanity report.")
@click.option("--no-sanity", is_flag=True, help="Skip the sanity report.")
@click.option("--seed", type=int, default=0, show_default=True)
@device_option
@click.option("--data-root", type=click.Path(path_type=Path), default=None,
              help="Folder with the checkpoint's data set files (torchvision's layout).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/eval.json"), show_default=True,
              help="JSON record, a .json file; the CSV table goes beside it (same name, .csv). Neither may be "
                   "the --model file.")
def eval_cmd(model_path: Path, eps: str, attacks: str, steps: int, restarts: int, n: int | None, batch_size: int,
             min_eps: bool, precision: float, queries: int, no_sanity: bool, seed: int, device: str,
             data_root: Path | None, out: Path) -> None:
    """How robust is the model, and can the number be trusted? Accuracy under FGSM/PGD at every ε
    (only correctly classified points are attacked; "worst" = survives every attack), optionally the
    per-sample minimal ε, and a sanity report that flags gradient masking."""
    from advgrad.evaluate import EvalConfig

    if n is not None and n < 1:
        raise UsageFail(f"--n must be a positive integer, got {n}")
    config = EvalConfig(eps=_floats("--eps", eps), attacks=_names(attacks), steps=steps, restarts=restarts,
                        batch_size=batch_size, seed=seed, min_eps=min_eps, precision=precision, queries=queries)
    try:
        config.validate()
    except ValueError as exc:
        raise UsageFail(str(exc)) from None
    csv_path = out.with_suffix(".csv")
    if out.suffix.lower() != ".json":
        raise UsageFail(f"--out {str(out)!r}: expected a .json file (the CSV goes beside it)")
    check_outputs([("--out", out), ("the CSV beside --out", csv_path)], inputs=[("--model", model_path)])
    import torch

    from advgrad import data as data_mod
    from advgrad.evaluate import evaluate_model
    from advgrad.results import provenance, write_csv, write_json

    dev = resolve_device(device)
    ckpt = open_checkpoint(model_path, dev)
    config = EvalConfig(**{**config.to_dict(), "bounds": ckpt.bounds})
    try:
        data = data_mod.load_dataset(ckpt.meta["dataset"]["name"], data_root)
    except data_mod.DataNotFound as exc:
        raise UsageFail(str(exc)) from None
    check_data(ckpt, data)
    x, y = data.x_test, data.y_test
    if n is not None:
        x, y = x[:n], y[:n]
    torch.manual_seed(seed)

    start = time.perf_counter()
    with progress_bar(0, "eval", "image") as bar:
        result = evaluate_model(ckpt.model, x.to(dev), y.to(dev), config, sanity=not no_sanity,
                                progress=_follow(bar))
    seconds = time.perf_counter() - start

    click.echo(f"model {model_path} ({ckpt.meta['model']['name']}), {data.name} test, n = {len(y)}, "
               f"clean accuracy {result.clean_accuracy:.2%}; PGD-{steps}×{restarts}, L∞, seed {seed}")
    click.echo(f"{'attack':>8}  {'ε':>6}  {'accuracy':>8}  {'seconds':>7}")
    for r in result.records:
        click.echo(f"{r['attack']:>8}  {r['eps']:>6g}  {r['accuracy']:>8.2%}  {r['seconds']:>7.1f}")
    if result.checks:
        click.echo("sanity report:")
        for c in result.checks:
            click.echo(f"  {c.status:<4}  {c.name:<14}  {c.message}")
    record = {
        "model": ckpt.meta["model"], "dataset": ckpt.meta["dataset"]["name"], "n": len(y),
        "clean_accuracy": result.clean_accuracy, "config": config.to_dict(), "records": result.records,
        "sanity": [c.to_dict() for c in result.checks], "sanity_ok": result.all_ok if result.checks else None,
        "seconds": seconds, "provenance": provenance(seed=seed, model_path=model_path),
    }
    if result.min_eps is not None:
        record["min_eps"] = {"eps_max": result.min_eps_max, "precision": precision,
                             "values": [None if math.isinf(v) else v for v in result.min_eps.tolist()]}
    write_json(out, record)
    write_csv(csv_path, result.records, CSV_FIELDS)
    click.echo(f"wrote {out} and {csv_path} ({seconds:.0f} s)"
               + ("" if not result.checks else "; sanity report " + ("all ok" if result.all_ok else "has warnings")))


def _follow(bar: Any) -> Callable[[int, int], None]:
    """The library's progress callback (images attacked so far, in all: each attack pass over the N
    images counts N) drawn on a tqdm bar."""

    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    return update
