"""The benchmark scripts run end to end on tiny inputs and write their tables (the figures themselves are
measured by hand on a quiet machine and committed under results/)."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_bench_script_runs_and_writes_its_table(tmp_path, script) -> None:
    bench = script("bench_attacks")
    out = tmp_path / "bench.md"
    assert bench.main(["--models", "logreg", "--n", "20", "--steps", "2", "--repeats", "1", "--out", str(out)]) == 0
    text = out.read_text()
    assert "python scripts/bench_attacks.py --models logreg" in text
    assert all(who in text for who in ("| advgrad |", "| torchattacks |", "| foolbox |", "| floor |"))


def test_chunk_size_bench_script_runs_and_writes_its_table(tmp_path, script) -> None:
    bench = script("bench_chunk_size")
    out = tmp_path / "chunks.md"
    assert bench.main(["--models", "logreg,cnn-small", "--n", "40", "--repeats", "1", "--out", str(out)]) == 0
    text = out.read_text()
    assert "python scripts/bench_chunk_size.py --models logreg,cnn-small" in text
    assert "**cnn-small**, 40 samples" in text and "| 16 | 32 | one piece * |" in text
    # Every chunk size gives the one-piece gradient bit for bit (no mark) or to rounding (≠ d, d ≤ 1e-5
    # relative: fewer rows may get another matrix-multiply kernel on some CPUs).
    marks = re.findall(r"≠ ([0-9.e+-]+)", text.split("relative to the largest entry")[1])
    assert all(float(d) <= 1e-5 for d in marks), marks


@pytest.mark.slow
def test_autoattack_bench_script_runs_and_writes_its_table(tmp_path, script) -> None:
    """Both AutoAttacks on 12 digits at ε = 0.3 (APGD-CE breaks them all, so the run is short) with a
    cnn-small trained one epoch: the table, the command, the machine and 0 disagreements are written."""
    pytest.importorskip("pyautoattack")
    bench = script("bench_autoattack")
    out = tmp_path / "aa.md"
    argv = ["--n", "12", "--eps", "0.3", "--epochs", "1", "--repeats", "2", "--threads", "1", "--out", str(out)]
    assert bench.main(argv) == 0
    text = out.read_text()
    assert "python scripts/bench_autoattack.py --n 12 --eps 0.3" in text
    assert "| reference |" in text and "| advgrad |" in text and "Ratio advgrad / reference" in text
    assert "Robust flags agree: 0 disagreements out of 12 points." in text
    assert re.search(r"Machine: .+, \d+ CPUs, torch .+ with 1 threads", text)


@pytest.mark.slow
def test_autoattack_bench_times_the_command_too(tmp_path, script, trained_small_path) -> None:
    """``--cli``: ``advgrad attack --method autoattack`` on the same 12 digits, timed beside the library, with
    its own ratio and its flags compared with the reference's (0 differ)."""
    pytest.importorskip("pyautoattack")
    out = tmp_path / "aa.md"
    argv = ["--model", str(trained_small_path), "--n", "12", "--eps", "0.3", "--repeats", "1", "--threads", "1",
            "--cli", "--out", str(out)]
    assert script("bench_autoattack").main(argv) == 0
    text = out.read_text()
    assert "| advgrad attack |" in text and "`advgrad attack --method autoattack` (the command" in text
    assert "0 of 12 flags differ from the reference's" in text
