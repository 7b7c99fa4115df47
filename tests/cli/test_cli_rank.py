"""``advgrad rank``: attacks under one budget of passes, scored by AttackBench's optimality — the record, the
CSV, the figure, the budget kept, the scores recomputed from the record's own distances, bad input."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from helpers.cli import invoke

from advgrad.evaluate.optimality import optimality


def test_rank_writes_record_csv_figure_sorted_by_optimality(trained_small_path: Path, tmp_path: Path) -> None:
    out, png = tmp_path / "r.json", tmp_path / "r.png"
    result = invoke("-q", "rank", "--model", str(trained_small_path), "--n", "12", "--attacks", "pgd,fmn",
                    "--norm", "inf", "--budget", "120", "--out", str(out), "--plot", str(png))
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    attacks = record["attacks"]
    assert set(attacks) == {"pgd", "fmn", "ensemble"} and list(attacks)[-1] == "ensemble"
    scores = [attacks[a]["optimality"] for a in list(attacks)[:-1]]
    assert scores == sorted(scores, reverse=True)
    # the scores are AttackBench's formula on the record's own distances
    inf = math.inf
    values = {a: torch.tensor([inf if v is None else v for v in attacks[a]["values"]], dtype=torch.float64)
              for a in ("pgd", "fmn")}
    again = optimality(values)
    assert all(math.isclose(again.optimality[a], attacks[a]["optimality"]) for a in values)
    for name in ("pgd", "fmn"):  # the budget: kept, and the linear attack (fmn) uses most of it
        a = attacks[name]
        assert a["within_budget"] and a["passes_per_point"] <= 120 and a["iterations"] >= 1
        assert a["passes_per_point"] == (a["forward"] + a["backward"]) / 12
    attacked = round(record["clean_accuracy"] * 12)  # the misclassified points are not attacked (distance 0)
    assert attacks["fmn"]["forward"] + attacks["fmn"]["backward"] >= 0.9 * 120 * attacked
    with open(out.with_suffix(".csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["attack"] for r in rows] == list(attacks) and "passes_per_point" in rows[0]
    assert png.stat().st_size > 0
    lines = result.output.splitlines()
    assert "optimality" in lines[1] and lines[2].split()[0] == list(attacks)[0]


@pytest.mark.parametrize(("args", "words"), [
    (("--attacks", "fmn"), "two attacks"),
    (("--attacks", "ddn,fmn", "--norm", "inf"), "ddn implements"),
    (("--attacks", "fmn,pgd", "--budget", "3"), "too small"),
    (("--attacks", "fmn,pgd", "--out", "r.txt"), ".json"),
    (("--attacks", "fmn,nope"), "nope"),
])
def test_bad_input_is_one_line_and_exit_2(trained_small_path: Path, tmp_path: Path, args: tuple[str, ...],
                                         words: str) -> None:
    argv = ["rank", "--model", str(trained_small_path), "--n", "4", "--out", str(tmp_path / "r.json"), *args]
    if "--out" in args:
        argv = ["rank", "--model", str(trained_small_path), "--n", "4", *args]
    result = invoke(*argv)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and words in lines[0], result.output
