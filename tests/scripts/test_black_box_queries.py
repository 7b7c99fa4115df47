"""scripts/black_box_queries.py --quick runs end to end on a tiny input (a checkpoint trained in the test
session, 3 digits, 400 and 800 queries): every implementation has its row at every budget, every one spent at
most its budget on every point (as counted by the wrapper on the model), and the table, JSON and figure are
written (the record itself is run once, by hand)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.slow, pytest.mark.heavy]  # a record script end to end: tens of seconds


def test_quick_run_has_every_row_within_its_budget(tmp_path: Path, trained_small_path: Path,
                                                   script: Callable[[str], ModuleType]) -> None:
    for peer in ("foolbox", "art", "torchattacks", "matplotlib"):
        pytest.importorskip(peer)
    module = script("black_box_queries")
    threads = torch.get_num_threads()
    try:
        with torch.random.fork_rng(devices=[]):
            state = module.np.random.get_state()
            try:
                rows = module.main(["--quick", "--models", str(trained_small_path), "--out", str(tmp_path)])
            finally:
                module.np.random.set_state(state)
    finally:
        torch.set_num_threads(threads)
    expected = {(i.label, i.norm, b) for i in module.implementations() for b in (400, 800)}
    assert {(r["implementation"], r["norm"], r["budget"]) for r in rows} == expected
    assert len(rows) == len(expected) == 28
    for r in rows:
        assert r["within_budget"] and 0 < r["queries_max"] <= r["budget"], r
        assert 0.0 <= r["success"] <= 1.0
        assert (r["median_distance"] is None) == r["implementation"].endswith(("SPSA", "Square")), r
    text = (tmp_path / "queries.md").read_text()
    assert "python scripts/black_box_queries.py --quick" in text and "**over**" not in text
    assert text.count("| implementation | budget |") == 2  # one model × (L∞, L2)
    assert json.loads((tmp_path / "queries.json").read_text())["n"] == 3
    assert (tmp_path / "success_vs_queries.png").stat().st_size > 0
