"""∂J/∂X, FGSM and PGD: the gradient against finite differences, closed forms, and the invariants
(a new tensor inside the ε-ball and the bounds, the model untouched) for every norm and shape."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from conftest import well_conditioned

from advgrad._runtime import frozen_eval
from advgrad.attacks import fgsm, input_gradient, pgd, run_attack
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


def _batch(shape: tuple[int, ...], k: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=dtype), torch.randint(0, k, (shape[0],), generator=g)


# --- ∂J/∂X -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("loss", ["ce", "mse", "margin"])
def test_input_gradient_equals_central_finite_differences(loss: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 3 * 3, 4)).double().eval()
    x, y = _batch((3, 1, 5, 5), 4)
    grad = input_gradient(model, x, y, loss=loss)
    fn = resolve_loss(loss, model)
    h = 1e-6
    fd = torch.zeros_like(x)
    for idx in range(x[0].numel()):
        e = torch.zeros(x[0].numel(), dtype=x.dtype)
        e[idx] = h
        e = e.view_as(x[0]).expand_as(x)  # one coordinate per sample: the samples are independent
        with torch.no_grad():
            fd.flatten(1)[:, idx] = (fn(model(x + e), y) - fn(model(x - e), y)) / (2 * h)
    torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-8)
    assert torch.autograd.gradcheck(lambda t: fn(model(t), y).sum(), (x.clone().requires_grad_(),))


def test_input_gradient_of_each_sample_is_its_own(tiny_mlp: nn.Module) -> None:
    x, y = _batch((6, 1, 4, 4), 3, dtype=torch.float32)
    batched = input_gradient(tiny_mlp, x, y)
    for i in range(6):
        torch.testing.assert_close(batched[i:i + 1], input_gradient(tiny_mlp, x[i:i + 1], y[i:i + 1]))


def test_input_gradient_accepts_a_callable_loss(tiny_mlp: nn.Module) -> None:
    x, y = _batch((4, 1, 4, 4), 3, dtype=torch.float32)
    ce = input_gradient(tiny_mlp, x, y, loss=lambda z, t: F.cross_entropy(z, t, reduction="none"))
    torch.testing.assert_close(ce, input_gradient(tiny_mlp, x, y, loss="ce"))


# --- closed forms and strength ----------------------------------------------------------------------

def test_fgsm_on_a_linear_model_equals_its_closed_form() -> None:
    """f(x) = Wx + b, CE: ∇ₓJ = Wᵀ(softmax(z) − onehot(y)), so FGSM = clip(x + ε·sign(that))."""
    model = _linear()
    x, y = _batch((8, 12), 4)
    W, b = model[1].weight, model[1].bias
    with torch.no_grad():
        g = (torch.softmax(x @ W.T + b, 1) - F.one_hot(y, 4).double()) @ W
    torch.testing.assert_close(fgsm(model, x, y, 0.1), (x + 0.1 * g.sign()).clamp(0, 1), rtol=0, atol=0)
    l2 = (x + 0.5 * g / g.norm(dim=1, keepdim=True)).clamp(0, 1)
    torch.testing.assert_close(fgsm(model, x, y, 0.5, norm="2"), l2)
    targeted = (x - 0.1 * g.sign()).clamp(0, 1)
    torch.testing.assert_close(fgsm(model, x, y, 0.1, targeted=True), targeted, rtol=0, atol=0)


def test_pgd_climbs_higher_than_fgsm_on_a_trained_model(trained_small, mnist5k) -> None:
    model, _ = trained_small
    x, y = _mixed(mnist5k, 200)
    ce = resolve_loss("ce")
    with torch.no_grad():
        l_fgsm = ce(model(fgsm(model, x, y, 0.1)), y)
        l_pgd = ce(model(pgd(model, x, y, 0.1, steps=10, generator=torch.Generator().manual_seed(0))), y)
        l_clean = ce(model(x), y)
    assert float(l_pgd.mean()) >= float(l_fgsm.mean()) - 1e-4
    assert float(l_fgsm.mean()) > float(l_clean.mean())
    assert float((l_pgd >= l_fgsm - 1e-3).double().mean()) > 0.9  # per sample, nearly always


def _mixed(mnist5k, n: int) -> tuple[Tensor, Tensor]:
    """n test digits of every class (the test split is sorted by class)."""
    idx = torch.randperm(len(mnist5k.y_test), generator=torch.Generator().manual_seed(0))[:n]
    return mnist5k.x_test[idx], mnist5k.y_test[idx]


# L1 moves one pixel per step (the exact steepest step), so it fools fewer samples at these budgets.
@pytest.mark.parametrize("norm,eps,rate", [("inf", 0.3, 0.95), ("2", 3.0, 0.9), ("1", 15.0, 0.15)])
def test_pgd_fools_a_standard_model(trained_small, mnist5k, norm: str, eps: float, rate: float) -> None:
    model, _ = trained_small
    x, y = _mixed(mnist5k, 100)
    steps = 40 if norm == "1" else 20
    res = run_attack(model, x, y, eps, norm=norm, steps=steps, generator=torch.Generator().manual_seed(0))
    assert float(res.success.double().mean()) > rate
    with torch.no_grad():
        assert torch.equal(res.success, model(res.x_adv).argmax(1) != y)


def test_targeted_pgd_reaches_the_target(trained_small, mnist5k) -> None:
    model, _ = trained_small
    x, y = _mixed(mnist5k, 100)
    target = (y + 1) % 10
    x_adv = pgd(model, x, target, 0.3, steps=20, targeted=True, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert float((model(x_adv).argmax(1) == target).double().mean()) > 0.8


@pytest.mark.parametrize("loss", ["ce", "mse", "margin"])
def test_every_loss_raises_its_own_value(trained_small, mnist5k, loss: str) -> None:
    model, _ = trained_small
    x, y = _mixed(mnist5k, 64)
    fn = resolve_loss(loss, model)
    with torch.no_grad():
        before = fn(model(x), y).mean()
        after = fn(model(pgd(model, x, y, 0.1, loss=loss, random_start=False)), y).mean()
    assert float(after) > float(before)


def test_restarts_keep_the_worst_example_per_sample(trained_small, mnist5k) -> None:
    """The first restart draws what a single run draws (same generator seed), so the best of R is at
    least as strong per sample: successful where the single run was, and no lower loss otherwise."""
    model, _ = trained_small
    x, y = _mixed(mnist5k, 100)
    kw = dict(steps=3, alpha=0.02)
    one = run_attack(model, x, y, 0.08, generator=torch.Generator().manual_seed(1), **kw)
    many = run_attack(model, x, y, 0.08, restarts=4, generator=torch.Generator().manual_seed(1), **kw)
    assert bool((many.success | ~one.success).all())
    same = many.success == one.success
    assert bool((many.loss[same] >= one.loss[same] - 1e-6).all())
    assert int(many.success.sum()) >= int(one.success.sum())
    assert torch.equal(pgd(model, x, y, 0.08, restarts=4, generator=torch.Generator().manual_seed(1), **kw),
                       many.x_adv)


def test_early_stop_freezes_fooled_samples_and_fools_at_least_as_many(trained_small, mnist5k) -> None:
    model, _ = trained_small
    x, y = _mixed(mnist5k, 200)
    with torch.no_grad():
        wrong = model(x).argmax(1) != y
    assert bool(wrong.any())
    kw = dict(steps=10, random_start=False)
    plain = run_attack(model, x, y, 0.1, **kw)
    early = run_attack(model, x, y, 0.1, early_stop=True, **kw)
    assert torch.equal(early.x_adv[wrong], x[wrong])  # already fooled: untouched
    assert float(early.success.double().mean()) >= float(plain.success.double().mean())
    assert bool((early.success | ~plain.success).double().mean() >= 0.99)


def test_early_stop_with_restarts_only_reattacks_survivors(trained_small, mnist5k) -> None:
    model, _ = trained_small
    x, y = _mixed(mnist5k, 100)
    res = run_attack(model, x, y, 0.1, steps=5, restarts=3, early_stop=True,
                     generator=torch.Generator().manual_seed(0))
    assert bool((get_norm("inf").measure(res.x_adv - x) <= 0.1 + 1e-6).all())
    with torch.no_grad():
        assert torch.equal(res.success, model(res.x_adv).argmax(1) != y)


def test_generator_makes_random_starts_reproducible_and_spares_the_global_rng(tiny_mlp: nn.Module) -> None:
    x, y = _batch((10, 1, 4, 4), 3, dtype=torch.float32)
    state = torch.get_rng_state()
    a = pgd(tiny_mlp, x, y, 0.1, generator=torch.Generator().manual_seed(7))
    b = pgd(tiny_mlp, x, y, 0.1, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b)
    assert not torch.equal(a, pgd(tiny_mlp, x, y, 0.1, generator=torch.Generator().manual_seed(8)))


def test_per_sample_eps_tensor(tiny_mlp: nn.Module) -> None:
    x, y = _batch((6, 1, 4, 4), 3, dtype=torch.float32)
    eps = torch.tensor([0.0, 0.05, 0.1, 0.2, 0.0, 0.3])
    for norm in NORMS:
        x_adv = pgd(tiny_mlp, x, y, eps * (1 if norm == "inf" else 4), norm=norm, steps=5)
        dist = get_norm(norm).measure(x_adv - x)
        assert bool((dist <= eps * (1 if norm == "inf" else 4) + 1e-6).all())
        assert torch.equal(x_adv[eps == 0], x[eps == 0])
    assert torch.equal(fgsm(tiny_mlp, x, y, eps)[1], fgsm(tiny_mlp, x[1:2], y[1:2], 0.05)[0])


def test_eps_zero_returns_a_copy(tiny_mlp: nn.Module) -> None:
    x, y = _batch((4, 1, 4, 4), 3, dtype=torch.float32)
    for attack in (fgsm, pgd):
        out = attack(tiny_mlp, x, y, 0.0)
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
    for out in (fgsm(model, x, y, 0.1, norm=norm), pgd(model, x, y, 0.5, norm=norm, steps=3),
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
    assert torch.equal(fgsm(model, x, y, 0.1), fgsm(model, x, y, 0.1))
    torch.testing.assert_close(fgsm(model, x, y, 0.1)[:2], fgsm(model, x[:2], y[:2], 0.1))
    with pytest.raises(ValueError, match="label 7"):
        pgd(model, x, torch.full((8,), 7), 0.1)
    assert model.training and all(p.requires_grad for p in model.parameters())
    with frozen_eval(model):
        assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert model.training


def test_attacks_work_inside_no_grad(tiny_mlp: nn.Module) -> None:
    x, y = _batch((4, 1, 4, 4), 3, dtype=torch.float32)
    expected = pgd(tiny_mlp, x, y, 0.1, random_start=False)
    with torch.no_grad():
        assert torch.equal(pgd(tiny_mlp, x, y, 0.1, random_start=False), expected)
        assert torch.equal(input_gradient(tiny_mlp, x, y), input_gradient(tiny_mlp, x, y))


def test_returned_tensor_follows_x_dtype_and_device(tiny_mlp: nn.Module) -> None:
    x, y = _batch((4, 1, 4, 4), 3, dtype=torch.float64)
    out = pgd(tiny_mlp.double(), x, y, 0.1)
    assert out.dtype == torch.float64 and out.device == x.device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_attacks_run_on_cuda(tiny_mlp: nn.Module) -> None:
    model = tiny_mlp.cuda()
    x, y = _batch((4, 1, 4, 4), 3, dtype=torch.float32)
    x, y = x.cuda(), y.cuda()
    out = pgd(model, x, y, 0.1, generator=torch.Generator().manual_seed(0))
    assert out.is_cuda and bool((out - x).abs().max() <= 0.1 + 1e-6)


# --- chunks: a speed knob that never changes a bit -------------------------------------------------

@pytest.mark.isa
@pytest.mark.parametrize("norm", NORMS)
def test_chunk_size_changes_nothing_in_float64(trained_small, mnist5k, norm: str) -> None:
    """Each chunk's loss receives the whole batch's 1/N, so in exact arithmetic 1, 16, 21, 40 or all 60
    samples per pass (and the default) compute the same gradients, examples and kept worst cases. In
    floating point a pass over fewer rows may get another matrix-multiply kernel and round the last bit
    differently; in float64 that moves a gradient by ~1e-16 relative, which cannot turn the sign of a
    coordinate (it would have to be that close to zero) nor a prediction: flags agree exactly and the
    examples to 1e-10, with early stop and restarts deciding something."""
    model = copy.deepcopy(trained_small[0]).double()
    x, y = mnist5k.x_test[:60].double(), mnist5k.y_test[:60]
    eps = {"inf": 0.1, "2": 1.5, "1": 10.0}[norm]

    def attack(chunk: int | None) -> list[Tensor]:
        g = torch.Generator().manual_seed(5)
        result = run_attack(model, x, y, eps, steps=4, norm=norm, restarts=2, early_stop=True, generator=g,
                            chunk_size=chunk)
        return [pgd(model, x, y, eps, steps=3, norm=norm, random_start=False, chunk_size=chunk),
                result.x_adv, result.success, result.loss, result.logits,
                input_gradient(model, x, y, chunk_size=chunk), fgsm(model, x, y, eps, norm=norm, chunk_size=chunk)]

    whole = attack(60)
    assert bool(whole[2].any()) and not bool(whole[2].all())  # a budget where restarts decide something
    for chunk in (1, 16, 21, 40, None):
        got = attack(chunk)
        assert torch.equal(got[2], whole[2]), chunk
        for a, b in zip(got[:2] + got[3:], whole[:2] + whole[3:]):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10 * float(b.abs().max()), msg=str(chunk))


@pytest.mark.isa
def test_chunked_float32_gradient_equals_one_piece_to_rounding(trained_small, mnist5k) -> None:
    """In float32, the precision users run at: every chunk size gives each well-conditioned sample's
    gradient to within 1e-4 of that sample's largest entry, and 97 % of them to within 1e-5. A coordinate
    of ∂J/∂X is a float32 sum of thousands of terms that largely cancel, rounded to ~1e-7 of the terms'
    size, not of the sum's, and a one-row pass (a matrix-vector kernel) sums them in another order. (On
    samples the model is all but certain of, the gradient is rounding noise: conftest.well_conditioned.)
    L∞ PGD gives the same robust accuracy to within one sample in 200."""
    model, _ = trained_small
    x, y = mnist5k.x_test[:200], mnist5k.y_test[:200]
    good = well_conditioned(model, x, y)
    whole = input_gradient(model, x, y, chunk_size=200)
    scale = whole.flatten(1).abs().amax(1).clamp_min(1e-30).view(-1, 1, 1, 1)  # (N, 1, 1, 1)
    for chunk in (1, 16, 50, None):
        diff = ((input_gradient(model, x, y, chunk_size=chunk) - whole).abs() / scale).flatten(1).amax(1)[good]
        assert float(diff.max()) <= 1e-4 and float((diff <= 1e-5).double().mean()) >= 0.97, chunk
    kw = dict(steps=10, restarts=2, early_stop=True)
    one = run_attack(model, x, y, 0.1, generator=torch.Generator().manual_seed(0), chunk_size=200, **kw)
    for chunk in (16, None):
        res = run_attack(model, x, y, 0.1, generator=torch.Generator().manual_seed(0), chunk_size=chunk, **kw)
        assert abs(int(res.success.sum()) - int(one.success.sum())) <= 1, chunk


def test_slices_are_near_equal_and_cover_the_batch() -> None:
    from advgrad.attacks._chunks import slices as _slices

    for n, chunk in [(1, 256), (256, 256), (257, 256), (1000, 256), (1001, 256), (10, 3), (7, 1)]:
        parts = _slices(n, chunk)
        sizes = [p.stop - p.start for p in parts]
        assert parts[0].start == 0 and parts[-1].stop == n and sum(sizes) == n
        assert all(a.stop == b.start for a, b in zip(parts, parts[1:]))
        assert len(parts) == math.ceil(n / chunk) and max(sizes) <= chunk and max(sizes) - min(sizes) <= 1


def test_auto_chunk_size_cuts_conv_nets_and_keeps_small_models_whole() -> None:
    """The probe counts what autograd keeps per sample: cnn-small keeps ~34 KB (ReLU feature maps) and is
    cut into chunks of 256; a linear model keeps nearly nothing and stays in one piece; a deep ResNet
    keeps megabytes per sample and gets the smallest chunks. The model's mode and flags are restored."""
    from advgrad.attacks import CHUNK_MAX, CHUNK_MIN, auto_chunk_size
    from advgrad.models import build_model

    def chunk(name: str, shape: tuple[int, int, int], n: int) -> int:
        torch.manual_seed(0)
        model = build_model(name, input_shape=shape, num_classes=10, mean=[0.5] * shape[0], std=[0.25] * shape[0])
        model.train()
        c = auto_chunk_size(model, torch.rand(n, *shape))
        assert model.training and all(p.requires_grad and p.grad is None for p in model.parameters())
        return c

    assert chunk("logreg", (1, 28, 28), 1000) == 1000
    assert chunk("mlp", (1, 28, 28), 1000) == 1000
    assert chunk("cnn-small", (1, 28, 28), 1000) == CHUNK_MAX
    assert chunk("cnn-small", (1, 28, 28), 100) == 100  # a batch smaller than a chunk stays whole
    assert CHUNK_MIN < chunk("cnn", (1, 28, 28), 1000) < CHUNK_MAX  # ~400 KB per sample: 64 MiB / that
    assert chunk("preact-resnet18", (3, 32, 32), 64) == CHUNK_MIN
    assert chunk("cnn", (1, 28, 28), CHUNK_MIN) == CHUNK_MIN  # too few samples to cut


def test_auto_chunk_size_probes_a_model_once_per_sample_shape() -> None:
    from advgrad.attacks import auto_chunk_size

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 16, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    calls: list[int] = []
    model.register_forward_hook(lambda mod, inp, out: calls.append(len(inp[0])))
    x = torch.rand(300, 1, 28, 28)
    first = auto_chunk_size(model, x)
    assert calls == [2]  # the probe: two samples
    assert auto_chunk_size(model, x[:200]) == min(first, 200) and calls == [2]  # same shape: no new probe
    auto_chunk_size(model, torch.rand(300, 1, 32, 32))
    assert calls == [2, 2]  # a new sample shape is probed


@pytest.mark.isa
def test_chunks_of_a_targeted_attack_descend_like_the_whole_batch(trained_small, mnist5k) -> None:
    """Targeted, the loss is descended: the chunks carry the whole batch's −1/N. Float64, as above."""
    model = copy.deepcopy(trained_small[0]).double()
    x, y = mnist5k.x_test[:40].double(), (mnist5k.y_test[:40] + 1) % 10
    whole = pgd(model, x, y, 0.2, steps=5, targeted=True, random_start=False, chunk_size=40)
    torch.testing.assert_close(pgd(model, x, y, 0.2, steps=5, targeted=True, random_start=False, chunk_size=20),
                               whole, rtol=0, atol=1e-10)


def test_chunked_input_gradient_is_each_samples_own(tiny_mlp: nn.Module) -> None:
    x, y = _batch((9, 1, 4, 4), 3, dtype=torch.float32)
    rows = torch.cat([input_gradient(tiny_mlp, x[i:i + 1], y[i:i + 1]) for i in range(9)])
    torch.testing.assert_close(input_gradient(tiny_mlp, x, y, chunk_size=2), rows, rtol=1e-6, atol=0)


# --- bad input: a ValueError that names the value ---------------------------------------------------

@pytest.mark.parametrize("kwargs,match", [
    (dict(eps=-0.1), "eps must be finite and ≥ 0, got -0.1"),
    (dict(eps=math.nan), "eps .* got nan"),
    (dict(eps=math.inf), "eps .* got inf"),
    (dict(eps=torch.tensor([0.1, -1.0, 0.1, 0.1])), r"eps .* -1\.0"),
    (dict(eps=torch.tensor([0.1, 0.1])), r"eps must be .* shape \(4,\), got shape \(2,\)"),
    (dict(alpha=0.0), "alpha must be finite and > 0, got 0.0"),
    (dict(alpha=-1.0), "alpha .* got -1.0"),
    (dict(steps=0), "steps must be an integer ≥ 1, got 0"),
    (dict(steps=2.5), "steps .* got 2.5"),
    (dict(restarts=0), "restarts must be an integer ≥ 1, got 0"),
    (dict(chunk_size=0), "chunk_size must be an integer ≥ 1, got 0"),
    (dict(chunk_size=8.0), "chunk_size .* got 8.0"),
    (dict(norm="3"), "unknown norm '3'"),
    (dict(norm=0), "unknown norm 0"),
    (dict(loss="hinge"), "unknown loss 'hinge'"),
    (dict(bounds=(1.0, 0.0)), r"bounds .* lo < hi, got \(1.0, 0.0\)"),
    (dict(bounds=(0.0, 0.5)), r"x lies outside bounds \(0.0, 0.5\)"),
], ids=lambda v: str(v)[:30])
def test_bad_arguments_raise_value_error_naming_the_value(tiny_mlp: nn.Module, kwargs: dict, match: str) -> None:
    x, y = _batch((4, 1, 4, 4), 3, dtype=torch.float32)
    args = dict(eps=0.1) | kwargs
    with pytest.raises(ValueError, match=match):
        pgd(tiny_mlp, x, y, **args)


@pytest.mark.parametrize("make,match", [
    (lambda x, y: (x.clone().index_fill_(0, torch.tensor([1]), math.nan), y), "NaN or Inf"),
    (lambda x, y: (x.clone().index_fill_(0, torch.tensor([1]), math.inf), y), "NaN or Inf"),
    (lambda x, y: (x, y[:3]), "x has 4 samples but y has 3 labels"),
    (lambda x, y: (x, torch.tensor([0, 1, 3, 0])), "label 3 is outside the model's 3 classes"),
    (lambda x, y: (x, torch.tensor([0, -1, 2, 0])), "got -1"),
    (lambda x, y: (x[:0], y[:0]), "empty batch"),
    (lambda x, y: (x, y.float()), "integer tensor"),
    (lambda x, y: (x[:, 0, 0, 0], y), "at least 2 dimensions"),
], ids=["nan", "inf", "len", "label-high", "label-negative", "empty", "float-labels", "1d"])
def test_bad_batches_raise_value_error(tiny_mlp: nn.Module, make, match: str) -> None:
    x, y = make(*_batch((4, 1, 4, 4), 3, dtype=torch.float32))
    for call in (lambda: pgd(tiny_mlp, x, y, 0.1), lambda: fgsm(tiny_mlp, x, y, 0.1),
                 lambda: input_gradient(tiny_mlp, x, y)):
        with pytest.raises(ValueError, match=match):
            call()


@pytest.mark.parametrize("make,match", [
    (lambda x: x.double(), r"x is float64 but the model's parameters are float32: convert"),
    (lambda x: x.half(), r"x is float16 but the model's parameters are float32"),
    (lambda x: x[:, 0, 0], r"the model cannot take x of shape \(4, 4\) \(float32\): mat1 and mat2"),
    (lambda x: x.reshape(4, 1, 2, 8)[:, :, :1], r"the model cannot take x of shape \(4, 1, 1, 8\)"),
], ids=["float64", "float16", "wrong-rank", "wrong-size"])
def test_inputs_the_model_cannot_take_are_value_errors(tiny_mlp: nn.Module, make, match: str) -> None:
    """Caught before torch's own message from deep inside a layer: the dtype up front, the shape at the first
    forward pass (which layer fails depends on the model), with torch's reason kept on the same line."""
    from advgrad.train import accuracy

    x, y = _batch((4, 1, 4, 4), 3, dtype=torch.float32)
    x = make(x)
    for call in (lambda: pgd(tiny_mlp, x, y, 0.1), lambda: fgsm(tiny_mlp, x, y, 0.1),
                 lambda: input_gradient(tiny_mlp, x, y), lambda: run_attack(tiny_mlp, x, y, 0.0),
                 lambda: accuracy(tiny_mlp, x, y)):
        with pytest.raises(ValueError, match=match):
            call()


class _NotLogits(nn.Module):
    def __init__(self, out: str) -> None:
        super().__init__()
        self.lin, self.out = nn.Linear(16, 3), out

    def forward(self, x: Tensor) -> object:
        z = self.lin(x.flatten(1))
        return (z, z) if self.out == "tuple" else z[:, :, None] if self.out == "3d" else z[:1]


@pytest.mark.parametrize("out,match", [("tuple", r"logits of shape \(N, K\) = \(4, K\), got tuple"),
                                       ("3d", r"got shape \(4, 3, 1\)"), ("short", r"got shape \(1, 3\)")])
def test_a_model_that_does_not_return_logits_is_a_value_error(out: str, match: str) -> None:
    x, y = _batch((4, 1, 4, 4), 3, dtype=torch.float32)
    with pytest.raises(ValueError, match=match):
        pgd(_NotLogits(out), x, y, 0.1)


@pytest.mark.parametrize("generator", [0, "seed", torch.Generator().get_state()], ids=["int", "str", "state"])
def test_generator_of_the_wrong_type_is_a_value_error(tiny_mlp: nn.Module, generator: object) -> None:
    x, y = _batch((4, 1, 4, 4), 3, dtype=torch.float32)
    with pytest.raises(ValueError, match=f"generator must be a torch.Generator or None, got {type(generator).__name__}"):
        pgd(tiny_mlp, x, y, 0.1, generator=generator)  # type: ignore[arg-type]


def test_accuracy_refuses_labels_outside_the_models_classes(tiny_mlp: nn.Module) -> None:
    """It once returned 0.0 for labels the model cannot predict (silently a wrong data set)."""
    from advgrad.train import accuracy

    x, _ = _batch((4, 1, 4, 4), 3, dtype=torch.float32)
    with pytest.raises(ValueError, match=r"label 7 is outside the model's 3 classes \(0..2\)"):
        accuracy(tiny_mlp, x, torch.tensor([0, 1, 7, 2]))
    with pytest.raises(ValueError, match="batch_size must be an integer ≥ 1, got 0"):
        accuracy(tiny_mlp, x, torch.tensor([0, 1, 2, 2]), batch_size=0)


def test_out_of_range_label_is_a_value_error_also_at_eps_zero(tiny_mlp: nn.Module) -> None:
    """At ε = 0 run_attack still evaluates the model: the label is checked before the loss indexes with it."""
    x, _ = _batch((4, 1, 4, 4), 3, dtype=torch.float32)
    with pytest.raises(ValueError, match="label 3 is outside the model's 3 classes"):
        run_attack(tiny_mlp, x, torch.tensor([0, 1, 3, 0]), 0.0)


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
                      targeted=targeted, early_stop=early_stop, loss=loss, bounds=(lo, hi), generator=g),
                  fgsm(model, x, y, eps, norm=norm, targeted=targeted, loss=loss, bounds=(lo, hi))):
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
    x_adv = pgd(tiny_mlp, x, y, eps, norm=norm, steps=5, generator=g)
    assert bool((get_norm(norm).measure(x_adv - x) <= eps * (1 + 1e-6) + 1e-6).all())
    assert bool((x_adv >= 0).all() and (x_adv <= 1).all())
