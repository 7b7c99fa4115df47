"""Progress: `eval` and `attack` draw a tqdm bar on stderr when stderr is a terminal (a real pty in a real
process here); off a terminal (a pipe, CliRunner) `eval`, `attack` and `train` write one plain line per
finished unit, at most one every ADVGRAD_PROGRESS_INTERVAL seconds plus the final one, and no line for a
run shorter than that; `advgrad --quiet` silences both. Ctrl-C while the bar runs is ``Aborted.``."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from helpers.cli import ENV, assert_usage_error, invoke, logreg_checkpoint, many_argv, run_many, split_many

from advgrad.cli import _progress
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


EVAL = ["eval", "--n", "200", "--eps", "0,0.1", "--steps", "2", "--queries", "5", "--block", "50"]
# One line off a terminal: "eval: 400/1000 images (40%) | status | 1 min 12 s elapsed, ~1 min 48 s left".
TIME = r"\d+ (?:s|min \d\d s|h \d\d min)"
LINE = re.compile(rf"^(\w+): (\d+)/(\d+) (\w+) \(\d+%\)(?: \| (.+))? \| {TIME} elapsed(?:, ~{TIME} left)?$")
ATTACK = ["attack", "--eps", "0.1", "--method", "pgd", "--steps", "2", "--n", "200", "--block", "50"]


@pytest.mark.slow
def test_a_bar_on_a_terminal_none_in_a_pipe(model: Path, tmp_path: Path) -> None:
    """eval and attack one after the other in one real process (run_many's program), its stderr on the
    terminal, then in another with stderr on a pipe, then in-process."""
    cases = [(tmp_path, [*args, "--model", str(model), "--out", str(tmp_path / f"{bar[:-2]}.json")])
             for args, bar in ((EVAL, "eval: "), (ATTACK, "attack: "))]
    quiet = (tmp_path, ["--quiet", *cases[0][1][:-1], str(tmp_path / "quiet.json")])
    argv = many_argv([*cases, quiet])
    code, stdout, terminal = on_terminal(argv[2:], tmp_path, launcher=tuple(argv[:2]))
    assert code == 0, terminal
    # The terminal turns "\n" into "\r\n" (onlcr); each command's part of it, as if it had run alone:
    *drawn, silent = split_many([*cases, quiet], stdout, terminal.replace("\r\n", "\n"))
    piped = run_many(cases, env={**ENV, _progress.INTERVAL_ENV: "0"})
    for (_, full), bar, tty, pipe in zip(cases, ("eval: ", "attack: "), drawn, piped, strict=True):
        assert tty.returncode == 0 and bar in tty.stderr and "image" in tty.stderr, tty.stderr
        assert "Traceback" not in tty.stderr and "elapsed" not in tty.stderr  # the bar, not the lines
        assert "wrote" in tty.stdout and bar not in tty.stdout  # the table on stdout is untouched
        # In a pipe: no bar (no carriage return redrawing a line), lines only.
        lines = pipe.stderr.splitlines()
        assert pipe.returncode == 0 and "\r" not in pipe.stderr and lines and all(map(LINE.match, lines)), lines
        assert pipe.stdout.splitlines()[0] == tty.stdout.splitlines()[0]
        in_process = invoke(*full, env={_progress.INTERVAL_ENV: "0"})  # CliRunner: no terminal either
        assert in_process.exit_code == 0 and all(map(LINE.match, in_process.stderr.splitlines())), in_process.stderr
        last = parsed(in_process.stderr)[-1]
        assert last[0] == bar[:-2] and last[1] == last[2]  # ends on the final count
    assert "attack: " not in drawn[0].stderr and "eval: " not in drawn[1].stderr  # each bar in its own part
    assert silent.returncode == 0 and silent.stderr == "" and "wrote" in silent.stdout  # --quiet: no bar


@pytest.mark.slow
def test_ctrl_c_while_the_bar_runs_is_aborted(model: Path, tmp_path: Path) -> None:
    slow = ["eval", "--model", str(model), "--steps", "50", "--restarts", "3", "--eps", "0,0.05,0.1,0.2,0.3",
            "--min-eps", "--out", str(tmp_path / "e.json")]
    code, stdout, terminal = on_terminal(slow, tmp_path, interrupt_when="eval: ")
    assert code == 130, terminal
    assert terminal.rstrip().endswith("Aborted.") and "Traceback" not in terminal and stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing half-written


def parsed(stderr: str) -> list[tuple[str, int, int, str, str | None]]:
    """Each progress line's (command, done, total, unit, status); every line of ``stderr`` must be one."""
    out = []
    for line in stderr.splitlines():
        m = LINE.match(line)
        assert m, f"not a progress line: {line!r}"
        out.append((m[1], int(m[2]), int(m[3]), m[4], m[5]))
    return out


def table_of(stdout: str) -> list[str]:
    """A command's table without its timings and the files it wrote: eval's rows (attack, ε, accuracy,
    seconds, fwd/pt, bwd/pt) lose their seconds, other rows their last column (train's seconds)."""
    def untimed(row: str) -> str:
        parts = row.split()
        if len(parts) == 6 and parts[2].endswith("%"):
            return " ".join(parts[:3] + parts[4:])
        return re.sub(r"\s+[\d.]+$", "", row)
    return [untimed(row) for row in stdout.splitlines() if not row.startswith("wrote ")]


# A clock that moves one second each time the report reads it: what a line waits for no longer depends on how
# fast the machine is (a real process, its report's clock replaced).
TICKING = """import itertools, types
import advgrad.cli._progress as _p
_tick = itertools.count()
_p.time = types.SimpleNamespace(monotonic=lambda: float(next(_tick)))
"""


@pytest.mark.slow
def test_lines_in_a_pipe_one_per_unit_rate_limited_none_when_quiet(model: Path, tmp_path: Path) -> None:
    """Real processes, stderr and stdout on pipes. With ADVGRAD_PROGRESS_INTERVAL=0 every call that counts
    something new is a line (eval: each pass at ε = 0, each batch of 2 at ε = 0.1; train: each epoch, with
    its loss and test accuracy); with an interval of 3 (on a clock that ticks once a read), lines at least
    3 s apart and so fewer, the final one last; `advgrad --quiet` and `train --quiet`: none, the results as
    they were."""
    def out(name: str) -> list[str]:
        return ["--out", str(tmp_path / name)]

    evaluate = [*EVAL, "--model", str(model), "--block", "2", "--no-sanity"]
    train = ["train", "--model", "logreg", "--epochs", "3", "--n-train", "300", "--batch-size", "100"]
    cases = [(tmp_path, [*evaluate, *out("e.json")]), (tmp_path, [*ATTACK, "--model", str(model), *out("a.json")]),
             (tmp_path, [*train, *out("t.pt")]), (tmp_path, ["--quiet", *evaluate, *out("q.json")]),
             (tmp_path, ["--quiet", *train, *out("q.pt")]), (tmp_path, [*train, "--quiet", *out("tq.pt")])]
    limited = subprocess.Popen([sys.executable, *many_argv([(tmp_path, [*evaluate, *out("r.json")])], TICKING)],
                               env={**ENV, _progress.INTERVAL_ENV: "3"}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    every, attack, trained, quiet_eval, quiet_train, train_quiet = run_many(cases, env={**ENV, _progress.INTERVAL_ENV:
                                                                                         "0"})
    stdout, stderr = limited.communicate(timeout=300)
    assert limited.returncode == 0, stderr
    (slow,) = split_many([(tmp_path, [])], stdout, stderr)
    # eval: 4 passes (fgsm, pgd at ε = 0 and 0.1) of 200 images; at ε = 0 nothing moves, so those passes
    # count whole at once, then the blocks of 2 of the correctly classified points, one line each
    lines = parsed(every.stderr)
    counts = [done for _, done, _, _, _ in lines]
    assert counts == sorted(set(counts)) and counts[0] >= 200 and counts[-1] == 800 and len(counts) > 6
    assert {(cmd, total, unit) for cmd, _, total, unit, _ in lines} == {("eval", 800, "images")}
    assert table_of(every.stdout) == table_of(slow.stdout) == table_of(quiet_eval.stdout)  # nor the results
    few = parsed(slow.stderr)
    seconds = [int(m[1]) for m in map(re.compile(r"\| (\d+) s elapsed").search, slow.stderr.splitlines()) if m]
    assert len(seconds) == len(few) and all(b - a >= 3 for a, b in zip(seconds, seconds[1:-1])), slow.stderr
    assert 0 < len(few) < len(lines) and few[-1][1:3] == (800, 800)  # the final count ends a report that began
    assert {done for _, done, _, _, _ in few} <= set(counts)
    assert [line[1:4] for line in parsed(attack.stderr)][-1] == (200, 200, "images")
    epochs = parsed(trained.stderr)
    assert [(cmd, done, total, unit) for cmd, done, total, unit, _ in epochs] == [("train", k, 3, "epochs")
                                                                               for k in (1, 2, 3)]
    table = [row.split() for row in trained.stdout.splitlines()[2:5]]  # the epoch rows: epoch, loss, .., test acc
    assert [status for *_, status in epochs] == [f"loss {row[1]}, test acc {row[3]}" for row in table]
    assert quiet_eval.stderr == quiet_train.stderr == train_quiet.stderr == ""
    assert table_of(quiet_train.stdout) == table_of(trained.stdout)  # `advgrad --quiet`: the table stays
    assert train_quiet.stdout == ""


def test_progress_lines_clock(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The line rule on a fake clock: the first line no sooner than one interval after the start, then at most
    one per interval, a count that did not move writes nothing, the final count always ends a report that
    began, and a run shorter than the interval writes nothing at all. The status shows from the call after
    it; the estimate counts only this run's units (``initial``: a resumed run's)."""
    now = [100.0]
    monkeypatch.setattr(_progress.time, "monotonic", lambda: now[0])
    bar = _progress.Reporter("eval", "image", "lines", every=10)
    for t in range(1, 36):
        now[0] = 100.0 + t
        if t == 25:
            bar.status("apgd-t, robust 71.3 %")
        bar(t, 35)
        bar(t, 35)  # nothing new
    assert capsys.readouterr().err.splitlines() == [
        "eval: 10/35 images (28%) | 10 s elapsed, ~25 s left",
        "eval: 20/35 images (57%) | 20 s elapsed, ~15 s left",
        "eval: 30/35 images (85%) | apgd-t, robust 71.3 % | 30 s elapsed, ~5 s left",
        "eval: 35/35 images (100%) | apgd-t, robust 71.3 % | 35 s elapsed"]
    short = _progress.Reporter("eval", "image", "lines", every=10)
    for t in range(1, 10):
        now[0] += 1
        short(t, 9)
    resumed = _progress.Reporter("train", "epoch", "lines", every=0, initial=6)
    now[0] += 200
    resumed(7, 8)
    assert capsys.readouterr().err.splitlines() == ["train: 7/8 epochs (87%) | 3 min 20 s elapsed, ~3 min 20 s left"]
    off = _progress.Reporter("eval", "image", "off", every=0)
    off(1, 2)
    off.status("x")
    assert capsys.readouterr().err == ""
    assert [_progress.duration(s) for s in (0.4, 59.6, 61, 3599, 7325)] == ["0 s", "1 min 00 s", "1 min 01 s",
                                                                          "59 min 59 s", "2 h 02 min"]


@pytest.mark.parametrize("value", ["abc", "-1", "inf", "nan"])
def test_a_bad_interval_is_one_usage_line(model: Path, tmp_path: Path, value: str) -> None:
    result = invoke(*EVAL, "--model", str(model), "--out", str(tmp_path / "e.json"),
                    env={_progress.INTERVAL_ENV: value})
    assert_usage_error(result.exit_code, result.stderr, f"{_progress.INTERVAL_ENV}={value!r}", "seconds ≥ 0")
    assert not (tmp_path / "e.json").exists()
