"""Passes in the records of ``advgrad attack`` and ``advgrad eval``: the arithmetic on known schedules, an
independent count of the model's calls, per AutoAttack member, and that counting changes no bit of a record.

What is counted (``advgrad.attacks.runner``): the sample-passes of the attack calls — the clean predictions'
forward pass of the report or the sweep is not the attack's and is in no record. The independent count here
(``Tap``) is an identity ``torch.autograd.Function`` at the model's input that logs the batch of every
forward and of every backward through it; it shares nothing with ``PassCounter`` (a pre-hook on the output's
autograd node).
"""

from __future__ import annotations

import csv
import json
import math
import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers.cli import invoke, logreg_checkpoint
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from advgrad.attacks import auto_chunk_size, runner
from advgrad.catalog import ATTACKS
from advgrad.configs import AttackConfig, EvalConfig
from advgrad.data.builtin import Dataset
from advgrad.evaluate import sweep
from advgrad.models.counting import Passes
from advgrad.models.query import QueryModel


class _Tap(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, log: dict[str, int]) -> Tensor:  # type: ignore[override]
        ctx.log, ctx.n = log, len(x)
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        ctx.log["backward"] += ctx.n
        return grad, None


class Tap(nn.Module):
    """``model`` behind an input tap that logs forward and backward sample-passes (``log``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.log = {"forward": 0, "backward": 0}
        self.lock = threading.Lock()

    def forward(self, x: Tensor) -> Tensor:
        with self.lock:
            self.log["forward"] += len(x)
        if x.requires_grad:
            x = _Tap.apply(x, self.log)
        return self.model(x)

    def passes(self) -> Passes:
        return Passes(self.log["forward"], self.log["backward"])


@pytest.fixture(scope="module")
def logreg(mnist5k: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return logreg_checkpoint(tmp_path_factory.mktemp("passes") / "logreg.pt", mnist5k)


def _attack(model: Path, out: Path, *args: str) -> dict[str, Any]:
    result = invoke("-q", "attack", "--model", str(model), "--n", "12", "--out", str(out), *args)
    assert result.exit_code == 0, result.output
    record: dict[str, Any] = json.loads(out.read_text())
    return record


def test_fgsm_is_two_forward_and_one_backward_per_image(logreg: Path, tmp_path: Path) -> None:
    """FGSM: the step's forward and backward, and the forward at x_adv for the verdict; every image is
    attacked by ``advgrad attack``; the clean predictions are not counted."""
    record = _attack(logreg, tmp_path / "a.json", "--method", "fgsm", "--eps", "0.1")
    assert (record["forward"], record["backward"]) == (2 * 12, 12)


@pytest.mark.parametrize(("steps", "restarts"), [(1, 1), (4, 1), (3, 2)])
def test_pgd_k_without_early_stop(logreg: Path, tmp_path: Path, steps: int, restarts: int) -> None:
    """``advgrad attack`` runs PGD without early stop: per restart K forward + K backward and the forward at
    x_adv, per image."""
    record = _attack(logreg, tmp_path / "a.json", "--method", "pgd", "--eps", "0.1", "--steps", str(steps),
                     "--restarts", str(restarts))
    assert (record["forward"], record["backward"]) == (12 * restarts * (steps + 1), 12 * restarts * steps)


def test_eval_counts_the_attacked_points_and_sums_them(logreg: Path, tmp_path: Path) -> None:
    """The sweep attacks the C points classified correctly: FGSM 2C forward + C backward at every ε > 0,
    nothing at ε = 0; "worst" adds the ε's attacks; the record's total adds every pass; the CSV carries them."""
    out = tmp_path / "e.json"
    result = invoke("-q", "eval", "--model", str(logreg), "--n", "60", "--eps", "0,0.05", "--attacks", "fgsm,pgd",
                    "--steps", "2", "--no-sanity", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "fwd/pt" in result.output and "bwd/pt" in result.output
    record = json.loads(out.read_text())
    c = round(record["clean_accuracy"] * 60)
    assert c > 0
    rows = {(r["attack"], r["eps"]): r for r in record["records"]}
    assert (rows[("fgsm", 0.05)]["forward"], rows[("fgsm", 0.05)]["backward"]) == (2 * c, c)
    assert all(rows[(a, 0.0)]["forward"] == rows[(a, 0.0)]["backward"] == 0 for a in ("fgsm", "pgd", "worst"))
    worst = rows[("worst", 0.05)]
    assert worst["forward"] == rows[("fgsm", 0.05)]["forward"] + rows[("pgd", 0.05)]["forward"]
    assert record["passes"] == {"forward": sum(r["forward"] for r in record["records"] if r["attack"] != "worst"),
                                "backward": sum(r["backward"] for r in record["records"] if r["attack"] != "worst")}
    with open(out.with_suffix(".csv"), newline="") as f:
        csv_rows = list(csv.DictReader(f))
    assert [int(r["forward"]) for r in csv_rows] == [r["forward"] for r in record["records"]]


@given(steps=st.integers(2, 12), eps=st.sampled_from([0.02, 0.05, 0.1]), block=st.integers(3, 40))
@settings(max_examples=6, deadline=None)
def test_apgd_with_early_stop_against_an_independent_count(mnist5k: Dataset, steps: int, eps: float,
                                                          block: int) -> None:
    """APGD-CE in the sweep, with early stop (a fooled point leaves its block, so the count depends on the
    run): the record's passes are the tap's, less the sweep's clean forward pass of the N points."""
    torch.manual_seed(0)
    model = Tap(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval())
    x, y = mnist5k.x_test[:30], mnist5k.y_test[:30]
    with torch.no_grad():
        y = model.model(x).argmax(1)  # every point classified correctly: every one is attacked
        y[:3] = (y[:3] + 1) % 10       # but these three
    auto_chunk_size(model, x)  # the chunk-size probe (once per model) is no attack's work: not in the record
    model.log.update(forward=0, backward=0)
    config = EvalConfig(eps=(eps,), attacks=("apgd-ce",), block=block)
    (record,) = sweep(model, x, y, config).records
    assert Passes(record["forward"] + len(y), record["backward"]) == model.passes()
    assert record["backward"] > 0


def test_autoattack_members_in_worker_threads(logreg: Path, mnist5k: Dataset, tmp_path: Path) -> None:
    """AutoAttack by the runner in two worker threads on blocks of 5 (stages overlap in the pipeline): each
    member's passes (a counter per stage) add up to the tap's count; the CLI's record carries them."""
    torch.manual_seed(0)
    model = Tap(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval())
    x, y = mnist5k.x_test[:20], mnist5k.y_test[:20]
    with torch.no_grad():
        y = model.model(x).argmax(1)
    model.log.update(forward=0, backward=0)
    config = AttackConfig.of("autoattack", norm="inf")
    stages = [s.but(**{k: v for k, v in {"steps": 4, "queries": 30}.items() if k in ATTACKS[s.method].options})
              for s in runner.stages(config)]
    outcome = runner.run(model, x, y, 0.05, stages, block=5, workers=2)
    assert len(outcome.passes) == 4 and sum(outcome.passes, Passes()) == model.passes()
    assert outcome.passes[0].backward > 0 and outcome.passes[-1].backward == 0  # square: forward only
    record = _attack(logreg, tmp_path / "aa.json", "--method", "autoattack", "--eps", "0.02", "--n", "5")
    members = record["passes_per_attack"]
    assert list(members) == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert sum(m["forward"] for m in members.values()) == record["forward"]


def test_a_query_model_is_charged_its_queries(mnist5k: Dataset) -> None:
    """A ``QueryModel``: the rows it answered, as forward passes (the model's own count, which goes on)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()
    model = QueryModel(net)
    x, y = mnist5k.x_test[:10], mnist5k.y_test[:10]
    outcome = runner.run(model, x, y, 0.05, [AttackConfig.of("square", queries=20)], block=4)
    assert outcome.passes == [Passes(model.queries, 0)] and model.queries > 0


class _Uncounted:
    """The runner's meter with no counter at all: the stages call the bare model."""

    def __init__(self, model: nn.Module, stages: int) -> None:
        self.models = [model] * stages
        self.stages = stages

    def spent(self) -> list[Passes]:
        return [Passes()] * self.stages


COST = {"seconds", "forward", "backward", "passes", "passes_per_attack", "seconds_per_attack", "images_per_second",
        "provenance"}


def _without_cost(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_cost(v) for k, v in value.items() if k not in COST}
    if isinstance(value, list):
        return [_without_cost(v) for v in value]
    return value


@pytest.mark.parametrize("command", [
    ("eval", "--eps", "0,0.05", "--attacks", "fgsm,pgd", "--steps", "3", "--min-norm", "fmn,pgd",
     "--precision", "0.02", "--queries", "10"),
    pytest.param(("attack", "--method", "autoattack", "--eps", "0.1"), marks=pytest.mark.heavy),  # a minute
    ("attack", "--method", "apgd-t", "--eps", "0.05", "--steps", "5", "--n-targets", "2"),
    ("attack", "--method", "fmn", "--steps", "10"),
])
def test_counting_changes_no_bit_of_a_record(trained_small_path: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]) -> None:
    """The same command with the runner's counters and with the bare model: the records agree in every field
    but the costs (seconds, passes) and the provenance (its time)."""
    records = []
    for counted in (True, False):
        if not counted:
            monkeypatch.setattr(runner, "_Meter", _Uncounted)
        out = tmp_path / f"{counted}.json"
        result = invoke("-q", command[0], "--model", str(trained_small_path), "--n", "8", "--out", str(out),
                        *command[1:])
        assert result.exit_code == 0, result.output
        records.append(json.loads(out.read_text()))
    assert _without_cost(records[0]) == _without_cost(records[1])
    costs = records[0].get("passes") or records[0]
    assert costs["forward"] > 0 and math.isfinite(records[0]["seconds"])
