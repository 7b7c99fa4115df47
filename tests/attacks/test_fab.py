"""FAB-T against the authors' implementation (pyautoattack 0.2.0, ``FABAttack_PT(targeted=True)``) and
against the maths of its projection step.

Bit-level claims, and why they hold by construction:
- advgrad's FAB-T on one batch in one piece (``chunk_size=len(x)``, ``early_stop=False``) runs the
  reference's float operations on tensors of the reference's shapes, in the same process, and draws its
  random restarts from a private generator seeded like the reference's ``torch.manual_seed(seed)``, so
  every iterate, and the returned examples, are the same bits.
- The projections repeat the reference's arithmetic row by row (same sums, same unstable sort, same
  bisection probes), so on the same rows they return the same bits.
- Chunks of ≥ 16 rows: cnn-small treats rows independently and, from 16 rows per batch, with the same
  kernels (as ``advgrad.attacks.auto_chunk_size`` states and tests), so chunking changes no bit.
Elsewhere (early stop: rows leave the batch, and batches of a few rows may round a logit's last bit
differently) the tests compare what is stable: per-sample success flags, norms, bounds.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from advgrad.attacks import AttackResult
from advgrad.attacks._fab_projections import project_l1, project_l2, project_linf
from advgrad.attacks.fab import FabStep, fab_targeted
from advgrad.losses import margin

REF_NORM = {"inf": "Linf", "2": "L2", "1": "L1"}
PROJECT = {"inf": project_linf, "2": project_l2, "1": project_l1}
EPS = {"inf": 0.08, "2": 0.8, "1": 6.0}  # about a third of the fixture model's digits break at these radii


def _bits(t: Tensor) -> Tensor:
    return t.contiguous().view(torch.int32)


def _reference(model: nn.Module, x: Tensor, y: Tensor, eps: float, norm: str, *, steps: int, targets: int,
               restarts: int = 1, seed: int = 0) -> Tensor:
    """The reference FAB-T, on a copy of the model (it writes parameter gradients), with torch's global RNG
    saved and restored around it (it reseeds and draws from it)."""
    fab_pt = pytest.importorskip("pyautoattack.fab_pt")
    attack = fab_pt.FABAttack_PT(copy.deepcopy(model), norm=REF_NORM[norm], n_restarts=restarts, n_iter=steps,
                                 eps=eps, seed=seed, targeted=True, n_target_classes=targets, verbose=False)
    with torch.random.fork_rng():
        return attack.perturb(x.clone(), y.clone())


@torch.no_grad()
def _fooled(model: nn.Module, x_adv: Tensor, y: Tensor) -> Tensor:
    return model(x_adv).argmax(dim=1) != y


def _length(norm: str, v: Tensor) -> Tensor:
    """‖v‖ per sample in float64 (an independent measure of the perturbation)."""
    return torch.linalg.vector_norm(v.flatten(1).double(), ord={"inf": math.inf, "2": 2, "1": 1}[norm], dim=1)


# --- parity with the reference -------------------------------------------------------------------------

_CACHE: dict[tuple[str, int], tuple[Tensor, Tensor, tuple[AttackResult, Tensor]]] = {}
N_PARITY, STEPS, TARGETS = 160, 8, 3


def _exact_and_reference(trained_small, mnist5k, norm: str) -> tuple[Tensor, Tensor, tuple[AttackResult, Tensor]]:
    """(x, y, (ours in one piece, the reference's x_adv)) on 160 test digits, 8 iterations, 3 targets:
    computed once per norm and shared by the parity and the fast-mode tests."""
    key = (norm, N_PARITY)
    if key not in _CACHE:
        model, _ = trained_small
        x, y = mnist5k.x_test[:N_PARITY].clone(), mnist5k.y_test[:N_PARITY].clone()
        theirs = _reference(model, x, y, EPS[norm], norm, steps=STEPS, targets=TARGETS)
        ours = fab_targeted(model, x, y, EPS[norm], norm=norm, steps=STEPS, targets=TARGETS, chunk_size=len(x))
        _CACHE[key] = (x, y, (ours, theirs))
    return _CACHE[key]


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["inf", "2"])
def test_one_piece_is_bit_identical_to_the_reference(trained_small, mnist5k, norm: str) -> None:
    model, _ = trained_small
    x, y, (ours, theirs) = _exact_and_reference(trained_small, mnist5k, norm)
    assert torch.equal(_bits(ours.x_adv), _bits(theirs))
    flags = _fooled(model, theirs, y)
    assert torch.equal(ours.success, flags)
    assert 0.1 < flags.float().mean() < 0.9  # the radius separates the digits: the test can fail
    # Successes that needed a target beyond the first: the target loop is exercised too.
    first = fab_targeted(model, x, y, EPS[norm], norm=norm, steps=STEPS, targets=1, chunk_size=len(x))
    assert int(ours.success.sum()) > int(first.success.sum())


@pytest.mark.slow
@pytest.mark.parametrize("norm,eps", [("inf", 0.5), ("2", 5.0), ("1", 50.0)])
def test_random_restarts_draw_the_references_numbers(trained_small, mnist5k, norm: str, eps: float) -> None:
    """Runs after the first start from x + (ε/2)·u/‖u‖, u drawn from the generator: the same bits as the
    reference's draws from its reseeded global RNG, which advgrad leaves untouched. One iteration per run
    and a large ε, so that the random starts break digits the first run did not (else the draws would
    not show in the result)."""
    model, _ = trained_small
    x, y = mnist5k.x_test[400:500].clone(), mnist5k.y_test[400:500].clone()
    theirs = _reference(model, x, y, eps, norm, steps=1, targets=1, restarts=3, seed=7)
    state = torch.get_rng_state()
    ours = fab_targeted(model, x, y, eps, norm=norm, steps=1, targets=1, restarts=3, seed=7, chunk_size=len(x))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(_bits(ours.x_adv), _bits(theirs))
    assert torch.equal(ours.success, _fooled(model, theirs, y))
    first = fab_targeted(model, x, y, eps, norm=norm, steps=1, targets=1, restarts=1, seed=7, chunk_size=len(x))
    assert int(ours.success.sum()) > int(first.success.sum())
    other_seed = fab_targeted(model, x, y, eps, norm=norm, steps=1, targets=1, restarts=3, seed=8, chunk_size=len(x))
    assert not torch.equal(other_seed.x_adv, ours.x_adv)


@pytest.mark.slow
@pytest.mark.heavy
def test_autoattack_setting_is_bit_identical_to_the_reference(trained_small, mnist5k) -> None:
    """AutoAttack's FAB-T: 100 iterations, 9 target classes, one restart (16 digits: the full setting costs
    ~2,000 forward-backward passes per digit, in both implementations). Once, in L∞: what the full setting
    adds to the 8-iteration parity test (the step-size bookkeeping over 100 iterations, all nine targets)
    does not depend on the norm, and the L2 projection's bits are tested there and below."""
    model, _ = trained_small
    norm, eps = "inf", 0.1
    x, y = mnist5k.x_test[600:616].clone(), mnist5k.y_test[600:616].clone()
    theirs = _reference(model, x, y, eps, norm, steps=100, targets=9)
    ours = fab_targeted(model, x, y, eps, norm=norm, chunk_size=len(x))
    assert torch.equal(_bits(ours.x_adv), _bits(theirs))
    assert torch.equal(ours.success, _fooled(model, theirs, y))
    assert bool(ours.success.any()) and not bool(ours.success.all())  # flags and bits can differ
    fast = fab_targeted(model, x, y, eps, norm=norm, early_stop=True, chunk_size=16)
    assert torch.equal(fast.success, ours.success)


# --- fast mode -------------------------------------------------------------------------------------------

class _Counting(nn.Module):
    """The model, counting the rows it is asked to forward."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.rows = model, 0

    def forward(self, x: Tensor) -> Tensor:
        self.rows += len(x)
        return self.model(x)


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["inf", "2"])
def test_fast_mode_breaks_the_same_samples_as_the_exact_mode(trained_small, mnist5k, norm: str) -> None:
    """160 digits in chunks of 32 (five chunks, each ≥ 16 rows), breaking at different iterations and targets.

    Chunks alone change no bit (see the module docstring). Early stop then freezes a sample at its first
    adversarial iterate within ε; until then its trajectory is the exact mode's (every quantity FAB
    computes for a sample is its own), so it is broken iff the exact mode breaks it, which keeps its
    smallest adversarial point instead (≤ ε iff some iterate was ≤ ε). Rows leaving the batch could only
    round another row's logits differently in batches of a few rows: the flags are what is compared."""
    model, _ = trained_small
    x, y, (exact, _) = _exact_and_reference(trained_small, mnist5k, norm)
    exact_rows = _Counting(model)
    chunked = fab_targeted(exact_rows, x, y, EPS[norm], norm=norm, steps=STEPS, targets=TARGETS, chunk_size=32)
    assert torch.equal(_bits(chunked.x_adv), _bits(exact.x_adv))
    counting = _Counting(model)
    fast = fab_targeted(counting, x, y, EPS[norm], norm=norm, steps=STEPS, targets=TARGETS, chunk_size=32,
                        early_stop=True)
    assert torch.equal(fast.success, exact.success)
    assert torch.equal(fast.x_adv[~fast.success], x[~fast.success])
    assert bool((_length(norm, fast.x_adv - x) <= EPS[norm] * (1 + 1e-6)).all())
    # Early stop took work away (fewer rows forwarded: here only the rest of the run in which a sample
    # broke, since broken samples skip the next targets in both modes), and the broken samples'
    # perturbations are no smaller than the exact mode's smallest ones.
    assert counting.rows < exact_rows.rows
    broken = exact.success & (exact.x_adv != x).flatten(1).any(1)
    assert bool((_length(norm, fast.x_adv - x)[broken] >= _length(norm, exact.x_adv - x)[broken] * (1 - 1e-6)).all())


@pytest.mark.parametrize("norm,eps", [("inf", 0.3), ("2", 4.0)])
def test_a_standard_model_is_broken_at_a_large_radius(trained_small, mnist5k, norm: str, eps: float) -> None:
    model, _ = trained_small
    x, y = mnist5k.x_test[:100], mnist5k.y_test[:100]
    result = fab_targeted(model, x, y, eps, norm=norm, steps=20, early_stop=True)
    assert result.success.float().mean() >= 0.99
    assert bool((_length(norm, result.x_adv - x) <= eps * (1 + 1e-6)).all())


# --- the projection: the maths, and the reference's bits ---------------------------------------------

def _problem(seed: int, rows: int, d: int, lo: float, hi: float, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    """Points in the box with many coordinates exactly at an end (as MNIST pixels are), normals with some
    exact zeros, offsets from inside the box to well outside it (infeasible rows)."""
    g = torch.Generator().manual_seed(seed)
    t = lo + (hi - lo) * torch.rand(rows, d, generator=g, dtype=torch.float64)
    pick = torch.rand(rows, d, generator=g, dtype=torch.float64)
    t = torch.where(pick < 0.3, lo, torch.where(pick < 0.45, hi, t))
    w = torch.randn(rows, d, generator=g, dtype=torch.float64)
    w = torch.where(torch.rand(rows, d, generator=g, dtype=torch.float64) < 0.15, 0.0, w)
    b = (w * (lo + (hi - lo) * torch.rand(rows, d, generator=g, dtype=torch.float64))).sum(1)
    b = b * (0.5 + 2 * torch.rand(rows, generator=g, dtype=torch.float64))
    return t.to(dtype), w.to(dtype), b.to(dtype)


def _clip(v: Tensor, low: Tensor, high: Tensor) -> Tensor:
    return torch.minimum(torch.maximum(v, low), high)


def _by_bisection(norm: str, t: Tensor, w: Tensor, b: Tensor, lo: float, hi: float) -> Tensor:
    """An independent float64 solution, one row at a time: the minimiser has the form
    δ(s) = clip(−s·dir, lo − t, hi − t) (dir = sign(w) for L∞, w for L2: the KKT conditions), and
    ⟨w, δ(s)⟩ falls monotonically in s ≥ 0, so 200 bisection steps on s find it to the last bit."""
    out = torch.zeros_like(t)
    for i in range(len(t)):
        ti, wi, bi = t[i], w[i], b[i]
        if (wi * ti).sum() - bi < 0:
            wi, bi = -wi, -bi
        direction = wi.sign() if norm == "inf" else wi
        low, high = lo - ti, hi - ti
        target = bi - (wi * ti).sum()  # ≤ 0

        def falls_short(s: float, direction: Tensor = direction, low: Tensor = low, high: Tensor = high,
                        wi: Tensor = wi, target: Tensor = target) -> bool:
            return bool((wi * _clip(-s * direction, low, high)).sum() > target)

        if falls_short(1e30):  # the hyperplane misses the box: every coordinate at its end
            out[i] = _clip(-1e30 * direction, low, high)
            continue
        a, z = 0.0, 1.0
        while falls_short(z):
            z *= 2
        for _ in range(200):
            m = (a + z) / 2
            a, z = (m, z) if falls_short(m) else (a, m)
        out[i] = _clip(-z * direction, low, high)
    return out


def _l1_by_enumeration(t: Tensor, w: Tensor, b: Tensor, lo: float, hi: float) -> Tensor:
    """The least ‖δ‖₁ per row by brute force: a vertex of {⟨w, δ⟩ = −c} ∩ box has every coordinate at 0 or
    at its end except at most one, and the linear objective attains its minimum at a vertex; try them all."""
    import itertools

    best = torch.full((len(t),), math.inf, dtype=t.dtype)
    d = t.shape[1]
    for i in range(len(t)):
        ti, wi = t[i], w[i]
        need = b[i] - (wi * ti).sum()
        for ends in itertools.product((0, 1, 2), repeat=d):  # 0: stay, 1: to lo, 2: to hi
            delta = torch.tensor([0.0 if e == 0 else (lo if e == 1 else hi) - ti[j] for j, e in enumerate(ends)],
                                 dtype=t.dtype)
            for j in [None, *range(d)]:  # the coordinate that moves part way, if any
                cand = delta.clone()
                if j is not None:
                    if ends[j] != 0 or wi[j] == 0:
                        continue
                    cand[j] = (need - (wi * delta).sum()) / wi[j]
                    if not (lo - 1e-12 <= ti[j] + cand[j] <= hi + 1e-12):
                        continue
                if abs(float((wi * cand).sum() - need)) <= 1e-9 * (1 + float(wi.abs().sum())):
                    best[i] = min(float(best[i]), float(cand.abs().sum()))
    return best


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), rows=st.integers(1, 4), d=st.integers(1, 5),
       box=st.sampled_from([(0.0, 1.0), (-1.0, 2.0)]), norm=st.sampled_from(["inf", "2", "1"]))
def test_projection_is_the_least_norm_point_of_the_hyperplane_in_the_box(seed: int, rows: int, d: int,
                                                                        box: tuple[float, float], norm: str) -> None:
    """Tiny problems in float64 against independent solutions (bisection on the KKT form for L∞/L2,
    vertex enumeration for L1); where the hyperplane misses the box, every coordinate goes to its end."""
    lo, hi = box
    t, w, b = _problem(seed, rows, d, lo, hi, torch.float64)
    delta = PROJECT[norm](t, w, b, lo, hi)
    assert bool(((t + delta >= lo - 1e-12) & (t + delta <= hi + 1e-12)).all())
    scale = 1 + (w.abs() * (hi - lo)).sum(1)
    far = _by_bisection("inf", t, w, b, lo, hi)  # the corner, where infeasible
    feasible = ((w * far).sum(1) - (b - (w * t).sum(1))).abs() <= 1e-9 * scale
    hit = ((w * (t + delta)).sum(1) - b).abs() <= 1e-9 * scale
    assert torch.equal(hit, feasible)
    if norm == "1":
        torch.testing.assert_close(delta[~feasible], far[~feasible], rtol=0, atol=1e-12)
        torch.testing.assert_close(delta.abs().sum(1)[feasible], _l1_by_enumeration(t, w, b, lo, hi)[feasible],
                                   rtol=1e-9, atol=1e-12)
    else:
        # L2's minimiser is unique; of L∞'s many, FAB's moves every coordinate as far as λ* allows.
        torch.testing.assert_close(delta, _by_bisection(norm, t, w, b, lo, hi), rtol=0, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), rows=st.integers(1, 40), d=st.sampled_from([1, 2, 3, 7, 64, 784]))
def test_projections_are_bit_identical_to_the_references(seed: int, rows: int, d: int) -> None:
    """float32, the default box, MNIST-like ties: the same bits as pyautoattack's fab_projections."""
    ref = pytest.importorskip("pyautoattack.fab_projections")
    t, w, b = _problem(seed, rows, d, 0.0, 1.0, torch.float32)
    w[0, : d // 2] = 0.0  # a row with many zero normals, and exact ±1e-9 (below the L2 cut-off)
    w[-1, -1:] = 1e-9
    for norm, theirs in (("inf", ref.projection_linf), ("2", ref.projection_l2), ("1", ref.projection_l1)):
        assert torch.equal(_bits(PROJECT[norm](t, w, b)), _bits(theirs(t, w, b))), norm


# --- invariants ------------------------------------------------------------------------------------------

def _small_model(dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """A seeded conv net on (1, 6, 6) inputs, 5 classes, with dropout (so eval mode matters); built without
    touching the global RNG."""
    with torch.random.fork_rng():
        torch.manual_seed(3)
        model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Dropout(0.5), nn.Flatten(), nn.Linear(64, 5))
    return model.to(dtype)


def _small_batch(n: int, seed: int, lo: float, hi: float, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = lo + (hi - lo) * torch.rand(n, 1, 6, 6, generator=g, dtype=dtype)
    return x.clamp(lo, hi), torch.randint(0, 5, (n,), generator=g)


RADII = {"inf": (0.02, 0.5), "2": (0.1, 3.0), "1": (0.5, 12.0)}


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(data=st.data(), n=st.integers(1, 24), norm=st.sampled_from(["inf", "2", "1"]),
       box=st.sampled_from([(0.0, 1.0), (-1.0, 2.0)]), seed=st.integers(0, 2**32), early_stop=st.booleans(),
       restarts=st.integers(1, 2), targets=st.integers(1, 4), steps=st.integers(1, 4), per_sample=st.booleans())
def test_invariants(data, n: int, norm: str, box: tuple[float, float], seed: int, early_stop: bool, restarts: int,
                    targets: int, steps: int, per_sample: bool) -> None:
    """Within the ε-ball and the box; untouched where not broken; flags, losses and logits consistent; the
    caller's tensors, the model's mode and flags untouched, no parameter gradient written.

    The ball is checked in float64 with a relative slack of 1e-5: FAB accepts a point when the reference's
    float32 norm is ≤ float32(ε), and the float32 norm of 36 coordinates differs from the float64 one by
    a few units in the last place."""
    lo, hi = box
    model = _small_model().train()
    model[0].bias.requires_grad_(False)  # a frozen parameter stays frozen
    x, y = _small_batch(n, seed % 1000, lo, hi, torch.float32)
    r_lo, r_hi = RADII[norm]
    eps: float | Tensor = data.draw(st.floats(r_lo, r_hi))
    if per_sample:
        eps = torch.linspace(r_lo, r_hi, n)
    chunk = data.draw(st.one_of(st.none(), st.integers(1, n)))
    x0, y0 = x.clone(), y.clone()
    result = fab_targeted(model, x, y, eps, norm=norm, steps=steps, targets=targets, restarts=restarts,
                          bounds=box, seed=seed, early_stop=early_stop, chunk_size=chunk)
    assert torch.equal(x, x0) and torch.equal(y, y0)
    assert model.training and model[0].weight.requires_grad and not model[0].bias.requires_grad
    assert all(p.grad is None for p in model.parameters())
    adv = result.x_adv
    assert adv.shape == x.shape and adv.dtype == x.dtype and adv is not x
    assert bool(((adv >= lo) & (adv <= hi)).all())
    radius = eps if isinstance(eps, Tensor) else torch.full((n,), eps)
    assert bool((_length(norm, adv - x) <= radius.double() * (1 + 1e-5)).all())
    assert torch.equal(adv[~result.success], x[~result.success])
    model.eval()
    with torch.no_grad():
        logits = model(adv)
    assert torch.equal(result.success, logits.argmax(1) != y)
    torch.testing.assert_close(result.logits, logits)
    assert torch.equal(result.loss, margin(result.logits, y))


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), norm=st.sampled_from(["inf", "2", "1"]), seed=st.integers(0, 999),
       steps=st.integers(1, 8), targets=st.integers(1, 4), scale=st.floats(0.2, 1.0), chunk=st.integers(1, 40))
def test_fast_mode_flags_equal_the_exact_mode_on_a_small_model(n: int, norm: str, seed: int, steps: int,
                                                             targets: int, scale: float, chunk: int) -> None:
    """Early stop and any chunk size (down to one row) against the exact mode, over radii and iteration
    counts at which samples break at different steps. In float64 so that a different batch size, which
    may change the last bit of a logit, cannot move a sample across ε or the decision boundary."""
    model = _small_model(torch.float64).eval()
    x, y = _small_batch(n, seed, 0.0, 1.0, torch.float64)
    eps = scale * RADII[norm][1]
    exact = fab_targeted(model, x, y, eps, norm=norm, steps=steps, targets=targets, chunk_size=n)
    fast = fab_targeted(model, x, y, eps, norm=norm, steps=steps, targets=targets, chunk_size=chunk,
                        early_stop=True)
    assert torch.equal(fast.success, exact.success)


def test_eps_zero_breaks_only_the_misclassified(trained_small, mnist5k) -> None:
    model, _ = trained_small
    x, y = mnist5k.x_test[:50], mnist5k.y_test[:50]
    result = fab_targeted(model, x, y, 0.0, steps=3, targets=2)
    assert torch.equal(result.x_adv, x)
    assert torch.equal(result.success, _fooled(model, x, y))


@pytest.mark.parametrize("kwargs,match", [
    ({"alpha_max": 1.5}, r"alpha_max must be a finite number in \[0, 1\], got 1.5"),
    ({"eta": 0.0}, "eta must be a finite number > 0, got 0.0"),
    ({"beta": 0.0}, r"beta must be a finite number in \(0, 1\], got 0.0"),
    ({"beta": "0.9"}, r"beta must be a finite number in \(0, 1\], got '0.9'"),
])
def test_a_bad_step_rule_cannot_exist(kwargs: dict, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=match):
        FabStep(**kwargs)


@pytest.mark.parametrize("kwargs,match", [
    ({"eps": -0.1}, "eps must be finite and ≥ 0, got -0.1"),
    ({"eps": float("nan")}, "eps must be finite"),
    ({"norm": "3"}, "unknown norm '3'"),
    ({"steps": 0}, "steps must be an integer ≥ 1, got 0"),
    ({"targets": 0}, "targets must be an integer ≥ 1, got 0"),
    ({"targets": 5}, r"targets must be ≤ 4 \(the model has 5 classes\), got 5"),
    ({"restarts": 1.5}, "restarts must be an integer ≥ 1, got 1.5"),
    ({"seed": -1}, "seed must be an integer ≥ 0, got -1"),
    ({"bounds": (1.0, 0.0)}, r"bounds must be finite with lo < hi, got \(1.0, 0.0\)"),
    ({"bounds": (0.0, 0.5)}, r"x lies outside bounds \(0.0, 0.5\)"),
    ({"chunk_size": 0}, "chunk_size must be an integer ≥ 1, got 0"),
    ({"y": torch.tensor([0, 7])}, r"label 7 is outside the model's 5 classes \(0..4\)"),
    ({"x": torch.zeros(2, 1, 6, 6, dtype=torch.int64)}, "x must be a floating-point tensor, got torch.int64"),
    ({"eps": torch.ones(3)}, r"eps must be a number or a tensor of shape \(2,\), got shape \(3,\)"),
])
def test_bad_arguments_raise_value_errors_naming_the_value(kwargs: dict, match: str) -> None:
    model = _small_model().eval()
    args: dict[str, Any] = {"x": _small_batch(2, 0, 0.0, 1.0, torch.float32)[0], "y": torch.tensor([0, 1]), "eps": 0.1}
    args.update(kwargs)
    x, y, eps = args.pop("x"), args.pop("y"), args.pop("eps")
    with pytest.raises(ValueError, match=match):
        fab_targeted(model, x, y, eps, **args)
