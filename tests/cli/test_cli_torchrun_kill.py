"""``kill -9`` of one process of ``torchrun --standalone --nproc_per_node 2 -m advgrad train``, then the same
command with ``--resume``: torchrun stops the other process and exits non-zero, the checkpoint written after
every epoch survives (process 0 writes a temporary file, then os.replace), and the resumed run completes,
having lost at most the epoch in progress, with the weights of the same command run without interruption
bit for bit.

Why bits: resuming restores what the next epoch depends on — weights, the optimizer's and the scheduler's
states, every RNG state (the seeded shuffle, the global generators) — and runs the same DDP steps with the
same shapes on the same two single-thread processes, so the remaining epochs repeat the uninterrupted ones
exactly (the all-reduce adds the two processes' gradients in one fixed order).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers.cli import ENV

from advgrad.models.checkpoint import load_checkpoint

EPOCHS = 2
pytestmark = pytest.mark.heavy  # several processes each: run by CI and make test-all, not make test
# Two epochs (the kill lands in the second, after the first one's checkpoint) of logreg on 4,000 digits in
# global batches of 32 (16 per process): 125 all-reduced steps an epoch, long enough that the kill lands
# inside the run, short enough for CI.
TRAIN = ["train", "--dataset", "mnist-5k", "--model", "logreg", "--epochs", str(EPOCHS), "--batch-size", "32",
         "--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9", "--schedule", "cosine", "--device", "cpu",
         "--seed", "5"]


def torchrun(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    """The command under torchrun; its stdout and stderr go to files in ``cwd``'s parent (a pipe nobody reads
    yet would stall it), read back by ``finish``."""
    env = {k: v for k, v in ENV.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    with (cwd.parent / f"{cwd.name}.out").open("w") as out, (cwd.parent / f"{cwd.name}.err").open("w") as err:
        return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                                 "2", "-m", "advgrad", *args], cwd=cwd, env=env, stdout=out, stderr=err, text=True)


def finish(proc: subprocess.Popen[str], cwd: Path, timeout: float) -> tuple[str, str]:
    """Wait for ``torchrun(..., cwd)``; its stdout and stderr."""
    proc.wait(timeout=timeout)
    return (cwd.parent / f"{cwd.name}.out").read_text(), (cwd.parent / f"{cwd.name}.err").read_text()


def worker(launcher: int, rank: int) -> int:
    """The pid of torchrun's worker process of ``rank`` (a child of the launcher with RANK=rank)."""
    children = Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split()
    for pid in children:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in env:
            return int(pid)
    raise AssertionError(f"no worker with RANK={rank} among {children}")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds torchrun's workers through /proc (Linux)")
def test_kill_9_of_one_process_then_resume_gives_the_uninterrupted_weights(tmp_path: Path) -> None:
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    straight.mkdir()
    broken.mkdir()
    model = broken / "model.pt"
    # The uninterrupted run beside the broken one: each process on one thread, whatever runs beside it.
    uninterrupted = torchrun([*TRAIN, "--out", str(straight / "model.pt")], cwd=straight)
    proc = torchrun([*TRAIN, "--out", str(model)], cwd=broken)
    deadline = time.monotonic() + 300
    while not model.exists():  # process 0 wrote the first epoch's checkpoint
        assert proc.poll() is None, finish(proc, broken, 10)
        assert time.monotonic() < deadline, "training too slow to test"
        time.sleep(0.01)
    victim = 1  # not the writer: process 0 is left mid-epoch, blocked in an all-reduce, until torchrun stops it
    os.kill(worker(proc.pid, victim), signal.SIGKILL)
    _, err = finish(proc, broken, 120)
    assert proc.returncode != 0, err[-2000:]
    saved = load_checkpoint(model).extra["resume"]
    assert 1 <= saved["epoch"] < EPOCHS and saved["batch"] == 0, saved  # killed after an epoch, before the end
    assert json.loads((broken / "model.json").read_text())["history"][-1]["epoch"] == saved["epoch"]

    resumed = torchrun([*TRAIN, "--out", str(model), "--resume"], cwd=broken)
    out, err = finish(resumed, broken, 300)
    assert resumed.returncode == 0, err[-3000:]
    assert f"resuming from {model}: {saved['epoch']} epochs done" in out + err
    _, err = finish(uninterrupted, straight, 300)
    assert uninterrupted.returncode == 0, err[-3000:]

    a, b = load_checkpoint(straight / "model.pt"), load_checkpoint(model)
    wa, wb = a.model.state_dict(), b.model.state_dict()
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    history = [json.loads((d / "model.json").read_text())["history"] for d in (straight, broken)]
    assert [r["epoch"] for r in history[1]] == list(range(1, EPOCHS + 1))
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in history[1]] == \
        [{k: v for k, v in r.items() if k not in drop} for r in history[0]]
