"""``advgrad grad``: the table on a trained mlp-sigmoid and on CNN checkpoints, the figure, bad input."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from advgrad.cli import main
from advgrad.configs import TrainConfig
from advgrad.data.builtin import Dataset
from advgrad.models.checkpoint import checkpoint_meta, save_checkpoint
from advgrad.models.zoo import build_for
from advgrad.training.train import fit


@pytest.fixture(scope="module")
def sigmoid_path(mnist5k: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mlp-sigmoid 784-32-10 with a sigmoid output, trained one epoch on 800 digits with J = ½‖y − ŷ‖²."""
    model, model_meta = build_for("mlp-sigmoid", mnist5k, seed=0, hidden=[32], head="sigmoid")
    config = TrainConfig(epochs=1, batch_size=64, lr=5e-3, seed=0, device="cpu", loss="mse")
    history = fit(model, mnist5k, config, max_train=800)
    path = tmp_path_factory.mktemp("grad") / "mlp-sigmoid.pt"
    save_checkpoint(path, model.eval(), checkpoint_meta(model_meta, mnist5k, config, history))
    return path


@pytest.fixture(scope="module")
def cnn_path(mnist5k: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Madry et al.'s cnn as initialised (seed 0): the command needs a cnn checkpoint, not a trained one
    (the trained CNN case is conftest's cnn-small)."""
    model, model_meta = build_for("cnn", mnist5k, seed=0)
    path = tmp_path_factory.mktemp("grad") / "cnn.pt"
    save_checkpoint(path, model.eval(), {"model": model_meta, "dataset": mnist5k.meta()})
    return path


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["grad", *args])


def _number(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    assert m, f"{pattern!r} not in:\n{text}"
    return float(m.group(1))


def test_table_on_trained_sigmoid_checkpoint(sigmoid_path: Path) -> None:
    result = invoke("--model", str(sigmoid_path), "--index", "3", "--index", "7", "--fd-coords", "4")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "loss mse" in out and "index 3, 7" in out
    assert re.search(r"^\s+1\s+32×784\s", out, re.M) and re.search(r"^\s+2\s+10×32\s", out, re.M)
    assert out.count("‖∂J/∂X‖₂ index") == 2
    assert _number(r"∂J/∂X (\S+)\n", out) <= 1e-12  # hand vs autograd
    assert _number(r"max \|hand − finite differences\| .*: (\S+)", out) <= 1e-6
    assert "kink" not in out  # a sigmoid network is smooth everywhere
    assert "after x + 0.1·sign(∂J/∂X)" in out


@pytest.mark.parametrize("which", ["cnn", "cnn-small"])
def test_cnn_checkpoints_show_autograd_input_gradient(which: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue("cnn_path" if which == "cnn" else "trained_small_path")
    result = invoke("--model", str(path), "--index", "0", "--fd-coords", "3")
    assert result.exit_code == 0, result.output
    assert "hand-written backward pass covers mlp-sigmoid" in result.output
    assert "loss ce" in result.output and "‖∂J/∂X‖₂ index 0" in result.output
    assert "hand − autograd" not in result.output
    # Max-pool ties on the flat background are kinks: left out, and counted, when there are any.
    assert _number(r"autograd − finite differences\| .*: (\S+)", result.output) <= 1e-6


def test_random_sigmoid_and_plot(tmp_path: Path) -> None:
    fig = tmp_path / "figs" / "why.png"
    result = invoke("--random-sigmoid", "784,16,8,10", "--seed", "3", "--index", "5", "--plot", str(fig),
                    "--eps", "0.2", "--fd-coords", "2")
    assert result.exit_code == 0, result.output
    assert "random mlp-sigmoid 784,16,8,10 (seed 3" in result.output
    assert re.search(r"^\s+3\s+10×8\s", result.output, re.M)
    assert "x + 0.2·sign(∂J/∂X)" in result.output
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args,message", [
    (["--random-sigmoid", "784,64,10", "--index", "1000"], "--index 1000 is out of range: mnist-5k has 1000"),
    (["--random-sigmoid", "784,64,10", "--index", "-1"], "--index -1 is out of range"),
    (["--random-sigmoid", "784,x,10"], "'784,x,10': expected comma-separated positive integers such as 784,64,10"),
    (["--random-sigmoid", "784"], "give at least the input and output widths"),
    (["--random-sigmoid", "784,0,10"], "'784,0,10': expected comma-separated positive integers"),
    (["--random-sigmoid", "785,64,10"], "the first width must be 784"),
    (["--random-sigmoid", "784,64,3"], "the last 10"),
    (["--random-sigmoid", "784,64,10", "--model", "out/model.pt"], "either --model or --random-sigmoid"),
    (["--model", "no/such/model.pt"], "no model at 'no/such/model.pt'"),
    (["--random-sigmoid", "784,64,10", "--eps", "-0.1"], "--eps must be a finite number ≥ 0"),
    (["--random-sigmoid", "784,64,10", "--eps", "nan"], "--eps must be a finite number ≥ 0"),
    (["--random-sigmoid", "784,64,10", "--fd-coords", "-1"], "--fd-coords must be ≥ 0"),
    (["--random-sigmoid", "784,64,10", "--loss", "margin"], "'margin' is not one of"),
], ids=["index-too-big", "index-negative", "widths-not-int", "one-width", "zero-width", "wrong-input-width",
        "wrong-classes", "model-and-random", "missing-model", "eps-negative", "eps-nan", "fd-negative",
        "unknown-loss"])
def test_bad_input_exits_2_with_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    fig = tmp_path / "never.png"
    result = invoke(*args, "--plot", str(fig))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.stderr
    assert not fig.exists()


@pytest.mark.slow
def test_installed_entry_point_runs() -> None:
    """One real process: ``python -m advgrad grad`` (the same main as the ``advgrad`` script)."""
    proc = subprocess.run([sys.executable, "-m", "advgrad", "grad", "--random-sigmoid", "784,8,10",
                           "--fd-coords", "1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "max |hand − autograd|" in proc.stdout
