"""Helpers shared by the CLI tests: small checkpoints with chosen metadata, the CLI in-process and as a
real process, and what every failing command must look like."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from click.testing import CliRunner, Result

from advgrad.cli import main
from advgrad.data.builtin import Dataset
from advgrad.models.checkpoint import save_checkpoint
from advgrad.models.zoo import build_for

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}


def logreg_checkpoint(path: Path, data: Dataset, **dataset_meta: Any) -> Path:
    """An untrained (seeded) logreg checkpoint for ``data``; ``dataset_meta`` overrides entries of the
    recorded dataset block (what a checkpoint says it was trained on)."""
    model, model_meta = build_for("logreg", data, seed=0)
    save_checkpoint(path, model.eval(), {"model": model_meta, "dataset": {**data.meta(), **dataset_meta}})
    return path


def fake_dataset(data: Dataset, *, channels: int = 1, size: int = 28, classes: int = 10, name: str | None = None,
                 n: int = 8) -> Dataset:
    """A data set of another shape or class count that calls itself ``name`` (default: data's name)."""
    x = torch.zeros(n, channels, size, size)
    y = torch.arange(n) % classes
    return Dataset(name or data.name, x, y, x, y, tuple(str(c) for c in range(classes)),
                   data.mean * channels, data.std * channels)


def invoke(*args: str, **kwargs: Any) -> Result:
    return CliRunner().invoke(main, list(args), **kwargs)


def run(args: Sequence[str], cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m advgrad ARGS`` in a real process (PYTHONPATH = this checkout)."""
    return subprocess.run([sys.executable, "-m", "advgrad", *args], cwd=cwd, env=env or ENV, capture_output=True,
                          text=True, timeout=timeout)


def run_together(commands: Sequence[tuple[Sequence[str], Path, dict[str, str]]],
                 timeout: float = 300) -> list[subprocess.CompletedProcess[str]]:
    """Each (argv, cwd, env) as a real process, all at once, waited for together: independent launches share
    the CPU instead of waiting in turn. Every process runs on one thread (OMP_NUM_THREADS=1 in ENV), so what
    it computes does not depend on what runs beside it. Output goes through files, not pipes (a full pipe
    would stall a process nobody reads yet)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        started = []
        for k, (argv, cwd, env) in enumerate(commands):
            out, err = Path(tmp) / f"{k}.out", Path(tmp) / f"{k}.err"
            with out.open("w") as o, err.open("w") as e:
                started.append((subprocess.Popen(list(argv), cwd=cwd, env=env, stdout=o, stderr=e, text=True),
                                out, err))
        done = []
        for proc, out, err in started:
            proc.wait(timeout=timeout)
            done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out.read_text(), err.read_text()))
        return done


def run_python(code: str, args: Sequence[str], cwd: Path | None = None, env: dict[str, str] | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -c CODE ARGS`` in a real process: CODE patches something, then runs advgrad's main."""
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env or ENV, capture_output=True,
                          text=True, timeout=timeout)


# One real process running several command lines in turn, each in its own folder: what `python -m advgrad`
# does (advgrad's main, which ends in sys.exit), caught per command; a line starting with SEP on stdout and
# stderr marks where each command's output begins.
SEP = "\x1e advgrad-case"
MANY = """import json, os, sys
from advgrad.cli import main
for folder, args in json.loads(sys.argv[1]):
    os.chdir(folder)
    print(%(sep)r, file=sys.stdout, flush=True)
    print(%(sep)r, file=sys.stderr, flush=True)
    try:
        main(args=args, prog_name="advgrad")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    sys.stdout.flush()
    sys.stderr.flush()
    print(%(sep)r + " exit " + str(code), file=sys.stderr, flush=True)
"""


def many_argv(cases: Sequence[tuple[Path, Sequence[str]]], prelude: str = "") -> list[str]:
    """The arguments after ``python`` that run every (folder, ARGS) of ``cases`` in one process (MANY)."""
    payload = json.dumps([[str(folder), list(args)] for folder, args in cases])
    return ["-c", prelude + MANY % {"sep": SEP}, payload]


def split_many(cases: Sequence[tuple[Path, Sequence[str]]], stdout: str,
               stderr: str) -> list[subprocess.CompletedProcess[str]]:
    """Each command's exit status, stdout and stderr from the output of ``many_argv``'s process."""
    outs = stdout.split(SEP + "\n")[1:]
    errs = stderr.split(SEP + "\n")[1:]
    assert len(outs) == len(errs) == len(cases), stderr[-3000:]
    results = []
    for (_, args), out, err in zip(cases, outs, errs):
        err, _, status = err.rpartition(SEP + " exit ")
        results.append(subprocess.CompletedProcess(list(args), int(status), out, err))
    return results


def run_many(cases: Sequence[tuple[Path, Sequence[str]]], prelude: str = "", env: dict[str, str] | None = None,
             timeout: float = 300) -> list[subprocess.CompletedProcess[str]]:
    """``python -m advgrad ARGS`` for every (folder, ARGS) of ``cases`` in ONE real process (after the
    code ``prelude``, which may patch something), one after the other: a process start per command costs
    seconds, and a refusal or a damaged input needs no process of its own. Each command's exit status,
    stdout and stderr, as if it had run alone."""
    proc = subprocess.run([sys.executable, *many_argv(cases, prelude)], env=env or ENV, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return split_many(cases, proc.stdout, proc.stderr)


def assert_usage_error(code: int, stderr: str, *fragments: str) -> str:
    """Exit 2, stderr exactly one line ``Error: ...`` holding every fragment; returns that line."""
    lines = stderr.strip("\n").splitlines()
    assert code == 2, (code, stderr)
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def tree(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` with its content (to show that nothing was written or changed)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def stopped_run(args: Sequence[str]) -> Result:
    """``advgrad train ARGS`` stopped by Ctrl-C right after its first epoch was saved (what an interrupted
    run leaves for ``--resume``): the real command, with ``fit``'s checkpoint callback interrupting."""
    import pytest

    import advgrad.training.train

    fit = advgrad.training.train.fit

    def stop_after_one_epoch(*a: Any, on_checkpoint: Any, **k: Any) -> Any:
        def save_then_stop(state: dict[str, Any]) -> None:
            on_checkpoint(state)
            raise KeyboardInterrupt

        return fit(*a, on_checkpoint=save_then_stop, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(advgrad.training.train, "fit", stop_after_one_epoch)
        return invoke("train", *args)
