"""The data a checkpoint is evaluated on is checked against the data it was trained on, by every command
that evaluates one (attack, eval, grad, plot landscape): another input shape or class count is one line
with exit 2 (it used to end in a traceback or a wrong number), other split sizes are one ``warning:``
line on stderr and the command goes on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.cli import assert_usage_error, fake_dataset, invoke, logreg_checkpoint, run

from advgrad.data.builtin import Dataset
from advgrad.models.checkpoint import save_checkpoint
from advgrad.models.zoo import build_for


def claims(path: Path, data: Dataset, trained_on: Dataset) -> Path:
    """A logreg checkpoint built for ``trained_on`` (which calls itself ``data``'s name)."""
    model, model_meta = build_for("logreg", trained_on, seed=0)
    save_checkpoint(path, model.eval(), {"model": model_meta, "dataset": trained_on.meta()})
    return path


def commands(model: Path, tmp: Path) -> dict[str, list[str]]:
    return {
        "attack": ["attack", "--model", str(model), "--eps", "0.1", "--n", "6", "--out", str(tmp / "a.json")],
        "eval": ["eval", "--model", str(model), "--n", "6", "--eps", "0.1", "--steps", "1", "--no-sanity",
                 "--out", str(tmp / "e.json")],
        "grad": ["grad", "--model", str(model), "--fd-coords", "1"],
        "landscape": ["plot", "landscape", str(model), "--n", "1", "--out", str(tmp / "l.png")],
    }


@pytest.mark.parametrize("command", ["attack", "eval", "grad", "landscape"])
@pytest.mark.parametrize("channels,size,classes,message", [
    (4, 14, 10, "the model takes inputs of shape 4×14×14 (mnist-5k), but mnist-5k has 1×28×28"),
    (1, 28, 5, "the model has 5 classes (mnist-5k), but mnist-5k has 10"),
], ids=["shape", "classes"])
def test_a_model_for_other_data_is_refused(tmp_path: Path, mnist5k: Dataset, command: str, channels: int,
                                           size: int, classes: int, message: str) -> None:
    model = claims(tmp_path / "m.pt", mnist5k, fake_dataset(mnist5k, channels=channels, size=size, classes=classes))
    result = invoke(*commands(model, tmp_path)[command])
    assert_usage_error(result.exit_code, result.stderr, message, "evaluate it on the data it was trained on")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"] and result.stdout == ""


@pytest.mark.parametrize("command", ["attack", "eval", "grad", "landscape"])
def test_other_split_sizes_are_a_warning_and_the_command_goes_on(tmp_path: Path, mnist5k: Dataset,
                                                                 command: str) -> None:
    model = logreg_checkpoint(tmp_path / "m.pt", mnist5k, n_test=999)
    result = invoke(*commands(model, tmp_path)[command])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "warning: mnist-5k has 1000 test images here but had 999 when the model was trained: another copy or "
        "version of the data set; results are not comparable with the recorded ones"]
    assert "warning" not in result.stdout


@pytest.mark.slow
def test_real_process_refuses_and_warns(tmp_path: Path, mnist5k: Dataset) -> None:
    bad = claims(tmp_path / "bad.pt", mnist5k, fake_dataset(mnist5k, classes=5))
    proc = run(commands(bad, tmp_path)["attack"])
    assert_usage_error(proc.returncode, proc.stderr, "the model has 5 classes (mnist-5k), but mnist-5k has 10")
    assert not (tmp_path / "a.json").exists()
    odd = logreg_checkpoint(tmp_path / "odd.pt", mnist5k, n_train=3999)
    proc = run([*commands(odd, tmp_path)["attack"], "--json"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        "warning: mnist-5k has 4000 train images here but had 3999 when the model was trained: another copy or "
        "version of the data set; results are not comparable with the recorded ones"]
    assert json.loads(proc.stdout)["n"] == 6  # stdout stays the JSON record alone
