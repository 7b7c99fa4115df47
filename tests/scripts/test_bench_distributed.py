"""The scaling and device benchmarks run end to end on tiny inputs on the CPU (one process and torchrun with
two, gloo) and write their tables; their figures are measured by hand on a quiet machine or a GPU."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.slow, pytest.mark.heavy]


def test_bench_scaling_runs_one_and_two_processes(tmp_path, script) -> None:
    bench = script("bench_scaling")
    out = tmp_path / "scaling.md"
    assert bench.main(["--configs", "1x1,2x1", "--n-train", "128", "--n-eval", "40", "--steps", "1",
                       "--repeats", "1", "--out", str(out)]) == 0
    text = out.read_text()
    assert "python scripts/bench_scaling.py --configs 1x1,2x1 --n-train 128" in text and "Machine: " in text
    rows = [line for line in text.splitlines() if line.startswith(("| 1x1 |", "| 2x1 |"))]
    assert len(rows) == 2 and rows[0].count("1.00×") == 2


def test_bench_gpu_runs_on_the_cpu_with_tiny_sizes(tmp_path, script) -> None:
    bench = script("bench_gpu")
    out = tmp_path / "gpu.md"
    assert bench.main(["--device", "cpu", "--n", "small", "--model", "cnn-small", "--repeats", "1",
                       "--out", str(out)]) == 0
    text = out.read_text()
    assert "python scripts/bench_gpu.py --device cpu --n small --model cnn-small" in text
    assert all(f"| {who} |" in text for who in ("advgrad", "torchattacks", "floor"))
    for method in ("FGSM-RS", "PGD-7"):
        assert all(f"| {method} | {who} |" in text for who in ("advgrad", "advgrad amp + channels-last",
                                                                 "plain PyTorch"))
    assert "| 1 |" in text and "| 2 |" in text and "1.00×" in text
