"""Past one process: the same program (tests/helpers/distworker.py) run alone — the library as it always ran, no
torchrun, no process group — and under torchrun with gloo as 2 and 3 processes on this CPU.

What must hold, and why it can be tested to the bit here:
- Evaluation: every block of 256 test points is attacked with the same inputs, shapes and generator
  whatever the number of processes, in processes pinned to one thread (same kernels); per-sample masks,
  minimal ε, adversarial examples and the JSON numbers are therefore identical, by construction.
- Training: DDP adds the processes' gradients in another order than one process's batch mean, so the
  weights agree to rounding only (tolerances below, with the measured differences); every process holds
  the same weights (one all-reduced gradient), and a resumed run repeats the uninterrupted one exactly.

Process start-up (torch's import on every process) is most of the cost: the three world sizes run at once,
each process on one thread (what it computes does not depend on what runs beside it), and the Ctrl-C test
is the last task of the 2-process launch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "helpers" / "distworker.py"
pytestmark = pytest.mark.heavy  # several processes each: run by CI and make test-all, not make test
TASKS = "eval,cascade,train,bn,adversarial,bad-batch"


def launch(out: Path, checkpoint: Path, worlds: tuple[int, ...]) -> dict[int, str]:
    """The program for every world size at once (their processes share the CPU, each on one thread: what a
    process computes does not depend on what runs beside it). World 1: a plain process (WORLD_SIZE unset).
    Else torchrun --standalone (a free port of its own). World 2 ends with the ctrl-c task: once its
    training is under way (process 0 wrote a checkpoint), the test sends torchrun SIGINT, as Ctrl-C in a
    terminal would. Returns each launch's stdout and stderr."""
    import signal
    import time

    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    procs = {}
    for world in worlds:
        prefix = [sys.executable] if world == 1 else \
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(world)]
        tasks = TASKS + (",ctrl-c" if world == 2 else "")
        log = out / f"log{world}.txt"  # a file, not a pipe: a full pipe would stall the workers
        with log.open("w") as sink:
            procs[world] = subprocess.Popen([*prefix, str(WORKER), str(out), str(checkpoint), tasks], env=env,
                                            cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, text=True)
    if 2 in procs:
        state_file = out / "w2" / "ctrl-c-state.pt"
        deadline = time.monotonic() + 600
        while not state_file.exists():  # an epoch of the ctrl-c task is done: training is under way
            assert procs[2].poll() is None, (out / "log2.txt").read_text()[-3000:]
            assert time.monotonic() < deadline, "training too slow to test"
            time.sleep(0.05)
        procs[2].send_signal(signal.SIGINT)
    output = {}
    for world, proc in procs.items():
        proc.wait(timeout=600)
        output[world] = (out / f"log{world}.txt").read_text()
        # torchrun itself leaves by its SignalException after passing SIGINT on: world 2 exits non-zero.
        assert world == 2 or proc.returncode == 0, output[world][-6000:]
    return output


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, trained_small_path: Path) -> Any:
    """``runs(world)``: the folder of that world's results (all three launched together on first use);
    ``runs.output[world]``: that launch's stdout and stderr."""
    root = tmp_path_factory.mktemp("distributed")
    output: dict[int, str] = {}

    def get(world: int) -> Path:
        if not output:
            output.update(launch(root, trained_small_path, (1, 2, 3)))
        return root / f"w{world}"

    get.output = output  # type: ignore[attr-defined]
    return get


def load(path: Path) -> Any:
    return torch.load(path, weights_only=True)


WORLDS = [2, pytest.param(3, marks=pytest.mark.slow)]


@pytest.mark.slow
@pytest.mark.isa
@pytest.mark.parametrize("world", WORLDS)
def test_sharded_evaluation_is_bit_identical_to_one_process(runs: Any, world: int) -> None:
    one, many = runs(1), runs(world)
    # The JSON numbers: clean accuracy, every record, the sanity report, the minimal ε of every point.
    assert (many / "eval.json").read_text() == (one / "eval.json").read_text()
    a, b = load(one / "eval.pt"), load(many / "eval.pt")
    assert a["masks"].keys() == b["masks"].keys()
    for key, mask in a["masks"].items():
        assert torch.equal(mask, b["masks"][key]), key
    assert torch.equal(a["min_eps"], b["min_eps"])
    assert torch.equal(a["success"], b["success"]) and torch.equal(a["x_adv"], b["x_adv"])
    # Not a vacuous comparison: the attacks break some points and not others, in every block.
    for key in ("pgd@0.1", "fgsm@0.1"):
        for block in a["masks"][key][:512].view(2, 256):
            assert 0 < int(block.sum()) < 256, key
    assert 0 < int(a["success"].sum()) < len(a["success"])
    record = json.loads((one / "eval.json").read_text())
    assert len(record["sanity"]) >= 7 and {c["status"] for c in record["sanity"]} == {"ok"}
    assert sum(v is None for v in record["min_eps"]) < len(record["min_eps"])


@pytest.mark.slow
@pytest.mark.isa
@pytest.mark.parametrize("world", WORLDS)
def test_sharded_autoattack_cascade_is_the_one_process_record(runs: Any, world: int) -> None:
    """An ensemble's cascade record (accuracy after each member) is assembled from every process's blocks:
    the same JSON as one process, and the same per-sample masks (seconds aside: timings)."""
    one, many = runs(1), runs(world)
    assert (many / "cascade.json").read_text() == (one / "cascade.json").read_text()
    a, b = load(one / "cascade.pt"), load(many / "cascade.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    records = json.loads((one / "cascade.json").read_text())
    cascades = [r["cascade"] for r in records if r["attack"] == "autoattack" and r["eps"] > 0]
    assert len(cascades) == 1 and list(cascades[0]) == ["apgd-ce", "square"]
    assert all("seconds_per_attack" in r["keys"] for r in records if r["attack"] == "autoattack" and r["eps"] > 0)
    # Not vacuous: the ensemble breaks points, so the breakdown has something to gather.
    clean = next(r["accuracy"] for r in records if r["attack"] == "fgsm" and r["eps"] == 0.0)
    assert all(c["square"] <= c["apgd-ce"] < clean for c in cascades)


def weights_of(path: Path) -> dict[str, torch.Tensor]:
    return load(path)["weights"]


def comparable(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Epoch records without their wall-clock seconds."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


@pytest.mark.slow
@pytest.mark.parametrize("world", WORLDS)
@pytest.mark.parametrize("optimizer,atol", [("sgd", 1e-6), ("adam", 1e-4)])
def test_ddp_epoch_gives_the_one_process_weights_to_rounding(runs: Any, world: int, optimizer: str,
                                                             atol: float) -> None:
    """One epoch of cnn-small on 241 images, global batch 48: 5 full batches and one of a single image
    (empty shares on processes 1 and 2, which join the gradient average with weight 0).

    SGD's step lr·g is linear in the gradient: the all-reduce's other summation order moves g by ~1e-7
    relatively, the weights by ≲ lr·1e-7 per step. Measured: 1.5e-8 (half an ulp of the largest weights,
    0.31) with 2 and 3 processes; 1e-6 leaves a margin of ×70. A wrong weight for a short share (the last
    batch) would move the weights by ~lr·|g| ≈ 1e-3. Adam divides by √v: where a gradient coordinate nearly
    cancels, its relative rounding error is large and the normalised step magnifies it. Measured: 5.3e-7
    (2 processes) and 1.35e-6 (3), all in the fully connected 6.weight; 1e-4 is 5 % of one step at
    lr 2e-3."""
    one = weights_of(runs(1) / f"{optimizer}-rank0.pt")
    ranks = [weights_of(runs(world) / f"{optimizer}-rank{r}.pt") for r in range(world)]
    for name, w in one.items():
        torch.testing.assert_close(ranks[0][name], w, rtol=0, atol=atol, msg=name)
        assert all(torch.equal(other[name], ranks[0][name]) for other in ranks[1:]), name  # one gradient
    history = [comparable(load(runs(world) / f"{optimizer}-rank{r}.pt")["history"]) for r in range(world)]
    assert all(h == history[0] for h in history[1:])  # the metrics are added up over the processes
    reference = load(runs(1) / f"{optimizer}-rank0.pt")["history"][0]
    record = history[0][0]
    assert record["train_loss"] == pytest.approx(reference["train_loss"], rel=1e-5)
    assert abs(record["test_accuracy"] - reference["test_accuracy"]) <= 2 / 300
    assert record["lr"] == reference["lr"]


@pytest.mark.slow
@pytest.mark.parametrize("world", WORLDS)
def test_only_process_0_writes_checkpoints(runs: Any, world: int) -> None:
    folder = runs(world)
    assert (folder / "checkpoint-rank0.pt").is_file()  # on_checkpoint was passed on every process
    assert not any((folder / f"checkpoint-rank{r}.pt").exists() for r in range(1, world))
    state = load(folder / "checkpoint-rank0.pt")
    assert state["world_size"] == world and state["epoch"] == 1 and state["objective_ranks"] is None


@pytest.mark.slow
def test_a_batch_the_processes_cannot_share_is_one_line_on_every_process(runs: Any) -> None:
    for world in (1, 2):
        assert (runs(world) / "bad-batch-rank0.txt").read_text() == "no error"
    messages = [(runs(3) / f"bad-batch-rank{r}.txt").read_text() for r in range(3)]
    assert messages == [messages[0]] * 3 and "\n" not in messages[0]
    assert messages[0].startswith("batch size 64 is not divisible by 3 processes: use a multiple of 3")


@pytest.mark.slow
@pytest.mark.isa
@pytest.mark.parametrize("world", [1, *WORLDS])
def test_adversarial_ddp_probe_and_resume(runs: Any, world: int) -> None:
    """TRADES (random starts per process, two forward passes through DDP per step) with the PGD probe on
    every process; a SIGINT on the last process stops all of them at the same batch, process 0 saves,
    and the resumed run ends with the uninterrupted run's weights and records, bit for bit."""
    folder = runs(world)
    straight = [load(folder / f"adv-rank{r}.pt") for r in range(world)]
    resumed = [load(folder / f"adv-resumed-rank{r}.pt") for r in range(world)]
    for run in straight[1:] + resumed:
        assert all(torch.equal(run["weights"][k], straight[0]["weights"][k]) for k in straight[0]["weights"])
    assert {r["stopped_at"] for r in resumed} == {6}  # signalled during step 6: stopped after it, everywhere
    for run in straight[1:] + resumed:
        assert comparable(run["history"]) == comparable(straight[0]["history"])
    assert all("robust_accuracy" in r and "probe_clean_accuracy" in r for r in straight[0]["history"])


@pytest.mark.slow
@pytest.mark.parametrize("world", WORLDS)
def test_batchnorm_statistics_are_process_0s_everywhere(runs: Any, world: int) -> None:
    ranks = [load(runs(world) / f"bn-rank{r}.pt") for r in range(world)]
    for other in ranks[1:]:
        assert all(torch.equal(a, b) for a, b in zip(ranks[0]["buffers"], other["buffers"]))
        assert comparable(other["history"]) == comparable(ranks[0]["history"])
    # Each process normalised its own share of 16 or 24 images: statistics, not bits, like one process's.
    single = load(runs(1) / "bn-rank0.pt")["buffers"]
    torch.testing.assert_close(ranks[0]["buffers"][0], single[0], rtol=0, atol=0.05)


@pytest.mark.slow
def test_ctrl_c_under_torchrun_stops_every_process_at_one_batch_and_saves(runs: Any) -> None:
    """Ctrl-C reaches torchrun, which passes SIGINT on to every process (each its own session); they
    agree at the next batch boundary, process 0 saves that point, all leave by KeyboardInterrupt. (The
    last task of the 2-process launch: ``launch`` sends SIGINT once its first epoch is saved.)"""
    folder = runs(2)
    steps = [int((folder / f"ctrl-c-rank{r}.txt").read_text()) for r in range(2)]
    state = load(folder / "ctrl-c-state.pt")
    assert steps[0] == steps[1] == state["step"], (steps, state, runs.output[2][-2000:])
    assert state["epoch"] >= 1  # the signal came after the first epoch's checkpoint
    assert state["step"] == 10 * state["epoch"] + state["batch"]  # 480 images: 10 batches of 48 per epoch
