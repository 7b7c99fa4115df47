"""``advgrad eval``: the table, the JSON and CSV records with provenance, the sanity report, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from advgrad.cli import main

FAST = ("--n", "40", "--steps", "3", "--queries", "10")


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["eval", *args])


def test_eval_writes_json_csv_and_prints_report(trained_small_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "sub" / "eval.json"
    result = invoke("--model", str(trained_small_path), "--eps", "0,0.1", *FAST, "--min-eps", "--precision",
                    "0.05", "--out", str(out))
    assert result.exit_code == 0, result.output
    text = result.output
    assert "clean accuracy" in text and "sanity report:" in text and "black-box" in text
    record = json.loads(out.read_text())
    assert record["n"] == 40 and record["dataset"] == "mnist-5k" and record["model"]["name"] == "cnn-small"
    attacks = [(r["attack"], r["eps"]) for r in record["records"]]
    assert attacks == [("fgsm", 0.0), ("pgd", 0.0), ("worst", 0.0), ("fgsm", 0.1), ("pgd", 0.1), ("worst", 0.1),
                       ("min-eps", 0.0), ("min-eps", 0.1)]
    assert record["config"]["steps"] == 3 and record["config"]["eps"] == [0.0, 0.1]
    assert len(record["sanity"]) == 10 and {c["status"] for c in record["sanity"]} <= {"ok", "warn"}
    assert len(record["min_eps"]["values"]) == 40 and record["min_eps"]["eps_max"] == 0.1
    prov = record["provenance"]
    assert prov["seed"] == 0 and len(prov["model_sha256"]) == 64 and "torch_version" in prov
    with open(out.with_suffix(".csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["attack", "eps", "accuracy", "n", "steps", "restarts", "seconds", "forward", "backward"]
    assert len(rows) == len(record["records"])


def test_min_eps_with_apgd_is_the_librarys(trained_small_path: Path, tmp_path: Path) -> None:
    """--min-eps-attack apgd-ce: the record names the attack and holds minimal_eps's values on the same
    points and config (the library run in the same process, so the same bits)."""
    from advgrad.data.builtin import load_dataset
    from advgrad.evaluate import EvalConfig, minimal_eps
    from advgrad.models.loading import load_model

    out = tmp_path / "e.json"
    result = invoke("--model", str(trained_small_path), "--eps", "0.1", "--attacks", "fgsm", *FAST, "--no-sanity",
                    "--min-eps", "--min-eps-attack", "apgd-ce", "--precision", "0.05", "--out", str(out))
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["min_eps"]["attack"] == "apgd-ce" and record["config"]["min_eps_attack"] == "apgd-ce"
    data = load_dataset("mnist-5k")
    config = EvalConfig(eps=(0.1,), attacks=("fgsm",), steps=3, queries=10, min_eps=True, min_eps_attack="apgd-ce",
                        precision=0.05)
    values = minimal_eps(load_model(trained_small_path), data.x_test[:40], data.y_test[:40], config, eps_max=0.1)
    assert record["min_eps"]["values"] == [None if v == float("inf") else v for v in values.tolist()]
    bad = invoke("--model", str(trained_small_path), "--min-eps", "--min-eps-attack", "square", "--out",
                 str(tmp_path / "f.json"))
    assert bad.exit_code == 2 and "--min-eps-attack" in bad.output and not (tmp_path / "f.json").exists()


def test_eval_single_attack_no_sanity(trained_small_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "e.json"
    result = invoke("--model", str(trained_small_path), "--eps", "0.05", "--attacks", "pgd", *FAST, "--no-sanity",
                    "--out", str(out))
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert [r["attack"] for r in record["records"]] == ["pgd"] and record["sanity"] == []
    assert "sanity report" not in result.output.split("wrote")[0]


@pytest.mark.parametrize("args,message", [
    (("--eps", "0,abc"), "--eps"),
    (("--eps", "-0.1"), "--eps"),
    (("--attacks", "fgsm,nope"), "--attacks"),
    (("--steps", "0"), "steps"),
    (("--restarts", "0"), "restarts"),
    (("--n", "0"), "--n"),
    (("--precision", "0"), "precision"),
    (("--out", "eval.txt"), ".json"),
], ids=["eps-text", "eps-negative", "attack", "steps", "restarts", "n", "precision", "suffix"])
def test_bad_options_exit_2_with_one_line(trained_small_path: Path, tmp_path: Path, args: tuple[str, ...],
                                          message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    full = ("--model", str(trained_small_path), "--out", "e.json", *args)
    result = invoke(*full)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0]
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_missing_model_says_how_to_train(tmp_path: Path) -> None:
    result = invoke("--model", str(tmp_path / "none.pt"), "--out", str(tmp_path / "e.json"))
    assert result.exit_code == 2
    assert "advgrad train" in result.output and len(result.output.strip().splitlines()) == 1
