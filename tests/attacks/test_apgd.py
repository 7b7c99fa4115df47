"""APGD and APGD-T against the reference implementation (pyautoattack 0.2.0) run in the same test, the DLR
losses against hand-computed values, and the invariants over the state space.

Bits are compared only where they are equal by construction: the reference and advgrad run the same
operations, in the same order, on the same shapes, in one process (one batch in one piece, exact mode), so
whatever kernels this CPU picks, both sides pick the same. Elsewhere (early_stop, chunks) the batch
composition changes which rows share a matrix multiply, and the tests compare flags.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from advgrad.attacks import AttackResult
from advgrad.attacks.apgd import apgd, apgd_targeted, checkpoints
from advgrad.losses import dlr as dlr_loss
from advgrad.losses import dlr_targeted as dlr_targeted_loss

EPS = {"inf": 0.1, "2": 1.5}  # about half of the fixture's digits fall within 20 steps: flips at many steps
ATTACKS = ["ce", "dlr", "t"]  # APGD-CE, APGD-DLR, APGD-T


class Counting(nn.Module):
    """Wraps a model and records the batch size of every forward pass."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.sizes: list[int] = []

    def forward(self, x: Tensor) -> Tensor:
        self.sizes.append(len(x))
        return self.inner(x)


class Noisy(nn.Module):
    """A randomised model: Gaussian noise on the input from the model's own generator, so two attacks that
    make the same calls on the same shapes see the same noise (``reseed`` before each)."""

    def __init__(self, inner: nn.Module, sigma: float) -> None:
        super().__init__()
        self.inner, self.sigma, self.gen = inner, sigma, torch.Generator()

    def reseed(self) -> Noisy:
        self.gen.manual_seed(1)
        return self

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(x + self.sigma * torch.randn(x.shape, generator=self.gen, dtype=x.dtype))


def _advgrad(model: nn.Module, x: Tensor, y: Tensor, eps: float | Tensor, *, loss: str, **kw: Any) -> AttackResult:
    if loss == "t":
        return apgd_targeted(model, x, y, eps, **kw)
    return apgd(model, x, y, eps, loss=loss, **kw)


def _fooled(model: nn.Module, x_adv: Tensor, y: Tensor) -> Tensor:
    with torch.no_grad():
        return model(x_adv).argmax(1) != y


# --- the checkpoint schedule ----------------------------------------------------------------------

def test_checkpoints_for_100_steps_are_the_papers() -> None:
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]


@pytest.mark.parametrize("steps", [1, 3, 10, 20, 33, 50, 100])
def test_checkpoints_are_where_the_reference_checks(steps: int, tiny_mlp: nn.Module) -> None:
    """Spy on the reference's own check (its iteration index and window k) during a real run."""
    base = pytest.importorskip("pyautoattack.autopgd_base")
    attack = base.APGDAttack(tiny_mlp, n_iter=steps, norm="Linf", eps=0.1, seed=0, device="cpu")
    seen: list[tuple[int, int]] = []
    check = attack.check_oscillation

    def spy(losses: Tensor, j: int, k: int, best: Tensor, k3: float = 0.75) -> Tensor:
        seen.append((j + 1, k))
        return check(losses, j, k, best, k3=k3)

    attack.check_oscillation = spy
    x = torch.rand((4, 1, 4, 4), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = tiny_mlp(x).argmax(1)  # all correct: the reference attacks them all
    with torch.random.fork_rng():
        attack.perturb(x, y)
    marks = checkpoints(steps)
    assert [at for at, _ in seen] == marks
    assert [k for _, k in seen] == [b - a for a, b in zip([0, *marks], marks)]


# --- DLR ------------------------------------------------------------------------------------------

def test_dlr_hand_computed() -> None:
    z = torch.tensor([[1.0, 4.0, 2.0, 3.0], [1.0, 4.0, 2.0, 3.0], [0.5, -1.0, 2.0, 0.0]], dtype=torch.float64)
    # row 0, y=0: max_{i≠y} = 4, π1 − π3 = 4 − 2: −(1 − 4)/2; row 1, y=1: −(4 − 3)/2;
    # row 2, y=2: −(2 − 0.5)/(2 − 0) (sorted: 2, 0.5, 0, −1)
    expected = torch.tensor([3 / (2 + 1e-12), -1 / (2 + 1e-12), -1.5 / (2 + 1e-12)], dtype=torch.float64)
    torch.testing.assert_close(dlr_loss(z, torch.tensor([0, 1, 2])), expected, rtol=1e-15, atol=0)
    # targeted, y=1: t=3: −(4 − 3)/(4 − ½(2 + 1)); t=0: −(4 − 1)/2.5;
    # row 2, y=0, t=2: −(0.5 − 2)/(2 − ½(0 + (−1)))
    expected_t = torch.tensor([-1 / (2.5 + 1e-12), -3 / (2.5 + 1e-12), 1.5 / (2.5 + 1e-12)], dtype=torch.float64)
    got = dlr_targeted_loss(z, torch.tensor([1, 1, 0]), torch.tensor([3, 0, 2]))
    torch.testing.assert_close(got, expected_t, rtol=1e-15, atol=0)


@settings(max_examples=60, deadline=None)
@given(k=st.integers(4, 12), seed=st.integers(0, 2**31), scale=st.floats(1e-2, 1e2), shift=st.floats(-50, 50))
def test_dlr_is_shift_and_scale_invariant_and_positive_iff_misclassified(k: int, seed: int, scale: float,
                                                                          shift: float) -> None:
    """Distinct integer logits: the gaps are ≥ 1, so the ratios are well conditioned and the 1e−12 term is
    below float64 rounding (rtol 1e−9 leaves room for scale × shift rounding of the logits)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.stack([torch.randperm(k, generator=g) for _ in range(8)]).double()  # (8, k) distinct values
    y, t = torch.randint(0, k, (8,), generator=g), torch.randint(0, k, (8,), generator=g)
    for fn in (lambda v: dlr_loss(v, y), lambda v: dlr_targeted_loss(v, y, t)):
        torch.testing.assert_close(fn(scale * z + shift), fn(z), rtol=1e-9, atol=1e-12)
    assert torch.equal(dlr_loss(z, y) > 0, z.argmax(1) != y)


def test_dlr_and_its_gradient_equal_the_references_bit_for_bit() -> None:
    base = pytest.importorskip("pyautoattack.autopgd_base")
    g = torch.Generator().manual_seed(0)
    z, y, t = torch.randn(64, 10, generator=g), torch.randint(0, 10, (64,), generator=g), \
        torch.randint(0, 10, (64,), generator=g)
    attack = base.APGDAttack_targeted(nn.Identity(), eps=0.1)
    attack.y_target = t
    for ours, theirs in ((lambda v: dlr_loss(v, y), lambda v: attack.dlr_loss(v, y)),
                         (lambda v: dlr_targeted_loss(v, y, t), lambda v: attack.dlr_loss_targeted(v, y))):
        a, b = z.clone().requires_grad_(), z.clone().requires_grad_()
        la, lb = ours(a), theirs(b)
        assert torch.equal(la, lb)
        assert torch.equal(*(torch.autograd.grad(v.sum(), w)[0] for v, w in ((la, a), (lb, b))))
    z64 = torch.randn(6, 5, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: dlr_targeted_loss(v, y[:6] % 5, t[:6] % 5), (z64,))


# --- parity with the reference --------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("norm", ["inf", "2"])
@pytest.mark.parametrize("loss", ATTACKS)
def test_exact_mode_is_the_reference_bit_for_bit(trained_small, digits, reference, norm: str, loss: str) -> None:
    """100 digits in one piece, 15 steps (checkpoints after 3, 5, 7, … steps), two restarts for APGD-CE and
    APGD-DLR, 3 targets for APGD-T; about half the digits are fooled, at many different steps. (One piece:
    no chunk boundary is involved, so the count only sets how many trajectories are compared.)"""
    model, _ = trained_small
    x, y = digits[0][:100], digits[1][:100]
    kw = {"norm": norm, "steps": 15, "seed": 7}
    many = {"targets": 3} if loss == "t" else {"restarts": 2}
    theirs = reference(model, x, y, EPS[norm], loss=loss, **kw, **many)
    ours = _advgrad(model, x, y, EPS[norm], loss=loss, chunk_size=len(x), **kw, **many)
    assert torch.equal(ours.x_adv, theirs)
    assert torch.equal(ours.success, _fooled(model, theirs, y))
    assert 0.2 < ours.success.float().mean() < 0.8  # a test where flags can differ


@pytest.mark.slow
@pytest.mark.parametrize(("norm", "loss"), [("inf", "ce"), ("inf", "t"), ("2", "dlr")])
def test_full_settings_are_the_reference_bit_for_bit(trained_small, digits, reference, norm: str,
                                                     loss: str) -> None:
    """AutoAttack's settings: 100 steps (the eight checkpoints), 9 targets for APGD-T; 50 digits (30 for
    APGD-T, whose nine runs cost the most). The full step count is what this test adds to the 15-step one
    above; some digits are fooled and some not, so flags and bits can differ."""
    model, _ = trained_small
    x, y = digits[0][200:230 if loss == "t" else 250], digits[1][200:230 if loss == "t" else 250]
    theirs = reference(model, x, y, EPS[norm], loss=loss, norm=norm, steps=100)
    ours = _advgrad(model, x, y, EPS[norm], loss=loss, norm=norm, steps=100, chunk_size=len(x))
    assert torch.equal(ours.x_adv, theirs)
    assert torch.equal(ours.success, _fooled(model, theirs, y))
    assert bool(ours.success.any()) and not bool(ours.success.all())


@pytest.mark.slow
@pytest.mark.parametrize(("norm", "loss"), [("inf", "ce"), ("2", "dlr")])
def test_eot_on_a_randomised_model_is_the_reference_bit_for_bit(trained_small, digits, reference, norm: str,
                                                                loss: str) -> None:
    """EOT (AutoAttack's "rand" version: APGD-CE and APGD-DLR, gradients averaged over eot passes): the
    noisy model draws from its own generator, and both sides make the same calls on the same shapes."""
    model = Noisy(trained_small[0], sigma=0.1)
    x, y = digits[0][300:400], digits[1][300:400]
    theirs = reference(model.reseed(), x, y, EPS[norm], loss=loss, norm=norm, steps=6, eot=3)
    ours = apgd(model.reseed(), x, y, EPS[norm], loss=loss, norm=norm, steps=6, eot=3, chunk_size=len(x))
    assert torch.equal(ours.x_adv, theirs)
    assert bool(ours.success.any()) and not bool(ours.success.all())


@pytest.mark.slow
def test_the_first_checkpoints_quirk_is_reproduced(trained_small, digits, reference, monkeypatch) -> None:
    """The reference's first check compares the loss after the first step with a zero-initialised slot of
    its loss history; a reference whose first window counts only real pairs of losses gives other
    examples, and advgrad gives the reference's (15 steps: k = 3, so the quirk's extra "rise" of the
    positive cross-entropy decides whether the step halves)."""
    base = pytest.importorskip("pyautoattack.autopgd_base")
    model, _ = trained_small
    x, y = digits[0][:200], digits[1][:200]
    quirky = reference(model, x, y, 0.1, loss="ce", norm="inf", steps=15)

    def real_pairs_only(self, losses: Tensor, j: int, k: int, best: Tensor, k3: float = 0.75) -> Tensor:
        rises = sum((losses[j - c] > losses[j - c - 1]).float() for c in range(k) if j - c - 1 >= 0)
        return (rises <= k * k3 * torch.ones_like(losses[0])).float()

    monkeypatch.setattr(base.APGDAttack, "check_oscillation", real_pairs_only)
    fixed = reference(model, x, y, 0.1, loss="ce", norm="inf", steps=15)
    ours = apgd(model, x, y, 0.1, steps=15, chunk_size=len(x))
    assert torch.equal(ours.x_adv, quirky)
    assert not torch.equal(fixed, quirky)


# --- the fast mode, restarts, strength ------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize(("n", "chunk", "norm", "loss"),
                         [(150, 32, "inf", "ce"), (225, 50, "2", "dlr"), (300, 64, "inf", "t")])
def test_early_stop_in_chunks_flags_equal_the_exact_mode(trained_small, digits, n: int, chunk: int, norm: str,
                                                         loss: str) -> None:
    """Flags, not bits: early_stop drops fooled samples, so the rows that share a matrix multiply change
    (and their x_adv is the first fooling iterate, not the last). Every other quantity is per sample, so a
    sample's trajectory moves only by the last-bit rounding of a different batch, which can change a flag
    only at an exact tie of two logits or a gradient sign at zero; on this data none occurs."""
    model, _ = trained_small
    x, y = digits[0][:n], digits[1][:n]
    kw: dict[str, Any] = dict(loss=loss, norm=norm, steps=12, seed=3,
                              **({"targets": 2} if loss == "t" else {"restarts": 2}))
    exact = _advgrad(model, x, y, EPS[norm], chunk_size=n, **kw)
    fast = _advgrad(model, x, y, EPS[norm], chunk_size=chunk, early_stop=True, **kw)
    counting = Counting(model)
    whole = _advgrad(counting, x, y, EPS[norm], chunk_size=n, early_stop=True, **kw)
    assert torch.equal(fast.success, exact.success) and torch.equal(whole.success, exact.success)
    assert torch.equal(fast.x_adv[~fast.success], x[~fast.success])
    assert bool(_fooled(model, fast.x_adv, y)[fast.success].all())
    shrinks = sum(b < a for a, b in zip(counting.sizes, counting.sizes[1:]))
    assert shrinks >= 4  # the batch shrank at several iterations: samples flip at different steps
    assert sum(counting.sizes) < (1 + 2 * 13) * n


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["inf", "2"])
def test_restarts_attack_only_the_survivors_and_keep_the_first_example(trained_small, digits,
                                                                       norm: str) -> None:
    model, _ = trained_small
    x, y = digits[0][:150], digits[1][:150]
    steps = 8
    one = apgd(model, x, y, EPS[norm], norm=norm, steps=steps, chunk_size=150)
    counting = Counting(model)
    two = apgd(counting, x, y, EPS[norm], norm=norm, steps=steps, restarts=2, chunk_size=150)
    with torch.no_grad():
        correct = int((model(x).argmax(1) == y).sum())
    survivors = int((~one.success).sum())
    # the clean pass, then (1 + steps) passes per run: on the correct digits, then on the survivors
    assert counting.sizes == [150] + [correct] * (1 + steps) + [survivors] * (1 + steps)
    assert torch.equal(two.x_adv[one.success], one.x_adv[one.success])
    assert bool(two.success[one.success].all())


@pytest.mark.parametrize(("norm", "eps"), [("inf", 0.3), ("2", 4.0)])
def test_a_standard_model_falls_to_zero_at_a_large_eps(trained_small, digits, norm: str, eps: float) -> None:
    model, _ = trained_small
    x, y = digits[0][:200], digits[1][:200]
    result = apgd(model, x, y, eps, norm=norm, steps=20, early_stop=True)
    assert result.success.float().mean() >= 0.99


# --- invariants over the state space --------------------------------------------------------------

def _five_classes() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Dropout(0.3), nn.Linear(12, 5))


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), norm=st.sampled_from(["inf", "2"]), loss=st.sampled_from(ATTACKS),
       eps_frac=st.floats(0.01, 1.0), lo=st.floats(-1.0, 0.0), width=st.floats(0.5, 2.0),
       seed=st.integers(0, 2**32), chunk=st.one_of(st.none(), st.integers(1, 40)), steps=st.integers(1, 8),
       restarts=st.integers(1, 2), eot=st.integers(1, 2), targets=st.integers(1, 4))
def test_invariants(n: int, norm: str, loss: str, eps_frac: float, lo: float, width: float, seed: int,
                    chunk: int | None, steps: int, restarts: int, eot: int, targets: int) -> None:
    """Within the ε-ball and the bounds; x, y, the model's mode, flags and .grad untouched; x_adv = x
    exactly where not successful; the flags of early_stop equal those of the exact mode (per-sample
    arithmetic; a flag could differ only at an exact tie, see the chunked test).

    Slack of the ball: L∞, x_adv is clipped to [x − ε, x + ε] whose ends are rounded, and δ = x_adv − x
    is rounded again: 2 ulp of the largest magnitude. L2, the projection scales δ to ‖δ‖ ≤ ε·(1 + a few
    ulp) and adding x rounds each of the d = 16 coordinates by ≤ ½ ulp: ε·1e−6 + √d·2 ulp."""
    model = _five_classes().train()
    model[1].weight.requires_grad_(False)
    hi = lo + width
    g = torch.Generator().manual_seed(seed)
    x = lo + width * (0.01 + 0.98 * torch.rand((n, 1, 4, 4), generator=g))  # inside [lo, hi] after rounding
    y = torch.randint(0, 5, (n,), generator=g)
    x0, y0 = x.clone(), y.clone()
    eps = eps_frac * (width if norm == "inf" else 4 * width)
    kw: dict[str, Any] = dict(loss=loss, norm=norm, steps=steps, bounds=(lo, hi), seed=seed, eot=eot, chunk_size=chunk,
              **({"targets": targets} if loss == "t" else {"restarts": restarts}))
    exact, fast = (_advgrad(model, x, y, eps, early_stop=es, **kw) for es in (False, True))
    assert torch.equal(x, x0) and torch.equal(y, y0)
    assert model.training and not model[1].weight.requires_grad and model[1].bias.requires_grad
    assert all(p.grad is None for p in model.parameters())
    ulp = torch.finfo(torch.float32).eps * max(1.0, abs(lo), abs(hi))
    slack = 2 * ulp if norm == "inf" else eps * 1e-6 + 4 * 2 * ulp
    for r in (exact, fast):
        delta = (r.x_adv - x).flatten(1)
        assert float(delta.norm(p=math.inf if norm == "inf" else 2, dim=1).max()) <= eps + slack
        assert float(r.x_adv.min()) >= lo and float(r.x_adv.max()) <= hi
        assert torch.equal(r.x_adv[~r.success], x[~r.success])
        assert torch.equal(r.logits.argmax(1) != y, r.success)
        model.eval()
        with torch.no_grad():
            torch.testing.assert_close(r.logits, model(r.x_adv), rtol=1e-5, atol=1e-5)
        model.train()
    assert torch.equal(exact.success, fast.success)


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_an_eps_per_sample_bounds_each_sample_by_its_own(norm: str) -> None:
    model = _five_classes().eval()
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand((30, 1, 4, 4), generator=g), torch.randint(0, 5, (30,), generator=g)
    eps = torch.linspace(0.01, 0.5, 30) * (1 if norm == "inf" else 4)
    with torch.no_grad():
        attacked = model(x).argmax(1) == y  # the clean mistakes are returned as they are
    for loss in ATTACKS:
        extra = {"targets": 4} if loss == "t" else {}
        r = _advgrad(model, x, y, eps, loss=loss, norm=norm, steps=6, early_stop=loss == "ce", **extra)
        size = (r.x_adv - x).flatten(1).norm(p=math.inf if norm == "inf" else 2, dim=1)
        assert bool((size <= eps * (1 + 1e-6) + 1e-7).all())
        assert bool((size[r.success & attacked] > 0).all()) and int((r.success & attacked).sum()) > 0
    same = apgd(model, x, y, torch.full((30,), 0.2), norm=norm, steps=6, chunk_size=30)
    assert torch.equal(same.x_adv, apgd(model, x, y, 0.2, norm=norm, steps=6, chunk_size=30).x_adv)


@pytest.mark.slow
@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 24), norm=st.sampled_from(["inf", "2"]), loss=st.sampled_from(ATTACKS),
       eps_frac=st.floats(0.02, 1.0), seed=st.integers(0, 2**32), steps=st.integers(1, 12),
       restarts=st.integers(1, 3), targets=st.integers(1, 4), eot=st.integers(1, 2))
def test_exact_mode_is_the_reference_over_the_state_space(reference, n: int, norm: str, loss: str,
                                                          eps_frac: float, seed: int, steps: int,
                                                          restarts: int, targets: int, eot: int) -> None:
    """Bit for bit again (one piece, same process), on a small MLP: any batch size from one sample, 1 to
    12 steps (schedules with windows of one step, a first check after the last step), restarts, targets."""
    model = _five_classes().eval()
    g = torch.Generator().manual_seed(seed)
    x, y = torch.rand((n, 1, 4, 4), generator=g), torch.randint(0, 5, (n,), generator=g)
    eps = eps_frac * (0.5 if norm == "inf" else 2.0)
    kw: dict[str, Any] = dict(norm=norm, steps=steps, seed=seed % 2**31, eot=eot, restarts=restarts,
                              **({"targets": targets} if loss == "t" else {}))
    theirs = reference(model, x, y, eps, loss=loss, **kw)
    ours = _advgrad(model, x, y, eps, loss=loss, chunk_size=n, **kw)
    assert torch.equal(ours.x_adv, theirs)


def _err(match: str, **kw):  # type: ignore[no-untyped-def]
    return pytest.param(kw, match, id=match[:30])


@pytest.mark.parametrize(("kw", "match"), [
    _err("use_largereps applies to norm .1. only", use_largereps=True),
    _err("unknown norm 'l3'", norm="l3"),
    _err("unknown APGD loss 'mse'", loss="mse"),
    _err("steps must be an integer ≥ 1, got 0", steps=0),
    _err("restarts must be an integer ≥ 1, got 0", restarts=0),
    _err("eot must be an integer ≥ 1, got 1.5", eot=1.5),
    _err(r"rho must be a number in \[0, 1\], got 1.5", rho=1.5),
    _err("seed must be an integer .* got 0.5", seed=0.5),
    _err("early_stop must be True or False, got 'yes'", early_stop="yes"),
    _err("chunk_size must be an integer ≥ 1, got 0", chunk_size=0),
    _err("eps must be finite and > 0, got -0.1", eps=-0.1),
    _err("eps must be finite and > 0, got 0.0", eps=0.0),
    _err(r"bounds must be finite with lo < hi, got \(1.0, 0.0\)", bounds=(1.0, 0.0)),
    _err("x lies outside bounds", bounds=(0.5, 1.0)),
    _err("label 7 is outside the model's 5 classes", y=torch.tensor([0, 7])),
    _err("x must be a floating-point tensor", x=torch.zeros((2, 1, 4, 4), dtype=torch.long)),
    _err("x has 2 samples but y has 3 labels", y=torch.tensor([0, 1, 2])),
    _err("targets must be an integer ≥ 1, got 0", targets=0),
    _err("targets must be at most K − 1 = 4 for a model with 5 classes, got 5", targets=5),
])
def test_bad_arguments_raise_value_errors(kw: dict, match: str) -> None:
    model = _five_classes().eval()
    args = {"x": torch.full((2, 1, 4, 4), 0.25), "y": torch.tensor([0, 1]), "eps": 0.1, **kw}
    x, y, eps = args.pop("x"), args.pop("y"), args.pop("eps")
    with pytest.raises(ValueError, match=match):
        if "targets" in args:
            apgd_targeted(model, x, y, eps, **args)
        else:
            apgd(model, x, y, eps, **args)


@pytest.mark.parametrize(("classes", "loss", "match"), [
    (2, "dlr", "APGD with loss 'dlr' needs a model with at least 3 classes, got 2"),
    (3, "t", "APGD-T .* needs a model with at least 4 classes, got 3"),
])
def test_dlr_needs_enough_classes(classes: int, loss: str, match: str) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, classes)).eval()
    with pytest.raises(ValueError, match=match):
        _advgrad(model, torch.full((2, 1, 4, 4), 0.5), torch.tensor([0, 1]), 0.1, loss=loss,
                 **({"targets": 1} if loss == "t" else {}))


def test_checkpoints_rejects_zero_steps() -> None:
    with pytest.raises(ValueError, match="steps must be an integer ≥ 1, got 0"):
        checkpoints(0)
