"""scripts/black_box_record.py runs end to end on a tiny input (a checkpoint trained in the test session,
4 digits, 60 queries) and writes its table with the command (the record itself is run once, by hand)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.slow, pytest.mark.heavy]  # a record script end to end: tens of seconds


def test_black_box_record_runs_and_writes_its_table(tmp_path: Path, trained_small_path: Path,
                                                    script: Callable[[str], ModuleType]) -> None:
    pytest.importorskip("onnxruntime")
    shutil.copy(trained_small_path, tmp_path / "m.pt")
    threads = torch.get_num_threads()
    try:
        rows = script("black_box_record").main(["--models", str(tmp_path), "--names", "m", "--n", "4",
                                                "--queries", "60", "--out", str(tmp_path / "out")])
    finally:
        torch.set_num_threads(threads)
    text = (tmp_path / "out" / "README.md").read_text()
    assert "python scripts/black_box_record.py --models" in text and "labels equal" in text
    assert {r["method"] for r in rows} == {"fmn", "apgd-ce", "rays", "hopskipjump", "boundary", "square", "spsa"}
    for r in rows:  # the black-box rows spent queries within the budget; the white-box rows none
        assert (r["queries_mean"] is None) == r["on"].endswith(".pt")
        assert r["queries_mean"] is None or 0 < r["queries_mean"] <= 61
        assert f"`{r['command'].split(' (')[0]}" in text
    record = json.loads((tmp_path / "out" / "black_box.json").read_text())
    assert record["agreement"]["m"]["labels_equal"] and record["agreement"]["m"]["max_abs_logit_gap"] < 1e-4
