"""The pass counter (advgrad/counting.py): its arithmetic on known schedules, checked against an independent
count, and that wrapping a model changes no bit of any attack's result.

The independent count (``CallLog`` below) is written here: a wrapper that logs each call's batch size and
puts an identity ``torch.autograd.Function`` on the output, whose backward logs a backward pass. It shares
nothing with ``PassCounter`` (which uses a tensor hook), so the two agreeing is evidence for both.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from advgrad.attacks import apgd, apgd_targeted, autoattack, fgsm, pgd, run_attack, square
from advgrad.attacks.autoattack import Budget
from advgrad.configs import AttackConfig
from advgrad.models.counting import PassCounter, Passes, summed


class _Identity(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, z: Tensor, log: list[int]) -> Tensor:  # type: ignore[override]
        ctx.log, ctx.n = log, len(z)
        return z.view_as(z)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        ctx.log.append(ctx.n)
        return grad, None


class CallLog(nn.Module):
    """The test's own count: batch size of every call, and of every backward through a call's output."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.forwards: list[int] = []
        self.backwards: list[int] = []

    def forward(self, x: Tensor) -> Tensor:
        self.forwards.append(len(x))
        z = self.model(x)
        return _Identity.apply(z, self.backwards) if z.requires_grad else z

    def passes(self) -> Passes:
        return Passes(sum(self.forwards), sum(self.backwards))


def tiny_cnn(seed: int = 0) -> nn.Module:
    """A seeded untrained CNN on (1, 8, 8) images with 10 classes."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10)).eval()


def batch(model: nn.Module, n: int, seed: int = 1) -> tuple[Tensor, Tensor]:
    """n random images, labelled with the model's own predictions for all but the last (misclassified)."""
    x = torch.rand((n, 1, 8, 8), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        y = model(x).argmax(1)
    y[-1] = (y[-1] + 1) % 10
    return x, y


@pytest.fixture
def setup() -> tuple[nn.Module, Tensor, Tensor]:
    model = tiny_cnn()
    return (model, *batch(model, 12))


# --- arithmetic --------------------------------------------------------------------------------------

def test_forward_and_backward_count_samples_in_any_chunking() -> None:
    counter = PassCounter(nn.Linear(4, 3))
    x = torch.randn(10, 4, requires_grad=True)
    for part in (slice(0, 3), slice(3, 10)):
        z = counter(x[part])
        torch.autograd.grad(z.sum(), x)
    with torch.no_grad():
        counter(x)
    assert counter.passes == Passes(20, 10)
    assert counter.reset() == Passes(20, 10) and counter.passes == Passes(0, 0)


def test_k_backwards_through_one_forward_count_k_times() -> None:
    counter = PassCounter(nn.Linear(4, 3))
    x = torch.randn(5, 4, requires_grad=True)
    z = counter(x)
    for j in range(3):
        torch.autograd.grad(z[:, j].sum(), x, retain_graph=True)
    assert counter.passes == Passes(5, 15)


def test_no_parameter_grad_and_same_gradient() -> None:
    model = nn.Linear(4, 3)
    counter = PassCounter(model)
    x = torch.randn(5, 4, requires_grad=True)
    (g_plain,) = torch.autograd.grad(model(x).square().sum(), x)
    (g_counted,) = torch.autograd.grad(counter(x).square().sum(), x)
    assert torch.equal(g_plain, g_counted)
    assert all(p.grad is None for p in model.parameters())


def test_fgsm_is_one_forward_and_one_backward_per_sample(setup: tuple[nn.Module, Tensor, Tensor]) -> None:
    """FGSM's step is N forward + N backward; ``fgsm`` returns an ``AttackResult`` whose logits and success are
    those at x_adv, one more forward of the N examples (under no_grad): 2N forward, N backward, called
    directly or through the catalog (``run_attack``, what the runner calls)."""
    model, x, y = setup
    n = len(x)
    counter = PassCounter(model)
    fgsm(counter, x, y, 0.1, chunk_size=5)
    assert counter.reset() == Passes(2 * n, n)
    run_attack(counter, x, y, 0.1, AttackConfig.of("fgsm"), chunk_size=5)
    assert counter.reset() == Passes(2 * n, n)


@pytest.mark.parametrize("steps", [1, 3, 7])
def test_pgd_k_steps(setup: tuple[nn.Module, Tensor, Tensor], steps: int) -> None:
    """PGD-K without early stop: K forward and K backward passes of every sample (the random start costs
    no pass), and one forward at x_adv for the result's logits."""
    model, x, y = setup
    counter = PassCounter(model)
    pgd(counter, x, y, 0.1, steps=steps, chunk_size=4, generator=torch.Generator().manual_seed(0))
    assert counter.passes == Passes((steps + 1) * len(x), steps * len(x))


@given(n=st.integers(2, 9), steps=st.integers(1, 12), restarts=st.integers(1, 2), chunk=st.integers(2, 9),
       targeted=st.booleans(), seed=st.integers(0, 2**16))
@settings(max_examples=10, deadline=None)
def test_apgd_early_stop_against_an_independent_count(n: int, steps: int, restarts: int, chunk: int,
                                                      targeted: bool, seed: int) -> None:
    """APGD and APGD-T with early stop (points leave the batch when fooled, so the count depends on the
    run): the counter's totals equal those of the test's own wrapper around the counter."""
    model = tiny_cnn(seed % 7)
    x, y = batch(model, n, seed)
    counter = PassCounter(model)
    log = CallLog(counter)
    if targeted:
        apgd_targeted(log, x, y, 0.05, steps=steps, targets=2, restarts=restarts, early_stop=True, chunk_size=chunk,
                      seed=seed)
    else:
        apgd(log, x, y, 0.05, steps=steps, restarts=restarts, early_stop=True, chunk_size=chunk, seed=seed)
    assert counter.passes == log.passes()
    assert counter.passes.backward > 0
    if not targeted and restarts == 1:  # the clean pass is APGD's only forward without a backward
        assert counter.passes.forward - counter.passes.backward == n


def test_square_is_forward_only(setup: tuple[nn.Module, Tensor, Tensor]) -> None:
    """Square: no backward; forward = N (the clean pass) + the queries it reports (1 for the start and 1 per
    query while a point is unbroken) + one pass over the attacked points to evaluate the best ones."""
    model, x, y = setup
    counter = PassCounter(model)
    res = square(counter, x, y, 0.05, queries=40, chunk_size=5)
    attacked = int((res.queries > 0).sum())
    assert attacked == len(x) - 1  # the last point is misclassified: not attacked
    assert counter.passes == Passes(len(x) + int(res.queries.sum()) + attacked, 0)


def test_autoattack_counts_blocks_in_worker_threads(setup: tuple[nn.Module, Tensor, Tensor]) -> None:
    """AutoAttack with two workers on blocks of 3: the counter, read after the run, holds every block's passes
    (the same as the independent count, whose list appends are atomic under the GIL)."""
    model, x, y = setup
    counter = PassCounter(model)
    log = CallLog(counter)
    autoattack(log, x, y, 0.05, block=3, workers=2, budget=Budget(steps=4, targets=2, queries=10), chunk_size=2)
    assert counter.passes == log.passes() and counter.passes.backward > 0


def test_threads_lose_no_count() -> None:
    counter = PassCounter(nn.Linear(4, 3))

    def work() -> None:
        x = torch.randn(3, 4, requires_grad=True)
        for _ in range(200):
            torch.autograd.grad(counter(x).sum(), x)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter.passes == Passes(6 * 200 * 3, 6 * 200 * 3)


# --- no bit changes ----------------------------------------------------------------------------------

def _attacks() -> dict[str, Any]:
    g = torch.Generator
    return {
        "fgsm": lambda m, x, y: fgsm(m, x, y, 0.05).x_adv,
        "pgd": lambda m, x, y: pgd(m, x, y, 0.05, steps=5, generator=g().manual_seed(0)).x_adv,
        "apgd": lambda m, x, y: apgd(m, x, y, 0.05, steps=10, early_stop=True).x_adv,
        "apgd-t": lambda m, x, y: apgd_targeted(m, x, y, 0.05, steps=5, targets=2).x_adv,
        "square": lambda m, x, y: square(m, x, y, 0.05, queries=20).x_adv,
        "autoattack": lambda m, x, y: autoattack(m, x, y, 0.05, block=4, workers=2,
                                                 budget=Budget(steps=4, targets=2, queries=10)).x_adv,
    }


@pytest.mark.parametrize("name", list(_attacks()))
def test_results_are_bit_identical_with_the_counter(setup: tuple[nn.Module, Tensor, Tensor], name: str) -> None:
    model, x, y = setup
    attack = _attacks()[name]
    plain = attack(model, x, y)
    counted = attack(PassCounter(model), x, y)
    assert torch.equal(plain, counted)


def test_wrapper_reads_the_inner_models_attributes_and_restores_modes() -> None:
    inner = tiny_cnn()
    inner.output_activation = "sigmoid"  # type: ignore[assignment]
    counter = PassCounter(inner.train())
    assert counter.output_activation == "sigmoid"
    x, y = batch(inner.eval(), 4)
    inner.train()
    fgsm(counter, x, y, 0.1)
    assert inner.training and all(p.requires_grad for p in inner.parameters())
    with pytest.raises(AttributeError):
        _ = counter.no_such_attribute


def test_not_a_module_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="nn.Module"):
        PassCounter(lambda x: x)  # type: ignore[arg-type]


def test_passes_arithmetic_and_summed_in_one_process() -> None:
    a, b = Passes(5, 3), Passes(2, 1)
    assert a + b == Passes(7, 4) and a - b == Passes(3, 2) and a.total == 8
    assert a.per_sample(2) == (2.5, 1.5)
    assert summed(a) == a


def test_a_model_that_returns_its_input_leaves_no_hook_on_it() -> None:
    """nn.Identity returns the caller's tensor itself: nothing was computed to differentiate through, so no
    backward is counted, and no hook is left behind on the caller's tensor (hooks there would pile up)."""
    counter = PassCounter(nn.Identity())
    x = torch.randn(3, 2, requires_grad=True)
    for _ in range(3):
        torch.autograd.grad(counter(x).sum(), x)
    assert counter.passes == Passes(9, 0)
    assert not x._backward_hooks
