"""``advgrad train`` and ``advgrad eval`` under ``torchrun --standalone --nproc_per_node 2`` (gloo, this CPU)
against the same commands in one plain process: process 0 alone prints and writes, the files are the ones
one process writes, the evaluation record (of a fixed logreg) is the one-process record bit for bit, the
trained weights agree to rounding, and a global batch the processes cannot share is one ``Error:`` line on every process.

Why bits for eval and not for train: every block of 256 test points is attacked with the same inputs,
shapes and generator whatever the number of processes, on one thread in every process (OMP_NUM_THREADS=1:
the same kernels), so the per-sample results are identical by construction; DDP's all-reduce adds the two
processes' gradients in another order than one process's batch mean, so the weights agree to rounding.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers.cli import ENV, run_together
from helpers.clirun import sections

import advgrad
from advgrad.data.builtin import Dataset
from advgrad.models.checkpoint import save_checkpoint
from advgrad.models.zoo import build_for

TRAIN = ["train", "--dataset", "mnist-5k", "--model", "logreg", "--epochs", "1", "--n-train", "256",
         "--optimizer", "sgd", "--lr", "0.05", "--device", "cpu", "--seed", "3"]
EVAL = ["eval", "--eps", "0,0.1", "--attacks", "fgsm,pgd", "--steps", "3", "--n-test", "300", "--block", "100",
        "--queries", "10", "--device", "cpu", "--seed", "2"]


def timeless(obj: Any) -> Any:
    """The record without wall-clock seconds and provenance (host, time, file hashes): what must be equal."""
    if isinstance(obj, dict):
        return {k: timeless(v) for k, v in obj.items() if k not in ("seconds", "seconds_per_attack", "provenance")}
    if isinstance(obj, list):
        return [timeless(v) for v in obj]
    return obj


CLIRUN = str(Path(__file__).resolve().parents[1] / "helpers" / "clirun.py")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
pytestmark = pytest.mark.heavy  # several processes each: run by CI and make test-all, not make test


@pytest.fixture(scope="module")
def runs(mnist5k: Dataset, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Train, then evaluate a fixed logreg (trained here, seeded), with one process and, under ``torchrun
    --standalone --nproc_per_node 2``, with two: two commands per launch (tests/helpers/clirun.py), the launches at
    once with the launch of the batch two processes cannot share (``run_together``)."""
    one, two, bad = (tmp_path_factory.mktemp(name) for name in ("one", "two", "bad"))
    model, meta = build_for("logreg", mnist5k, seed=0)
    advgrad.fit(model, mnist5k, advgrad.TrainConfig(epochs=1, batch_size=50, lr=3e-3, device="cpu", seed=0))
    evaluated = tmp_path_factory.mktemp("model") / "m.pt"
    save_checkpoint(evaluated, model.eval(), {"model": meta, "dataset": mnist5k.meta()})
    env = {k: v for k, v in ENV.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    jobs = [([*prefix, CLIRUN, *TRAIN, "--batch-size", "64", "--out", str(cwd / "model.pt"), "--then", *EVAL,
              "--model", str(evaluated), "--out", str(cwd / "eval.json")], cwd, env)
            for prefix, cwd in (([sys.executable], one), (TORCHRUN, two))]
    jobs.append(([*TORCHRUN, "-m", "advgrad", *TRAIN, "--batch-size", "33", "--out", str(bad / "model.pt")], bad, env))
    procs = run_together(jobs)
    out: dict[str, Any] = {"one": one, "two": two, "bad": bad, "bad_run": procs[2]}
    for key, proc in (("1", procs[0]), ("2", procs[1])):
        assert proc.returncode == 0, (key, proc.stdout[-2000:], proc.stderr[-3000:])
        out["train" + key], out["eval" + key] = sections(proc.stdout)
    return out


@pytest.mark.slow
def test_process_0_alone_prints_and_writes_the_files_one_process_writes(runs: dict[str, Any]) -> None:
    names = sorted(p.name for p in runs["one"].iterdir())
    assert names == ["eval.csv", "eval.json", "model.json", "model.pt"]
    assert sorted(p.name for p in runs["two"].iterdir()) == names  # no file of process 1's, nothing doubled
    for key, line in (("train2", "wrote "), ("eval2", "wrote ")):
        stdout = runs[key]
        assert stdout.count(line) == 1, stdout  # one table, one summary: process 0's
    assert runs["train2"].count("training logreg on mnist-5k") == 1
    # Process 0's output is the one-process output, line for line, seconds aside.
    def untimed(line: str) -> str:  # a record row (attack, ε, accuracy, seconds, fwd/pt, bwd/pt) less its seconds
        parts = line.split()
        return " ".join(parts[:3] + parts[4:]) if len(parts) == 6 and parts[2].endswith("%") else line
    strip = [untimed(line) for line in runs["eval1"].splitlines()[2:-1]]
    assert [untimed(line) for line in runs["eval2"].splitlines()[2:-1]] == strip


@pytest.mark.slow
@pytest.mark.isa
def test_torchrun_eval_record_is_the_one_process_record(runs: dict[str, Any]) -> None:
    one = json.loads((runs["one"] / "eval.json").read_text())
    two = json.loads((runs["two"] / "eval.json").read_text())
    assert timeless(two) == timeless(one)
    rows = [list(csv.DictReader((runs[k] / "eval.csv").open())) for k in ("one", "two")]
    assert [timeless(r) for r in rows[0]] == [timeless(r) for r in rows[1]]
    # Not vacuous: 300 points are two blocks (256 + 44), one per process, and PGD breaks some, not all.
    pgd = next(r["accuracy"] for r in one["records"] if r["attack"] == "pgd" and r["eps"] == 0.1)
    assert one["n"] == 300 and 0 < pgd < one["clean_accuracy"]


@pytest.mark.slow
def test_torchrun_training_gives_the_one_process_weights_to_rounding(runs: dict[str, Any]) -> None:
    """4 SGD steps on global batches of 64 (32 per process): the all-reduce's summation order moves each
    gradient by ~1e-7 relatively, the weights by ≲ lr·1e-7 per step; 1e-6 is a wide margin, while a wrong
    share or weighting would move them by ~lr·|g| ≈ 1e-3."""
    one = torch.load(runs["one"] / "model.pt", weights_only=True)
    two = torch.load(runs["two"] / "model.pt", weights_only=True)
    w1, w2 = one["state_dict"], two["state_dict"]
    assert w1.keys() == w2.keys()
    for name in w1:
        torch.testing.assert_close(w2[name], w1[name], rtol=0, atol=1e-6, msg=name)
    m1 = json.loads((runs["one"] / "model.json").read_text())
    m2 = json.loads((runs["two"] / "model.json").read_text())
    r1, r2 = m1["history"][0], m2["history"][0]
    assert r2["train_loss"] == pytest.approx(r1["train_loss"], rel=1e-5)
    assert r2["train_accuracy"] == r1["train_accuracy"] and r2["lr"] == r1["lr"]
    assert abs(r2["test_accuracy"] - r1["test_accuracy"]) <= 2 / 1000


@pytest.mark.slow
def test_a_batch_two_processes_cannot_share_is_one_error_line_on_each(runs: dict[str, Any]) -> None:
    proc, tmp_path = runs["bad_run"], runs["bad"]
    assert proc.returncode != 0
    line = "Error: batch size 33 is not divisible by 2 processes: use a multiple of 2"
    assert proc.stderr.count(line) == 2, proc.stderr[-3000:]
    assert not any(tmp_path.iterdir())  # nothing written
