"""The README's and the documentation's commands are real: every `advgrad ...` line of their shell blocks parses with the CLI's own
options (each option exists and each value passes its type), and its Python quick start runs."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import click
import pytest

from advgrad.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PAGES = [README] + [p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").rglob("*.md"))]


def _blocks(lang: str, texts: list[str] | None = None) -> list[str]:
    return [b for text in (texts or [README]) for b in re.findall(rf"```{lang}\n(.*?)```", text, re.S)]


def _commands(texts: list[str] | None = None) -> list[list[str]]:
    out = []
    for block in _blocks("bash", texts):
        for line in block.replace("\\\n", " ").splitlines():  # a continued line is one command
            line = line.split("  #")[0].strip()
            if line.startswith("advgrad "):
                out.append(shlex.split(line)[1:])
            elif line.startswith("torchrun ") and " -m advgrad " in line:
                out.append(shlex.split(line.split(" -m advgrad ", 1)[1]))
    return out


def test_the_readme_shows_every_command() -> None:
    shown = {args[0] for args in _commands()}
    assert len(_commands()) >= 6
    for name in ("train", "attack", "eval", "transfer", "plot", "grad", "info"):
        assert f"`advgrad {name}" in README, name
    assert shown <= set(COMMANDS)


@pytest.mark.parametrize("args", _commands(PAGES), ids=lambda a: " ".join(a)[:60])
def test_each_command_parses(args: list[str]) -> None:
    """Parse without running: click converts every value with the command's own types and refuses an
    unknown option (a usage error would raise here)."""
    command: click.Command | None = main
    while isinstance(command, click.Group):  # plot is a group of figure commands
        command = command.get_command(click.Context(command), args[0])
        assert command is not None, args[0]
        name, args = args[0], args[1:]
    assert command is not None
    with command.make_context(name, list(args), resilient_parsing=False) as ctx:
        assert ctx.params


@pytest.mark.slow
def test_the_python_quick_start_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     trained_small_path: Path) -> None:
    """The quick start's Python block, with out/model.pt a small trained checkpoint of the session."""
    block = next(b for b in _blocks("python") if "advgrad.load_model" in b)
    (tmp_path / "out").mkdir()
    shutil.copy(trained_small_path, tmp_path / "out" / "model.pt")
    monkeypatch.chdir(tmp_path)
    block = block.replace("norm=2)", "norm=2, steps=10)")  # the same call, fewer steps for the test
    exec(compile(block, "README.md", "exec"), {})
