"""Untargeted FAB (``fab``, the "fab" member of AutoAttack's plus) against the authors' implementation
(pyautoattack 0.2.0, ``FABAttack_PT(targeted=False)``), and its choice of boundary against closed forms.

Bit-level claims, and why they hold by construction: in one piece (``chunk_size=len(x)``, no early stop)
advgrad runs the reference's float operations on tensors of the reference's shapes in the same process
(one backward pass per class, the differences taken afterwards, the same sort and bisection in the
projection) and draws the restarts' random numbers from a private generator seeded as the reference
seeds torch's global one; chunks of ≥ 16 rows change no bit for cnn-small (see tests/attacks/test_fab.py).
Early stop is compared by flags (rows leaving the batch may round a logit's last bit differently).
"""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from advgrad.attacks._fab_closest import closest_boundary
from advgrad.attacks.autoattack import members
from advgrad.attacks.fab import fab

REF_NORM = {"inf": "Linf", "2": "L2", "1": "L1"}
EPS = {"inf": 0.08, "2": 0.8, "1": 6.0}


def _bits(t: Tensor) -> Tensor:
    return t.contiguous().view(torch.int32)


def _reference(model: nn.Module, x: Tensor, y: Tensor, eps: float, norm: str, *, steps: int, restarts: int,
               seed: int = 0) -> Tensor:
    """The reference's untargeted FAB on a copy of the model (it writes parameter gradients), torch's global
    RNG saved and restored around it (it reseeds and draws from it)."""
    fab_pt = pytest.importorskip("pyautoattack.fab_pt")
    attack = fab_pt.FABAttack_PT(copy.deepcopy(model), norm=REF_NORM[norm], n_restarts=restarts, n_iter=steps,
                                 eps=eps, seed=seed, targeted=False, verbose=False)
    with torch.random.fork_rng():
        return attack.perturb(x.clone(), y.clone())


@torch.no_grad()
def _fooled(model: nn.Module, x_adv: Tensor, y: Tensor) -> Tensor:
    return model(x_adv).argmax(dim=1) != y


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["inf", "2", "1"])
def test_one_piece_is_bit_identical_to_the_reference(trained_small, mnist5k, norm: str) -> None:
    """48 test digits, 6 iterations, 3 restarts (random starts from the seeded generator), one piece: the
    reference's bits; in chunks of 16 the same bits; with early stop the same flags."""
    model, _ = trained_small
    x, y = mnist5k.x_test[:48].clone(), mnist5k.y_test[:48].clone()
    theirs = _reference(model, x, y, EPS[norm], norm, steps=6, restarts=3, seed=5)
    state = torch.get_rng_state()
    ours = fab(model, x, y, EPS[norm], norm=norm, steps=6, restarts=3, seed=5, chunk_size=len(x))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(_bits(ours.x_adv), _bits(theirs))
    flags = _fooled(model, theirs, y)
    assert torch.equal(ours.success, flags)
    assert 0.1 < flags.float().mean() < 0.9  # the radius separates the digits: the test can fail
    chunked = fab(model, x, y, EPS[norm], norm=norm, steps=6, restarts=3, seed=5, chunk_size=16)
    assert torch.equal(_bits(chunked.x_adv), _bits(ours.x_adv))
    fast = fab(model, x, y, EPS[norm], norm=norm, steps=6, restarts=3, seed=5, chunk_size=16, early_stop=True)
    assert torch.equal(fast.success, ours.success)


def test_restarts_break_more_and_follow_the_seed(trained_small, mnist5k) -> None:
    """One iteration per run at a large ε, so that the random starts (the reference's draws) show in the
    result: more digits broken with 3 restarts than with 1, the reference's bits, another seed other bits."""
    model, _ = trained_small
    x, y = mnist5k.x_test[400:460].clone(), mnist5k.y_test[400:460].clone()
    theirs = _reference(model, x, y, 0.4, "inf", steps=1, restarts=3, seed=7)
    ours = fab(model, x, y, 0.4, steps=1, restarts=3, seed=7, chunk_size=len(x))
    assert torch.equal(_bits(ours.x_adv), _bits(theirs))
    one = fab(model, x, y, 0.4, steps=1, restarts=1, seed=7, chunk_size=len(x))
    assert int(ours.success.sum()) > int(one.success.sum())
    other = fab(model, x, y, 0.4, steps=1, restarts=3, seed=8, chunk_size=len(x))
    assert not torch.equal(other.x_adv, ours.x_adv)


def _linear(seed: int, d: int, k: int) -> nn.Linear:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return nn.Linear(d, k).double()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(1, 6), d=st.integers(1, 8), k=st.integers(2, 6),
       norm=st.sampled_from(["inf", "2", "1"]))
def test_the_nearest_boundary_of_a_linear_model(seed: int, n: int, d: int, k: int, norm: str) -> None:
    """z = Wx + c is its own linearisation: the boundary to class j is {(W_j − W_y)·x + c_j − c_y = 0}, at
    distance |f_j| / ‖W_j − W_y‖_q (q dual to the norm). closest_boundary must return f and w of the
    class of least distance, computed here from the weights directly, in float64."""
    model = _linear(seed, d, k)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, k, (n,), generator=g)
    f, w = closest_boundary(model, x, y, norm)
    weight, bias = model.weight.detach(), model.bias.detach()
    q = {"inf": 1.0, "2": 2.0, "1": float("inf")}[norm]
    for i in range(n):
        normals = weight - weight[y[i]]                          # (k, d)
        gaps = normals @ x[i] + bias - bias[y[i]]               # (k,)
        dist = gaps.abs() / torch.linalg.vector_norm(normals, ord=q, dim=1)
        dist[y[i]] = float("inf")
        j = int(dist.argmin())
        if bool((dist - dist[j]).abs().le(1e-9 * dist[j]).sum() > 1):
            continue  # a tie: either class is right
        torch.testing.assert_close(f[i], gaps[j], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(w[i], normals[j], rtol=1e-12, atol=1e-12)


def _small_model() -> nn.Sequential:
    with torch.random.fork_rng():
        torch.manual_seed(3)
        return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 5)).double().eval()


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), norm=st.sampled_from(["inf", "2", "1"]), seed=st.integers(0, 999),
       steps=st.integers(1, 8), restarts=st.integers(1, 3), scale=st.floats(0.2, 1.0), chunk=st.integers(1, 40))
def test_fast_mode_flags_equal_the_exact_mode(n: int, norm: str, seed: int, steps: int, restarts: int, scale: float,
                                              chunk: int) -> None:
    """Early stop and any chunk size (down to one row) against one piece, over radii and iteration counts at
    which samples break at different steps and restarts; float64 so that another batch size, which may
    change a logit's last bit, cannot move a sample across ε or the decision boundary. Also: within the
    ε-ball and the box, untouched where not broken."""
    model = _small_model()
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 6, 6, generator=g, dtype=torch.float64)
    with torch.no_grad():
        y = model(x).argmax(1)  # start from correct predictions: the attack has the work
    eps = scale * {"inf": 0.3, "2": 2.0, "1": 8.0}[norm]
    exact = fab(model, x, y, eps, norm=norm, steps=steps, restarts=restarts, chunk_size=n)
    fast = fab(model, x, y, eps, norm=norm, steps=steps, restarts=restarts, chunk_size=chunk, early_stop=True)
    assert torch.equal(fast.success, exact.success)
    q = {"inf": float("inf"), "2": 2.0, "1": 1.0}[norm]
    for res in (exact, fast):
        assert bool((torch.linalg.vector_norm((res.x_adv - x).flatten(1), ord=q, dim=1) <= eps * (1 + 1e-9)).all())
        assert bool(((res.x_adv >= 0) & (res.x_adv <= 1)).all())
        assert torch.equal(res.x_adv[~res.success], x[~res.success])


def test_plus_runs_untargeted_fab_between_apgd_dlr_and_square() -> None:
    plan = members("plus")
    assert [m for m, _ in plan] == ["apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"]
    assert dict(plan)["fab"] == {"restarts": 5}


def test_bad_step_rule(trained_small, mnist5k) -> None:
    model, _ = trained_small
    with pytest.raises(ValueError, match="step must be a FabStep, got dict"):
        fab(model, mnist5k.x_test[:2], mnist5k.y_test[:2], 0.1, step={"eta": 1.0})  # type: ignore[arg-type]
