"""The evaluation of ``advgrad eval``: ``advgrad.evaluate.evaluate_model`` on the first N test images of a
saved model's data set, and its record — the JSON (model, data, config, accuracy records, sanity report,
minimal ε, timing, provenance) and the CSV rows (one per accuracy record).

Under torchrun (``torchrun --nproc_per_node N -m advgrad eval ...``) every process evaluates: the attack
passes share blocks of 256 test points out and every process ends with the one-process record, bit for bit
(``evaluate_model``); the sanity report runs on every process (its PGD passes sharded, its other checks
whole). Only process 0 reports (warnings, progress); the caller writes on process 0 only
(``distributed.is_main()``)."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any

import torch

from advgrad import distributed
from advgrad.configs import EvalConfig
from advgrad.evaluate import Evaluation, Progress, evaluate_model
from advgrad.results import provenance
from advgrad.runs._inputs import Warn, open_inputs

CSV_FIELDS = ("attack", "eps", "accuracy", "n", "steps", "restarts", "seconds")


@dataclass(frozen=True)
class EvalReport:
    """The evaluation itself, its JSON ``record`` and its CSV ``rows`` (columns ``CSV_FIELDS``)."""

    evaluation: Evaluation
    record: dict[str, Any]
    rows: list[dict[str, Any]]

    @property
    def seconds(self) -> float:
        return float(self.record["seconds"])


def eval_record(evaluation: Evaluation, *, model: dict[str, Any], dataset: str, n: int, seconds: float,
                provenance: dict[str, Any]) -> dict[str, Any]:
    """The JSON record of ``evaluation`` (of the model ``model``, as its checkpoint describes it, on ``n``
    test images of ``dataset``): minimal ε values are None where no adversarial example was found."""
    record: dict[str, Any] = {
        "model": model, "dataset": dataset, "n": n, "clean_accuracy": evaluation.clean_accuracy,
        "config": evaluation.config.to_dict(), "records": evaluation.records,
        "sanity": [c.to_dict() for c in evaluation.checks],
        "sanity_ok": evaluation.all_ok if evaluation.checks else None,
        "seconds": seconds, "provenance": provenance,
    }
    if evaluation.min_eps is not None:
        record["min_eps"] = {"eps_max": evaluation.min_eps_max, "precision": evaluation.config.precision,
                             "values": [None if math.isinf(v) else v for v in evaluation.min_eps.tolist()]}
    return record


def csv_rows(evaluation: Evaluation) -> list[dict[str, Any]]:
    """One row per accuracy record, with the columns ``CSV_FIELDS``."""
    return [{k: r.get(k) for k in CSV_FIELDS} for r in evaluation.records]


def run_eval(model_path: str | os.PathLike[str], config: EvalConfig, *, n: int | None = None, sanity: bool = True,
             device: str = "auto", data_root: str | os.PathLike[str] | None = None, on_warning: Warn | None = None,
             progress: Progress | None = None) -> EvalReport:
    """Evaluate the checkpoint at ``model_path`` on its first ``n`` test images (all with None) under
    ``config`` (its bounds replaced by the checkpoint's), with the sanity report unless ``sanity`` is False.
    The global RNG is seeded with ``config.seed``. Under torchrun: see the module docstring."""
    distributed.setup(device)  # under torchrun: join the group (else: nothing)
    if not distributed.is_main():  # process 0 alone reports
        on_warning = progress = None
    inputs = open_inputs(model_path, data_root=data_root, device=device, on_warning=on_warning)
    config = config.but(bounds=inputs.bounds)
    x, y = inputs.test_split(n)
    torch.manual_seed(config.seed)
    start = time.perf_counter()
    evaluation = evaluate_model(inputs.model, x.to(inputs.device), y.to(inputs.device), config, sanity=sanity,
                                progress=progress)
    seconds = time.perf_counter() - start
    record = eval_record(evaluation, model=inputs.checkpoint.meta["model"], dataset=inputs.data.name, n=len(y),
                         seconds=seconds, provenance=provenance(seed=config.seed, model_path=model_path))
    return EvalReport(evaluation, record, csv_rows(evaluation))
