"""``advgrad eval`` beyond the attack sweep: ``--examples`` (the issue's spelling of a transfer evaluation) is
``advgrad transfer``'s library call and record; a torch.export ``.pt2`` model gives the library's robust
accuracy on the same module; on a folder the sanity report runs on the first chunk and says so.

Bit-for-bit comparisons are between routes that run the same module's ops on the same batches in one
process (the .pt2 loaded by ``open_model`` in both routes; the examples file read by both commands)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers.batches import digits_folder
from helpers.cli import assert_usage_error, invoke, run, tree
from helpers.model_files import write_export, write_script

from advgrad.configs import EvalConfig
from advgrad.data.builtin import Dataset
from advgrad.evaluate import evaluate_model
from advgrad.evaluate.transfer import transfer_success
from advgrad.models.loading import open_model
from advgrad.records.examples import load_examples

VOLATILE = ("seconds", "provenance")  # wall time; the command line and the clock


@pytest.fixture
def examples(trained_small_path: Path, tmp_path: Path) -> Path:
    """60 MI-FGSM examples made on the checkpoint."""
    ex = tmp_path / "ex.npz"
    made = invoke("attack", "--model", str(trained_small_path), "--eps", "0.2", "--method", "mifgsm", "--steps",
                  "3", "--n", "60", "--save-examples", str(ex), "--out", str(tmp_path / "a.json"))
    assert made.exit_code == 0, made.output
    return ex


def test_eval_examples_is_transfer(examples: Path, trained_small: Any, mnist5k: Dataset, tmp_path: Path) -> None:
    script = write_script(tmp_path / "target.ts", trained_small[0], mnist5k.x_test[:2])
    a, b = tmp_path / "transfer.json", tmp_path / "eval.json"
    r1 = invoke("transfer", "--examples", str(examples), "--model", str(script), "--out", str(a))
    r2 = invoke("eval", "--examples", str(examples), "--model", str(script), "--out", str(b))
    assert r1.exit_code == 0 and r2.exit_code == 0, (r1.output, r2.output)
    assert r1.stdout == r2.stdout.replace(str(b), str(a))  # the same table, the "wrote" line names --out
    t, e = json.loads(a.read_text()), json.loads(b.read_text())
    assert {k: v for k, v in t.items() if k not in VOLATILE} == {k: v for k, v in e.items() if k not in VOLATILE}
    assert not b.with_suffix(".csv").exists()  # a transfer record has no CSV
    lib = transfer_success(open_model(script).model, load_examples(examples))
    for key in ("n", "clean_accuracy", "adv_accuracy", "n_clean_correct", "success_rate"):
        assert e[key] == lib[key], key
    assert e["n"] == 60 and e["source"]["attack"] == "mifgsm-3"


def test_eval_examples_bad_combinations(examples: Path, trained_small_path: Path, tmp_path: Path) -> None:
    base = ["eval", "--examples", str(examples), "--model", str(trained_small_path)]
    out = ["--out", str(tmp_path / "o.json")]
    cases = [
        ([*base, "--attacks", "pgd", *out], "--attacks does not apply with --examples"),
        ([*base, "--eps", "0.1", *out], "--eps does not apply"),
        ([*base, "--data", "mnist-5k", *out], "--data does not apply"),
        ([*base, "--n", "10", *out], "does not apply"),
        ([*base, "--no-sanity", *out], "--no-sanity does not apply"),
        ([*base, "--min-eps", *out], "--min-eps does not apply"),
        ([*base, "--out", str(tmp_path / "o.csv")], "expected a .json file"),
        (["eval", "--examples", str(tmp_path / "none.npz"), "--model", str(trained_small_path), *out], "none.npz"),
        ([*base, "--weights", str(trained_small_path), *out], "weights apply to a factory"),
    ]
    before = tree(tmp_path)
    for args, fragment in cases:
        result = invoke(*args)
        assert_usage_error(result.exit_code, result.stderr, fragment)
        assert tree(tmp_path) == before, args


@pytest.mark.slow
def test_eval_export_program_equals_library_on_the_same_module(trained_small: Any, mnist5k: Dataset,
                                                               tmp_path: Path) -> None:
    program = write_export(tmp_path / "cnn.pt2", trained_small[0], mnist5k.x_test[:2])
    out = tmp_path / "e.json"
    result = invoke("eval", "--model", str(program), "--data", "mnist-5k", "--eps", "0.05,0.1", "--attacks",
                    "fgsm,pgd", "--steps", "5", "--n", "120", "--block", "50", "--no-sanity", "--out", str(out))
    assert result.exit_code == 0, result.output
    config = EvalConfig(eps=(0.05, 0.1), attacks=("fgsm", "pgd"), steps=5, block=50)
    torch.manual_seed(config.seed)
    module = open_model(program).model
    lib = evaluate_model(module, mnist5k.x_test[:120], mnist5k.y_test[:120], config, sanity=False)
    record = json.loads(out.read_text())
    assert [(r["attack"], r["eps"], r["accuracy"]) for r in record["records"]] == \
        [(r["attack"], r["eps"], r["accuracy"]) for r in lib.records]
    assert record["clean_accuracy"] == lib.clean_accuracy and record["model"]["kind"] == "export"
    # The eager module the program was exported from: the graph runs the same kernels, but export may
    # decompose ops (linear → addmm), which can move logits by float32 rounding; a point whose top two logits
    # are that close is rare, so the clean predictions must agree on all but at most one of the 120.
    with torch.no_grad():
        eager = trained_small[0](mnist5k.x_test[:120]).argmax(1)
        exported = module(mnist5k.x_test[:120]).argmax(1)
    assert int((eager != exported).sum()) <= 1


@pytest.mark.slow
def test_eval_export_in_a_real_process(trained_small: Any, mnist5k: Dataset, tmp_path: Path) -> None:
    program = write_export(tmp_path / "cnn.pt2", trained_small[0], mnist5k.x_test[:2])
    out = tmp_path / "e.json"
    proc = run(["eval", "--model", str(program), "--data", "mnist-5k", "--eps", "0.1", "--attacks", "fgsm", "--n",
                "40", "--no-sanity", "--out", str(out)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with torch.no_grad():
        clean = int((open_model(program).model(mnist5k.x_test[:40]).argmax(1) == mnist5k.y_test[:40]).sum())
    accuracy = json.loads(out.read_text())["clean_accuracy"]  # a float32 mean of the count of correct points
    assert round(accuracy * 40) == clean and accuracy == pytest.approx(clean / 40, abs=1e-6)


@pytest.mark.slow
def test_folder_sanity_report_runs_on_the_first_chunk_and_says_so(trained_small_path: Path, trained_small: Any,
                                                                   mnist5k: Dataset, tmp_path: Path) -> None:
    x, y = digits_folder(tmp_path / "digits", mnist5k, 50)
    out = tmp_path / "e.json"
    result = invoke("eval", "--model", str(trained_small_path), "--data", str(tmp_path / "digits"), "--grayscale",
                    "--eps", "0.1", "--attacks", "fgsm,pgd", "--steps", "3", "--queries", "10", "--block", "20",
                    "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "sanity report (on the first 20 of the 50 points: a folder is evaluated chunk by chunk" in result.stdout
    assert f"warning: the model was trained on mnist-5k, the data is {tmp_path / 'digits'}" in result.stderr
    record = json.loads(out.read_text())
    assert record["n"] == 50 and record["sanity_n"] == 20
    # The reference: the library's evaluation of that first chunk alone, from the same seed.
    config = EvalConfig(eps=(0.1,), attacks=("fgsm", "pgd"), steps=3, queries=10, block=20)
    torch.manual_seed(config.seed)
    lib = evaluate_model(trained_small[0], x[:20], y[:20], config, sanity=True)
    assert record["sanity"] == [c.to_dict() for c in lib.checks] and len(lib.checks) > 0
    whole = invoke("eval", "--model", str(trained_small_path), "--eps", "0.1", "--attacks", "fgsm", "--n", "20",
                   "--steps", "3", "--queries", "10", "--out", str(tmp_path / "w.json"))
    assert whole.exit_code == 0 and "sanity report:\n" in whole.stdout, whole.output
    assert json.loads((tmp_path / "w.json").read_text())["sanity_n"] == 20
