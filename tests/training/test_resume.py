"""Resuming training: Ctrl-C saves exactly where it stopped, kill -9 loses at most the epoch in progress,
and a resumed run ends with bit-identical weights and the same metrics as an uninterrupted one (CPU).

Two levels: ``fit`` in-process (a SIGINT sent from inside a batch), and the real ``advgrad train``
command in a subprocess killed with SIGKILL and with SIGINT.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from advgrad.data.builtin import Dataset
from advgrad.models.zoo import build_for
from advgrad.records.write import sha256_file
from advgrad.training.objectives import AdvConfig, make_objective
from advgrad.training.train import TrainConfig, fit

ROOT = Path(__file__).resolve().parents[2]


def small(data: Dataset, n: int = 256) -> Dataset:
    g = torch.Generator().manual_seed(0)
    i = torch.randperm(len(data.y_train), generator=g)[:n]
    return Dataset(data.name, data.x_train[i], data.y_train[i], data.x_test[:100], data.y_test[:100],
                   data.class_names, data.mean, data.std)


def through_disk(obj: Any) -> Any:
    """What a checkpoint round trip does to a state: torch.save, then torch.load(weights_only=True)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def only_plain(obj: Any) -> bool:
    if isinstance(obj, dict):
        return all(isinstance(k, (str, int)) and only_plain(v) for k, v in obj.items())
    if isinstance(obj, list):
        return all(only_plain(v) for v in obj)
    return obj is None or isinstance(obj, (Tensor, str, int, float, bool))


def train_run(data: Dataset, config: TrainConfig, *, interrupt_at: int | None = None,
              resume: tuple[dict, dict] | None = None) -> tuple[nn.Module, list, dict | None]:
    """Train fgsm-rs; with ``interrupt_at``, send ourselves SIGINT during that (global) batch."""
    model, _ = build_for("cnn-small", data, seed=config.seed)
    objective = make_objective(AdvConfig("fgsm-rs", 0.2), epochs=config.epochs, seed=config.seed)
    calls = {"n": 0}

    def maybe_interrupt(model: nn.Module, x: Tensor, y: Tensor, progress: float) -> tuple[Tensor, Tensor]:
        calls["n"] += 1
        if interrupt_at is not None and calls["n"] == interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)  # arrives mid-batch: must not tear the update
        return objective(model, x, y, progress)

    maybe_interrupt.state_dict = objective.state_dict  # type: ignore[attr-defined]
    maybe_interrupt.load_state_dict = objective.load_state_dict  # type: ignore[attr-defined]
    saved: dict[str, Any] = {}

    def on_checkpoint(state: dict) -> None:
        saved["state"] = through_disk(state)
        saved["weights"] = through_disk({k: v.clone() for k, v in model.state_dict().items()})

    if resume is not None:
        model.load_state_dict(resume[1])
    try:
        history = fit(model, data, config, objective=maybe_interrupt, on_checkpoint=on_checkpoint,
                      resume=resume[0] if resume else None)
    except KeyboardInterrupt:
        return model, [], saved
    return model, history.epochs, saved


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def comparable(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


@pytest.mark.slow
@pytest.mark.parametrize("interrupt_at", [3, 8, 9], ids=["mid-epoch-1", "last-batch-of-epoch-1", "mid-epoch-2"])
def test_ctrl_c_then_resume_is_bit_identical(mnist5k: Dataset, interrupt_at: int) -> None:
    data = small(mnist5k)  # 256 images, batch 32: 8 batches per epoch
    config = TrainConfig(epochs=3, batch_size=32, lr=3e-3, device="cpu", seed=4)
    reference, ref_history, _ = train_run(data, config)
    stopped, partial_history, saved = train_run(data, config, interrupt_at=interrupt_at)
    assert partial_history == [] and saved and only_plain(saved["state"])
    state = saved["state"]
    assert state["step"] == interrupt_at  # the interrupted batch was finished, nothing after it
    assert (state["epoch"], state["batch"]) == divmod(interrupt_at, 8)
    resumed, history, _ = train_run(data, config, resume=(state, saved["weights"]))
    assert same_weights(resumed, reference)
    assert comparable(history) == comparable(ref_history)


def test_fit_without_checkpoint_callback_keeps_default_ctrl_c(mnist5k: Dataset) -> None:
    data = small(mnist5k, 64)
    model, _ = build_for("logreg", data, seed=0)

    def objective(model: nn.Module, x: Tensor, y: Tensor, progress: float) -> tuple[Tensor, Tensor]:
        os.kill(os.getpid(), signal.SIGINT)
        logits = model(x)
        return torch.nn.functional.cross_entropy(logits, y), logits

    with pytest.raises(KeyboardInterrupt):
        fit(model, data, TrainConfig(epochs=1, batch_size=32, device="cpu"), objective=objective)


# --- the real command in a subprocess ----------------------------------------------------------------

ARGS = ["--model", "cnn-small", "--n-train", "480", "--epochs", "3", "--batch-size", "32", "--lr", "3e-3",
        "--device", "cpu", "--seed", "2", "--adv", "fgsm-rs", "--eps", "0.3", "--probe-n", "64",
        "--probe-steps", "3", "--quiet"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "advgrad", "train", *ARGS, "--out", str(out), *extra]


def epochs_done(metrics: Path) -> int:
    try:
        return len(json.loads(metrics.read_text())["history"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


def start_and_stop(out: Path, sig: int, after_epochs: int, delay: float) -> subprocess.Popen:
    """Run the command; once ``after_epochs`` epochs are on disk, freeze it (SIGSTOP), send ``sig``, let it
    go on (SIGCONT). Frozen, the run cannot finish its remaining epochs between the poll and the signal, so
    the signal lands inside a later epoch however fast the machine (the 5 ms poll is all it can run on)."""
    proc = subprocess.Popen(command(out), env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 240
    while epochs_done(out.with_suffix(".json")) < after_epochs:
        if proc.poll() is not None:
            pytest.fail(f"training ended before it could be interrupted: {proc.communicate()}")
        assert time.monotonic() < deadline, "training too slow to test"
        time.sleep(0.005)
    proc.send_signal(signal.SIGSTOP)
    assert epochs_done(out.with_suffix(".json")) < 3, "the run finished before it could be interrupted"
    time.sleep(delay)
    proc.send_signal(sig)
    proc.send_signal(signal.SIGCONT)
    proc.wait(timeout=120)
    return proc


def weights(path: Path) -> dict[str, Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "m.pt"
    subprocess.run(command(out), env=ENV, cwd=ROOT, check=True, capture_output=True, timeout=300)
    return out


def assert_same_run(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    ha = json.loads(a.with_suffix(".json").read_text())
    hb = json.loads(b.with_suffix(".json").read_text())
    assert comparable(ha["history"]) == comparable(hb["history"]) and hb["complete"] is True
    assert ha["best_epoch"] == hb["best_epoch"]
    assert all(torch.equal(x, y) for x, y in zip(weights(a.with_name("m.best.pt")).values(),
                                                  weights(b.with_name("m.best.pt")).values()))


@pytest.mark.slow
@pytest.mark.heavy
def test_kill_9_then_resume_matches_an_uninterrupted_run(uninterrupted: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    proc = start_and_stop(out, signal.SIGKILL, after_epochs=1, delay=0.3)
    assert proc.returncode == -signal.SIGKILL
    # At most the epoch in progress is lost: the checkpoint holds a whole number of epochs ≥ 1.
    state = torch.load(out, weights_only=True)["resume"]
    assert state["epoch"] >= 1 and state["batch"] == 0
    # A kill -9 in the middle of a write can leave that write's temporary file (nothing runs to remove it),
    # never a half-written m.pt (loaded above); the next write of the same file sweeps such leftovers.
    done = subprocess.run(command(out, "--resume"), env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not list(tmp_path.glob(".*.tmp"))
    assert_same_run(uninterrupted, out)


@pytest.mark.slow
@pytest.mark.heavy
def test_ctrl_c_saves_then_resume_matches(uninterrupted: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    proc = start_and_stop(out, signal.SIGINT, after_epochs=1, delay=0.2)
    stderr = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 130, stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    state = torch.load(out, weights_only=True)["resume"]
    assert state["epoch"] >= 1
    done = subprocess.run(command(out, "--resume"), env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert_same_run(uninterrupted, out)


@pytest.mark.slow
def test_resume_with_another_configuration_exits_2_and_touches_nothing(uninterrupted: Path,
                                                                      tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    for suffix in (".pt", ".json", ".best.pt"):
        (tmp_path / f"m{suffix}").write_bytes(uninterrupted.with_name(f"m{suffix}").read_bytes())
    before = {p.name: sha256_file(p) for p in tmp_path.iterdir()}
    cmd = command(out, "--resume")
    cmd[cmd.index("--eps") + 1] = "0.2"
    res = subprocess.run(cmd, env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "different configuration" in lines[0] and "eps" in lines[0]
    assert {p.name: sha256_file(p) for p in tmp_path.iterdir()} == before
    # A finished run resumed with the same options has nothing left to do and changes nothing.
    res = subprocess.run(command(out, "--resume"), env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "nothing to do" in res.stdout
    assert {p.name: sha256_file(p) for p in tmp_path.iterdir()} == before


@pytest.mark.slow
def test_checkpoint_state_is_plain_data(uninterrupted: Path) -> None:
    payload = torch.load(uninterrupted, weights_only=True)
    assert only_plain(payload)
    assert {"optimizer", "shuffle_rng", "torch_rng", "objective", "history", "step"} <= set(payload["resume"])


@pytest.mark.slow
def test_resume_of_a_finished_run_catches_up_a_lagging_metrics_file(uninterrupted: Path, tmp_path: Path) -> None:
    """kill -9 between writing OUT and its JSON at the last epoch: --resume rewrites the JSON only."""
    out = tmp_path / "m.pt"
    out.write_bytes(uninterrupted.read_bytes())
    record = json.loads(uninterrupted.with_suffix(".json").read_text())
    record["history"] = record["history"][:-1]
    out.with_suffix(".json").write_text(json.dumps(record))
    res = subprocess.run(command(out, "--resume"), env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    fixed = json.loads(out.with_suffix(".json").read_text())
    reference = json.loads(uninterrupted.with_suffix(".json").read_text())
    assert comparable(fixed["history"]) == comparable(reference["history"])
    assert fixed["complete"] is True and sha256_file(out) == sha256_file(uninterrupted)
