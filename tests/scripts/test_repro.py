"""The reproduction scripts run end to end with tiny settings (their full runs write results/)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.mark.slow
def test_bench_adv_train_script_runs(tmp_path: Path, script) -> None:
    threads = torch.get_num_threads()
    try:
        best = script("bench_adv_train").main(["--n", "256", "--repeats", "1", "--out", str(tmp_path / "b.md")])
    finally:
        torch.set_num_threads(threads)
    assert set(best) == {"clean", "fgsm", "fgsm-rs", "pgd-3", "pgd-7", "trades-7"}
    assert "× clean" in (tmp_path / "b.md").read_text()


def test_goodfellow_script_runs(tmp_path: Path, script) -> None:
    threads = torch.get_num_threads()
    try:
        rows = script("repro_goodfellow").main(["--epochs", "1", "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    assert len(rows) == 4 and rows[0]["adv_error"] > 0.8  # a linear model falls to FGSM at ε = 0.25
    assert (tmp_path / "README.md").is_file()
