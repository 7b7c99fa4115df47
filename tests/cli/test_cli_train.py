"""`advgrad train` and `advgrad info` through click's CliRunner and through a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from advgrad.cli import main
from advgrad.models.checkpoint import load_checkpoint

QUICK = ["--model", "logreg", "--epochs", "1", "--n-train", "200", "--schedule", "constant", "--lr", "0.01", "--quiet"]


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args))


def test_train_writes_checkpoint_and_metrics(tmp_path: Path) -> None:
    out = tmp_path / "runs" / "m.pt"
    result = invoke("train", *QUICK, "--out", str(out))
    assert result.exit_code == 0, result.output
    ckpt = load_checkpoint(out)
    record = json.loads(out.with_suffix(".json").read_text())
    assert ckpt.meta["model"]["name"] == "logreg" and ckpt.meta["n_train"] == 200
    assert [e["epoch"] for e in record["history"]] == [1]
    assert record["final"]["test_accuracy"] == ckpt.meta["metrics"]["test_accuracy"] > 0.5
    assert record["provenance"]["model_sha256"] and "train" in record["provenance"]["command"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.json", "m.pt"]


def test_train_prints_a_table(tmp_path: Path) -> None:
    result = invoke("train", "--model", "logreg", "--epochs", "2", "--n-train", "100", "--out", str(tmp_path / "m.pt"))
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[1].split() == ["epoch", "loss", "train", "acc", "test", "acc", "seconds"]
    assert lines[2].split()[0] == "1" and lines[3].split()[0] == "2"


def test_info_describes_a_checkpoint(trained_small_path: Path) -> None:
    result = invoke("info", "--model", str(trained_small_path))
    assert result.exit_code == 0
    assert "cnn-small" in result.output and "mnist-5k" in result.output
    meta = json.loads(invoke("info", "--model", str(trained_small_path), "--json").output)
    assert meta["dataset"]["input_shape"] == [1, 28, 28]


@pytest.mark.parametrize("args,message", [
    (["--dataset", "svhn"], "--data 'svhn' is not a built-in data set"),
    (["--model", "vgg"], "'vgg' is not one of"),
    (["--epochs", "0"], "epochs must be a positive integer, got 0"),
    (["--lr", "0"], "lr must be a positive number, got 0.0"),
    (["--lr", "-1e-3"], "lr must be a positive number"),
    (["--batch-size", "0"], "batch size must be a positive integer, got 0"),
    (["--epochs", "x"], "'x' is not a valid integer"),
    (["--dataset", "mnist", "--data-root", "NO_SUCH_DIR"], "data root 'NO_SUCH_DIR' does not exist"),
    (["--hidden", "12,a"], "--hidden '12,a'"),
    (["--model", "cnn", "--hidden", "12"], "apply to mlp and mlp-sigmoid"),
], ids=["dataset", "model", "epochs", "lr0", "lr-neg", "batch", "epochs-type", "data-root", "hidden", "hidden-cnn"])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "runs" / "m.pt"
    result = invoke("train", *args, "--out", str(out))
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    assert message in result.output
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_path_exits_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = invoke("train", *QUICK, "--out", str(blocker / "m.pt"))
    assert result.exit_code == 2 and "not writable" in result.output
    result = invoke("train", *QUICK, "--out", str(tmp_path))
    assert result.exit_code == 2 and "is a directory" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_missing_fashion_mnist_data_exits_2(tmp_path: Path) -> None:
    result = invoke("train", "--dataset", "fashion-mnist", "--data-root", str(tmp_path),
                    "--out", str(tmp_path / "m.pt"))
    assert result.exit_code == 2 and "train-images-idx3-ubyte[.gz] not found" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content", [b"not a checkpoint", None], ids=["foreign-file", "missing"])
def test_info_rejects_non_checkpoints(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "x.pt"
    if content is not None:
        path.write_bytes(content)
    result = invoke("info", "--model", str(path))
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert ("not an advgrad checkpoint" if content else "advgrad train") in result.output


@pytest.mark.slow
def test_real_subprocess(tmp_path: Path) -> None:
    """The installed entry point, as a user runs it: success, then a usage error without a traceback."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    ok = subprocess.run([sys.executable, "-m", "advgrad", "train", *QUICK, "--out", "m.pt"], cwd=tmp_path,
                        capture_output=True, text=True, env=env, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert torch.load(tmp_path / "m.pt", weights_only=True)["format"] == "advgrad-checkpoint"
    bad = subprocess.run([sys.executable, "-m", "advgrad", "train", "--epochs", "-3", "--out", "n.pt"], cwd=tmp_path,
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == ["Error: epochs must be a positive integer, got -3"]
    assert not (tmp_path / "n.pt").exists()


def test_provenance_names_the_typed_command_under_clirunner(tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    assert invoke("train", *QUICK, "--out", str(out)).exit_code == 0
    command = json.loads(out.with_suffix(".json").read_text())["provenance"]["command"]
    assert command.startswith("advgrad train --model logreg") and command.endswith(str(out))


@pytest.mark.slow
def test_info_reads_damaged_training_records_and_missing_bounds(trained_small_path: Path, tmp_path: Path) -> None:
    """Found by the fuzz test: info indexed the training record and the bounds without looking (KeyError,
    or a format error for a string learning rate). Nothing else reads those: they are reported as damaged."""
    payload = torch.load(trained_small_path, weights_only=True)
    payload["meta"]["train_config"] = {"epochs": 2, "lr": "fast"}
    payload["meta"]["metrics"] = {"test_accuracy": None}
    del payload["meta"]["dataset"]["bounds"]
    torch.save(payload, tmp_path / "m.pt")
    result = invoke("info", "--model", str(tmp_path / "m.pt"))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "bounds (0.0, 1.0)" in lines[1] and lines[2] == "training  (damaged record)"
    assert lines[3] == "metrics   (damaged record)"
    proc = subprocess.run([sys.executable, "-m", "advgrad", "info", "--model", str(tmp_path / "m.pt")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout == result.output and proc.stderr == ""
