"""What a newcomer meets first: a folder given where a model goes says it is a folder, what the option takes
and which model files the folder holds; README's opening names every command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers.cli import ROOT, assert_usage_error, invoke

from advgrad.cli import COMMANDS


def model_commands(model: str, tmp: Path) -> dict[str, list[str]]:
    return {
        "info": ["info", "--model", model],
        "attack": ["attack", "--model", model, "--eps", "0.1", "--out", str(tmp / "a.json")],
        "eval": ["eval", "--model", model, "--out", str(tmp / "e.json")],
        "grad": ["grad", "--model", model],
        "transfer": ["transfer", "--examples", str(tmp / "x.npz"), "--model", model, "--out", str(tmp / "t.json")],
        "landscape": ["plot", "landscape", model, "--out", str(tmp / "l.png")],
    }


@pytest.mark.parametrize("command", ["info", "attack", "eval", "grad", "transfer", "landscape"])
def test_a_folder_as_the_model_says_what_is_expected_and_what_it_holds(tmp_path: Path, command: str) -> None:
    empty, runs = tmp_path / "empty", tmp_path / "runs"
    empty.mkdir()
    runs.mkdir()
    for name in ("model.best.pt", "model.pt", "model.json", "notes.txt"):
        (runs / name).write_bytes(b"")
    (tmp_path / "x.npz").write_bytes(b"")
    name = "MODEL" if command == "landscape" else "--model"
    result = invoke(*model_commands(str(empty), tmp_path)[command])
    line = assert_usage_error(result.exit_code, result.stderr, f"{name} {str(empty)!r} is a directory",
                              "an advgrad checkpoint", "TorchScript", "torch.export", "path/file.py:factory",
                              "torchvision:NAME")
    assert "holds" not in line and "no model at" not in line
    result = invoke(*model_commands(str(runs), tmp_path)[command])
    assert_usage_error(result.exit_code, result.stderr, "it holds model.pt, model.best.pt: "
                                                        f"e.g. {name} {(runs / 'model.pt').as_posix()}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "runs", "x.npz"]  # nothing written


def test_readme_opening_names_every_command() -> None:
    """The paragraph before the first heading lists `advgrad CMD` for every command the group has."""
    opening = (ROOT / "README.md").read_text().split("\n## ", 1)[0]
    named = set(re.findall(r"`advgrad (\w+)`", opening))
    assert named == set(COMMANDS), sorted(set(COMMANDS) ^ named)
