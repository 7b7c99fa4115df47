"""``advgrad attack --method`` over every attack of the catalog, and ``advgrad eval --attacks autoattack``:
the CLI's numbers are the library's on the same points (the library's own tests compare it with the
reference AutoAttack), the per-member cascade is recorded, and options a method does not take are usage
errors that name what it does take."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import advgrad
from advgrad.attacks.pgd import STEP_FACTORS
from advgrad.catalog import ATTACKS, NORMS
from advgrad.cli import main
from advgrad.data.builtin import Dataset
from advgrad.models.checkpoint import save_checkpoint
from advgrad.models.loading import load_model
from advgrad.models.zoo import build_for

N = 24  # test images: a mix of robust and broken points for the seeded logreg below at ε = 0.05


@pytest.fixture(scope="module")
def logreg(mnist5k: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A logreg trained two epochs (seeded, ~5 s): correct on most of the first N test images; AutoAttack
    breaks some of them at ε = 0.05 (L∞) and 1.0 (L2), not all."""
    model, meta = build_for("logreg", mnist5k, seed=0)
    advgrad.fit(model, mnist5k, advgrad.TrainConfig(epochs=2, batch_size=50, lr=3e-3, device="cpu", seed=0))
    path = tmp_path_factory.mktemp("aa") / "m.pt"
    save_checkpoint(path, model.eval(), {"model": meta, "dataset": mnist5k.meta()})
    return path


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


@pytest.mark.slow
@pytest.mark.parametrize("method", [m for m in ATTACKS if m != "autoattack"])
def test_every_method_runs_and_keeps_the_budget(logreg: Path, tmp_path: Path, method: str) -> None:
    out = tmp_path / "a.json"
    extra = ["--steps", "5"] if "steps" in ATTACKS[method].options else []
    extra += ["--queries", "50"] if "queries" in ATTACKS[method].options else []
    norm = "inf" if "inf" in ATTACKS[method].norms else ATTACKS[method].norms[0]  # L∞ where it has it
    eps = {"inf": 0.1, "2": 1.5, "1": 10.0, "0": 10.0}[norm]
    code, output = _invoke("attack", "--model", str(logreg), "--eps", str(eps), "--method", method, "--norm", norm,
                           "--n", str(N), *extra, "--out", str(out))
    assert code == 0, output
    rec = json.loads(out.read_text())
    assert rec["method"] == method and rec["n"] == N
    if norm == "inf":
        assert rec["max_linf"] <= 0.1 + 1e-6  # every L∞ method stays in the L∞ ball
    else:  # a minimal-norm attack in its own norm: success counts only within ε, the record says how far
        assert ATTACKS[method].kind == "minimal" and rec["min_norm"]["norm"] == norm
    assert rec["adversarial_accuracy"] <= rec["clean_accuracy"]
    assert (rec["alpha"] is None) == (method not in STEP_FACTORS)  # the gradient loop's step size
    title = ATTACKS[method].title  # the table names the attack as papers print it: PGD-5, APGD-CE-5, FAB-T-5
    assert title and title.lower().replace("mi-", "mi").replace("σ", "sigma").removesuffix("-l2") == method
    assert (f"{title}-5" if extra[:1] == ["--steps"] else title) in output


@pytest.mark.slow
@pytest.mark.heavy
def test_attack_autoattack_equals_the_library_and_records_its_cascade(logreg: Path, mnist5k: Dataset,
                                                                      tmp_path: Path) -> None:
    out = tmp_path / "aa.json"
    code, output = _invoke("attack", "--model", str(logreg), "--eps", "0.05", "--method", "autoattack", "--n",
                           str(N), "--out", str(out))
    assert code == 0, output
    rec = json.loads(out.read_text())
    model = load_model(logreg)
    x, y = mnist5k.x_test[:N], mnist5k.y_test[:N]
    # The same points, seed and version: `advgrad attack --seed 0` runs the library's cascade, whose members
    # reseed with the seed on every block, as the reference does.
    library = advgrad.autoattack(model, x, y, 0.05, seed=0)
    assert rec["cascade"] == pytest.approx({k: v for k, v in library.accuracy.items() if k != "clean"})
    assert rec["adversarial_accuracy"] == pytest.approx(float((~library.success).double().mean()))
    assert list(rec["cascade"]) == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert rec["cascade"] == pytest.approx({k: v for k, v in library.accuracy.items() if k != "clean"})
    after = list(rec["cascade"].values())
    assert after == sorted(after, reverse=True) and after[-1] == pytest.approx(rec["adversarial_accuracy"])
    assert 0 < rec["adversarial_accuracy"] < rec["clean_accuracy"]  # the fixture's premise: a mix
    assert "accuracy after square" in output


@pytest.mark.slow
@pytest.mark.heavy
def test_eval_autoattack_in_l2_records_the_cascade(logreg: Path, mnist5k: Dataset, tmp_path: Path) -> None:
    out = tmp_path / "e.json"
    code, output = _invoke("eval", "--model", str(logreg), "--eps", "0,1.0", "--norm", "2", "--attacks",
                           "pgd,autoattack", "--n", str(N), "--steps", "5", "--no-sanity", "--out", str(out))
    assert code == 0, output
    rec = json.loads(out.read_text())
    header = next(line for line in output.splitlines() if not line.startswith("eval: "))  # progress lines aside
    assert rec["config"]["norm"] == "2" and NORMS["2"].symbol in header
    aa = next(r for r in rec["records"] if r["attack"] == "autoattack" and r["eps"] == 1.0)
    worst = next(r for r in rec["records"] if r["attack"] == "worst" and r["eps"] == 1.0)
    library = advgrad.autoattack(load_model(logreg), mnist5k.x_test[:N], mnist5k.y_test[:N], 1.0, norm="2",
                                 seed=0)
    assert aa["accuracy"] == pytest.approx(float((~library.success).double().mean()))
    assert list(aa["cascade"].values())[-1] == pytest.approx(aa["accuracy"]) and worst["accuracy"] <= aa["accuracy"]
    assert "apgd-ce" in output and "→" in output


@pytest.mark.slow
@pytest.mark.heavy
def test_the_commands_run_the_references_batches_with_its_verdicts(logreg: Path, mnist5k: Dataset,
                                                                   tmp_path: Path) -> None:
    """`advgrad attack --method autoattack` and `advgrad eval --attacks autoattack` on 600 test images (blocks
    of 250: three, one partial) give every image the verdict of pyautoattack's standard AutoAttack with
    the same seed, run on the same points with its batch of 250: the runner hands each member the
    reference's batches and each member is the reference's algorithm with its random draws."""
    pyautoattack = pytest.importorskip("pyautoattack")
    n, norm, eps = 600, "inf", 0.05
    out, examples, evaluation = tmp_path / "a.json", tmp_path / "a.npz", tmp_path / "e.json"
    common = ["--model", str(logreg), "--n", str(n), "--norm", norm]
    code, output = _invoke("attack", *common, "--eps", str(eps), "--method", "autoattack", "--out", str(out),
                           "--save-examples", str(examples))
    assert code == 0, output
    code, output = _invoke("eval", *common, "--eps", str(eps), "--attacks", "autoattack", "--no-sanity",
                           "--out", str(evaluation))
    assert code == 0, output
    model = load_model(logreg)
    x, y = mnist5k.x_test[:n], mnist5k.y_test[:n]
    reference = pyautoattack.AutoAttack(model, norm={"inf": "Linf", "2": "L2"}[norm], eps=eps, version="standard",
                                        seed=0, device="cpu")
    logging.disable(logging.CRITICAL)
    try:
        with torch.random.fork_rng():
            out = reference.run_standard_evaluation(x.clone(), y.clone(), batch_size=250)
        x_ref = out[0] if isinstance(out, tuple) else out
    finally:
        logging.disable(logging.NOTSET)
    with torch.no_grad():
        theirs = model(x_ref).argmax(1) == y  # robust (or already wrong: then False on both sides)
    ours = torch.from_numpy(np.load(examples)["pred_adv"]) == y
    assert 0.2 < float(theirs.double().mean()) < 0.9  # a radius where the cascade decides something
    assert torch.equal(ours, theirs), f"{int((ours != theirs).sum())} of {n} verdicts differ"
    record = json.loads(evaluation.read_text())["records"][-1]
    assert record["attack"] == "autoattack" and record["accuracy"] == pytest.approx(float(theirs.double().mean()))


@pytest.mark.parametrize("method,option,takes", [
    ("square", ["--steps", "5"], "--queries, --restarts"),
    ("autoattack", ["--restarts", "2"], "none of these"),
    ("apgd-ce", ["--alpha", "0.1"], "--steps, --restarts"),
    ("apgd-t", ["--targeted", "--target-class", "1"], "--steps, --n-targets, --restarts"),
    ("fgsm", ["--queries", "10"], "--targeted, --loss"),
])
def test_an_option_the_method_does_not_take_is_a_usage_error(logreg: Path, tmp_path: Path, method: str,
                                                             option: list[str], takes: str) -> None:
    code, output = _invoke("attack", "--model", str(logreg), "--eps", "0.1", "--method", method, *option,
                           "--out", str(tmp_path / "a.json"))
    assert code == 2 and f"does not apply to --method {method}" in output and takes in output, output
    assert not (tmp_path / "a.json").exists()


def test_a_norm_the_method_does_not_implement_is_a_usage_error(logreg: Path, tmp_path: Path) -> None:
    code, output = _invoke("attack", "--model", str(logreg), "--eps", "0.1", "--method", "apgd-ce", "--norm", "0",
                           "--out", str(tmp_path / "a.json"))
    assert code == 2 and "apgd-ce implements the norms inf, 2, 1, not '0'" in output, output
    assert output.count("\n") == 1


def test_info_lists_every_attack_with_options_the_attack_command_has() -> None:
    code, output = _invoke("info", "--attacks")
    assert code == 0, output
    lines = output.splitlines()
    assert [line.split()[0] for line in lines[::2]] == list(ATTACKS)
    attack_cmd = main.get_command(click.Context(main), "attack")
    assert attack_cmd is not None
    flags = {opt for p in attack_cmd.params for opt in p.opts}
    for name, detail in zip(ATTACKS, lines[1::2]):
        listed = detail.split("options ")[1].split(";")[0]
        assert listed == "none" or set(listed.split(", ")) <= flags, (name, listed)  # real options only
        assert f"norms {', '.join(ATTACKS[name].norms)}" in detail
