"""``advgrad plot KIND FILES... --out FIG.png``: figures from the files the other commands write.

- ``examples ATTACK.npz``: clean | perturbation | adversarial (from ``advgrad attack --save-examples``),
  the examples the attack fooled first.
- ``curve EVAL.json...``: accuracy against ε, every attack of every file overlaid (``advgrad eval``).
- ``training MODEL.json``: loss and accuracy per epoch (the metrics JSON ``advgrad train`` writes).
- ``min-eps EVAL.json...``: histogram and CDF of the minimal ε (``advgrad eval --min-eps``).
- ``landscape MODEL.pt``: loss along sign(∂J/∂X) vs random sign directions, for a few test images.

--out must not be one of FILES and its folder must take a new file; both are checked before any file is
read. numpy, matplotlib and torch are imported when the command runs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from advgrad.cli._common import UsageFail, check_data, check_outputs, open_checkpoint

KINDS = ("examples", "curve", "training", "min-eps", "landscape")
FORMATS = (".png", ".svg", ".pdf")
# The names under which an examples file may hold each array (the first one present is used).
_NPZ_KEYS = {
    "pred_clean": ("pred_clean", "clean_pred", "clean_prediction", "y_pred"),
    "pred_adv": ("pred_adv", "adv_pred", "adv_prediction", "adversarial_prediction"),
    "conf_clean": ("conf_clean", "clean_conf", "clean_confidence", "confidence_clean"),
    "conf_adv": ("conf_adv", "adv_conf", "adv_confidence", "adversarial_confidence", "confidence_adv"),
}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageFail(f"{str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageFail(f"{str(path)!r} is not a JSON file ({type(exc).__name__})") from None
    if not isinstance(obj, dict):
        raise UsageFail(f"{str(path)!r}: expected a JSON object")
    return obj


def _one(kind: str, files: tuple[Path, ...]) -> Path:
    if len(files) != 1:
        raise UsageFail(f"plot {kind} takes one file, got {len(files)}")
    return files[0]


def _examples(files: tuple[Path, ...], n: int, title: str | None) -> Any:
    import numpy as np

    from advgrad.plots import example_grid

    path = _one("examples", files)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise UsageFail(f"{str(path)!r} does not exist") from None
    except Exception as exc:  # zip, npy-header, EOF and type errors all mean: not an npz file we can read
        raise UsageFail(f"{str(path)!r} is not an .npz file ({type(exc).__name__})") from None
    kwargs: dict[str, Any] = {}
    for key in ("x", "x_adv", "y"):
        if key not in arrays:
            raise UsageFail(f"{str(path)!r} has no {key!r} array (keys: {', '.join(arrays)}); "
                            "write one with `advgrad attack --save-examples`")
        kwargs[key] = arrays[key]
    for key, names in _NPZ_KEYS.items():
        found = next((arrays[k] for k in names if k in arrays), None)
        if found is None:
            raise UsageFail(f"{str(path)!r} has none of {', '.join(names)} (keys: {', '.join(arrays)})")
        kwargs[key] = found
    _check_examples(path, kwargs, arrays.get("class_names"))
    class_names = [str(c) for c in arrays["class_names"]] if "class_names" in arrays else None
    return example_grid(**fooled_first(kwargs), n=n, class_names=class_names, title=title)


def _check_examples(path: Path, arrays: dict[str, Any], class_names: Any) -> None:
    """The arrays ``example_grid`` draws must agree: x and x_adv images of one shape (N, C, H, W) with 1, 3
    or 4 channels, (N, H, W) or (N, D); labels and predictions N integers; confidences N real numbers."""
    import numpy as np

    def fail(what: str) -> None:
        raise UsageFail(f"{str(path)!r}: {what}; write the file with `advgrad attack --save-examples`")

    x, x_adv = arrays["x"], arrays["x_adv"]
    for key in ("x", "x_adv"):
        if arrays[key].dtype.kind not in "biuf":
            fail(f"{key} holds {arrays[key].dtype} values, expected real numbers")
    if x.shape != x_adv.shape or not 2 <= x.ndim <= 4 or len(x) < 1 or (x.ndim == 4 and x.shape[1] not in (1, 3, 4)):
        fail(f"x {x.shape} and x_adv {x_adv.shape} must be one shape (N, C, H, W) with C 1, 3 or 4, "
             "(N, H, W) or (N, D), N ≥ 1")
    n = len(x)
    for key in ("y", "pred_clean", "pred_adv", "conf_clean", "conf_adv"):
        a = arrays[key]
        kinds = "biu" if key in ("y", "pred_clean", "pred_adv") else "biuf"
        if a.shape != (n,) or a.dtype.kind not in kinds:
            fail(f"{key} is {a.dtype} of shape {a.shape}, expected {n} "
                 + ("integers" if kinds == "biu" else "numbers"))
    if class_names is not None and (np.ndim(class_names) != 1 or class_names.dtype.kind not in "U"):
        fail("class_names must be a list of strings")


def fooled_first(arrays: dict[str, Any]) -> dict[str, Any]:
    """The same arrays reordered so that the examples the attack fooled (clean prediction right,
    adversarial prediction wrong) come first, each group in file order: the figure shows what the attack
    did, even when most points survive it."""
    import numpy as np

    y = np.asarray(arrays["y"])
    fooled = (np.asarray(arrays["pred_clean"]) == y) & (np.asarray(arrays["pred_adv"]) != y)
    order = np.argsort(~fooled, kind="stable")
    return {k: np.asarray(v)[order] for k, v in arrays.items()}


def _records(path: Path) -> tuple[str, list[dict[str, Any]]]:
    obj = _read_json(path)
    if isinstance(obj.get("records"), list) and obj["records"]:
        records = obj["records"]
    elif "adversarial_accuracy" in obj and "eps" in obj:  # one `advgrad attack` record
        records = [{"attack": obj.get("method", "attack"), "eps": obj["eps"], "accuracy": obj["adversarial_accuracy"]}]
    else:
        raise UsageFail(f"{str(path)!r} holds no accuracy records: expected the JSON of `advgrad eval`")
    bad = [r for r in records if not isinstance(r, dict) or not {"attack", "eps", "accuracy"} <= set(r)]
    if bad:
        raise UsageFail(f"{str(path)!r}: records need attack, eps and accuracy")
    for r in records:  # a record from a damaged or foreign file: refuse it here, not inside the figure
        numbers = [r["eps"], r["accuracy"]]
        if not isinstance(r["attack"], str) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in numbers):
            raise UsageFail(f"{str(path)!r}: a record needs a name and finite numbers for eps and accuracy, "
                            f"got {r['attack']!r}, {r['eps']!r}, {r['accuracy']!r}")
    return path.stem, records


def _training(files: tuple[Path, ...], title: str | None) -> Any:
    from advgrad.plots import training_curves

    path = _one("training", files)
    obj = _read_json(path)
    history = obj.get("history")
    if not isinstance(history, list) or not history or not all(
            isinstance(h, dict) and {"epoch", "train_loss"} <= set(h) for h in history):
        raise UsageFail(f"{str(path)!r} has no training history: expected the .json `advgrad train` writes")
    name = obj.get("model", {}).get("name") if isinstance(obj.get("model"), dict) else None
    return training_curves(history, title=title or f"Training curves: {name or path.stem}")


def _min_eps(files: tuple[Path, ...], title: str | None) -> Any:
    from advgrad.plots import min_eps_figure

    series, eps_max = [], 0.0
    for path in files:
        block = _read_json(path).get("min_eps")
        if not isinstance(block, dict) or not isinstance(block.get("values"), list):
            raise UsageFail(f"{str(path)!r} has no minimal ε: run `advgrad eval --min-eps`")
        series.append((path.stem, block["values"]))
        eps_max = max(eps_max, float(block.get("eps_max") or 0.0))
    return min_eps_figure(series, eps_max=eps_max or None, title=title)


def _landscape(files: tuple[Path, ...], n: int, eps_max: float, seed: int, data_root: Path | None,
               title: str | None) -> Any:
    import torch

    from advgrad import data as data_mod
    from advgrad.evaluate import loss_landscape
    from advgrad.plots import landscape_figure

    ckpt = open_checkpoint(_one("landscape", files))
    try:
        data = data_mod.load_dataset(ckpt.meta["dataset"]["name"], data_root)
    except data_mod.DataNotFound as exc:
        raise UsageFail(str(exc)) from None
    check_data(ckpt, data)
    x, y = data.x_test[:n], data.y_test[:n]
    t, along, rand = loss_landscape(ckpt.model, x, y, eps_max=eps_max, bounds=ckpt.bounds,
                                    generator=torch.Generator().manual_seed(seed))
    labels = [f"#{i} ({data.class_names[int(c)]})" for i, c in enumerate(y)]
    return landscape_figure(t.tolist(), along.numpy(), rand.numpy(), labels=labels,
                            title=title or f"Loss along sign(∂J/∂X) vs random signs: {ckpt.meta['model']['name']}")


@click.command()
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Figure file: .png, .svg or .pdf (not one of FILES).")
@click.option("--title", default=None, help="Replace the figure's title.")
@click.option("--n", "n", type=int, default=None, help="examples: images shown (8); landscape: samples (3).")
@click.option("--eps-max", type=float, default=0.3, show_default=True, help="landscape: the largest step.")
@click.option("--seed", type=int, default=0, show_default=True, help="landscape: the random directions.")
@click.option("--data-root", type=click.Path(path_type=Path), default=None, help="landscape: data set folder.")
def plot(kind: str, files: tuple[Path, ...], out: Path, title: str | None, n: int | None, eps_max: float,
         seed: int, data_root: Path | None) -> None:
    """Draw a figure of KIND (examples, curve, training, min-eps, landscape) from FILES into --out."""
    if out.suffix.lower() not in FORMATS:
        raise UsageFail(f"--out {str(out)!r}: the suffix picks the format, one of {', '.join(FORMATS)}")
    if n is not None and n < 1:
        raise UsageFail(f"--n must be a positive integer, got {n}")
    if not (0 < eps_max < float("inf")):
        raise UsageFail(f"--eps-max must be a finite number > 0, got {eps_max}")
    check_outputs([("--out", out)], inputs=[("FILES", path) for path in files])
    if kind == "examples":
        fig = _examples(files, n or 8, title)
    elif kind == "curve":
        from advgrad.plots import accuracy_curves

        fig = accuracy_curves([_records(p) for p in files], title=title)
    elif kind == "training":
        fig = _training(files, title)
    elif kind == "min-eps":
        fig = _min_eps(files, title)
    else:
        fig = _landscape(files, n or 3, eps_max, seed, data_root, title)
    from advgrad.results import write_figure

    write_figure(out, fig)
    click.echo(f"wrote {out}")
