"""AutoAttack under L1 against the reference's (pyautoattack 0.2.0, ``AutoAttack(norm='L1')``), run in the same
test: its standard version's settings, the per-sample verdicts of a cheap and of the full cascade, and FAB-T's
L1 bits (the one member whose L1 was there before)."""

from __future__ import annotations

import copy
import importlib
import inspect
import logging
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from advgrad.attacks import autoattack
from advgrad.attacks.apgd import apgd, apgd_targeted
from advgrad.attacks.fab import fab_targeted
from advgrad.attacks.square import square

aa = importlib.import_module("advgrad.attacks.autoattack")  # the module (advgrad.attacks exports the function)
EPS = 8.0  # the fixture model keeps about a third of the digits at this L1 radius (measured: 35 % of 600)
CHEAP = {"steps": 6, "targets": 2, "queries": 40}
BUDGET = aa.Budget(**CHEAP)


def _reference(model: nn.Module, x: Tensor, y: Tensor, eps: float, cheap: bool) -> Tensor:
    """The reference's standard L1 AutoAttack, silent, in batches of 250: its per-sample robust flags.
    ``cheap``: CHEAP set on its members (APGD's L1 schedule reads n_iter_orig, so that too)."""
    pyautoattack = pytest.importorskip("pyautoattack")
    ref = pyautoattack.AutoAttack(model, norm="L1", eps=eps, version="standard", seed=0, device="cpu")
    if cheap:
        for member in (ref.apgd, ref.apgd_targeted):
            member.n_iter = member.n_iter_orig = CHEAP["steps"]
        ref.fab.n_iter = CHEAP["steps"]
        ref.apgd_targeted.n_target_classes = ref.fab.n_target_classes = CHEAP["targets"]
        ref.square.n_queries = CHEAP["queries"]
    logging.disable(logging.CRITICAL)
    try:
        with torch.random.fork_rng():
            x_adv, _ = ref.run_standard_evaluation(x.clone(), y.clone(), batch_size=250)
    finally:
        logging.disable(logging.NOTSET)
    with torch.no_grad():
        return model(x_adv).argmax(1) == y


def _defaults(fn: Any) -> dict[str, Any]:
    return {k: p.default for k, p in inspect.signature(fn).parameters.items() if p.default is not p.empty}


def test_the_standard_l1_version_is_the_references(tiny_mlp: nn.Module) -> None:
    """The reference's _set_version('standard') for L1, read off its objects: APGD-CE with 5 restarts and
    APGD-T with 5 target classes, both with use_largereps; FAB-T with 9 targets; Square with 5,000 queries;
    100 iterations. advgrad's plan (its options over the functions' defaults) sets the same."""
    pyautoattack = pytest.importorskip("pyautoattack")
    ref = pyautoattack.AutoAttack(tiny_mlp, norm="L1", eps=1.0, version="standard", seed=0, device="cpu")
    plan = dict(aa.members("standard", norm="1"))
    assert list(plan) == ref.attacks_to_run == ["apgd-ce", "apgd-t", "fab-t", "square"]
    ce, t = _defaults(apgd) | plan["apgd-ce"], _defaults(apgd_targeted) | plan["apgd-t"]
    fab_t, sq = _defaults(fab_targeted) | plan["fab-t"], _defaults(square) | plan["square"]
    assert (ce["restarts"], ce["use_largereps"], ce["steps"]) == (ref.apgd.n_restarts, ref.apgd.use_largereps,
                                                                  ref.apgd.n_iter) == (5, True, 100)
    assert (t["targets"], t["restarts"], t["use_largereps"], t["steps"]) == (
        ref.apgd_targeted.n_target_classes, ref.apgd_targeted.n_restarts, ref.apgd_targeted.use_largereps,
        ref.apgd_targeted.n_iter) == (5, 1, True, 100)
    assert (fab_t["targets"], fab_t["restarts"], fab_t["steps"]) == (ref.fab.n_target_classes, ref.fab.n_restarts,
                                                                     ref.fab.n_iter) == (9, 1, 100)
    assert (sq["queries"], sq["p_init"], sq["restarts"]) == (ref.square.n_queries, ref.square.p_init,
                                                             ref.square.n_restarts) == (5000, 0.8, 1)
    # the other norms and versions are as they were; the plus version is the same under every norm
    assert aa.members("standard", norm="inf") == aa.members("standard") == aa.VERSIONS["standard"]
    assert aa.members("plus", norm="1") == aa.VERSIONS["plus"]


@pytest.mark.slow
def test_cheap_cascade_gives_the_reference_verdicts(trained_small, digits) -> None:
    """Every member with the reference's draws (seeded per call) on the same block: the same flags. 6 steps
    (use_largereps: 2 at 3ε, 2 at 2ε, 2 at ε), 2 targets, 40 queries, 60 digits."""
    model, _ = trained_small
    x, y = digits[0][:60], digits[1][:60]
    ours = autoattack(model, x, y, EPS, norm="1", budget=BUDGET)
    theirs = _reference(model, x, y, EPS, cheap=True)
    assert 0.1 < float((~ours.success).float().mean()) < 0.9  # the cascade decides something
    assert torch.equal(~ours.success, theirs)
    assert ours.accuracy["apgd-ce"] < ours.accuracy["clean"]


@pytest.mark.slow
@pytest.mark.heavy
def test_standard_l1_autoattack_gives_the_reference_verdicts_on_600_digits(trained_small, digits) -> None:
    """The full standard L1 cascade on 600 digits: three blocks of 250 (the last one partial) for APGD-CE,
    the survivors re-batched for the members after it. Every per-sample verdict must agree (measured on
    this machine: all 600; a disagreement could only come from rounding at a decision boundary, as the
    members run in advgrad's fast mode and the reference in its exact one)."""
    model, _ = trained_small
    x, y = digits[0][:600], digits[1][:600]
    ours = autoattack(model, x, y, EPS, norm="1")
    theirs = _reference(model, x, y, EPS, cheap=False)
    robust = ~ours.success
    assert 0.1 < float(robust.float().mean()) < 0.9
    assert torch.equal(robust, theirs)


@pytest.mark.slow
def test_fab_t_under_l1_is_the_reference_bit_for_bit(trained_small, digits) -> None:
    """FAB-T (AutoAttack's third member) with norm 'L1', in one piece: the reference's bits (8 steps, 3
    targets, 40 digits, about half of them broken)."""
    fab_pt = pytest.importorskip("pyautoattack.fab_pt")
    model, _ = trained_small
    x, y = digits[0][200:240], digits[1][200:240]
    ref = fab_pt.FABAttack_PT(copy.deepcopy(model), norm="L1", n_restarts=1, n_iter=8, eps=EPS, seed=0,
                              targeted=True, n_target_classes=3, verbose=False)
    with torch.random.fork_rng():
        theirs = ref.perturb(x.clone(), y.clone())
    ours = fab_targeted(model, x, y, EPS, norm="1", steps=8, targets=3, chunk_size=len(x))
    assert torch.equal(ours.x_adv.view(torch.int32), theirs.view(torch.int32))
    with torch.no_grad():
        flags = model(theirs).argmax(1) != y
    assert torch.equal(ours.success, flags) and 0.2 < float(flags.float().mean()) < 0.8


@pytest.mark.parametrize(("kw", "match"), [
    ({"version": "custom", "attacks": ("apgd-ce", "sigma-zero")}, "sigma-zero implements the norms"),
    ({"version": "custom", "attacks": ("apgd-ce", "nope")}, "nope"),
    ({"version": "fast"}, "AutoAttack version"),
    ({"eps": torch.full((4,), 1.0)}, "one radius for every point"),
])
def test_bad_arguments_raise_one_line_value_errors(kw: dict[str, Any], match: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    args = {"eps": 1.0, **kw}
    with pytest.raises(ValueError, match=match) as info:
        autoattack(model, x, y, args.pop("eps"), norm="1", **args)
    assert "\n" not in str(info.value)


def test_use_largereps_is_a_validated_apgd_option() -> None:
    """The L1 members' ε schedule is an ordinary keyword of apgd, so a config takes and checks it."""
    from advgrad.configs import AttackConfig
    assert AttackConfig.of("apgd-ce", norm="1", use_largereps=True).options["use_largereps"] is True
    with pytest.raises(ValueError, match="use_largereps must be True or False, got 'yes'"):
        AttackConfig.of("apgd-ce", norm="1", use_largereps="yes")
