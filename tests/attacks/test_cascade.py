"""The cascade's schedule (``attacks._cascade``) against the plain member-by-member loop it replaces.

The plain loop: member k takes the points that survived members 0 … k−1, in index order, cuts them into
blocks of ``block``, and runs them one after the other. The schedule must hand every member exactly those
blocks (same points, same order within a block) and end with the same survivors, whatever order the blocks
finish in (random sleeps shuffle it), with and without a pool, for any number of workers; it may start a
member's first blocks before the member before it has finished (that is its point, tested with an event
that deadlocks a loop that does not). Fake members here: a block's verdicts are a fixed function of
(member, point), so both sides must agree exactly.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from advgrad.attacks._cascade import Plan, pipeline


@dataclass(frozen=True)
class Verdicts:
    success: Tensor


Rule = Callable[[int, int], bool]  # (member, point) → broken by that member


def plain(members: int, first: Tensor, block: int, broken: Rule) -> tuple[list[tuple[int, int, tuple[int, ...]]], Tensor]:
    """The member-by-member loop: the blocks run, as (member, points), in order; the final survivors."""
    blocks, alive = [], first
    for k in range(members):
        survivors = []
        for start in range(0, len(alive), block):
            points = alive[start:start + block]
            blocks.append((k, start // block, tuple(points.tolist())))
            survivors.append(points[~torch.tensor([broken(k, int(i)) for i in points], dtype=torch.bool)])
        alive = torch.cat(survivors) if survivors else alive[:0]
    return blocks, alive


def scheduled(members: int, first: Tensor, block: int, broken: Rule, workers: int, sleeps: list[float],
              pool: bool = True) -> tuple[list[tuple[int, int, tuple[int, ...]]], Tensor, list[float]]:
    """The schedule with fake members that sleep a drawn time: the blocks as ``done`` saw them, the
    survivors of the last member, and the seconds it reports."""
    seen: list[tuple[int, int, tuple[int, ...]]] = []
    alive = torch.zeros(int(first.max()) + 1 if len(first) else 0, dtype=torch.bool)
    alive[first] = True

    def run(k: int, j: int, points: Tensor) -> Verdicts:
        time.sleep(sleeps[len(seen) % len(sleeps)] if sleeps else 0)
        return Verdicts(torch.tensor([broken(k, int(i)) for i in points], dtype=torch.bool))

    def done(k: int, j: int, points: Tensor, result: Verdicts) -> None:
        seen.append((k, j, tuple(points.tolist())))
        alive[points[result.success]] = False

    with ThreadPoolExecutor(workers) as executor:
        seconds = pipeline(members, first, block, run, done, executor if pool else None, workers)
    return seen, alive.nonzero().squeeze(1), seconds


def _rule(seed: int, p: float) -> Rule:
    """Member k breaks point i with probability p, fixed per (seed, k, i)."""
    return lambda k, i: random.Random(seed * 1_000_003 + k * 10_007 + i).random() < p


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 40), members=st.integers(0, 5), block=st.integers(1, 9), workers=st.integers(1, 4),
       p=st.sampled_from([0.0, 0.1, 0.5, 1.0]), seed=st.integers(0, 2**16), pool=st.booleans(),
       sleeps=st.lists(st.sampled_from([0.0, 0.0005, 0.002]), max_size=5), drop=st.integers(0, 3))
def test_the_schedule_runs_the_plain_loops_blocks(n: int, members: int, block: int, workers: int, p: float,
                                                   seed: int, pool: bool, sleeps: list[float], drop: int) -> None:
    """Sizes from none to several blocks per member, members that break nothing, some or all, blocks that
    finish out of order; ``drop``: every few points are not in the cascade at all (misclassified at x)."""
    first = torch.tensor([i for i in range(n) if not drop or i % (drop + 1)], dtype=torch.long)
    expected, survivors = plain(members, first, block, _rule(seed, p))
    seen, alive, seconds = scheduled(members, first, block, _rule(seed, p), workers, sleeps, pool)
    assert sorted(seen) == sorted(expected)  # each block once, with the plain loop's points in its order
    if not pool:  # one at a time: the plain loop's order too
        assert seen == expected
    assert torch.equal(alive, survivors)
    assert len(seconds) == members and all(s >= 0 for s in seconds)


def test_a_member_starts_before_the_one_before_it_ends() -> None:
    """9 points, blocks of 3, member 0 breaks nothing: once its blocks 0 and 1 are done, member 1's block 0
    is known. Member 0's block 2 waits for member 1's block 0: with two workers that is the pipeline; a
    member-by-member loop would wait forever (here: 20 s, then fail)."""
    started = threading.Event()
    order: list[tuple[int, int]] = []

    def run(k: int, j: int, points: Tensor) -> Verdicts:
        order.append((k, int(points[0])))
        if (k, int(points[0])) == (0, 6):
            assert started.wait(20), "member 1 never started while member 0's last block ran"
        if (k, int(points[0])) == (1, 0):
            started.set()
        return Verdicts(torch.zeros(len(points), dtype=torch.bool))

    with ThreadPoolExecutor(2) as executor:
        pipeline(2, torch.arange(9), 3, run, lambda k, j, points, result: None, executor, 2)
    assert order.index((1, 0)) < len(order) - 1 and set(order) == {(0, 0), (0, 3), (0, 6), (1, 0), (1, 3), (1, 6)}


def test_at_most_workers_blocks_at_once_and_lone_blocks_in_the_callers_thread() -> None:
    """Three workers' worth of blocks at most run together; a member whose points fit one block (member 1
    here: member 0 breaks all but 2 of 20) runs in the caller's thread, the others in the pool."""
    lock, now, most = threading.Lock(), [0], [0]
    threads: dict[int, set[str]] = {0: set(), 1: set(), 2: set()}

    def run(k: int, j: int, points: Tensor) -> Verdicts:
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        threads[k].add(threading.current_thread().name)
        time.sleep(0.002)
        with lock:
            now[0] -= 1
        return Verdicts(points >= 2 if k == 0 else torch.zeros(len(points), dtype=torch.bool))

    with ThreadPoolExecutor(3, thread_name_prefix="pool") as executor:
        pipeline(3, torch.arange(20), 2, run, lambda k, j, points, result: None, executor, 3)
    assert most[0] == 3
    assert all(name.startswith("pool") for name in threads[0]) and len(threads[0]) > 1
    assert threads[1] == threads[2] == {threading.current_thread().name}


def test_a_failing_block_raises() -> None:
    def run(k: int, j: int, points: Tensor) -> Verdicts:
        if k == 1:
            raise RuntimeError("member 1 failed")
        return Verdicts(torch.zeros(len(points), dtype=torch.bool))

    with ThreadPoolExecutor(2) as executor, pytest.raises(RuntimeError, match="member 1 failed"):
        pipeline(2, torch.arange(10), 3, run, lambda k, j, points, result: None, executor, 2)


def test_seconds_share_the_wall_clock() -> None:
    """Each interval is split among the blocks running in it, so the seconds add up to at most the wall
    time (by construction, not by a timing bound), and a member that sleeps gets a positive share."""
    def run(k: int, j: int, points: Tensor) -> Verdicts:
        time.sleep(0.01 if k == 1 else 0)
        return Verdicts(torch.zeros(len(points), dtype=torch.bool))

    start = time.perf_counter()
    with ThreadPoolExecutor(2) as executor:
        seconds = pipeline(3, torch.arange(12), 4, run, lambda k, j, points, result: None, executor, 2)
    wall = time.perf_counter() - start
    assert sum(seconds) <= wall and seconds[1] > 0


def test_a_plan_with_no_points_is_finished_at_once() -> None:
    plan = Plan(4, torch.arange(0), 5)
    assert plan.finished() and plan.next_block() is None and [plan.blocks(k) for k in range(4)] == [0] * 4
