"""FGSM and PGD: closed forms, strength against a trained model, restarts, early stop, random starts, and the
invariants (a new tensor inside the ε-ball and the bounds, the model and the caller's tensors untouched) for
every norm and shape."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from helpers.batches import make_batch as _batch
from helpers.batches import mixed_digits as _mixed
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from advgrad._runtime import frozen_eval
from advgrad.attacks import fgsm, input_gradient, mifgsm, pgd
from advgrad.losses import resolve_loss
from advgrad.norms import get_norm

NORMS = ["inf", "2", "1"]


def _linear(d: int = 12, k: int = 4, dtype: torch.dtype = torch.float64, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, k)).to(dtype).eval()

class _Odd(nn.Module):
    """Any module returning logits: inputs (N, 3, 5), BatchNorm and dropout to show the mode matters."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(15, 6)
        self.bn = nn.BatchNorm1d(6)
        self.drop = nn.Dropout(0.5)
        self.out = nn.Linear(6, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.drop(torch.tanh(self.bn(self.lin(x.flatten(1))))))

# --- closed forms and strength ----------------------------------------------------------------------

def test_fgsm_on_a_linear_model_equals_its_closed_form() -> None:
    """f(x) = Wx + b, CE: ∇ₓJ = Wᵀ(softmax(z) − onehot(y)), so FGSM = clip(x + ε·sign(that))."""
    model = _linear()
    x, y = _batch((8, 12), 4)
    W, b = model[1].weight, model[1].bias
    with torch.no_grad():
        g = (torch.softmax(x @ W.T + b, 1) - F.one_hot(y, 4).double()) @ W
    torch.testing.assert_close(fgsm(model, x, y, 0.1).x_adv, (x + 0.1 * g.sign()).clamp(0, 1), rtol=0, atol=0)
    l2 = (x + 0.5 * g / g.norm(dim=1, keepdim=True)).clamp(0, 1)
    torch.testing.assert_close(fgsm(model, x, y, 0.5, norm="2").x_adv, l2)
    targeted = (x - 0.1 * g.sign()).clamp(0, 1)
    torch.testing.assert_close(fgsm(model, x, y, 0.1, targeted=True).x_adv, targeted, rtol=0, atol=0)


def test_pgd_climbs_higher_than_fgsm_on_a_trained_model(trained_small, mnist5k) -> None:
    model, _ = trained_small
    x, y = _mixed(mnist5k, 200)
    ce = resolve_loss("ce")
    with torch.no_grad():
        l_fgsm = ce(model(fgsm(model, x, y, 0.1).x_adv), y)
        l_pgd = ce(model(pgd(model, x, y, 0.1, steps=10, generator=torch.Generator().manual_seed(0)).x_adv), y)
        l_clean = ce(model(x), y)
    assert float(l_pgd.mean()) >= float(l_fgsm.mean()) - 1e-4
    assert float(l_fgsm.mean()) > float(l_clean.mean())
    assert float((l_pgd >= l_fgsm - 1e-3).double().mean()) > 0.9  # per sample, nearly always




# L1 moves one pixel per step (the exact steepest step), so it fools fewer samples at these budgets.
@pytest.mark.slow
@pytest.mark.parametrize("norm,eps,rate", [("inf", 0.3, 0.95), ("2", 3.0, 0.9), ("1", 15.0, 0.15)])
def test_pgd_fools_a_standard_model(trained_small, mnist5k, norm: str, eps: float, rate: float) -> None:
    model, _ = trained_small
    x, y = _mixed(mnist5k, 100)
    steps = 40 if norm == "1" else 20
    res = pgd(model, x, y, eps, norm=norm, steps=steps, generator=torch.Generator().manual_seed(0))
    assert float(res.success.double().mean()) > rate
    with torch.no_grad():
        assert torch.equal(res.success, model(res.x_adv).argmax(1) != y)


def test_targeted_pgd_reaches_the_target(trained_small, mnist5k) -> None:
    model, _ = trained_small
    x, y = _mixed(mnist5k, 100)
    target = (y + 1) % 10
    x_adv = pgd(model, x, target, 0.3, steps=20, targeted=True, generator=torch.Generator().manual_seed(0)).x_adv
    with torch.no_grad():
        assert float((model(x_adv).argmax(1) == target).double().mean()) > 0.8


@pytest.mark.parametrize("loss", ["ce", "mse", "margin"])
def test_every_loss_raises_its_own_value(trained_small, mnist5k, loss: str) -> None:
    model, _ = trained_small
    x, y = _mixed(mnist5k, 64)
    fn = resolve_loss(loss, model)
    with torch.no_grad():
        before = fn(model(x), y).mean()
        after = fn(model(pgd(model, x, y, 0.1, loss=loss, random_start=False).x_adv), y).mean()
    assert float(after) > float(before)


def test_restarts_keep_the_worst_example_per_sample(trained_small, mnist5k) -> None:
    """The first restart draws what a single run draws (same generator seed), so the best of R is at
    least as strong per sample: successful where the single run was, and no lower loss otherwise."""
    model, _ = trained_small
    x, y = _mixed(mnist5k, 100)
    kw = dict(steps=3, alpha=0.02)
    one = pgd(model, x, y, 0.08, generator=torch.Generator().manual_seed(1), **kw)
    many = pgd(model, x, y, 0.08, restarts=4, generator=torch.Generator().manual_seed(1), **kw)
    assert bool((many.success | ~one.success).all())
    same = many.success == one.success
    assert bool((many.loss[same] >= one.loss[same] - 1e-6).all())
    assert int(many.success.sum()) >= int(one.success.sum())
    assert torch.equal(pgd(model, x, y, 0.08, restarts=4, generator=torch.Generator().manual_seed(1), **kw).x_adv,
                       many.x_adv)


def test_early_stop_freezes_fooled_samples_and_fools_at_least_as_many(trained_small, mnist5k) -> None:
    model, _ = trained_small
    x, y = _mixed(mnist5k, 200)
    with torch.no_grad():
        wrong = model(x).argmax(1) != y
    assert bool(wrong.any())
    kw = dict(steps=10, random_start=False)
    plain = pgd(model, x, y, 0.1, **kw)
    early = pgd(model, x, y, 0.1, early_stop=True, **kw)
    assert torch.equal(early.x_adv[wrong], x[wrong])  # already fooled: untouched
    assert float(early.success.double().mean()) >= float(plain.success.double().mean())
    assert bool((early.success | ~plain.success).double().mean() >= 0.99)


def test_early_stop_with_restarts_only_reattacks_survivors(trained_small, mnist5k) -> None:
    model, _ = trained_small
    x, y = _mixed(mnist5k, 100)
    res = pgd(model, x, y, 0.1, steps=5, restarts=3, early_stop=True,
                     generator=torch.Generator().manual_seed(0))
    assert bool((get_norm("inf").measure(res.x_adv - x) <= 0.1 + 1e-6).all())
    with torch.no_grad():
        assert torch.equal(res.success, model(res.x_adv).argmax(1) != y)


def test_generator_makes_random_starts_reproducible_and_spares_the_global_rng(tiny_mlp: nn.Module) -> None:
    x, y = _batch((10, 1, 4, 4), 3, dtype=torch.float32)
    state = torch.get_rng_state()
    a = pgd(tiny_mlp, x, y, 0.1, generator=torch.Generator().manual_seed(7)).x_adv
    b = pgd(tiny_mlp, x, y, 0.1, generator=torch.Generator().manual_seed(7)).x_adv
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b)
    assert not torch.equal(a, pgd(tiny_mlp, x, y, 0.1, generator=torch.Generator().manual_seed(8)).x_adv)


def test_per_sample_eps_tensor(tiny_mlp: nn.Module) -> None:
    x, y = _batch((6, 1, 4, 4), 3, dtype=torch.float32)
    eps = torch.tensor([0.0, 0.05, 0.1, 0.2, 0.0, 0.3])
    for norm in NORMS:
        x_adv = pgd(tiny_mlp, x, y, eps * (1 if norm == "inf" else 4), norm=norm, steps=5).x_adv
        dist = get_norm(norm).measure(x_adv - x)
        assert bool((dist <= eps * (1 if norm == "inf" else 4) + 1e-6).all())
        assert torch.equal(x_adv[eps == 0], x[eps == 0])
    assert torch.equal(fgsm(tiny_mlp, x, y, eps).x_adv[1], fgsm(tiny_mlp, x[1:2], y[1:2], 0.05).x_adv[0])


def test_eps_zero_returns_a_copy(tiny_mlp: nn.Module) -> None:
    x, y = _batch((4, 1, 4, 4), 3, dtype=torch.float32)
    for attack in (fgsm, pgd):
        out = attack(tiny_mlp, x, y, 0.0).x_adv
        assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()


# --- invariants: the caller's tensors and model are left as they were -------------------------------

@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("training", [True, False], ids=["train-mode", "eval-mode"])
def test_model_mode_flags_and_grads_are_restored(norm: str, training: bool) -> None:
    torch.manual_seed(0)
    model = _Odd().train(training)
    model.lin.weight.requires_grad_(False)  # mixed flags must come back exactly
    model.out.weight.grad = torch.ones_like(model.out.weight)
    x, y = _batch((8, 3, 5), 3, dtype=torch.float32)
    x_before = x.clone()
    flags = [p.requires_grad for p in model.parameters()]
    for out in (fgsm(model, x, y, 0.1, norm=norm).x_adv, pgd(model, x, y, 0.5, norm=norm, steps=3).x_adv,
                input_gradient(model, x, y)):
        assert out.shape == x.shape and not out.requires_grad
    assert model.training is training
    assert [m.training for m in model.modules()] == [training] * len(list(model.modules()))
    assert [p.requires_grad for p in model.parameters()] == flags
    assert torch.equal(model.out.weight.grad, torch.ones_like(model.out.weight))
    assert all(p.grad is None for n, p in model.named_parameters() if n != "out.weight")
    assert torch.equal(x, x_before)


def test_attack_runs_in_eval_mode_and_restores_even_on_error() -> None:
    model = _Odd().train()
    x, y = _batch((8, 3, 5), 3, dtype=torch.float32)
    # eval mode: dropout off, BatchNorm on running statistics → a deterministic, per-sample attack.
    assert torch.equal(fgsm(model, x, y, 0.1).x_adv, fgsm(model, x, y, 0.1).x_adv)
    torch.testing.assert_close(fgsm(model, x, y, 0.1).x_adv[:2], fgsm(model, x[:2], y[:2], 0.1).x_adv)
    with pytest.raises(ValueError, match="label 7"):
        pgd(model, x, torch.full((8,), 7), 0.1)
    assert model.training and all(p.requires_grad for p in model.parameters())
    with frozen_eval(model):
        assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert model.training


def test_attacks_work_inside_no_grad(tiny_mlp: nn.Module) -> None:
    """Under the caller's no_grad the attacks still differentiate: the same examples, and the input gradient
    equal to the one taken outside no_grad and to central finite differences (float64)."""
    x, y = _batch((4, 1, 4, 4), 3, dtype=torch.float32)
    expected = pgd(tiny_mlp, x, y, 0.1, random_start=False).x_adv
    outside = input_gradient(tiny_mlp, x, y)
    with torch.no_grad():
        assert torch.equal(pgd(tiny_mlp, x, y, 0.1, random_start=False).x_adv, expected)
        inside = input_gradient(tiny_mlp, x, y)
    assert torch.equal(inside, outside) and bool(inside.abs().sum() > 0)
    model, xd = tiny_mlp.double(), x.double()
    with torch.no_grad():
        grad = input_gradient(model, xd, y)
        h, fd = 1e-6, torch.zeros_like(xd)
        for i in range(xd[0].numel()):
            e = torch.zeros_like(xd).view(len(xd), -1)
            e[:, i] = h
            e = e.view_as(xd)
            up = nn.functional.cross_entropy(model(xd + e), y, reduction="none")
            down = nn.functional.cross_entropy(model(xd - e), y, reduction="none")
            fd.view(len(xd), -1)[:, i] = (up - down) / (2 * h)
    torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-8)


def test_returned_tensor_follows_x_dtype_and_device(tiny_mlp: nn.Module) -> None:
    x, y = _batch((4, 1, 4, 4), 3, dtype=torch.float64)
    out = pgd(tiny_mlp.double(), x, y, 0.1).x_adv
    assert out.dtype == torch.float64 and out.device == x.device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_attacks_run_on_cuda(tiny_mlp: nn.Module) -> None:
    model = tiny_mlp.cuda()
    x, y = _batch((4, 1, 4, 4), 3, dtype=torch.float32)
    x, y = x.cuda(), y.cuda()
    out = pgd(model, x, y, 0.1, generator=torch.Generator().manual_seed(0)).x_adv
    assert out.is_cuda and bool((out - x).abs().max() <= 0.1 + 1e-6)
    # The same start (drawn on the CPU generator, moved to the GPU) and steps as on the CPU; the GPU's matrix
    # multiplies may round a logit differently, so a sign within rounding of zero may flip: a coordinate
    # lands at most 2α from the CPU's (one step the other way and back), here α = 2.5·0.1/10.
    cpu = pgd(tiny_mlp.cpu(), x.cpu(), y.cpu(), 0.1, generator=torch.Generator().manual_seed(0)).x_adv
    assert float((out.cpu() - cpu).abs().max()) <= 2 * 0.025 + 1e-6
    assert float((out.cpu() != cpu).double().mean()) <= 0.01

# --- bad input: a ValueError that names the value ---------------------------------------------------

@pytest.mark.parametrize("kwargs,match", [
    (dict(eps=-0.1), "eps must be finite and ≥ 0, got -0.1"),
    (dict(eps=math.nan), "eps .* got nan"),
    (dict(eps=math.inf), "eps .* got inf"),
    (dict(eps=torch.tensor([0.1, -1.0, 0.1, 0.1])), r"eps .* -1\.0"),
    (dict(eps=torch.tensor([0.1, math.nan, 0.1, 0.1])), r"eps must be finite"),
    (dict(eps=torch.tensor([0.1, 0.1])), r"eps must be .* shape \(4,\), got shape \(2,\)"),
    (dict(alpha=0.0), "alpha must be finite and > 0, got 0.0"),
    (dict(alpha=-1.0), "alpha .* got -1.0"),
    (dict(steps=0), "steps must be an integer ≥ 1, got 0"),
    (dict(steps=2.5), "steps .* got 2.5"),
    (dict(restarts=0), "restarts must be an integer ≥ 1, got 0"),
    (dict(chunk_size=0), "chunk_size must be an integer ≥ 1, got 0"),
    (dict(chunk_size=8.0), "chunk_size .* got 8.0"),
    (dict(norm="3"), "unknown norm '3'"),
    (dict(norm=5), "unknown norm 5"),
    (dict(loss="hinge"), "unknown loss 'hinge'"),
    (dict(random_start=1), "random_start must be True or False, got 1"),
    (dict(bounds=(1.0, 0.0)), r"bounds .* lo < hi, got \(1.0, 0.0\)"),
    (dict(bounds=(0.0, 0.5)), r"x lies outside bounds \(0.0, 0.5\)"),
], ids=lambda v: str(v)[:30])
def test_bad_arguments_raise_value_error_naming_the_value(tiny_mlp: nn.Module, kwargs: dict, match: str) -> None:  # type: ignore[type-arg]
    x, y = _batch((4, 1, 4, 4), 3, dtype=torch.float32)
    args = dict(eps=0.1) | kwargs
    with pytest.raises(ValueError, match=match):
        pgd(tiny_mlp, x, y, **args)


@pytest.mark.parametrize("attack,kwargs,match", [
    (fgsm, dict(eps=-1.0), "eps must be finite and ≥ 0, got -1.0"),
    (fgsm, dict(eps=0.1, bounds=(0.0, 0.5)), r"x lies outside bounds"),
    (mifgsm, dict(eps=0.1, momentum=-1.0), "momentum must be finite and ≥ 0, got -1.0"),
    (mifgsm, dict(eps=0.1, steps=0), "steps must be an integer ≥ 1, got 0"),
], ids=["fgsm-eps", "fgsm-bounds", "mifgsm-momentum", "mifgsm-steps"])
def test_fgsm_and_mifgsm_refuse_bad_arguments(tiny_mlp: nn.Module, attack: Any, kwargs: dict, match: str) -> None:  # type: ignore[type-arg]
    x, y = _batch((4, 1, 4, 4), 3, dtype=torch.float32)
    with pytest.raises(ValueError, match=match):
        attack(tiny_mlp, x, y, **kwargs)


# --- property tests over random shapes, ε, norms and bounds -----------------------------------------

class _AnyShape(nn.Module):
    def __init__(self, d: int, k: int) -> None:
        super().__init__()
        self.lin = nn.Linear(d, k)

    def forward(self, x: Tensor) -> Tensor:
        return self.lin(torch.sin(3 * x.flatten(1)))


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), n=st.integers(1, 5),
       norm=st.sampled_from(NORMS), eps=st.floats(0.0, 3.0), lo=st.floats(-2.0, 1.0),
       width=st.floats(0.1, 3.0), steps=st.integers(1, 4), random_start=st.booleans(),
       targeted=st.booleans(), early_stop=st.booleans(), loss=st.sampled_from(["ce", "mse", "margin"]),
       seed=st.integers(0, 2**16))
def test_property_invariants(shape: list[int], n: int, norm: str, eps: float, lo: float, width: float,
                             steps: int, random_start: bool, targeted: bool, early_stop: bool, loss: str,
                             seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    hi = lo + width
    d = math.prod(shape)
    torch.manual_seed(seed)
    model = _AnyShape(d, 3).double().train(seed % 2 == 0)
    x = lo + width * torch.rand((n, *shape), generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    x_before = x.clone()
    for x_adv in (pgd(model, x, y, eps, norm=norm, steps=steps, random_start=random_start, restarts=2,
                      targeted=targeted, early_stop=early_stop, loss=loss, bounds=(lo, hi), generator=g).x_adv,
                  fgsm(model, x, y, eps, norm=norm, targeted=targeted, loss=loss, bounds=(lo, hi)).x_adv):
        assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
        assert x_adv.data_ptr() != x.data_ptr()
        assert bool((get_norm(norm).measure(x_adv - x) <= eps + 1e-6).all())
        assert bool((x_adv >= lo).all()) and bool((x_adv <= hi).all())
    assert torch.equal(x, x_before)
    assert model.training is (seed % 2 == 0)
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


@settings(max_examples=15, deadline=None)
@given(norm=st.sampled_from(NORMS), eps=st.floats(0.01, 0.5), seed=st.integers(0, 2**16))
def test_property_float32_stays_in_the_ball(norm: str, eps: float, seed: int) -> None:
    """float32 rounding of x + δ may add a few ulps to ‖δ‖; 1e-6 relative to the budget covers it."""
    torch.manual_seed(seed)
    tiny_mlp = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((16, 1, 4, 4), generator=g)
    y = torch.randint(0, 3, (16,), generator=g)
    x_adv = pgd(tiny_mlp, x, y, eps, norm=norm, steps=5, generator=g).x_adv
    assert bool((get_norm(norm).measure(x_adv - x) <= eps * (1 + 1e-6) + 1e-6).all())
    assert bool((x_adv >= 0).all() and (x_adv <= 1).all())
