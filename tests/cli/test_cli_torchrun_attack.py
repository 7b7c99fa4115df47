"""``advgrad attack`` as one plain process and under ``torchrun --standalone --nproc_per_node 2`` and ``3``
(gloo, this CPU): process 0 alone prints and writes, and the JSON record, the printed table and the saved
adversarial examples are the one-process ones bit for bit (wall-clock seconds and provenance aside).

Why bits: the images are cut into blocks of 256 (``evaluate.robust.BLOCK``); each block is attacked with the
same inputs, batch shapes and generator — seeded by (seed, block) — whatever the number of processes, in
processes pinned to one thread (OMP_NUM_THREADS=1: the same kernels), and the results travel between the
processes as raw bytes. 600 images are three blocks (256 + 256 + 88): with 2 processes process 0 attacks
blocks 0 and 2, with 3 each attacks one; 300 images (256 + 44) leave the third process without a block.

The commands run through tests/helpers/clirun.py (the CLI's main, several commands per launch), the launches at once:
process start-up (torch's import on every process) is most of what these tests cost.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.cli import ENV, run_together
from helpers.clirun import sections

import advgrad
from advgrad.data.builtin import Dataset
from advgrad.models.checkpoint import save_checkpoint
from advgrad.models.zoo import build_for

PGD = ["attack", "--method", "pgd", "--eps", "0.1", "--steps", "4", "--restarts", "2", "--n-test", "600",
       "--block", "100", "--device", "cpu", "--seed", "4"]
AUTOATTACK = ["attack", "--method", "autoattack", "--eps", "0.1", "--n-test", "300", "--block", "128",
              "--device", "cpu", "--seed", "1"]


CLIRUN = str(Path(__file__).resolve().parents[1] / "helpers" / "clirun.py")
pytestmark = pytest.mark.heavy  # several processes each: run by CI and make test-all, not make test


def launches(jobs: list[tuple[list[str], Path, int]]) -> list[subprocess.CompletedProcess[str]]:
    """Each (ARGS, cwd, world), all at once (``run_together``): ``tests/helpers/clirun.py ARGS`` (several commands,
    AutoAttack made cheap) as one plain process for world 1 (no torchrun), else under ``torchrun --standalone
    --nproc_per_node WORLD`` (a free port of its own)."""
    env = {k: v for k, v in ENV.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]
    prefix = {1: [sys.executable], 2: [*torchrun, "2"], 3: [*torchrun, "3"]}
    return run_together([([*prefix[world], CLIRUN, *args], cwd, env) for args, cwd, world in jobs])


def timeless(record: dict[str, Any]) -> dict[str, Any]:
    """The record without wall-clock fields and provenance (host, time, file hashes): what must be equal."""
    return {k: v for k, v in record.items() if k not in ("seconds", "images_per_second", "provenance")}


def table(stdout: str) -> list[str]:
    """The printed table without its time row and the "wrote PATH" line (each run has its own folder)."""
    return [ln for ln in stdout.splitlines() if "time" not in ln and not ln.startswith("wrote ")]


@pytest.fixture(scope="module")
def logreg(mnist5k: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A logreg trained one epoch (seeded, ~1 s): right on most test digits, and PGD/AutoAttack at ε = 0.1
    break many of them but not all."""
    model, meta = build_for("logreg", mnist5k, seed=0)
    advgrad.fit(model, mnist5k, advgrad.TrainConfig(epochs=1, batch_size=50, lr=3e-3, device="cpu", seed=0))
    path = tmp_path_factory.mktemp("model") / "m.pt"
    save_checkpoint(path, model.eval(), {"model": meta, "dataset": mnist5k.meta()})
    return path


@pytest.fixture(scope="module")
def pgd_runs(logreg: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[Path, list[str]]]:
    """PGD-4×2 with random starts on 600 digits, examples saved, by 1, 2 and 3 processes; with 1 and 3, in
    the same launch, the (cheap) AutoAttack on 300 digits, its record in ./aa/: (folder, each command's
    stdout)."""
    folders = {world: tmp_path_factory.mktemp(f"pgd{world}") for world in (1, 2, 3)}
    jobs = []
    for world, cwd in folders.items():
        args = ["--cheap-autoattack", *PGD, "--model", str(logreg), "--out", str(cwd / "a.json"), "--save-examples",
                str(cwd / "ex.npz")]
        if world != 2:
            args += ["--then", *AUTOATTACK, "--model", str(logreg), "--out", str(cwd / "aa" / "aa.json")]
        jobs.append((args, cwd, world))
    out = {}
    for (world, cwd), proc in zip(folders.items(), launches(jobs)):
        assert proc.returncode == 0, (world, proc.stdout[-2000:], proc.stderr[-3000:])
        out[world] = (cwd, sections(proc.stdout))
        assert len(out[world][1]) == (1 if world == 2 else 2), proc.stdout
    return out


@pytest.mark.slow
@pytest.mark.isa
@pytest.mark.parametrize("world", [2, 3])
def test_sharded_attack_writes_the_one_process_record_and_examples_bit_for_bit(pgd_runs: dict[int, Any],
                                                                              world: int) -> None:
    (one, (out1, *_)), (many, (out_many, *_)) = pgd_runs[1], pgd_runs[world]
    files = ["a.json", "aa", "ex.npz"] if world == 3 else ["a.json", "ex.npz"]  # aa/: the AutoAttack test's
    assert sorted(p.name for p in many.iterdir()) == files and sorted(p.name for p in one.iterdir()) == \
        ["a.json", "aa", "ex.npz"]
    r1, rn = json.loads((one / "a.json").read_text()), json.loads((many / "a.json").read_text())
    assert timeless(rn) == timeless(r1)
    with np.load(one / "ex.npz") as a, np.load(many / "ex.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            if key != "meta":  # its provenance carries the time
                assert a[key].dtype == b[key].dtype and a[key].tobytes() == b[key].tobytes(), key
        x, x_adv = a["x"], a["x_adv"]
    # Process 0 alone prints: the one-process table, line for line, the time line aside.
    assert out_many.count("wrote ") == 1
    assert table(out_many) == table(out1)
    # Not vacuous: all 600 points moved (random starts), within ε, and PGD broke some points, not all.
    assert r1["n"] == 600 and len(x_adv) == 600
    assert bool((np.abs(x_adv - x).reshape(600, -1).max(axis=1) > 0).all()) and r1["max_linf"] <= 0.1 + 1e-6
    assert 0 < r1["adversarial_accuracy"] < r1["clean_accuracy"]


@pytest.mark.slow
def test_sharded_autoattack_gathers_the_cascade(pgd_runs: dict[int, Any]) -> None:
    """300 digits are two blocks: with 3 processes the third attacks none and must still write nothing, while
    process 0's record holds the cascade of both blocks, the one-process record exactly. The cascade is the
    standard one's four members made cheap (tests/helpers/clirun.py --cheap-autoattack, the same program at both
    world sizes): how the record is gathered does not depend on how strong each member is."""
    records, outs = [], []
    for world in (1, 3):
        cwd, (_, stdout) = pgd_runs[world]
        assert [p.name for p in (cwd / "aa").iterdir()] == ["aa.json"] and stdout.count("wrote ") == 1
        records.append(json.loads((cwd / "aa" / "aa.json").read_text()))
        outs.append(table(stdout))
    assert timeless(records[1]) == timeless(records[0]) and outs[1] == outs[0]
    cascade = records[0]["cascade"]
    assert list(cascade) == ["apgd-ce", "apgd-t", "fab-t", "square"]
    after = list(cascade.values())
    assert after == sorted(after, reverse=True) and after[-1] == records[0]["adversarial_accuracy"]
    assert records[0]["clean_accuracy"] > after[0] and after[-1] > 0  # the cascade decides something, not all
