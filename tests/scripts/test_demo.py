"""The demo runs end to end through the real CLI (its --quick mode, in a temporary folder), writes into a
folder of the user's (out/demo, ignored by git), and replaces that folder only when every step succeeded."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.mark.slow
@pytest.mark.heavy
def test_demo_quick_runs_the_whole_loop(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"), "--out", str(out), "--quick"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600, env=ENV)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for name in ("model.pt", "model.json", "attack_fgsm.json", "attack_pgd.json", "examples_pgd.npz", "eval.json",
                 "eval_autoattack.json",
                 "eval.csv", "training.png", "examples_fgsm.png", "examples_pgd.png", "accuracy_vs_eps.png",
                 "min_eps.png", "landscape.png", "COMMANDS.md"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no staging folder left behind
    commands = (out / "COMMANDS.md").read_text()
    assert commands.count("    advgrad ") == 11 and "advgrad eval" in commands and "advgrad attack" in commands
    record = json.loads((out / "eval.json").read_text())
    assert record["n"] == 40 and len(record["sanity"]) == 10
    ensemble = json.loads((out / "eval_autoattack.json").read_text())
    aa = [r for r in ensemble["records"] if r["attack"] == "autoattack"]
    assert [r["eps"] for r in aa] == [0.0, 0.1] and list(aa[-1]["cascade"]) == ["apgd-ce", "apgd-t", "fab-t", "square"]
    # Paths are relative to the folder: the records read the same wherever the folder is.
    assert record["provenance"]["command"].startswith("advgrad eval --model model.pt ")


def test_every_size_runs_the_same_commands(script) -> None:
    """`make demo`, `make demo-record` (--full) and --quick are one loop at three sizes (the model, the
    points, the radii), not three loops: the same commands, in the same order, writing the same files; each
    runs AutoAttack; the record's commands are the ones its COMMANDS.md lists."""
    demo = script("demo")

    def shape(args: list[str]) -> list[str]:  # the command (and plot's kind) and every file it names
        return [*args[:2 if args[0] == "plot" else 1], *(a for a in args if a.endswith((".pt", ".json", ".npz",
                                                                                         ".png")))]

    quick, default, full = demo.steps("quick"), demo.steps(), demo.steps("full")
    assert [shape(a) for a in quick] == [shape(a) for a in default] == [shape(a) for a in full] and len(full) == 11
    for steps in (quick, default, full):
        assert "autoattack" in steps[4]
    record = (ROOT / "results" / "demo" / "COMMANDS.md").read_text()
    for args in full:
        assert f"    {shlex.join(['advgrad', *args])}    # " in record, args


@pytest.mark.slow
def test_a_failed_demo_leaves_the_previous_folder_as_it_was(tmp_path: Path, script, monkeypatch) -> None:
    demo = script("demo")
    out = tmp_path / "demo"
    out.mkdir()
    (out / "COMMANDS.md").write_text("the previous run\n")
    monkeypatch.setattr(demo, "steps", lambda size="demo": [["info", "--json"], ["eval", "--n", "0"]])
    with pytest.raises(subprocess.CalledProcessError):
        demo.run(out, size="quick")
    assert [p.name for p in out.iterdir()] == ["COMMANDS.md"]
    assert (out / "COMMANDS.md").read_text() == "the previous run\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # the staging folder is gone


def test_make_demo_writes_into_an_ignored_folder_and_demo_record_into_results() -> None:
    """`make demo` must not touch committed records: its folder is ignored by git, and only the named
    `make demo-record` command writes results/demo."""
    makefile = (ROOT / "Makefile").read_text()
    assert "scripts/demo.py --out $(DEMO)" in makefile and "DEMO   ?= out/demo" in makefile
    assert "demo-record:" in makefile and "scripts/demo.py --out results/demo --full" in makefile
    ignored = subprocess.run(["git", "check-ignore", "-q", "out/demo/eval.json"], cwd=ROOT)
    assert ignored.returncode == 0
