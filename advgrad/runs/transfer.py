"""The transfer report of ``advgrad transfer``: adversarial examples saved by ``advgrad attack --save-examples``
(made on a source model) evaluated on another model — its accuracy on the clean and the adversarial inputs
and the transfer success rate (``advgrad.evaluate.transfer.transfer_success``), with both models' provenance; and,
on request, the examples exported as 8-bit PNGs (lossy: ``advgrad.records.examples.PNG_LOSSY``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from advgrad._runtime import resolve_device
from advgrad.evaluate.transfer import transfer_success
from advgrad.models.loading import open_model
from advgrad.records.examples import export_png, load_examples
from advgrad.records.write import provenance, sha256_file
from advgrad.runs._sources import MODEL_OPTIONS as MODEL_OPTIONS  # the model options transfer_report takes

Warn = Callable[[str], None]


@dataclass(frozen=True)
class TransferReport:
    """``record``: what ``advgrad transfer`` writes as JSON (``png``: what the PNG export wrote, if asked)."""

    record: dict[str, Any]


def transfer_report(examples_path: str | os.PathLike[str], model: str | os.PathLike[str], *, batch_size: int = 500,
                    device: str = "auto", png_dir: str | os.PathLike[str] | None = None,
                    on_warning: Warn | None = None, **options: Any) -> TransferReport:
    """Evaluate the examples file ``examples_path`` on ``model`` (any model ``open_model`` takes; ``options``:
    model_args, weights, weights_key, mean, std). The examples are checked first (shape, bounds, labels,
    ‖x_adv − x‖ ≤ ε), then that they fit the model (sample shape, class count, bounds): one-line ValueError
    (DataError, FileNotFoundError) otherwise. ``png_dir``: also write the examples there as PNGs."""
    examples = load_examples(examples_path)
    dev = resolve_device(device)
    loaded = open_model(model, device=dev, **options)
    if not isinstance(loaded.model, nn.Module):
        raise ValueError(f"{os.fspath(model)!r} is an ONNX graph: transfer reads a torch model's outputs (attack "
                         "the graph with `advgrad attack --method rays|hopskipjump|boundary|spsa|square`)")
    for text in loaded.warnings:
        if on_warning is not None:
            on_warning(text)
    info = loaded.info
    bounds = (0.0, 1.0)
    if info["kind"] == "checkpoint":
        lo, hi = (info.get("dataset") or {}).get("bounds", bounds)
        bounds = (float(lo), float(hi))
    start = time.perf_counter()
    result = transfer_success(loaded.model, examples, bounds=bounds, batch_size=batch_size)
    seconds = time.perf_counter() - start
    model_meta = info["model"] if info["kind"] == "checkpoint" else {"name": info["source"], **info}
    record: dict[str, Any] = {
        "examples": os.fspath(examples_path), "examples_sha256": sha256_file(examples_path),
        "source": examples.meta, "model": model_meta, **result, "seconds": seconds,
        "provenance": provenance(seed=examples.meta.get("seed"),
                                 model_path=model if os.path.isfile(model) else None)}
    if png_dir is not None:
        record["png"] = {"folder": os.fspath(png_dir), **export_png(png_dir, examples)}
    return TransferReport(record)
