"""The demo runs end to end through the real CLI (its --quick mode, in a temporary folder)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_quick_runs_the_whole_loop(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"), "--out", str(out), "--quick"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for name in ("model.pt", "model.json", "attack_fgsm.json", "attack_pgd.json", "examples_pgd.npz", "eval.json",
                 "eval.csv", "training.png", "examples_fgsm.png", "examples_pgd.png", "accuracy_vs_eps.png",
                 "min_eps.png", "landscape.png", "COMMANDS.md"):
        assert (out / name).is_file(), name
    commands = (out / "COMMANDS.md").read_text()
    assert commands.count("    advgrad ") == 10 and "advgrad eval" in commands and "advgrad attack" in commands
    record = json.loads((out / "eval.json").read_text())
    assert record["n"] == 40 and len(record["sanity"]) == 7
