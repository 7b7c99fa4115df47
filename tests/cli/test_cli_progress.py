"""Progress bars: `eval` and `attack` draw a tqdm bar on stderr when stderr is a terminal (a real pty in a
real process here), never into a pipe or under CliRunner; Ctrl-C while the bar runs is ``Aborted.``."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from helpers.cli import ENV, invoke, logreg_checkpoint, many_argv, run_many, split_many

from advgrad.data.builtin import Dataset


def on_terminal(args: list[str], cwd: Path, interrupt_when: str | None = None,
                timeout: float = 240, launcher: tuple[str, ...] = ("-m", "advgrad")) -> tuple[int, str, str]:
    """Run ``python -m advgrad ARGS`` (``python LAUNCHER ARGS``) with stderr on a pseudo-terminal (80
    columns) and stdout on a pipe; with ``interrupt_when``, send SIGINT once that text has appeared on the
    terminal."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    # TQDM_DELAY=0: the bar appears at once, however fast this machine finishes the run (a fast CI
    # machine finished before the 0.3 s delay and drew nothing).
    proc = subprocess.Popen([sys.executable, *launcher, *args], cwd=cwd, env={**ENV, "TQDM_DELAY": "0"},
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    seen, sent, deadline = b"", False, time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the process closed its end
                break
            if not chunk:
                break
            seen += chunk
        if interrupt_when and not sent and interrupt_when.encode() in seen:
            proc.send_signal(signal.SIGINT)
            sent = True
        if proc.poll() is not None and not ready:
            break
    os.close(master)
    stdout = proc.stdout.read().decode() if proc.stdout else ""
    code = proc.wait(timeout=60)
    return code, stdout, seen.decode(errors="replace")


@pytest.fixture(scope="module")
def model(mnist5k: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return logreg_checkpoint(tmp_path_factory.mktemp("progress") / "m.pt", mnist5k)


EVAL = ["eval", "--n", "200", "--eps", "0,0.1", "--steps", "2", "--queries", "5", "--batch-size", "50"]
ATTACK = ["attack", "--eps", "0.1", "--method", "pgd", "--steps", "2", "--n", "200", "--batch-size", "50"]


@pytest.mark.slow
def test_a_bar_on_a_terminal_none_in_a_pipe(model: Path, tmp_path: Path) -> None:
    """eval and attack one after the other in one real process (run_many's program), its stderr on the
    terminal, then in another with stderr on a pipe, then in-process."""
    cases = [(tmp_path, [*args, "--model", str(model), "--out", str(tmp_path / f"{bar[:-2]}.json")])
             for args, bar in ((EVAL, "eval: "), (ATTACK, "attack: "))]
    argv = many_argv(cases)
    code, stdout, terminal = on_terminal(argv[2:], tmp_path, launcher=tuple(argv[:2]))
    assert code == 0, terminal
    # The terminal turns "\n" into "\r\n" (onlcr); each command's part of it, as if it had run alone:
    drawn = split_many(cases, stdout, terminal.replace("\r\n", "\n"))
    piped = run_many(cases)
    for (_, full), bar, tty, pipe in zip(cases, ("eval: ", "attack: "), drawn, piped, strict=True):
        assert tty.returncode == 0 and bar in tty.stderr and "image" in tty.stderr, tty.stderr
        assert "Traceback" not in tty.stderr
        assert "wrote" in tty.stdout and bar not in tty.stdout  # the table on stdout is untouched
        assert pipe.returncode == 0 and pipe.stderr == "", pipe.stderr
        assert pipe.stdout.splitlines()[0] == tty.stdout.splitlines()[0]
        in_process = invoke(*full)
        assert in_process.exit_code == 0 and in_process.stderr == ""
    assert "attack: " not in drawn[0].stderr and "eval: " not in drawn[1].stderr  # each bar in its own part


@pytest.mark.slow
def test_ctrl_c_while_the_bar_runs_is_aborted(model: Path, tmp_path: Path) -> None:
    slow = ["eval", "--model", str(model), "--steps", "50", "--restarts", "3", "--eps", "0,0.05,0.1,0.2,0.3",
            "--min-eps", "--out", str(tmp_path / "e.json")]
    code, stdout, terminal = on_terminal(slow, tmp_path, interrupt_when="eval: ")
    assert code == 130, terminal
    assert terminal.rstrip().endswith("Aborted.") and "Traceback" not in terminal and stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing half-written
