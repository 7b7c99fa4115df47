"""``advgrad eval --resume`` and ``advgrad attack --resume``: a real process killed (SIGKILL) at a block
boundary or in the middle of a block, or stopped with Ctrl-C, continues from its state folder and writes the
uninterrupted run's JSON (but for its timings and creation time), CSV and examples, bit for bit; a state of
other options is refused with one line, exit 2, nothing touched."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.cli import ENV, ROOT, run

pytestmark = [pytest.mark.slow, pytest.mark.heavy]

EVAL = ["eval", "--eps", "0.05,0.1", "--attacks", "fgsm,pgd", "--steps", "5", "--n", "240", "--block", "20",
        "--queries", "10", "--device", "cpu"]
ATTACK = ["attack", "--eps", "0.1", "--method", "pgd", "--steps", "5", "--restarts", "2", "--n", "240", "--block",
          "20", "--device", "cpu"]


def _timeless(record: Any) -> Any:
    """A record without what differs between two runs of one command: wall-clock seconds, creation time, and
    the cost this run paid (sample-passes: blocks read back from the state cost none, as they take no time)."""
    if isinstance(record, dict):
        return {k: _timeless(v) for k, v in record.items()
                if k not in ("seconds", "seconds_per_attack", "images_per_second", "created", "command",
                             "forward", "backward", "passes", "passes_per_attack")}
    if isinstance(record, list):
        return [_timeless(v) for v in record]
    return record


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return [{k: v for k, v in row.items() if k not in ("seconds", "forward", "backward")}
                for row in csv.DictReader(f)]


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "advgrad", *args], cwd=cwd, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _kill_after(proc: subprocess.Popen[str], state: Path, blocks: int, sig: int, extra: float = 0.0) -> None:
    """Wait until ``state`` holds ``blocks`` finished blocks (then ``extra`` seconds more: into the next
    block), and send ``sig``."""
    deadline = time.monotonic() + 240
    while len(list(state.glob("*.pt"))) < blocks:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.02)
    time.sleep(extra)
    proc.send_signal(sig)
    proc.communicate(timeout=120)


@pytest.fixture(scope="module")
def uninterrupted(trained_small_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("whole")
    for args, out in ((EVAL, "e.json"), (ATTACK, "a.json")):
        extra = ["--save-examples", "a.npz"] if args is ATTACK else []
        proc = run([*args, "--model", str(trained_small_path), "--out", out, *extra], cwd=folder)
        assert proc.returncode == 0, proc.stderr
    return folder


@pytest.mark.parametrize("blocks,extra", [(3, 0.0), (7, 0.15)], ids=["at-a-boundary", "mid-block"])
def test_a_killed_eval_resumes_to_the_uninterrupted_record(trained_small_path: Path, uninterrupted: Path,
                                                           tmp_path: Path, blocks: int, extra: float) -> None:
    args = [*EVAL, "--model", str(trained_small_path), "--out", "e.json"]
    _kill_after(_start(args, tmp_path), tmp_path / "e.state", blocks, signal.SIGKILL, extra)
    assert not (tmp_path / "e.json").exists() and (tmp_path / "e.state").is_dir()
    again = run([*args, "--resume"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    whole, resumed = (json.loads((d / "e.json").read_text()) for d in (uninterrupted, tmp_path))
    assert _timeless(resumed) == _timeless(whole)
    assert _rows(tmp_path / "e.csv") == _rows(uninterrupted / "e.csv")
    assert not (tmp_path / "e.state").exists()  # done: the state is deleted


def test_a_killed_attack_resumes_to_the_same_examples(trained_small_path: Path, uninterrupted: Path,
                                                      tmp_path: Path) -> None:
    args = [*ATTACK, "--model", str(trained_small_path), "--out", "a.json", "--save-examples", "a.npz"]
    _kill_after(_start(args, tmp_path), tmp_path / "a.state", 5, signal.SIGKILL, 0.05)
    again = run([*args, "--resume"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    whole, resumed = np.load(uninterrupted / "a.npz"), np.load(tmp_path / "a.npz")
    assert set(whole.files) == set(resumed.files)
    assert all(np.array_equal(whole[k], resumed[k]) for k in whole.files if k != "provenance")
    assert _timeless(json.loads((tmp_path / "a.json").read_text())) == \
        _timeless(json.loads((uninterrupted / "a.json").read_text()))


def test_ctrl_c_keeps_the_state_and_exits_130(trained_small_path: Path, uninterrupted: Path, tmp_path: Path) -> None:
    args = [*EVAL, "--model", str(trained_small_path), "--out", "e.json"]
    proc = _start(args, tmp_path)
    state = tmp_path / "e.state"
    deadline = time.monotonic() + 240
    while len(list(state.glob("*.pt"))) < 2:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert f"the finished blocks are kept in {state.name}" in err or "e.state" in err
    assert state.is_dir() and not (tmp_path / "e.json").exists()
    again = run([*args, "--resume"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert _timeless(json.loads((tmp_path / "e.json").read_text())) == \
        _timeless(json.loads((uninterrupted / "e.json").read_text()))


def test_a_state_of_other_options_is_refused_and_kept(trained_small_path: Path, tmp_path: Path) -> None:
    args = [*EVAL, "--model", str(trained_small_path), "--out", "e.json"]
    _kill_after(_start(args, tmp_path), tmp_path / "e.state", 2, signal.SIGKILL)
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "e.state").iterdir()}
    other = run([*args[:-2], "--seed", "1", "--out", "e.json", "--resume"], cwd=tmp_path)
    assert other.returncode == 2 and other.stderr.count("\n") == 1, other.stderr
    assert "was written by another run" in other.stderr
    fresh = run(args, cwd=tmp_path)  # without --resume: a leftover state is not silently replaced
    assert fresh.returncode == 2 and "add --resume to continue it" in fresh.stderr, fresh.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "e.state").iterdir()} == before
    assert not (tmp_path / "e.json").exists()


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun's processes: Linux")
def test_a_killed_torchrun_eval_resumes_to_the_one_process_record(trained_small_path: Path, uninterrupted: Path,
                                                                  tmp_path: Path) -> None:
    """Two processes share the blocks; killing the whole group mid-run and resuming (again with two) gives
    the one-process record."""
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
                "advgrad"]
    args = [*EVAL, "--model", str(trained_small_path), "--out", "e.json"]
    args[args.index("--n")] = "--n-test"
    env = {**ENV, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([*torchrun, *args], cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    state = tmp_path / "e.state"
    deadline = time.monotonic() + 240
    while len(list(state.glob("*.pt"))) < 4:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    again = subprocess.run([*torchrun, *args, "--resume"], cwd=tmp_path, env=env, text=True, capture_output=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr
    assert _timeless(json.loads((tmp_path / "e.json").read_text()))["records"] == \
        _timeless(json.loads((uninterrupted / "e.json").read_text()))["records"]
