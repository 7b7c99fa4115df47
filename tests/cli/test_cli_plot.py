"""``advgrad plot``: every kind writes its figure from the files the other commands write; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from advgrad.cli import main
from advgrad.records.read import fooled_first


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["plot", *args])


def _eval_json(path: Path, scale: float = 1.0) -> Path:
    records = [{"attack": a, "eps": e, "accuracy": acc * scale, "n": 10}
               for a in ("fgsm", "pgd") for e, acc in ((0.0, 0.98), (0.1, 0.5), (0.2, 0.1))]
    path.write_text(json.dumps({"records": records, "min_eps": {"eps_max": 0.2, "precision": 0.01,
                                                                "values": [0.0, 0.05, None, 0.12]}}))
    return path


def _examples_npz(path: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (4, 1, 28, 28)).astype(np.float32)
    np.savez(path, x=x, x_adv=np.clip(x + 0.1, 0, 1), y=np.arange(4), pred_clean=np.arange(4),
             pred_adv=np.arange(1, 5), conf_clean=np.full(4, 0.9), conf_adv=np.full(4, 0.7))
    return path


def _png(path: Path) -> bool:
    return path.read_bytes()[:4] == b"\x89PNG"


def test_curve_overlays_models(tmp_path: Path) -> None:
    a, b = _eval_json(tmp_path / "cnn.json"), _eval_json(tmp_path / "mlp.json", 0.5)
    out = tmp_path / "curve.svg"
    result = invoke("curve", str(a), str(b), "--out", str(out), "--title", "two")
    assert result.exit_code == 0, result.output
    assert out.read_text().lstrip().startswith("<?xml") and "wrote" in result.output


@pytest.mark.slow
def test_examples_and_min_eps(tmp_path: Path) -> None:
    out = tmp_path / "ex.png"
    result = invoke("examples", str(_examples_npz(tmp_path / "ex.npz")), "--out", str(out), "--n", "3")
    assert result.exit_code == 0, result.output
    assert _png(out)
    out2 = tmp_path / "m.pdf"
    result = invoke("min-eps", str(_eval_json(tmp_path / "e.json")), "--out", str(out2))
    assert result.exit_code == 0, result.output
    assert out2.read_bytes()[:4] == b"%PDF"


def test_training_with_robust_accuracy(tmp_path: Path) -> None:
    history = [{"epoch": e, "train_loss": 1 / e, "train_accuracy": 0.9, "test_accuracy": 0.9, "lr": 1e-3,
                "seconds": 1.0, "robust_accuracy": 0.3} for e in (1, 2)]
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"model": {"name": "cnn"}, "history": history}))
    out = tmp_path / "t.png"
    result = invoke("training", str(path), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert _png(out)


def test_landscape_from_checkpoint(trained_small_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "l.png"
    result = invoke("landscape", str(trained_small_path), "--n", "2", "--eps-max", "0.2", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert _png(out)


@pytest.mark.parametrize("kind,files,extra,message", [
    ("curve", ["missing.json"], [], "does not exist"),
    ("curve", ["notjson.json"], [], "not a JSON"),
    ("curve", ["empty.json"], [], "no accuracy records"),
    ("training", ["empty.json"], [], "no training history"),
    ("training", ["empty.json", "empty.json"], [], "one file"),
    ("min-eps", ["empty.json"], [], "--min-eps"),
    ("examples", ["bad.npz"], [], "no 'x_adv'"),
    ("examples", ["notjson.json"], [], "not an .npz"),
    ("curve", ["empty.json"], ["--out", "fig.gif"], "suffix"),
    ("examples", ["bad.npz"], ["--n", "0", "--out", "fig.png"], "--n"),
    ("landscape", ["empty.json"], [], "not an advgrad checkpoint"),
], ids=["missing", "not-json", "no-records", "no-history", "two-files", "no-min-eps", "npz-keys", "not-npz",
        "suffix", "n", "not-checkpoint"])
def test_bad_input_exits_2_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str,
                                         files: list[str], extra: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    Path("notjson.json").write_text("{oops")
    Path("empty.json").write_text("{}")
    np.savez("bad.npz", x=np.zeros((1, 1, 2, 2)))
    result = invoke(kind, *files, *(extra or ["--out", "fig.png"]))
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], lines
    assert not Path("fig.png").exists() and not Path("fig.gif").exists()


def test_fooled_examples_come_first() -> None:
    y = np.array([0, 1, 2, 3, 4])
    arrays = {"y": y, "pred_clean": np.array([0, 1, 9, 3, 4]), "pred_adv": np.array([0, 7, 8, 3, 5]),
              "x": np.arange(5)}
    out = fooled_first(arrays)
    assert list(out["x"]) == [1, 4, 0, 2, 3]  # fooled (1, 4), then the rest in file order
    assert list(out["y"]) == [1, 4, 0, 2, 3]


@pytest.mark.parametrize("change,message", [
    (lambda a: a.update(x=a["x"][:, :, :, :, None]), "must be one shape"),
    (lambda a: a.update(x=np.zeros((4, 2, 28, 28)), x_adv=np.zeros((4, 2, 28, 28))), "with C 1, 3 or 4"),
    (lambda a: a.update(x_adv=a["x_adv"][:2]), "must be one shape"),
    (lambda a: a.update(x=a["x"][:0], x_adv=a["x_adv"][:0]), "N ≥ 1"),
    (lambda a: a.update(x=a["x"].astype(np.complex64)), "x holds complex64 values"),
    (lambda a: a.update(pred_adv=a["pred_adv"][:1]), "pred_adv is int64 of shape (1,), expected 4 integers"),
    (lambda a: a.update(y=a["y"].astype(float)), "y is float64 of shape (4,), expected 4 integers"),
    (lambda a: a.update(conf_clean=np.array(["x"] * 4)), "conf_clean is <U1 of shape (4,), expected 4 numbers"),
    (lambda a: a.update(class_names=np.arange(10)), "class_names must be a list of strings"),
], ids=["5-d", "2-channels", "lengths", "empty", "complex", "short", "float-labels", "strings", "class-names"])
def test_examples_with_inconsistent_arrays_exit_2(tmp_path: Path, change, message: str) -> None:  # type: ignore[no-untyped-def]
    """Found by the fuzz test. Before the check, four of these ended in internal errors while drawing
    (IndexError; imshow's TypeError for 2 channels), four drew a figure from wrong data, and strings gave
    numpy's message ("could not convert string to float") instead of one naming the file and array."""
    with np.load(_examples_npz(tmp_path / "ok.npz")) as npz:
        arrays = {k: npz[k] for k in npz.files}
    change(arrays)
    np.savez(tmp_path / "bad.npz", **arrays)
    result = invoke("examples", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "f.png"))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], lines
    assert not (tmp_path / "f.png").exists()


@pytest.mark.parametrize("cut", [0, 30, 200, -20])
def test_truncated_examples_file_exits_2(tmp_path: Path, cut: int) -> None:
    """A cut-short .npz raised BadZipFile or EOFError, which the command did not expect (internal error)."""
    raw = _examples_npz(tmp_path / "ok.npz").read_bytes()
    (tmp_path / "bad.npz").write_bytes(raw[:cut])
    result = invoke("examples", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "f.png"))
    assert result.exit_code == 2 and result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert "is not an .npz file" in result.stderr or "has no 'x" in result.stderr, result.stderr


@pytest.mark.slow
def test_real_process_inconsistent_examples_exit_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    with np.load(_examples_npz(tmp_path / "ok.npz")) as npz:
        arrays = {k: npz[k] for k in npz.files}
    np.savez(tmp_path / "bad.npz", **{**arrays, "pred_adv": arrays["pred_adv"][:1]})
    proc = subprocess.run([sys.executable, "-m", "advgrad", "plot", "examples", str(tmp_path / "bad.npz"), "--out",
                           str(tmp_path / "f.png")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"Error: '{tmp_path / 'bad.npz'}': pred_adv is int64 of shape (1,), expected 4 integers; "
        "write the file with `advgrad attack --save-examples`"]
    assert not (tmp_path / "f.png").exists()


@pytest.mark.parametrize("value", [None, "0.5", True, float("nan")], ids=["null", "string", "bool", "nan"])
def test_curve_refuses_a_record_whose_numbers_are_not_numbers(tmp_path: Path, value: object) -> None:
    """Found by the CLI fuzz test: an attack record whose adversarial accuracy was damaged to null crashed
    inside the figure (an internal error); it is a one-line usage error."""
    record = tmp_path / "a.json"
    record.write_text(json.dumps({"method": "fgsm", "eps": 0.1, "adversarial_accuracy": value}))
    res = invoke("curve", str(record), "--out", str(tmp_path / "c.png"))
    assert res.exit_code == 2, res.output
    assert "a record needs a name and finite numbers for eps and accuracy" in res.output
    assert not (tmp_path / "c.png").exists()


def test_min_eps_series_name_the_attack_they_bisected_with(tmp_path: Path) -> None:
    """A record from --min-eps-attack apgd-ce is labelled so; one written before the option existed (no
    "attack" in its block) was PGD's."""
    from advgrad.runs.figures import min_eps

    new, old = tmp_path / "apgd.json", tmp_path / "old.json"
    new.write_text(json.dumps({"min_eps": {"attack": "apgd-ce", "eps_max": 0.3, "values": [0.1, None, 0.0]}}))
    old.write_text(json.dumps({"min_eps": {"eps_max": 0.3, "values": [0.2, 0.05]}}))
    fig = min_eps([new, old])
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert labels == ["apgd: apgd-ce (bisection)", "old: pgd (bisection)"]
    assert fig.get_suptitle() == "Minimal adversarial perturbation per point"


def test_min_norm_series_are_each_attack_and_the_ensemble(tmp_path: Path) -> None:
    """An `eval --min-norm fmn,pgd` record: one series per attack and the ensemble, named as the record
    names them; a record without any minimal distance is one line."""
    from advgrad.runs.figures import min_eps

    path = tmp_path / "e.json"
    attacks = {name: {"values": values} for name, values in
               (("fmn", [0.5, 1.0, None]), ("pgd", [0.6, None, None]), ("ensemble", [0.5, 1.0, None]))}
    path.write_text(json.dumps({"min_norm": {"norm": "2", "attacks": attacks}}))
    fig = min_eps([path])
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == ["fmn", "pgd", "ensemble"]
    empty = tmp_path / "none.json"
    empty.write_text(json.dumps({"records": []}))
    with pytest.raises(ValueError, match="has no minimal distances: run `advgrad eval --min-norm"):
        min_eps([empty])
