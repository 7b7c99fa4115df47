"""The evaluation of ``advgrad eval``: ``advgrad.evaluate.evaluate_model`` on the first N test images of a
saved model's data set, and its record — the JSON (model, data, config, accuracy records, sanity report,
minimal ε, timing, provenance) and the CSV rows (one per accuracy record).

Under torchrun (``torchrun --nproc_per_node N -m advgrad eval ...``) every process evaluates: the attack
passes share blocks of 256 test points out and every process ends with the one-process record, bit for bit
(``evaluate_model``); the sanity report runs on every process (its PGD passes sharded, its other checks
whole). Only process 0 reports (warnings, progress); the caller writes on process 0 only
(``distributed.is_main()``).

Cost: every accuracy record (and CSV row) carries ``forward`` and ``backward``, the sample-passes of its
attack calls summed over processes (``advgrad.models.counting``; an ensemble's ``passes_per_attack`` per
member; each --min-norm attack's in its summary), and the record's ``passes`` totals every attack pass of
the run: sweep, bisections, --min-norm attacks, the sanity report's PGD passes. Counted by the runner
(``advgrad.attacks.runner``) around the attack calls: the clean predictions' forward passes and the sanity
report's other checks are in none of them; like ``seconds``, they are what this run spent (blocks a
resumed run reads back cost nothing)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from advgrad import distributed
from advgrad.attacks.runner import Status, Store
from advgrad.configs import EvalConfig
from advgrad.data.sources import FolderSource, TensorSource
from advgrad.evaluate import Evaluation, Progress, evaluate_model
from advgrad.evaluate.min_norm import merged as merged_min_norms
from advgrad.models.counting import Passes, spending
from advgrad.models.query import Classifier, QueryModel
from advgrad.records.write import provenance
from advgrad.runs._journal import Journal, data_hash, key_of
from advgrad.runs._sources import Warn, check_attacks, open_sources

CSV_FIELDS = ("attack", "eps", "accuracy", "n", "steps", "restarts", "seconds", "forward", "backward")


@dataclass(frozen=True)
class EvalReport:
    """The evaluation itself, its JSON ``record`` and its CSV ``rows`` (columns ``CSV_FIELDS``); ``journal``:
    the run's state on disk (with ``state``), to delete with ``finish()`` once the record is written."""

    evaluation: Evaluation
    record: dict[str, Any]
    rows: list[dict[str, Any]]
    journal: Journal | None = None

    @property
    def seconds(self) -> float:
        return float(self.record["seconds"])

    def finish(self) -> None:
        """The record is written: the state kept for a resumed run is no longer needed."""
        if self.journal is not None:
            self.journal.close()


def eval_record(evaluation: Evaluation, *, model: dict[str, Any], dataset: str, n: int, seconds: float,
                provenance: dict[str, Any], passes: Passes | None = None) -> dict[str, Any]:
    """The JSON record of ``evaluation`` (of the model ``model``, as its checkpoint describes it, on ``n``
    test images of ``dataset``): minimal ε values are None where no adversarial example was found;
    ``passes``: what all its attack passes spent (see the module docstring)."""
    record: dict[str, Any] = {
        "model": model, "dataset": dataset, "n": n, "clean_accuracy": evaluation.clean_accuracy,
        "config": evaluation.config.to_dict(), "records": evaluation.records,
        "sanity": [c.to_dict() for c in evaluation.checks],
        "sanity_ok": evaluation.all_ok if evaluation.checks else None,
        "seconds": seconds,
        **({"passes": {"forward": passes.forward, "backward": passes.backward}} if passes is not None else {}),
        "provenance": provenance,
    }
    if evaluation.min_eps is not None:
        record["min_eps"] = {"attack": evaluation.config.min_eps_attack, "eps_max": evaluation.min_eps_max,
                             "precision": evaluation.config.precision,
                             "values": [None if math.isinf(v) else v for v in evaluation.min_eps.tolist()]}
    if evaluation.min_norm is not None:
        norms = evaluation.min_norm
        record["min_norm"] = {"norm": norms.norm, "precision": evaluation.config.precision, "attacks": {
            name: {**norms.summary(name), "values": [None if math.isinf(v) else v for v in d.tolist()]}
            for name, d in norms.distances.items()}}
    return record


def csv_rows(evaluation: Evaluation) -> list[dict[str, Any]]:
    """One row per accuracy record, with the columns ``CSV_FIELDS``."""
    return [{k: r.get(k) for k in CSV_FIELDS} for r in evaluation.records]


def _merge(parts: list[Evaluation]) -> Evaluation:
    """One evaluation of the concatenated chunks: per (attack, ε) record the counts add up (accuracy = the
    number of survivors over all n, from each chunk's count round(accuracy·n), exact for n < 2²³) and the
    seconds add; the per-sample minimal ε concatenate; the sanity report is the first chunk's (the record's
    ``sanity_n`` says on how many points it ran)."""
    first = parts[0]
    records = []
    for i, record in enumerate(first.records):
        rows = [p.records[i] for p in parts]
        total = sum(int(r["n"]) for r in rows)
        survivors = sum(round(float(r["accuracy"]) * int(r["n"])) for r in rows)
        merged = {**record, "accuracy": survivors / total, "n": total}
        for key in ("seconds", "forward", "backward"):
            if record.get(key) is not None:
                merged[key] = sum(r[key] for r in rows)
        if "cascade" in record:  # an ensemble's accuracy after each member: counts add up the same way
            merged["cascade"] = {m: sum(round(float(r["cascade"][m]) * int(r["n"])) for r in rows) / total
                                 for m in record["cascade"]}
            merged["seconds_per_attack"] = {m: sum(float(r["seconds_per_attack"][m]) for r in rows)
                                            for m in record["seconds_per_attack"]}
            merged["passes_per_attack"] = {m: {k: sum(r["passes_per_attack"][m][k] for r in rows) for k in p}
                                           for m, p in record["passes_per_attack"].items()}
        records.append(merged)
    sizes = [int(p.records[0]["n"]) for p in parts]  # every sweep record of a chunk carries its size
    clean = sum(round(p.clean_accuracy * k) for p, k in zip(parts, sizes)) / sum(sizes)
    min_eps = None if first.min_eps is None else torch.cat([p.min_eps for p in parts if p.min_eps is not None])
    chunks = [p.min_norm for p in parts if p.min_norm is not None]
    norms = merged_min_norms(chunks) if chunks else None
    return replace(first, clean_accuracy=clean, records=records, min_eps=min_eps, min_norm=norms)


class _Chunk:
    """A folder chunk's view of the run's journal: its passes named after the chunk."""

    def __init__(self, journal: Journal, chunk: int) -> None:
        self.journal, self.chunk = journal, chunk

    def store(self, name: str) -> Store:
        return self.journal.store(f"chunk {self.chunk} {name}")


def data_key(source: TensorSource | FolderSource) -> str:
    """What names the data of a run for its journal: the points' hash, or a folder's files, sizes and times."""
    if isinstance(source, TensorSource):
        return data_hash(*source.tensors())
    files = [(path, label, os.stat(path).st_size, os.stat(path).st_mtime_ns) for path, label in source.samples]
    return key_of(files=files)


def evaluate_source(model: Classifier, source: TensorSource | FolderSource, config: EvalConfig, *,
                    device: torch.device, sanity: bool = True, progress: Progress | None = None,
                    journal: Journal | None = None, on_status: Status | None = None) -> Evaluation:
    """``evaluate_model`` on a data source. A ``TensorSource`` (in memory already) in one call; a folder
    of images one block of ``config.block`` images at a time, so that it is never read whole: the
    chunks' records merged by ``_merge``, the sanity report run on the first chunk alone: its checks attack
    the points again and compare with the sweep's result, which would mean holding the whole folder in
    memory; their statuses do not add up across chunks the way accuracy counts do."""
    if isinstance(source, TensorSource):
        x, y = source.tensors()
        return evaluate_model(model, x.to(device), y.to(device), config, sanity=sanity, progress=progress,
                              journal=journal, status=on_status)
    parts: list[Evaluation] = []
    done = 0
    for x, y in source.batches(config.block):
        chunk = _Chunk(journal, len(parts)) if journal is not None else None
        parts.append(evaluate_model(model, x.to(device), y.to(device), config, sanity=sanity and not parts,
                                    journal=chunk, status=on_status))
        done += len(y)
        if progress is not None:
            progress(done, len(source))
    return _merge(parts)


def run_eval(model_path: str | os.PathLike[str], config: EvalConfig, *, n: int | None = None, sanity: bool = True,
             device: str = "auto", data_root: str | os.PathLike[str] | None = None, on_warning: Warn | None = None,
             progress: Progress | None = None, data: str | os.PathLike[str] | None = None,
             classes: str | Sequence[int] | None = None, state: str | os.PathLike[str] | None = None,
             resume: bool = False, on_status: Status | None = None, **options: Any) -> EvalReport:
    """Evaluate the model ``model_path`` (any model ``open_model`` takes; ``options``: model_args, weights,
    weights_key, mean, std, image_size, grayscale, workers as in ``runs._sources.open_sources``) on the first
    ``n`` images (all with None) of ``data`` (default: the test split of a checkpoint's own data set) under
    ``config`` (its bounds replaced by the model's), with the sanity report unless ``sanity`` is False. The
    global RNG is seeded with ``config.seed``. Under torchrun: see the module docstring.

    ``on_status(text)``: where the run stands (the pass, stage and block, the points still robust).
    ``state``: a folder where every finished block is kept (``advgrad.runs._journal``), so that a killed run
    continues with ``resume=True`` and gives the same record, bit for bit but for its timings; a state of
    another run (options, model or data) is refused. ``EvalReport.finish()`` deletes it."""
    distributed.setup(device)  # under torchrun: join the group (else: nothing)
    if not distributed.is_main():  # process 0 alone reports
        on_warning = progress = on_status = None
    inputs = open_sources(model_path, data=data, data_root=data_root, device=device, n=n, classes=classes,
                          on_warning=on_warning, **options)
    config = config.but(bounds=inputs.bounds)
    check_attacks(inputs.model, [*config.attacks, *config.min_norm, *[config.min_eps_attack][:int(config.min_eps)]])
    if sanity and isinstance(inputs.model, QueryModel):  # its checks take gradients
        sanity = False
        if on_warning is not None:
            on_warning("the sanity report needs the model's gradients: skipped (the model only answers queries)")
    journal = None
    if state is not None:
        key = key_of(command="eval", config=config.to_dict(), sanity=sanity, model=inputs.model_meta,
                     data=data_key(inputs.source))
        journal = Journal.open(state, key, resume=resume)
    torch.manual_seed(config.seed)
    start = time.perf_counter()
    with spending() as tally:
        evaluation = evaluate_source(inputs.model, inputs.source, config, device=inputs.device, sanity=sanity,
                                     progress=progress, journal=journal, on_status=on_status)
    seconds = time.perf_counter() - start
    model_file = model_path if os.path.isfile(model_path) else None
    record = eval_record(evaluation, model=inputs.model_meta, dataset=inputs.dataset_name, n=len(inputs.source),
                         seconds=seconds, provenance=provenance(seed=config.seed, model_path=model_file),
                         passes=tally.passes)
    if evaluation.checks:  # a folder: the report ran on its first chunk alone (evaluate_source)
        whole = not isinstance(inputs.source, FolderSource)
        record["sanity_n"] = len(inputs.source) if whole else min(config.block, len(inputs.source))
    return EvalReport(evaluation, record, csv_rows(evaluation), journal)
