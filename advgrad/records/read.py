"""Readers of the records advgrad writes: the metrics JSON of ``advgrad train``, the JSON of ``advgrad attack``
and ``advgrad eval`` (accuracy records, minimal ε) and the examples file of ``attack --save-examples``.

Every reader checks the structure it returns and raises ``ValueError`` (``FileNotFoundError`` for a missing
file) with one line that names the file and what is wrong, so that a damaged or foreign file is a usage
error for the CLI, never a crash while drawing. numpy is imported only by the examples reader: the JSON
readers are plain Python.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

# The names under which an examples file may hold each array (the first one present is used).
EXAMPLE_ALIASES = {
    "pred_clean": ("pred_clean", "clean_pred", "clean_prediction", "y_pred"),
    "pred_adv": ("pred_adv", "adv_pred", "adv_prediction", "adversarial_prediction"),
    "conf_clean": ("conf_clean", "clean_conf", "clean_confidence", "confidence_clean"),
    "conf_adv": ("conf_adv", "adv_conf", "adv_confidence", "adversarial_confidence", "confidence_adv"),
}
_HOW = "write the file with `advgrad attack --save-examples`"
PathLike = str | os.PathLike[str]


def read_json(path: PathLike) -> dict[str, Any]:
    """The JSON object in ``path``."""
    p = Path(path)
    try:
        obj = json.loads(p.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{str(p)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{str(p)!r} is not a JSON file ({type(exc).__name__})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{str(p)!r}: expected a JSON object")
    return obj


def accuracy_records(path: PathLike) -> tuple[str, list[dict[str, Any]]]:
    """(the file's stem, its accuracy records): each a dict with ``attack``, ``eps`` and ``accuracy``, from
    the JSON of ``advgrad eval`` or, as one record, of ``advgrad attack``."""
    obj = read_json(path)
    if isinstance(obj.get("records"), list) and obj["records"]:
        records = obj["records"]
    elif "adversarial_accuracy" in obj and "eps" in obj:  # one `advgrad attack` record
        records = [{"attack": obj.get("method", "attack"), "eps": obj["eps"], "accuracy": obj["adversarial_accuracy"]}]
    else:
        raise ValueError(f"{str(path)!r} holds no accuracy records: expected the JSON of `advgrad eval`")
    if any(not isinstance(r, dict) or not {"attack", "eps", "accuracy"} <= set(r) for r in records):
        raise ValueError(f"{str(path)!r}: records need attack, eps and accuracy")
    for r in records:  # a record from a damaged or foreign file: refuse it here, not inside the figure
        if not isinstance(r["attack"], str) or not all(_finite(r[k]) for k in ("eps", "accuracy")):
            raise ValueError(f"{str(path)!r}: a record needs a name and finite numbers for eps and accuracy, "
                             f"got {r['attack']!r}, {r['eps']!r}, {r['accuracy']!r}")
    return Path(path).stem, records


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def training_history(path: PathLike) -> tuple[str | None, list[dict[str, Any]]]:
    """(the model's name if recorded, the per-epoch history, each epoch with ``epoch`` and ``train_loss``)
    from the metrics JSON of ``advgrad train``."""
    obj = read_json(path)
    history = obj.get("history")
    if not isinstance(history, list) or not history or not all(
            isinstance(h, dict) and {"epoch", "train_loss"} <= set(h) for h in history):
        raise ValueError(f"{str(path)!r} has no training history: expected the .json `advgrad train` writes")
    model = obj.get("model")
    name = model.get("name") if isinstance(model, dict) else None
    return (name if isinstance(name, str) else None), history


def epochs_recorded(path: PathLike) -> int | None:
    """How many epochs a training metrics JSON holds; None when there is no readable one."""
    try:
        return len(json.loads(Path(path).read_text())["history"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def min_eps(path: PathLike) -> tuple[list[Any], float, str]:
    """(the per-sample minimal ε values, None meaning "not broken", the largest ε searched, 0 when not
    recorded, and the attack bisected with, "pgd" in records older than ``--min-eps-attack``) from the JSON
    of ``advgrad eval --min-eps``."""
    block = read_json(path).get("min_eps")
    if not isinstance(block, dict) or not isinstance(block.get("values"), list):
        raise ValueError(f"{str(path)!r} has no minimal ε: run `advgrad eval --min-eps`")
    return block["values"], float(block.get("eps_max") or 0.0), str(block.get("attack") or "pgd")


def minimal_distances(path: PathLike) -> tuple[list[tuple[str, list[Any]]], float]:
    """Every series of per-point minimal distances in the JSON of ``advgrad eval``: the bisection's
    (``--min-eps``, labelled by its attack) and each ``--min-norm`` attack's and their ensemble's (None
    meaning "not broken"), with the largest distance the file can tell of (0 when none)."""
    obj = read_json(path)
    series: list[tuple[str, list[Any]]] = []
    top = 0.0
    if isinstance(obj.get("min_eps"), dict):
        values, top, attack = min_eps(path)
        series.append((f"{attack} (bisection)", values))
    block = obj.get("min_norm")
    if isinstance(block, dict) and isinstance(block.get("attacks"), dict):
        for name, a in block["attacks"].items():
            if not isinstance(a, dict) or not isinstance(a.get("values"), list):
                raise ValueError(f"{str(path)!r}: min_norm.{name} holds no per-point values")
            series.append((str(name), a["values"]))
            top = max([top, *(float(v) for v in a["values"] if _finite(v))])
    if not series:
        raise ValueError(f"{str(path)!r} has no minimal distances: run `advgrad eval --min-norm …` or --min-eps")
    return series, top


def read_examples(path: PathLike) -> tuple[dict[str, Any], list[str] | None]:
    """The arrays of an examples file — x, x_adv (N, C, H, W), (N, H, W) or (N, D); y, pred_clean, pred_adv
    (N,) integers; conf_clean, conf_adv (N,) numbers (under any name of ``EXAMPLE_ALIASES``) — and its class
    names if it holds them. Checked to agree, so that a figure can be drawn from them."""
    import numpy as np

    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise FileNotFoundError(f"{str(p)!r} does not exist") from None
    except Exception as exc:  # zip, npy-header, EOF and type errors all mean: not an npz file we can read
        raise ValueError(f"{str(p)!r} is not an .npz file ({type(exc).__name__})") from None
    found: dict[str, Any] = {}
    for key in ("x", "x_adv", "y"):
        if key not in arrays:
            raise ValueError(f"{str(p)!r} has no {key!r} array (keys: {', '.join(arrays)}); {_HOW}")
        found[key] = arrays[key]
    for key, names in EXAMPLE_ALIASES.items():
        value = next((arrays[k] for k in names if k in arrays), None)
        if value is None:
            raise ValueError(f"{str(p)!r} has none of {', '.join(names)} (keys: {', '.join(arrays)})")
        found[key] = value
    class_names = arrays.get("class_names")
    _check_examples(p, found, class_names)
    return found, (None if class_names is None else [str(c) for c in class_names])


def _check_examples(path: Path, arrays: dict[str, Any], class_names: Any) -> None:
    """x and x_adv images of one shape (N, C, H, W) with 1, 3 or 4 channels, (N, H, W) or (N, D); labels and
    predictions N integers; confidences N real numbers; class names strings."""
    import numpy as np

    def fail(what: str) -> None:
        raise ValueError(f"{str(path)!r}: {what}; {_HOW}")

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
    """The same arrays reordered so that the examples the attack fooled (clean prediction right, adversarial
    prediction wrong) come first, each group in file order: a figure then shows what the attack did, even
    when most points survive it."""
    import numpy as np

    y = np.asarray(arrays["y"])
    fooled = (np.asarray(arrays["pred_clean"]) == y) & (np.asarray(arrays["pred_adv"]) != y)
    order = np.argsort(~fooled, kind="stable")
    return {k: np.asarray(v)[order] for k, v in arrays.items()}
