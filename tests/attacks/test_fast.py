"""The fast evaluation (``aa_fast``, catalog "aa-fast"): its verdicts are those of a plain stage-by-stage
loop over its own stages (the reference here: each stage's attack function called directly on the
survivors, block by block, with the generator/seed the runner gives it), so a point is reported robust
exactly when none of its sub-attacks broke it; every reported break is a real one (misclassified at an
x_adv within ε and the box); the same cascade runs through the catalog (``run_attack``, ``runner.stages``);
bad arguments are one-line ValueErrors.

Bits: both sides run the same functions on the same blocks with the same seeds on one torch thread, so
x_adv and broken_by are compared exactly (the runner's pipeline may run blocks of two stages at once in
two workers; a block's computation reads nothing of the others)."""

from __future__ import annotations

import torch
from helpers.batches import half_correct
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from advgrad import AttackConfig, aa_fast, run_attack
from advgrad.attacks import runner
from advgrad.attacks.fast import fast_configs
from advgrad.catalog import ATTACKS
from advgrad.distributed import stream_seed
from advgrad.norms import get_norm

CHEAP = {"steps": 4, "targets": 4}  # APGD-T 4 targets × 2 steps, FMN 8 steps


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 16), nn.ReLU(), nn.Linear(16, 5))


def _plain(model: nn.Module, x: Tensor, y: Tensor, eps: float, norm: str, block: int,
           seed: int) -> tuple[Tensor, Tensor, list[Tensor]]:
    """The cascade as a plain loop: stage k's function on the points no stage before broke, ``block`` at a
    time, block j with a generator seeded stream_seed(seed, j) (or the seed itself, for the functions
    that take one). Returns x_adv, broken_by and each stage's breaks (N,) bool."""
    stages = fast_configs(norm, **CHEAP)
    with torch.no_grad():
        alive = model(x).argmax(1) == y
    broken_by, x_adv = torch.where(alive, len(stages), -1), x.clone()
    breaks = []
    for k, config in enumerate(stages):
        entry, hit = ATTACKS[config.method], torch.zeros(len(x), dtype=torch.bool)
        kwargs = {**entry.fixed, **config.options, "norm": norm}
        idx = alive.nonzero().squeeze(1)
        for j, start in enumerate(range(0, len(idx), block)):
            b = idx[start:start + block]
            randomness = ({"generator": torch.Generator().manual_seed(stream_seed(seed, j))}
                          if "generator" in entry.parameters else {"seed": seed})
            res = entry.impl(model, x[b], y[b], eps, **kwargs, **randomness)
            hit[b[res.success]] = True
            x_adv[b[res.success]] = res.x_adv[res.success]
        broken_by[hit], alive = k, alive & ~hit
        breaks.append(hit)
    return x_adv, broken_by, breaks


@settings(max_examples=12, deadline=None)
@given(n=st.integers(1, 14), block=st.sampled_from([1, 3, 5, 250]), workers=st.integers(1, 2),
       norm=st.sampled_from(["inf", "2"]), eps=st.sampled_from([0.05, 0.2, 0.6]), seed=st.integers(0, 2**16))
def test_verdicts_are_the_plain_stage_loop(n: int, block: int, workers: int, norm: str, eps: float,
                                           seed: int) -> None:
    """Sizes below, at and beyond a block, one or two workers: the runner's blocks, pipeline and early
    stop give the plain loop's x_adv and broken_by; robust exactly where no stage broke the point."""
    model = _model(seed)
    x, y = half_correct(model, n, seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        r = aa_fast(model, x, y, eps, norm=norm, block=block, seed=seed, workers=workers, **CHEAP)
        x_adv, broken_by, breaks = _plain(model, x, y, eps, norm, block, seed)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(r.broken_by, broken_by) and torch.equal(r.x_adv, x_adv)
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    some_stage_broke = torch.stack(breaks).any(0)
    assert torch.equal(~r.success, correct & ~some_stage_broke)  # never robust where a sub-attack broke it
    assert r.stages == ("apgd-ce", "apgd-t", "fmn", "apgd-t-near", "square-near")


def test_every_reported_break_is_real_and_the_caller_is_untouched() -> None:
    """success ⇔ misclassified at x_adv, ‖x_adv − x‖ ≤ ε in the box; x, y, mode and requires_grad kept."""
    model = _model(1).train()
    x, y = half_correct(model, 24, 1)
    x0, y0 = x.clone(), y.clone()
    for norm, eps in (("inf", 0.15), ("2", 0.8)):
        r = aa_fast(model, x, y, eps, norm=norm, **CHEAP)
        with torch.no_grad():
            wrong = model.eval()(r.x_adv).argmax(1) != y
        model.train()
        assert torch.equal(r.success, wrong) and 0 < int(r.success.sum()) < len(x)
        assert bool((get_norm(norm).measure(r.x_adv - x) <= eps * (1 + 1e-5)).all())
        assert float(r.x_adv.min()) >= 0 and float(r.x_adv.max()) <= 1
        assert list(r.accuracy) == ["clean", *r.stages]
        assert r.accuracy[r.stages[-1]] == float((~r.success).float().mean())
    assert torch.equal(x, x0) and torch.equal(y, y0)
    assert model.training and all(p.requires_grad and p.grad is None for p in model.parameters())


def test_at_eps_zero_the_clean_verdicts() -> None:
    model = _model(2)
    x, y = half_correct(model, 8, 2)
    r = aa_fast(model, x, y, 0.0, **CHEAP)
    with torch.no_grad():
        assert torch.equal(r.success, model(x).argmax(1) != y)
    assert torch.equal(r.x_adv, x) and list(r.accuracy) == ["clean"]


def test_through_the_catalog_and_the_runner() -> None:
    """"aa-fast" as a config: run_attack calls aa_fast; the runner expands it into the same stages
    (runner.stages) and reaches the same verdicts; its options reach the stages."""
    model = _model(3)
    x, y = half_correct(model, 10, 3)
    config = AttackConfig.of("aa-fast", "2", **CHEAP)
    assert ATTACKS["aa-fast"].kind == "ensemble" and runner.stages(config) == fast_configs("2", **CHEAP)
    direct = aa_fast(model, x, y, 0.7, norm="2", **CHEAP)
    via = run_attack(model, x, y, 0.7, config)
    assert torch.equal(via.success, direct.success) and torch.equal(via.x_adv, direct.x_adv)
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    out = runner.run(model, x, y, 0.7, runner.stages(config), candidates=correct)
    assert torch.equal(out.broken_by, direct.broken_by)
    assert runner.stages(AttackConfig.of("aa-fast"))[0].options == {"steps": 50, "early_stop": True}


def test_bad_arguments_are_one_line_errors() -> None:
    model = _model(4)
    x, y = half_correct(model, 4, 4)
    bad = [({"norm": "1"}, "norm"), ({"steps": 1}, "steps"), ({"steps": 2.5}, "steps"), ({"targets": True}, "targets"),
           ({"targets": 0}, "targets"), ({"block": 0}, "block"), ({"targets": 7}, "targets"), ({"seed": "a"}, "seed")]
    for kwargs, word in bad:
        try:
            aa_fast(model, x, y, 0.1, **kwargs)  # type: ignore[arg-type]
        except ValueError as e:
            assert word in str(e) and "\n" not in str(e), (kwargs, str(e))
        else:
            raise AssertionError(f"no ValueError for {kwargs}")
    for eps in (-0.1, torch.full((4,), 0.1)):
        try:
            aa_fast(model, x, y, eps)  # type: ignore[arg-type]
        except ValueError as e:
            assert "eps" in str(e) or "radius" in str(e) and "\n" not in str(e)
        else:
            raise AssertionError(f"no ValueError for eps {eps!r}")
