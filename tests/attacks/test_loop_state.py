"""The state space of the PGD loop: early stop, chunks, restarts, random starts, targeting, every norm.

The loop keeps an active set that shrinks as points are fooled, forwards it in chunks and reuses its own
buffers in place; a crash shipped once in a path that only sizes beyond one chunk reach, when the active
set shrinks after a full step. These tests drive every such path on purpose, with

- ``FlipModel``: a model whose predictions flip at chosen steps. It is linear in the attack's range, so each
  step moves its margin by a known amount and sample i is fooled after exactly ``flip[i]`` steps (0: already
  wrong; more than ``steps``: never);
- ``reference_attack``: a plain loop with the same semantics (masks instead of index bookkeeping, the whole
  batch in one piece, no buffers reused, the pure ``Norm`` functions), which the fast loop must match.

Why exact equality is expected where it is asserted: on ``FlipModel`` in float64 the gradient is
(p − onehot)·u/N per coordinate, far from zero, so its sign (L∞) cannot depend on how a matrix multiply
rounds: the examples and flags are bit-identical whatever the chunking. L2 and L1 steps divide by a norm that
a chunked pass may round differently in the last bit, so there the examples are compared to 1e-12 (flags
exactly).
"""

from __future__ import annotations

import copy
import importlib
import math

import pytest
import torch
from helpers.flipmodel import FlipModel, reference_attack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import Tensor

from advgrad._runtime import frozen_eval
from advgrad.attacks import AttackResult, auto_chunk_size
from advgrad.attacks import _reference as reference
from advgrad.attacks.pgd import pgd as advgrad_pgd
from advgrad.evaluate import minimal_eps, robust_accuracy
from advgrad.norms import get_norm

pytestmark = pytest.mark.isa

NORMS = ["inf", "2", "1"]


def pgd(model: torch.nn.Module, x: Tensor, y: Tensor, eps: float, *, restarts: int = 1, momentum: float = 0.0,
        generator: torch.Generator | None = None, chunk_size: int | None = None, **kw: object) -> AttackResult:
    """The one loop with every flag at once (PGD's restarts and random start with MI-FGSM's momentum, which no
    public function combines): the module's own run, as ``pgd`` and ``mifgsm`` call it."""
    loop = importlib.import_module("advgrad.attacks.pgd")  # the module (advgrad.attacks.pgd is the function)
    run = loop._prepare(model, x, y, eps, momentum=momentum, factor=2.5, loss="ce", bounds=(0.0, 1.0),
                        chunk_size=chunk_size, generator=generator, **kw)
    with frozen_eval(model):
        return loop._attack(run, y, restarts, generator)


def _assert_same(norm: str, ours: Tensor, theirs: Tensor) -> None:
    if norm == "inf":
        assert torch.equal(ours, theirs)
    else:
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)


# --- the loop against the plain reference, over the whole state space -------------------------------

@pytest.mark.slow
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), n=st.one_of(st.integers(1, 40), st.integers(41, 420)), norm=st.sampled_from(NORMS),
       steps=st.integers(1, 7), random_start=st.booleans(), restarts=st.integers(1, 3), targeted=st.booleans(),
       early_stop=st.booleans(), momentum=st.sampled_from([0.0, 1.0, 0.5]), seed=st.integers(0, 2**16))
def test_loop_matches_the_plain_reference(data: st.DataObject, n: int, norm: str, steps: int, random_start: bool,
                                          restarts: int, targeted: bool, early_stop: bool, momentum: float,
                                          seed: int) -> None:
    """Sizes of one, two and many chunks, with and without MI-FGSM's momentum; each point flips at a step
    drawn from 0 (already fooled) or later to ``steps + 1`` (never), so the active set shrinks at the first
    step, after full steps, mid-run and between restarts."""
    model = FlipModel()
    chunk = data.draw(st.sampled_from([None, 1, 2, 3, 7, 16, 64, 97, n]).filter(
        lambda c: c is None or c >= max(1, n // 40)), label="chunk_size")
    # No point fooled at the start (lowest ≥ 1) lets the first step run on the whole batch before the
    # active set shrinks: the path where buffers of the full batch are around when it first shrinks.
    lowest = data.draw(st.integers(0, 2), label="lowest flip step")
    flip = torch.tensor(data.draw(st.lists(st.integers(lowest, steps + 1), min_size=n, max_size=n), label="flip"))
    alpha = 0.01
    eps = steps * alpha  # a straight path of `steps` steps stays inside the ball: flips happen when chosen
    x, y = model.inputs(flip, alpha, norm)
    target = 1 - y if targeted else y
    x_before = x.clone()
    kw = dict(alpha=alpha, steps=steps, norm=norm, random_start=random_start, restarts=restarts,
              targeted=targeted, early_stop=early_stop, momentum=momentum)
    ours = pgd(model, x, target, eps, generator=torch.Generator().manual_seed(seed), chunk_size=chunk, **kw)
    ref_x, ref_success = reference_attack(model, x, target, eps, generator=torch.Generator().manual_seed(seed), **kw)
    assert torch.equal(ours.success, ref_success)
    _assert_same(norm, ours.x_adv, ref_x)
    assert torch.equal(x, x_before)
    assert bool((get_norm(norm).measure(ours.x_adv - x) <= eps * (1 + 1e-12)).all())
    if not random_start:  # the chosen flips happen: fooled ⇔ flip step ≤ steps
        assert torch.equal(ours.success, flip <= steps)


@pytest.mark.slow
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("n", [300, 700])
def test_active_set_shrinking_after_a_full_step_across_default_chunks(norm: str, n: int) -> None:
    """The shipped crash: early stop, a full first step, then a shrinking active set spanning several of
    the default chunks (FlipModel(48) keeps 18 KB per sample: auto_chunk_size cuts 300 and 700 points into
    chunks). No point is fooled before the first step, then every step sees points fall out; restarts
    re-attack the survivors."""
    model = FlipModel(side=48)
    x_probe = torch.full((n, 1, 48, 48), 0.5, dtype=torch.float64)
    assert math.ceil(n / auto_chunk_size(model, x_probe)) > 1  # beyond one chunk by default
    steps, alpha = 10, 0.01
    flip = 1 + torch.arange(n) % (steps + 2)  # 1 … steps + 2
    x, y = model.inputs(flip, alpha, norm)
    for random_start in (False, True):
        kw = dict(alpha=alpha, steps=steps, norm=norm, random_start=random_start, restarts=3, targeted=False,
                  early_stop=True)
        ours = pgd(model, x, y, steps * alpha, generator=torch.Generator().manual_seed(1), **kw)
        ref_x, ref_success = reference_attack(model, x, y, steps * alpha, generator=torch.Generator().manual_seed(1),
                                              **kw)
        assert torch.equal(ours.success, ref_success)
        _assert_same(norm, ours.x_adv, ref_x)
        if not random_start:
            assert torch.equal(ours.success, flip <= steps)


@pytest.mark.slow
@pytest.mark.parametrize("n", [1, 17, 300, 1000])
def test_minimal_eps_matches_its_closed_form_on_flip_model(n: int) -> None:
    """On FlipModel, PGD with α = 2.5ε/K reaches the corner x + ε·sign(u) of the L∞ ball within K steps, so
    it succeeds exactly when ε > m/‖u‖₁ (m the clean margin): the minimal ε is known in closed form. The
    bisection gives every sample its own ε, so points flip at different steps of every round, in batches
    that span several chunks."""
    model = FlipModel(side=48)
    t = -torch.linspace(0.001, 0.2, n, dtype=torch.float64)  # clean t: the minimal ε is −t (L∞, u·sign(u))
    x = (0.5 + t[:, None] * model.u.sign()[None, :]).view(n, 1, 48, 48)
    y = torch.zeros(n, dtype=torch.long)
    precision = 0.004
    m = minimal_eps(model, x, y, eps_max=0.25, precision=precision, steps=10, restarts=2, block=700)
    exact = -t
    assert bool(((m >= exact - 1e-9) & (m <= exact + precision + 1e-9)).all()), (m - exact).abs().max()


# --- a realistic run: ≥ 1,000 points of a robust-ish model, PGD-10 × 3 with early stop --------------

@pytest.mark.slow
def test_pgd_10x3_early_stop_on_1000_points_of_a_robust_model(robust_small, mnist5k) -> None:
    """1,000 mnist-5k test digits on an adversarially trained cnn-small (the fixture): points fall at every
    step and restart. Run in float64, where a sign of a gradient coordinate cannot be turned by how a chunked
    matrix multiply rounds (a coordinate would have to be within 1e-16 of zero relative to its neighbours),
    so advgrad's chunked, in-place loop must give the plain reference's flags exactly and its examples to
    1e-9."""
    model = copy.deepcopy(robust_small).double()  # the session fixture stays float32
    x, y = mnist5k.x_test.double(), mnist5k.y_test
    assert len(x) == 1000 and auto_chunk_size(model, x) < len(x)
    kw = dict(alpha=2.5 * 0.15 / 10, steps=10, norm="inf", random_start=True, restarts=3, targeted=False,
              early_stop=True)
    ours = pgd(model, x, y, 0.15, generator=torch.Generator().manual_seed(0), **kw)
    ref_x, ref_success = reference_attack(model, x, y, 0.15, generator=torch.Generator().manual_seed(0), **kw)
    assert torch.equal(ours.success, ref_success)
    torch.testing.assert_close(ours.x_adv, ref_x, rtol=0, atol=1e-9)
    robust = 1 - float(ours.success.double().mean())
    assert 0.2 < robust < 0.9, robust  # a budget where points fall throughout the run


@pytest.mark.slow
def test_robust_accuracy_with_restarts_on_a_robust_model_completes(robust_small, mnist5k) -> None:
    """The evaluation the README recommends (PGD with restarts, early stop) on 1,000 points of a robust
    model, through the public entry point: finite, ordered records."""
    records = robust_accuracy(robust_small, mnist5k.x_test, mnist5k.y_test, eps=(0.1, 0.2), steps=10, restarts=3)
    acc = {(r["attack"], r["eps"]): r["accuracy"] for r in records}
    assert 0 < acc[("worst", 0.2)] <= acc[("worst", 0.1)] < 1
    assert acc[("pgd", 0.1)] <= acc[("fgsm", 0.1)] + 0.01


# --- the plain reference loops (advgrad.attacks._reference) against the fast ones ---------------------

@pytest.mark.parametrize("norm,eps", [("inf", 0.1), ("2", 1.0), ("1", 8.0)])
def test_pgd_is_its_plain_reference_loop(trained_small, mnist5k, norm: str, eps: float) -> None:
    """In float64 the buffer-recycling loop (in place, chunked) and the plain loop agree to rounding (a
    sign of a gradient coordinate within 1e-16 of zero could differ, none here): same iterates."""
    model = copy.deepcopy(trained_small[0]).double()
    x, y = mnist5k.x_test[:64].double(), mnist5k.y_test[:64]
    steps, alpha = 7, 2.5 * eps / 7
    start = x + get_norm(norm).random_start(x, eps, torch.Generator().manual_seed(3))
    start = start.clamp(0, 1)
    fast = advgrad_pgd(model, x, y, eps, steps=steps, alpha=alpha, norm=norm, chunk_size=16,
                       generator=torch.Generator().manual_seed(3))
    plain = reference.pgd(model, x, y, eps, steps=steps, alpha=alpha, norm=norm, start=start)
    torch.testing.assert_close(fast.x_adv, plain, rtol=0, atol=1e-10)


def test_apgd_is_its_plain_reference_loop(trained_small, mnist5k) -> None:
    """APGD-CE's fast run (exact mode, one piece, buffers recycled) against the plain Algorithm 1 loop from
    the same start: the same points fooled, the same last misclassified iterate (float64)."""
    core = importlib.import_module("advgrad.attacks._apgd_run")
    model = copy.deepcopy(trained_small[0]).double().eval()
    x, y = mnist5k.x_test[:48].double(), mnist5k.y_test[:48]
    eps, steps = 0.08, 20
    for p in model.parameters():
        p.requires_grad_(False)
    setup = core.Setup(model, "inf", steps, 0.75, 0.0, 1.0, 1, len(x), False,
                       lambda z, t, _: torch.nn.functional.cross_entropy(z, t, reduction="none"))
    e = torch.full((len(x), 1, 1, 1), eps, dtype=x.dtype)
    start = core.start(setup, x, e, torch.Generator().manual_seed(0))
    fooled, found, _ = core.run(setup, x, y, None, e, torch.Generator().manual_seed(0))
    ref_fooled, ref_found = reference.apgd_ce(model, x, y, eps, steps=steps, start=start,
                                              checkpoints=core.checkpoint_windows(steps))
    assert 0 < int(fooled.sum()) < len(x)  # a radius where some fall during the run
    assert torch.equal(fooled, ref_fooled)
    torch.testing.assert_close(found[fooled], ref_found[fooled], rtol=0, atol=1e-10)
