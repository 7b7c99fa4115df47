"""The AutoAttack cascade's schedule: which points each member attacks, in which blocks, and when.

Member k attacks the points that survived members 0 … k−1, in index order, in blocks of ``block``
consecutive points of that list (the reference re-batches each member's survivors into batches of 250).
Block j of member k holds positions [j·block, (j+1)·block) of the list, so it is known as soon as enough
of member k−1 is done: the survivors of a done prefix of member k−1's blocks number more than
(j+1)·block (one more, so that the member is known to have another block), or member k−1 is done
entirely. A free worker takes the earliest known block (lowest member, then lowest block). So when member
k has an odd number of blocks, the worker that would wait for member k's last block starts member k+1's
first instead: the members overlap as a pipeline. (On 1,000 points of a robust model three blocks of 250
reach each member after APGD-CE; taken a member at a time, two workers leave one core idle for a third of
every member.)

What a block computes depends only on its points and its member (the caller gives it its own generator),
never on when or beside what it runs, so the results are those of the member-by-member loop. A member
whose points fit in one block starts only when every earlier block is done (by the rule above), and runs
in the caller's thread with all of torch's threads, as the loop ran a lone block; a member of several blocks
runs them in the pool. Which of the two depends only on the points, never on timing, so neither does the
thread count a block runs on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Protocol, TypeVar

import torch
from torch import Tensor


class Verdicts(Protocol):
    """What the schedule reads of a member's result: which points of the block it broke, (b,) bool."""

    @property
    def success(self) -> Tensor: ...


R = TypeVar("R", bound=Verdicts)


class Plan:
    """What is known of every member's list of points, block by block (no threads: ``pipeline`` drives it).

    ``known[k]``: the first points of member k's list, in order (all of member 0's); ``complete[k]``: the
    list is whole; ``handed[k]``: blocks of member k handed out; ``survivors[k][j]``: the points of block j
    of member k that it did not break, once that block is done."""

    def __init__(self, members: int, first: Tensor, block: int) -> None:
        self.block = block
        self.known = [first] + [first[:0]] * members       # one extra: the cascade's survivors
        self.complete = [True] + [False] * members
        self.handed = [0] * members
        self.survivors: list[dict[int, Tensor]] = [{} for _ in range(members)]
        if members:
            self._advance(0)  # no points: every member's list is whole (and empty) at once

    def blocks(self, k: int) -> int | None:
        """Member k's number of blocks, None while its list is not whole."""
        return -(-len(self.known[k]) // self.block) if self.complete[k] else None

    def next_block(self) -> tuple[int, int, Tensor] | None:
        """(member, block, points (b,)) of the earliest block known and not handed out yet, else None."""
        for k, handed in enumerate(self.handed):
            start, stop = handed * self.block, (handed + 1) * self.block
            # past ``stop``: a later block exists, so this member has several (see ``pipeline``)
            if len(self.known[k]) > stop or (self.complete[k] and len(self.known[k]) > start):
                return k, handed, self.known[k][start:stop]
        return None

    def hand_out(self, k: int) -> None:
        self.handed[k] += 1

    def finish(self, k: int, j: int, survivors: Tensor) -> None:
        """Block j of member k is done and ``survivors`` (in order) are the points of it still unbroken."""
        self.survivors[k][j] = survivors
        self._advance(k)

    def _advance(self, k: int) -> None:
        """Member k+1's list: the survivors of member k's done blocks up to the first not done."""
        done = self.survivors[k]
        prefix = 0
        while prefix in done:
            prefix += 1
        if prefix:
            self.known[k + 1] = torch.cat([done[j] for j in range(prefix)])
        self.complete[k + 1] = self.complete[k] and prefix == self.blocks(k)
        if self.complete[k + 1] and k + 1 < len(self.handed):
            self._advance(k + 1)

    def finished(self) -> bool:
        return self.complete[-1]


Run = Callable[[int, int, Tensor], R]             # member k's block j on the points (b,) → its result on them
Done = Callable[[int, int, Tensor, R], None]      # (member k, block j, points (b,), result): in the caller's thread


def pipeline(members: int, first: Tensor, block: int, run: Run[R], done: Done[R],
             pool: ThreadPoolExecutor | None, workers: int = 1) -> list[float]:
    """Run the ``members`` of a cascade over the points ``first`` (N,) in blocks of ``block``: ``run(k, j,
    points)`` for block j of member k (in the pool, at most ``workers`` at once; in this thread without a
    pool, or for a member whose points fit in one block), ``done(k, j, points, result)`` here as each block
    ends. Returns the seconds of each member: every interval of the run divided evenly among the blocks
    running in it, so the members' seconds add up to the cascade's wall time (less this thread's own)."""
    plan = Plan(members, first, block)
    seconds = [0.0] * members
    running: dict[Future[R], tuple[int, int, Tensor]] = {}
    clock = time.perf_counter()

    def tick() -> None:  # share the time since the last event among the blocks that ran in it
        nonlocal clock
        now = time.perf_counter()
        for k, _, _ in running.values():
            seconds[k] += (now - clock) / len(running)
        clock = now

    def end(k: int, j: int, points: Tensor, result: R) -> None:
        plan.finish(k, j, points[~result.success.to(points.device)])
        done(k, j, points, result)

    while not plan.finished():
        ready = plan.next_block()
        if ready is not None and (len(running) < workers or pool is None):
            k, j, points = ready
            plan.hand_out(k)
            if pool is None or plan.blocks(k) == 1:  # alone by construction: nothing else can run now
                start = time.perf_counter()
                result = run(k, j, points)
                seconds[k] += time.perf_counter() - start
                clock = time.perf_counter()
                end(k, j, points, result)
            else:
                tick()
                running[pool.submit(run, k, j, points)] = (k, j, points)
            continue
        if not running:
            raise RuntimeError("cascade schedule stalled: no block is ready and none is running")
        finished, _ = wait(running, return_when=FIRST_COMPLETED)
        tick()
        for future in sorted(finished, key=lambda f: running[f][:2]):
            k, j, points = running.pop(future)
            end(k, j, points, future.result())
    return seconds
