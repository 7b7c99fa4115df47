"""Weights files for models built from code: read a state dict without running code, and fit it to a model
with messages that name the first missing or unexpected key and the first shape that does not match.

A weights file is read with ``torch.load(weights_only=True)``: tensors, dicts, lists, strings and numbers
only, no pickled objects. Trainers nest the weights and rename them: ``weights_key`` picks the entry
("state_dict" in a Lightning checkpoint, "model" or "ema" elsewhere; "a/b" for a nested one), and a
``module.`` prefix (``DistributedDataParallel``, ``DataParallel``) or ``model.`` prefix (a Lightning
module holding the network as ``self.model``) on every key is stripped when the keys then fit the model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

PREFIXES = ("module.", "model.")  # DDP/DataParallel; Lightning's self.model (stripped while every key has one)
StateDict = dict[str, Tensor]


def _why(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    text = text if len(text) <= 200 else text[:199] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _keys(d: Mapping[Any, object], limit: int = 6) -> str:
    names = [repr(k) for k in list(d)[:limit]]
    return ", ".join(names) + (", …" if len(d) > limit else "") if names else "nothing"


def read_state_dict(path: str | os.PathLike[str], key: str | None = None) -> StateDict:
    """The tensors of a weights file, from the entry ``key`` names ("a/b" for a nested entry), on the CPU.
    FileNotFoundError if the file is absent; ValueError (one line) if it is not a readable weights file,
    the key is absent, or the entry is not a dict of tensors."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no weights file at {str(p)!r}")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors (and a refused global) all mean "cannot read"
        raise ValueError(f"weights {str(p)!r} cannot be read with torch.load(weights_only=True) ({_why(exc)})"
                         ) from None
    where = repr(str(p))
    for part in key.split("/") if key else []:
        if not isinstance(obj, Mapping) or part not in obj:
            held = _keys(obj) if isinstance(obj, Mapping) else f"a {type(obj).__name__}"
            raise ValueError(f"weights {where} have no entry {part!r} (weights_key {key!r}; found {held})")
        obj, where = obj[part], f"{where}[{part!r}]"
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"weights {where} hold a {type(obj).__name__}, not a state dict of tensors")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        value = obj[bad[0]]
        hint = " (pick the weights with weights_key)" if key is None else ""
        raise ValueError(f"weights {where} are not a state dict: entry {bad[0]!r} is a {type(value).__name__}, "
                         f"not a tensor; entries: {_keys(obj)}{hint}")
    return {str(k): v for k, v in obj.items()}


def _variants(state: StateDict) -> list[StateDict]:
    """The state dict, then with a prefix every key shares stripped, again while one is shared."""
    out = [state]
    while True:
        keys = list(out[-1])
        prefix = next((p for p in PREFIXES if all(k.startswith(p) for k in keys)), None)
        if prefix is None:
            return out
        out.append({k[len(prefix):]: v for k, v in out[-1].items()})


def fit_state_dict(model: nn.Module, state: StateDict, where: str = "weights") -> list[str]:
    """Load ``state`` into ``model`` (strict: every key present, none extra, every shape equal), stripping
    ``module.``/``model.`` prefixes where that makes the keys fit. Returns the prefixes stripped. A state
    dict that does not fit is a ValueError naming the first missing/unexpected key or shape mismatch."""
    own = model.state_dict()
    variants = _variants(state)
    # The variant whose keys fit; failing that, the one sharing most keys (its mismatch is the one to name).
    best = max(variants, key=lambda v: (set(v) == set(own), len(set(v) & set(own))))
    stripped = _stripped(state, best)
    missing = [k for k in own if k not in best]
    unexpected = [k for k in best if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first {missing[0]!r})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (first {unexpected[0]!r})")
        note = f" after stripping {''.join(stripped)!r}" if stripped else ""
        raise ValueError(f"{where} do not fit the model{note}: keys {'; '.join(parts)}; the model's keys start "
                         f"{_keys(own, 3)}")
    for k, v in best.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(f"{where} do not fit the model: {k!r} has shape {tuple(v.shape)} in the file but "
                             f"{tuple(own[k].shape)} in the model (check model_args, e.g. num_classes)")
    try:
        model.load_state_dict(best, strict=True)
    except (RuntimeError, TypeError, ValueError) as exc:  # dtype casts that fail, for one
        raise ValueError(f"{where} do not load into the model ({_why(exc)})") from None
    return stripped


def _stripped(state: StateDict, variant: StateDict) -> list[str]:
    """The prefixes removed from ``state``'s first key to get ``variant``'s."""
    first, short = next(iter(state)), next(iter(variant))
    removed = first[: len(first) - len(short)]
    out = []
    while removed:
        p = next(p for p in PREFIXES if removed.startswith(p))
        out.append(p)
        removed = removed[len(p):]
    return out
