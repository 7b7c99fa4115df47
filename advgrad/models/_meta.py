"""The checks of a checkpoint's metadata (``advgrad.models.checkpoint``'s layout), read from an untrusted
file: every field a model is rebuilt and evaluated from has the type and range it needs, or a one-line
TypeError/ValueError names the first that does not.
"""

from __future__ import annotations

import math
from typing import Any


def _int(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def check_meta(meta: Any) -> None:
    """TypeError/ValueError naming the first field of the metadata that is missing or out of range."""
    if not (isinstance(meta, dict) and isinstance(meta.get("model"), dict) and isinstance(meta.get("dataset"), dict)):
        raise ValueError("meta needs 'model' and 'dataset' blocks")
    model, ds = meta["model"], meta["dataset"]
    if not isinstance(model.get("name"), str) or not isinstance(model.get("kwargs", {}), dict):
        raise ValueError(f"meta model {model.get('name')!r}: expected a name and keyword arguments")
    if not isinstance(ds.get("name"), str):
        raise ValueError(f"meta dataset name {ds.get('name')!r}: expected a string")
    shape = ds.get("input_shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(_int(v, 1) for v in shape)):
        raise ValueError(f"meta dataset input_shape {shape!r}: expected three positive integers (C, H, W)")
    if not _int(ds.get("num_classes"), 2):
        raise ValueError(f"meta dataset num_classes {ds.get('num_classes')!r}: expected an integer ≥ 2")
    bounds = ds.get("bounds", [0.0, 1.0])
    if not (isinstance(bounds, list) and len(bounds) == 2 and all(_number(b) for b in bounds)
            and bounds[0] < bounds[1]):
        raise ValueError(f"meta dataset bounds {bounds!r}: expected two finite numbers lo < hi")
    for key in ("mean", "std"):
        values = ds.get(key)
        if not (isinstance(values, list) and values and all(_number(v) for v in values)
                and (key == "mean" or min(values) > 0)):
            raise ValueError(f"meta dataset {key} {values!r}: expected finite numbers"
                             + (" > 0" if key == "std" else ""))
    names = ds.get("class_names")
    if names is not None and not (isinstance(names, list) and len(names) == ds["num_classes"]
                                  and all(isinstance(c, str) for c in names)):
        raise ValueError(f"meta dataset class_names: expected {ds['num_classes']} strings")
    for key in ("n_train", "n_test"):
        if ds.get(key) is not None and not _int(ds[key], 0):
            raise ValueError(f"meta dataset {key} {ds[key]!r}: expected an integer ≥ 0")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
