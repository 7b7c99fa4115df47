"""Output paths are checked before any work: two outputs of one command never name one file, no output
is one of the command's inputs, every output folder provably takes a new file (/proc, a file in the
way), and train's --out is a .pt file. A refused command exits 2 with one line and changes no file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.cli import assert_usage_error, invoke, logreg_checkpoint, run, run_many, tree

import advgrad.data.builtin
import advgrad.models.checkpoint
from advgrad.data.builtin import Dataset

QUICK = ["--model", "logreg", "--epochs", "1", "--n-train", "100", "--schedule", "constant", "--quiet"]
EVAL = ["--n", "8", "--steps", "1", "--no-sanity", "--eps", "0.1"]


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading a checkpoint or loading data fails the test: a refusal must come before either."""
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the output paths were checked")

    monkeypatch.setattr(advgrad.data.builtin, "load_dataset", forbidden)
    monkeypatch.setattr(advgrad.models.checkpoint, "load_checkpoint", forbidden)


@pytest.fixture
def ws(tmp_path: Path, mnist5k: Dataset, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with a checkpoint m.pt, its copies under other names, and an eval record."""
    monkeypatch.chdir(tmp_path)
    logreg_checkpoint(tmp_path / "m.pt", mnist5k)
    for name in ("e.json", "e.csv", "x.npz", "g.png"):
        (tmp_path / name).write_bytes((tmp_path / "m.pt").read_bytes())
    os.symlink("e.json", tmp_path / "link.pt")
    (tmp_path / "file").write_text("in the way")
    (tmp_path / "r.json").write_text('{"records": [{"attack": "pgd", "eps": 0.1, "accuracy": 0.5}]}')
    return tmp_path


def test_train_out_must_be_a_pt_file_so_the_metrics_json_cannot_overwrite_it(ws: Path, no_work: None) -> None:
    """Before: --out m/c.json wrote the checkpoint, then the metrics JSON over it, and exited 0."""
    before = tree(ws)
    result = invoke("train", *QUICK, "--out", "m/c.json")
    assert_usage_error(result.exit_code, result.stderr, "--out 'm/c.json': expected a .pt file")
    assert tree(ws) == before and not (ws / "m").exists()


@pytest.mark.parametrize("args,message", [
    (["eval", "--model", "e.json", "--out", "e.json", *EVAL], "--out 'e.json' is the input --model"),
    (["eval", "--model", "e.csv", "--out", "e.json", *EVAL], "the CSV beside --out 'e.csv' is the input --model"),
    (["eval", "--model", "e.json", "--out", "sub/../e.json", *EVAL], "--out 'sub/../e.json' is the input --model"),
    (["attack", "--model", "e.json", "--eps", "0.1", "--out", "e.json"], "--out 'e.json' is the input --model"),
    (["attack", "--model", "x.npz", "--eps", "0.1", "--save-examples", "x.npz", "--out", "a.json"],
     "--save-examples 'x.npz' is the input --model"),
    (["attack", "--model", "link.pt", "--eps", "0.1", "--out", "e.json"], "--out 'e.json' is the input --model"),
    (["grad", "--model", "g.png", "--plot", "g.png"], "--plot 'g.png' is the input --model"),
    (["plot", "landscape", "g.png", "--out", "g.png"], "--out 'g.png' is the input FILES"),
    (["plot", "curve", "r.json", "g.png", "--out", "./g.png"], "--out 'g.png' is the input FILES"),
], ids=["eval-out", "eval-csv", "eval-dotdot", "attack-out", "attack-examples", "attack-symlink", "grad", "plot",
        "plot-second"])
def test_an_output_that_is_an_input_is_refused(ws: Path, no_work: None, args: list[str], message: str) -> None:
    before = tree(ws)
    result = invoke(*args)
    assert_usage_error(result.exit_code, result.stderr, message, "writing it would destroy the input")
    assert tree(ws) == before


@pytest.mark.parametrize("target", ["/proc/advgrad/{}", "file/{}"], ids=["proc", "file-in-the-way"])
@pytest.mark.parametrize("args,name", [
    (["train", *QUICK, "--out"], "m.pt"),
    (["train", *QUICK, "--adv", "fgsm", "--eps", "0.1", "--out"], "m.pt"),
    (["attack", "--model", "m.pt", "--eps", "0.1", "--out"], "a.json"),
    (["attack", "--model", "m.pt", "--eps", "0.1", "--save-examples"], "x.npz"),
    (["eval", "--model", "m.pt", *EVAL, "--out"], "e.json"),
    (["grad", "--model", "m.pt", "--plot"], "g.png"),
    (["plot", "curve", "r.json", "--out"], "c.png"),
    (["plot", "landscape", "m.pt", "--out"], "c.png"),
], ids=["train", "train-adv", "attack-out", "attack-examples", "eval", "grad", "plot-curve", "plot-landscape"])
def test_an_unwritable_output_is_refused_before_any_work(ws: Path, no_work: None, target: str, args: list[str],
                                                         name: str) -> None:
    before = tree(ws)
    path = target.format(name)
    result = invoke(*args, path)
    assert_usage_error(result.exit_code, result.stderr, f"output path '{path}' is not writable")
    assert tree(ws) == before and not Path("/proc/advgrad").exists()


def test_train_with_adv_checks_its_three_files(ws: Path, no_work: None) -> None:
    """OUT, OUT.json and OUT.best.pt: the best checkpoint's folder entry is checked too (here a folder)."""
    (ws / "m.best.pt").unlink(missing_ok=True)
    (ws / "r.best.pt").mkdir()
    result = invoke("train", *QUICK, "--adv", "fgsm", "--eps", "0.1", "--out", "r.pt")
    assert_usage_error(result.exit_code, result.stderr, "output path 'r.best.pt' is a directory")


# --- real processes ----------------------------------------------------------------------------------

# The same CLI in a real process, with data loading made to fail loudly (an internal error, exit 1) if
# a command gets that far: exit 2 proves the refusal came first. The four command lines run one after the
# other in one process (run_many): a refusal changes nothing a later one could see, and the folder is
# compared after all of them.
GUARDED = """import advgrad.data.builtin
def forbidden(*a, **k):
    raise RuntimeError("work started")
advgrad.data.builtin.load_dataset = forbidden
"""
REFUSED = [
    (["train", *QUICK, "--out", "m/c.json"], "--out 'm/c.json': expected a .pt file"),
    (["train", *QUICK, "--out", "/proc/advgrad/model.pt"], "output path '/proc/advgrad/model.pt' is not writable"),
    (["train", *QUICK, "--out", "file/m.pt"], "output path 'file/m.pt' is not writable ('file' is a file"),
    (["attack", "--model", "e.json", "--eps", "0.1", "--out", "e.json"], "--out 'e.json' is the input --model"),
]


@pytest.mark.slow
def test_real_process_refuses_before_any_work(ws: Path) -> None:
    before = tree(ws)
    procs = run_many([(ws, args) for args, _ in REFUSED], prelude=GUARDED)
    for (args, message), proc in zip(REFUSED, procs, strict=True):
        assert_usage_error(proc.returncode, proc.stderr, message)
        assert proc.stdout == "", args
    assert tree(ws) == before


@pytest.mark.slow
def test_real_process_eval_writes_json_and_csv_beside_it(ws: Path) -> None:
    """The checks let a good command through: a real eval writes its two files and touches its input."""
    before = tree(ws)
    proc = run(["eval", "--model", "m.pt", *EVAL, "--out", "runs/e.json"], cwd=ws)
    assert proc.returncode == 0, proc.stderr
    after = tree(ws)
    assert {k: v for k, v in after.items() if not k.startswith("runs")} == before
    assert sorted(k for k in after if k.startswith("runs")) == ["runs/e.csv", "runs/e.json"]
