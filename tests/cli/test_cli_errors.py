"""How a command ends when something goes wrong: an unexpected exception is one line naming a saved
traceback (exit 1), Ctrl-C is ``Aborted.`` (exit 130), an EOFError is a bug and not Ctrl-D, usage errors
stay one line with exit 2. In-process through CliRunner and in real processes (real SIGINT)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import click
import pytest
from helpers.cli import ENV, assert_usage_error, invoke, run_python

import advgrad.cli.info as info_cmd

INTERNAL = re.compile(r"^Error: internal error: (\w+)(?:: (.*))? \(traceback saved in (.+)\)$")


def internal_error(code: int, stderr: str) -> tuple[str, str | None, Path]:
    """Exit 1 and one line naming the exception and its traceback file; returns (type, message, file)."""
    assert code == 1, (code, stderr)
    lines = stderr.strip("\n").splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    match = INTERNAL.match(lines[0])
    assert match, lines[0]
    log = Path(match.group(3))
    text = log.read_text()
    assert text.startswith("command: advgrad ") and "Traceback (most recent call last)" in text
    assert not list(log.parent.glob(".*.tmp"))  # written atomically: no temporary file left
    return match.group(1), match.group(2), log


@pytest.fixture
def temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tempfile.gettempdir() → tmp_path, where the traceback files go."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def raising(exc: BaseException):  # type: ignore[no-untyped-def]
    def fail(*args: object, **kwargs: object) -> None:
        raise exc
    return fail


def test_an_unexpected_exception_is_one_line_and_a_traceback_file(temp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(info_cmd, "open_checkpoint", raising(RuntimeError("boom\n  on two lines")))
    result = invoke("info", "--model", "x.pt")
    kind, message, log = internal_error(result.exit_code, result.stderr)
    assert (kind, message) == ("RuntimeError", "boom on two lines") and result.stdout == ""
    assert log.parent == temp / "advgrad" and log.name.startswith("traceback-")
    text = log.read_text()
    assert "command: advgrad info --model x.pt" in text and "RuntimeError: boom\n  on two lines" in text
    assert "in fail" in text  # the frame that raised


def test_eof_error_is_a_bug_not_ctrl_d(temp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """click reports any EOFError as "Aborted." (as if Ctrl-D were typed at a prompt); outside a prompt
    it is an internal error."""
    monkeypatch.setattr(info_cmd, "open_checkpoint", raising(EOFError()))
    result = invoke("info")
    kind, message, _ = internal_error(result.exit_code, result.stderr)
    assert (kind, message) == ("EOFError", None) and "Aborted" not in result.output


def test_end_of_input_at_a_prompt_and_ctrl_c_abort(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(info_cmd, "open_checkpoint", lambda *a, **k: click.prompt("model"))
    result = invoke("info", input="")
    assert (result.exit_code, result.stderr) == (130, "Aborted.\n")
    monkeypatch.setattr(info_cmd, "open_checkpoint", raising(KeyboardInterrupt()))
    result = invoke("info")
    assert result.exit_code == 130 and result.stderr.strip() == "Aborted." and "Traceback" not in result.stderr


@pytest.mark.parametrize("exc,line", [(ValueError("--x 3: expected 1 or 2"), "Error: --x 3: expected 1 or 2"),
                                      (FileNotFoundError("no model at 'm.pt'"), "Error: no model at 'm.pt'")])
def test_usage_errors_stay_one_line_with_exit_2(monkeypatch: pytest.MonkeyPatch, exc: Exception, line: str) -> None:
    monkeypatch.setattr(info_cmd, "open_checkpoint", raising(exc))
    result = invoke("info")
    assert assert_usage_error(result.exit_code, result.stderr) == line


def test_a_traceback_that_cannot_be_saved_still_ends_in_one_line(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "file"))  # a "folder" that is a file
    monkeypatch.setattr(info_cmd, "open_checkpoint", raising(RuntimeError("boom")))
    result = invoke("info")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("Error: internal error: RuntimeError: boom (traceback not saved: ")


# --- real processes ----------------------------------------------------------------------------------

def patched(replacement: str) -> str:
    """Python code: make `advgrad info` run ``replacement`` (an expression), then run the CLI."""
    return ("import os, signal, sys, time, click\nimport advgrad.cli.info as m\n"
            f"def fake(*a, **k):\n    return {replacement}\nm.open_checkpoint = fake\n"
            "from advgrad.cli import main\nmain(prog_name='advgrad')\n")


@pytest.mark.slow
def test_real_process_internal_error_and_eof(tmp_path: Path) -> None:
    env = {**ENV, "TMPDIR": str(tmp_path)}
    proc = run_python(patched("1 / 0"), ["info"], env=env)
    kind, message, log = internal_error(proc.returncode, proc.stderr)
    assert (kind, message) == ("ZeroDivisionError", "division by zero") and log.parent == tmp_path / "advgrad"
    proc = run_python(patched("(_ for _ in ()).throw(EOFError('stdin closed'))"), ["info"], env=env)
    assert internal_error(proc.returncode, proc.stderr)[:2] == ("EOFError", "stdin closed")


def test_real_sigint_while_a_command_runs_is_aborted(tmp_path: Path) -> None:
    proc = run_python(patched("os.kill(os.getpid(), signal.SIGINT) or time.sleep(60)"), ["info"])
    assert proc.returncode == 130 and proc.stderr.strip() == "Aborted.", proc.stderr


# A meta path finder that raises KeyboardInterrupt when MODULE is imported: Ctrl-C at that moment.
CTRL_C_AT_IMPORT = """import sys
class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            raise KeyboardInterrupt
        return None
sys.meta_path.insert(0, CtrlC())
import runpy
sys.argv[0] = "advgrad"
runpy.run_module("advgrad", run_name="__main__", alter_sys=True)
"""


def test_ctrl_c_while_a_command_module_is_imported_is_aborted() -> None:
    proc = run_python(CTRL_C_AT_IMPORT.format(module="advgrad.cli.train"), ["train", "--help"])
    assert proc.returncode == 130 and proc.stderr.strip() == "Aborted." and proc.stdout == "", proc.stderr


def test_ctrl_c_while_torch_is_imported_is_aborted(tmp_path: Path) -> None:
    proc = run_python(CTRL_C_AT_IMPORT.format(module="torch"), ["info", "--model", str(tmp_path / "m.pt")])
    assert proc.returncode == 130 and proc.stderr.strip() == "Aborted." and proc.stdout == "", proc.stderr
