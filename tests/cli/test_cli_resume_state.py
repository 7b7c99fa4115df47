"""`train --resume` checks the training state saved in OUT before continuing from it. Each damage below is
one line with exit 2 and no file changes; without the check, nine of them ended in an internal error
inside fit (as the fuzz test found) and three silently trained from a wrong position. The undamaged
state still resumes."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers.cli import assert_usage_error, invoke, run, stopped_run, tree

CLEAN = ["--model", "logreg", "--epochs", "2", "--n-train", "100", "--batch-size", "32", "--quiet"]
ADV = [*CLEAN, "--adv", "fgsm", "--eps", "0.1", "--probe-n", "8", "--probe-steps", "1"]


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Two runs of 2 epochs stopped after the first: a clean one and an adversarial one (which also
    saves its attack's generator and its probe's state)."""
    folder = tmp_path_factory.mktemp("stopped")
    for name, args in (("clean", CLEAN), ("adv", ADV)):
        result = stopped_run([*args, "--out", str(folder / f"{name}.pt")])
        assert result.exit_code == 130, result.output
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def damaged(raw: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    payload = torch.load(io.BytesIO(raw), weights_only=True)
    edit(payload)
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def _pop(d: dict[str, Any], key: str) -> None:
    d.pop(key)


DAMAGE: dict[str, tuple[str, Callable[[dict[str, Any]], None], str]] = {
    "not-a-dict": ("clean", lambda p: p.update(resume=[1]), "the training state is not a dict"),
    "batch-out-of-range": ("clean", lambda p: p["resume"].update(batch=99), "position epoch 1, batch 99"),
    "step": ("clean", lambda p: p["resume"].update(step=7), "step 7 is not epoch × 4 + batch = 4"),
    "history-record": ("clean", lambda p: _pop(p["resume"]["history"][0], "train_loss"), "the history must hold 1"),
    "history-type": ("clean", lambda p: p["resume"].update(history=None), "the history must hold 1"),
    "partial": ("clean", lambda p: p["resume"].update(batch=1, step=5, partial={"seen": "x"}), "the partial epoch"),
    "rng-dtype": ("clean", lambda p: p["resume"].update(shuffle_rng=p["resume"]["shuffle_rng"].float()),
                  "shuffle_rng is not a random generator state"),
    "rng-size": ("clean", lambda p: p["resume"].update(torch_rng=p["resume"]["torch_rng"][:10]),
                 "torch_rng is not a random generator state"),
    "optimizer-shape": ("clean", lambda p: p["resume"]["optimizer"]["state"][0].update(exp_avg=torch.zeros(3)),
                        "optimizer state 'exp_avg' of parameter 0 does not fit it"),
    "optimizer-index": ("clean", lambda p: p["resume"]["optimizer"]["state"].update({9: {}}),
                        "the optimizer state names parameter 9"),
    "objective": ("adv", lambda p: p["resume"].update(objective={"generator": "x"}), "the attack's or the probe's"),
    "guard": ("adv", lambda p: _pop(p["guard"], "best"), "the attack's or the probe's"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_damaged_training_state_is_refused(stopped: dict[str, bytes], tmp_path: Path, case: str) -> None:
    run_name, edit, message = DAMAGE[case]
    out = tmp_path / "m.pt"
    out.write_bytes(damaged(stopped[f"{run_name}.pt"], edit))
    before = tree(tmp_path)
    result = invoke("train", *(ADV if run_name == "adv" else CLEAN), "--out", str(out), "--resume")
    assert_usage_error(result.exit_code, result.stderr, f"--resume: {out} holds a damaged training state", message)
    assert tree(tmp_path) == before


@pytest.mark.parametrize("run_name", ["clean", "adv"])
def test_the_undamaged_state_resumes(stopped: dict[str, bytes], tmp_path: Path, run_name: str) -> None:
    out = tmp_path / "m.pt"
    out.write_bytes(stopped[f"{run_name}.pt"])
    result = invoke("train", *(ADV if run_name == "adv" else CLEAN), "--out", str(out), "--resume")
    assert result.exit_code == 0, result.output
    assert torch.load(out, weights_only=True)["resume"]["epoch"] == 2


@pytest.mark.slow
def test_real_process_refuses_a_damaged_state(stopped: dict[str, bytes], tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    out.write_bytes(damaged(stopped["clean.pt"], DAMAGE["optimizer-shape"][1]))
    before = tree(tmp_path)
    proc = run(["train", *CLEAN, "--out", str(out), "--resume"])
    assert_usage_error(proc.returncode, proc.stderr, "holds a damaged training state", "does not fit it")
    assert tree(tmp_path) == before
