"""DeepFool against adv-lib 0.2.8's ``df``, Foolbox 3.3.4's ``L2DeepFoolAttack``/``LinfDeepFoolAttack``,
torchattacks 3.5.1's ``DeepFool``, and the closed form of an affine model (exact in one step).

Bit-identical with adv-lib, and why: ``deepfool`` performs adv-lib's float operations in its order on
tensors of its shapes — one forward pass over the samples not yet adversarial, one backward pass of
Σᵢ(z_k − z_y) per class k in increasing class order, the dual norms clamped at 10⁻⁶, |f|/‖w‖_q + 10⁻⁴,
x′ + (1 + overshoot)·scale·u by ``addcmul_``, the clip — so every iterate is the same bits, the batch
forwarded in one piece as adv-lib forwards it (in chunks, a piece of fewer than 16 rows, which the shrinking
set of unbroken samples soon gives, may take other matrix kernels). adv-lib tests
an iterate at the start of the next step and never tests its last one; advgrad tests every iterate, so
advgrad with ``steps`` = k returns adv-lib's examples with ``steps`` = k + 1. With 10 classes advgrad's
default 10 ``candidates`` are all the classes, as adv-lib's.

Within a tolerance, and why:
- Foolbox applies the overshoot to the unclipped sum of the steps, x′ = clip(x + 1.02·Σr), where adv-lib
  and advgrad scale each step and continue from the clipped iterate: where the box clips (MNIST's black
  background) the iterates differ; Foolbox also adds 10⁻⁸ to the norms and runs 50 steps.
- torchattacks omits the 10⁻⁴ past the boundary and attacks one sample at a time: its steps creep up to
  the boundary (the overshoot is 2 % of a step that shrinks with the distance left) and end on it, the
  true logit tied with another to the last bit or within 10⁻⁶, where rounding decides the class (a
  one-sample and a batched forward pass disagree). Its example counts as a success where the true logit
  is within 10⁻⁵ of the largest other.
Both: the same success flags on ≥ 99 % of the points and a median norm at most 2 % above theirs.
"""

from __future__ import annotations

import copy
import doctest
import math

import pytest
import torch
from agreement import agreement, bits
from closed_forms import affine, min_distance
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from advgrad.attacks.minimal import deepfool as deepfool_module
from advgrad.attacks.minimal.deepfool import deepfool

P = {"2": 2.0, "inf": math.inf}
TIE = 1e-5  # torchattacks ends on the boundary: a tie this close counts as a success (module docstring)


def _adv_lib(model: nn.Module, x: Tensor, y: Tensor, norm: str, steps: int) -> Tensor:
    attacks = pytest.importorskip("adv_lib.attacks")
    return attacks.df(model, x.clone(), y.clone(), norm=P[norm], steps=steps)


def _foolbox(model: nn.Module, x: Tensor, y: Tensor, norm: str, **options: object) -> Tensor:
    fb = pytest.importorskip("foolbox")
    attack = fb.attacks.L2DeepFoolAttack(**options) if norm == "2" else fb.attacks.LinfDeepFoolAttack(**options)
    _, x_adv, _ = attack(fb.PyTorchModel(copy.deepcopy(model), bounds=(0, 1)), x, y, epsilons=None)  # it fills .grad
    return x_adv


def _torchattacks(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """On a copy of the model: torchattacks' Jacobian calls ``backward``, which fills parameter gradients."""
    torchattacks = pytest.importorskip("torchattacks")
    return torchattacks.DeepFool(copy.deepcopy(model), steps=50, overshoot=0.02)(x, y)


@pytest.mark.isa
@pytest.mark.parametrize("norm", ["2", "inf"])
def test_bit_identical_to_adv_lib(trained_small, digits, norm: str) -> None:
    model, _ = trained_small
    x, y = digits[0][:24], digits[1][:24].clone()
    y[:2] = (y[:2] + 1) % 10  # two points misclassified from the start: distance 0, x itself
    for steps in (50, 2):  # 2 steps: points still unbroken at the end
        ours = deepfool(model, x, y, norm=norm, steps=steps, chunk_size=48)
        theirs = _adv_lib(model, x, y, norm, steps + 1)
        assert torch.equal(bits(ours.x_adv), bits(theirs)), steps
        assert ours.distance is not None and bool((ours.distance[:2] == 0).all())
    assert not bool(ours.success.all())  # after 2 steps: the comparison covered failures too


@pytest.mark.parametrize("norm", ["2", "inf"])
def test_close_to_foolbox(trained_small, digits, norm: str) -> None:
    """The cheap version of the heavy comparison: 16 digits (module docstring for the differences)."""
    model, _ = trained_small
    x, y = digits[0][:16], digits[1][:16]
    ours = deepfool(model, x, y, norm=norm)
    found = agreement(model, x, y, ours, _foolbox(model, x, y, norm), P[norm])
    assert found.holds(), found


def test_fewer_candidates_close_to_foolbox(trained_small, digits) -> None:
    """3 candidates (the true class and the two most likely others at x), as Foolbox's ``candidates=3``."""
    model, _ = trained_small
    x, y = digits[0][:16], digits[1][:16]
    ours = deepfool(model, x, y, candidates=3)
    found = agreement(model, x, y, ours, _foolbox(model, x, y, "2", candidates=3), 2.0)
    assert found.holds(), found
    assert not torch.equal(ours.x_adv, deepfool(model, x, y, candidates=None).x_adv)  # the option matters


def test_close_to_torchattacks(trained_small, digits) -> None:
    """3 digits: torchattacks needs about 25 steps of 10 one-sample backward passes per digit."""
    model, _ = trained_small
    x, y = digits[0][:3], digits[1][:3]
    found = agreement(model, x, y, deepfool(model, x, y), _torchattacks(model, x, y), 2.0, tie=TIE)
    assert found.holds(), found


@pytest.mark.heavy
@pytest.mark.parametrize("which", ["trained_small", "robust_small"])
@pytest.mark.parametrize("norm", ["2", "inf"])
def test_500_digits_against_the_peers(request, digits, which: str, norm: str) -> None:
    """500 digits, a standard and an adversarially trained cnn-small: adv-lib's examples bit for bit,
    Foolbox's (and torchattacks', L2 only: it has no L∞) within the issue's tolerance."""
    model = request.getfixturevalue(which)
    model = model[0] if isinstance(model, tuple) else model
    x, y = digits[0][:500], digits[1][:500]
    ours = deepfool(model, x, y, norm=norm)
    assert torch.equal(bits(ours.x_adv), bits(_adv_lib(model, x, y, norm, 51)))
    peers = {"Foolbox": _foolbox(model, x, y, norm)}
    if norm == "2":
        peers["torchattacks"] = _torchattacks(model, x, y)
    for name, x_peer in peers.items():
        found = agreement(model, x, y, ours, x_peer, P[norm], tie=TIE if name == "torchattacks" else 0.0)
        print(f"DeepFool L{norm} {which}: {name} {found}")
        assert found.holds(), (name, found)


# --- closed forms ------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 8), k=st.integers(2, 6), d=st.integers(2, 24),
       norm=st.sampled_from(["2", "inf"]), overshoot=st.sampled_from([0.0, 0.02, 0.1]))
def test_one_step_on_an_affine_model(seed: int, n: int, k: int, d: int, norm: str, overshoot: float) -> None:
    """On z = Wx + b the linearisation is exact: the first step crosses the nearest boundary, at
    (1 + overshoot)·(d* + 10⁻⁴) from x (d* the minimal distance: min_j (z_y − z_j)/‖w_y − w_j‖_q), in float64
    to 10⁻⁹. A box too wide to clip."""
    g = torch.Generator().manual_seed(seed)
    weight, bias = torch.randn(k, d, generator=g, dtype=torch.float64), torch.randn(k, generator=g, dtype=torch.float64)
    x = torch.rand(n, d, generator=g, dtype=torch.float64)
    model = affine(weight, bias)
    y = model(x).argmax(1)
    exact = (1 + overshoot) * (min_distance(weight, bias, x, y, P[norm]) + 1e-4)
    for steps in (1, 50):  # a broken point stops: more steps change nothing
        result = deepfool(model, x, y, norm=norm, steps=steps, overshoot=overshoot, bounds=(-1e4, 1e4))
        assert bool(result.success.all())
        torch.testing.assert_close(result.distance, exact, rtol=1e-9, atol=0)


def test_the_conftest_affine_problem_in_the_box(affine_problem) -> None:
    """In the box [0, 1] the clip can only lengthen the way: never below the unboxed optimum d*, and with
    the default overshoot every point broken within 1.02·(d* + 10⁻⁴)·1.5."""
    model, weight, bias, x, y = affine_problem
    for norm in ("2", "inf"):
        d = min_distance(weight, bias, x, y, P[norm])
        result = deepfool(model, x, y, norm=norm)
        assert bool(result.success.all())
        assert bool((result.distance >= d).all())
        assert bool((result.distance <= 1.02 * (d + 1e-4) * 1.5).all()), (result.distance / d).max()


def test_docstring_example_runs() -> None:
    assert doctest.testmod(deepfool_module).failed == 0
