"""``advgrad attack``: the record it writes, its examples file, and one-line errors with exit 2."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from advgrad.cli import main
from advgrad.models.loading import load_model

FIELDS = ("method", "norm", "eps", "alpha", "steps", "restarts", "n", "clean_accuracy", "adversarial_accuracy",
          "attack_success_rate", "mean_confidence_adv", "max_linf", "mean_l2", "seconds", "images_per_second",
          "provenance")


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["attack", *args])
    return result.exit_code, result.stdout, result.stderr


def test_fgsm_writes_a_record_with_every_field(trained_small_path: Path, mnist5k, tmp_path: Path) -> None:
    out = tmp_path / "a.json"
    code, stdout, _ = _run("--eps", "0.1", "--model", str(trained_small_path), "--n", "120", "--out", str(out))
    assert code == 0, stdout
    assert "adversarial accuracy" in stdout and f"wrote {out}" in stdout
    rec = json.loads(out.read_text())
    assert all(f in rec for f in FIELDS)
    assert (rec["method"], rec["norm"], rec["eps"], rec["alpha"], rec["steps"], rec["n"]) == (
        "fgsm", "inf", 0.1, 0.1, 1, 120)
    model = load_model(trained_small_path)
    with torch.no_grad():
        clean = float((model(mnist5k.x_test[:120]).argmax(1) == mnist5k.y_test[:120]).double().mean())
    assert rec["clean_accuracy"] == pytest.approx(clean)
    assert rec["adversarial_accuracy"] < rec["clean_accuracy"]
    assert 0 < rec["max_linf"] <= 0.1 + 1e-6 and rec["mean_l2"] > 0
    prov = rec["provenance"]
    assert prov["seed"] == 0 and prov["model_sha256"] and prov["torch_version"] == torch.__version__
    assert "attack" in prov["command"] and prov["advgrad_version"]


def test_pgd_json_to_stdout_and_examples_file(trained_small_path: Path, tmp_path: Path) -> None:
    out, npz = tmp_path / "p.json", tmp_path / "ex.npz"
    code, stdout, _ = _run("--eps", "0.1", "--method", "pgd", "--steps", "5", "--restarts", "2", "--model",
                           str(trained_small_path), "--n", "60", "--block", "25", "--out", str(out),
                           "--save-examples", str(npz), "--json")
    assert code == 0, stdout
    rec = json.loads(stdout)
    assert rec == json.loads(out.read_text())
    assert (rec["method"], rec["steps"], rec["restarts"], rec["alpha"]) == ("pgd", 5, 2, pytest.approx(0.05))
    ex = np.load(npz)
    assert set(ex.files) == {"x", "x_adv", "y", "pred_clean", "pred_adv", "conf_clean", "conf_adv", "meta"}
    assert ex["x"].shape == ex["x_adv"].shape == (60, 1, 28, 28)
    assert float(np.abs(ex["x_adv"] - ex["x"]).max()) <= 0.1 + 1e-6
    assert rec["adversarial_accuracy"] == pytest.approx(float((ex["pred_adv"] == ex["y"]).mean()))


def test_targeted_class_and_l2(trained_small_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.json"
    code, stdout, _ = _run("--eps", "3", "--method", "pgd", "--norm", "2", "--targeted", "--target-class", "3",
                           "--steps", "10", "--model", str(trained_small_path), "--n", "40", "--out", str(out))
    assert code == 0, stdout
    rec = json.loads(out.read_text())
    assert rec["targeted"] and rec["target"] == 3 and rec["norm"] == "2"
    assert rec["attack_success_rate"] > 0.5


def test_same_seed_same_record(trained_small_path: Path, tmp_path: Path) -> None:
    recs = []
    for name in ("1.json", "2.json"):
        _run("--eps", "0.1", "--method", "pgd", "--steps", "3", "--targeted", "--target", "random",
             "--model", str(trained_small_path), "--n", "30", "--seed", "5", "--out", str(tmp_path / name))
        recs.append(json.loads((tmp_path / name).read_text()))
    keys = ("adversarial_accuracy", "attack_success_rate", "mean_l2", "mean_confidence_adv")
    assert [recs[0][k] for k in keys] == [recs[1][k] for k in keys]


@pytest.mark.parametrize("args,message", [
    (["--eps", "-1"], "--eps must be a finite number ≥ 0, got -1.0"),
    (["--eps", "nan"], "--eps must be a finite number ≥ 0, got nan"),
    (["--eps", "0.1", "--steps", "5"], "--steps does not apply to --method fgsm (it takes: --targeted, --loss)"),
    (["--eps", "0.1", "--method", "pgd", "--steps", "0"], "--steps must be a positive integer, got 0"),
    (["--eps", "0.1", "--method", "pgd", "--restarts", "0"], "--restarts must be a positive integer, got 0"),
    (["--eps", "0.1", "--method", "pgd", "--alpha", "0"], "--alpha must be a finite number > 0, got 0.0"),
    (["--eps", "0.1", "--n", "0"], "--n must be a positive integer, got 0"),
    (["--eps", "0.1", "--targeted"], "--targeted needs exactly one of --target-class K or --target random"),
    (["--eps", "0.1", "--target-class", "2"], "--target-class/--target need --targeted"),
    (["--eps", "0.1", "--targeted", "--target-class", "12"], "--target-class 12 is out of range"),
    (["--eps", "0.1", "--norm", "3"], "Invalid value for '--norm'"),
    (["--eps", "0.1", "--method", "nope"], "Invalid value for '--method'"),
    (["--eps", "0.1", "--out", "x.txt"], "--out 'x.txt': expected a .json file"),
    (["--eps", "0.1", "--save-examples", "x.json"], "--save-examples 'x.json': expected a .npz file"),
    (["--method", "pgd"], "--method pgd needs --eps (the minimal-norm attacks run without"),
], ids=lambda v: " ".join(v)[:40] if isinstance(v, list) else None)
def test_bad_options_exit_2_with_one_line(trained_small_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          args: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = _run(*args, "--model", str(trained_small_path))
    assert code == 2
    assert stderr.count("\n") == 1 and stderr.startswith("Error: ") and message in stderr, stderr
    assert stdout == "" and not any(tmp_path.iterdir())  # nothing written


def test_missing_model_says_how_to_train_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, stderr = _run("--eps", "0.1")
    assert code == 2 and "out/model.pt" in stderr and "advgrad train" in stderr and stderr.count("\n") == 1


@pytest.mark.slow
def test_installed_entry_point_runs(trained_small_path: Path, tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("advgrad")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "advgrad"]
    out = tmp_path / "sub.json"
    proc = subprocess.run([*cmd, "attack", "--eps", "0.2", "--model", str(trained_small_path), "--n", "20",
                           "--device", "cpu", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(out.read_text())
    assert rec["n"] == 20 and math.isfinite(rec["seconds"])
    bad = subprocess.run([*cmd, "attack", "--eps", "-0.5", "--model", str(trained_small_path)],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "Traceback" not in bad.stderr
