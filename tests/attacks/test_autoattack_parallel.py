"""The AutoAttack cascade with its blocks run concurrently (``workers`` > 1) gives the serial cascade's
results bit for bit, keeps the model's mode and torch's thread count, and refuses bad ``workers``.

Why bits: the blocks are fixed (``block`` points of the survivors, in order), every block gets its own
generator seeded alike, and a member's computation on a block reads nothing of the other blocks; a worker
runs the same ops on the same shapes as the serial loop. Both runs below have torch on one intra-op thread,
so a worker (torch.get_num_threads() // workers, at least 1) and the caller's thread use the same kernels
too: the results are equal by construction, not to a tolerance. (Torch's thread count itself can change
the last bit: on this machine a 5-row Linear(36, 16) differs by 3e-8 between 1 and 2 threads, so bits are
compared at one thread per block; the verdicts are what is stable across thread counts.)"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from helpers.batches import half_correct
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from advgrad.attacks import ATTACKS, autoattack
from advgrad.attacks.autoattack import AutoAttackResult, Budget, members
from advgrad.attacks.runner import default_workers

CHEAP = Budget(steps=3, targets=2, queries=15)  # every member runs, a few iterations each


@contextmanager
def _threads(k: int) -> Iterator[None]:
    """Torch on k intra-op threads inside, the caller's count after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(k)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _fresh_threads() -> int:
    """torch.get_num_threads() in a new thread: torch's process default, which a worker's
    set_num_threads changes (the caller's own count does not show it)."""
    out: list[int] = []
    thread = threading.Thread(target=lambda: out.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    return out[0]


def _model(seed: int, training: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 16), nn.ReLU(), nn.Linear(16, 5)).train(training)


def _same(a: AutoAttackResult, b: AutoAttackResult) -> None:
    for name in ("x_adv", "success", "loss", "logits", "broken_by"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.accuracy == b.accuracy and a.stages == b.stages


def _plain(model: nn.Module, x: Tensor, y: Tensor, eps: float, norm: str, version: str, block: int, seed: int,
           budget: Budget | None = None) -> tuple[Tensor, Tensor]:
    """The cascade written as the plain member-by-member loop (no schedule, no pool): each member on the
    survivors of the ones before it, in blocks of ``block``, each block with a generator seeded ``seed``.
    Returns (x_adv, broken_by) to compare with ``autoattack``'s."""
    with torch.no_grad():
        robust = model(x).argmax(1) == y
    plan = members(version)
    broken_by = torch.where(robust, len(plan), -1)
    x_adv = x.clone()
    for k, (name, extra) in enumerate(plan):
        entry = ATTACKS[name]
        cheaper = {k: v for k, v in (budget.options() if budget else {}).items() if k in entry.options}
        kwargs = {**entry.fixed, **extra, **cheaper, "norm": norm, "seed": seed,
                  **({"early_stop": True} if "early_stop" in entry.options else {})}
        idx = robust.nonzero().squeeze(1)
        for start in range(0, len(idx), block):
            b = idx[start:start + block]
            res = entry.impl(model, x[b], y[b], eps, **kwargs)
            x_adv[b[res.success]], robust[b[res.success]], broken_by[b[res.success]] = res.x_adv[res.success], False, k
    return x_adv, broken_by


Log = list[tuple[str, str, bool]]


def _spy(monkeypatch: pytest.MonkeyPatch, log: Log, fail_on: int | None = None) -> None:
    """Wrap every member: log (member, thread name, model.training) per call; raise on call ``fail_on``."""
    for name in ("apgd-ce", "apgd-t", "fab-t", "square"):  # apgd-dlr is apgd with loss "dlr", like apgd-ce
        module, _, attribute = ATTACKS[name].target.partition(":")
        impl = getattr(importlib.import_module(module), attribute)

        @functools.wraps(impl)
        def spy(model, x, y, eps, _impl=impl, _name=name, **kwargs):  # type: ignore[no-untyped-def]
            member = "apgd-dlr" if kwargs.get("loss") == "dlr" else _name
            log.append((member, threading.current_thread().name, model.training))
            if fail_on is not None and len(log) == fail_on:
                raise RuntimeError("member failed")
            return _impl(model, x, y, eps, **kwargs)

        monkeypatch.setattr(importlib.import_module(module), attribute, spy)


@pytest.mark.slow
@pytest.mark.isa  # bits compared: run again under the other instruction sets (make test-isa)
@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 24), block=st.sampled_from([1, 4, 7]), workers=st.integers(2, 4),
       version=st.sampled_from(["standard", "plus", "rand"]), norm=st.sampled_from(["inf", "2"]),
       eps=st.sampled_from([0.05, 0.2, 0.5]), seed=st.integers(0, 2**16))
def test_parallel_cascade_is_the_serial_cascade_bit_for_bit(n: int, block: int, workers: int, version: str,
                                                              norm: str, eps: float, seed: int) -> None:
    """Sizes below, at and beyond one block (block 7: up to 4 blocks; block 1: up to 24), every version;
    both on one thread per block; and both the plain member-by-member loop's results (``_plain``)."""
    model = _model(seed)
    x, y = half_correct(model, n, seed)
    budget = Budget(steps=3, eot=2) if version == "rand" else CHEAP  # rand's EOT 20, cut to 2 for time
    with _threads(1):
        serial = autoattack(model, x, y, eps, norm=norm, version=version, block=block, seed=seed, workers=1,
                            budget=budget)
        parallel = autoattack(model, x, y, eps, norm=norm, version=version, block=block, seed=seed,
                              workers=workers, budget=budget)
        x_adv, broken_by = _plain(model, x, y, eps, norm, version, block, seed, budget)
    _same(serial, parallel)
    assert torch.equal(parallel.x_adv, x_adv) and torch.equal(parallel.broken_by, broken_by)


def test_blocks_run_in_the_workers_on_a_frozen_model(monkeypatch) -> None:
    """With two blocks or more a member's blocks go to the pool (thread names), the model is in eval mode
    inside them and back in train mode after; a single block runs in the caller's thread."""
    model = _model(0, training=True)
    x, y = half_correct(model, 30, 1)
    with _threads(1):
        serial = autoattack(model, x, y, 0.5, block=7, workers=1, budget=CHEAP)
    log: Log = []
    _spy(monkeypatch, log)
    with _threads(1):
        parallel = autoattack(model, x, y, 0.5, block=7, workers=2, budget=CHEAP)
    _same(serial, parallel)
    assert log and not any(training for _, _, training in log)
    first = [thread for member, thread, _ in log if member == "apgd-ce"]  # the clean-correct points
    assert int((serial.broken_by >= 0).sum()) > 7 and len(first) >= 2  # ≥ 2 blocks of 7
    assert all(thread.startswith("advgrad-block") for thread in first)
    assert model.training and all(p.requires_grad and p.grad is None for p in model.parameters())
    log.clear()
    autoattack(model, x[:5], y[:5], 0.5, block=7, workers=2, budget=CHEAP)
    assert log and all(thread == threading.current_thread().name for _, thread, _ in log)


@pytest.mark.parametrize("fail_on", [1, 2, 3])
def test_state_is_restored_when_a_member_raises(monkeypatch, fail_on: int) -> None:
    """A member that raises in a worker (2nd or 3rd block) or in the caller's thread: the error comes out,
    the model is back in train mode with its gradients on, and torch's thread count is what it was (3
    threads: each of 2 workers sets its own 1, which would otherwise become the process default)."""
    model = _model(0, training=True)
    x, y = half_correct(model, 20, 2)
    _spy(monkeypatch, [], fail_on=fail_on)
    with _threads(3):
        with pytest.raises(RuntimeError, match="member failed"):
            autoattack(model, x, y, 0.5, block=4 if fail_on > 1 else 50, workers=2, budget=CHEAP)
        assert torch.get_num_threads() == _fresh_threads() == 3
    assert model.training and all(p.requires_grad for p in model.parameters())


def test_thread_count_restored_after_a_parallel_run(monkeypatch) -> None:
    model = _model(0)
    x, y = half_correct(model, 12, 3)
    with _threads(3):
        log: Log = []
        _spy(monkeypatch, log)
        autoattack(model, x, y, 0.3, block=4, workers=3, budget=CHEAP)
        assert any(thread.startswith("advgrad-block") for _, thread, _ in log)  # the pool ran
        assert torch.get_num_threads() == _fresh_threads() == 3


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_workers_are_refused(tiny_mlp: nn.Module, bad: object) -> None:
    x, y = torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match=f"workers must be an integer ≥ 1, got {bad!r}"):
        autoattack(tiny_mlp, x, y, 0.1, workers=bad)  # type: ignore[arg-type]


def test_default_workers_share_torchs_thread_budget() -> None:
    for budget, expected in [(1, 1), (2, 2), (5, 2)]:
        with _threads(budget):
            assert default_workers() == expected
