"""The runner's resume: a run killed after any number of finished blocks, continued from its journal, ends
with the uninterrupted run's outcome bit for bit — whatever the sizes, the block, the cascade and the point
at which it stopped (hypothesis over all of them), and a journal of another run is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from advgrad.attacks import runner
from advgrad.attacks.autoattack import Budget, member_configs
from advgrad.attacks.result import AttackResult
from advgrad.configs import AttackConfig
from advgrad.runs._journal import Journal, key_of


class Killed(Exception):
    """Stands for kill -9: the run stops between two writes."""


class Dying:
    """A store that saves ``left`` blocks, then stops the run (as if killed right after that write)."""

    def __init__(self, store: runner.Store, left: int) -> None:
        self.store, self.left = store, left

    def get(self, key: tuple[int, int], points: Tensor) -> AttackResult | None:
        return self.store.get(key, points)

    def put(self, key: tuple[int, int], points: Tensor, result: AttackResult) -> None:
        if self.left == 0:
            raise Killed
        self.store.put(key, points, result)
        self.left -= 1


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 16), nn.ReLU(), nn.Linear(16, 5)).eval()


def _same(a: runner.Outcome, b: runner.Outcome) -> None:
    assert torch.equal(a.broken_by, b.broken_by) and torch.equal(a.x_adv, b.x_adv)
    assert torch.equal(a.attacked, b.attacked)
    assert (a.logits is None) == (b.logits is None) and (a.logits is None or torch.equal(a.logits, b.logits))


CASCADES = {
    "pgd": [AttackConfig.of("pgd", steps=3, restarts=2)],
    "apgd+square": member_configs("inf", "custom", ("apgd-ce", "square"), Budget(steps=3, queries=8)),
}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 60), block=st.sampled_from([1, 4, 7, 25, 250]), cascade=st.sampled_from(list(CASCADES)),
       kill_after=st.integers(0, 12), workers=st.integers(1, 2), seed=st.integers(0, 2**16))
def test_a_killed_run_resumes_to_the_uninterrupted_outcome(tmp_path: Path, n: int, block: int, cascade: str,
                                                          kill_after: int, workers: int, seed: int) -> None:
    model = _model(seed)
    g = torch.Generator().manual_seed(seed)
    x, y = torch.rand(n, 1, 6, 6, generator=g), torch.randint(0, 5, (n,), generator=g)
    stages = CASCADES[cascade]
    kw = dict(seed=seed, block=block, workers=workers)
    whole = runner.run(model, x, y, 0.2, stages, **kw)
    folder = tmp_path / f"state-{n}-{block}-{cascade}-{kill_after}-{workers}-{seed}"
    key = key_of(n=n, seed=seed)
    journal = Journal.open(folder, key, resume=False)
    try:
        runner.run(model, x, y, 0.2, stages, store=Dying(journal.store("pass"), kill_after), **kw)
        finished = True
    except Killed:
        finished = False
    saved = len(list(folder.glob("*.pt")))
    assert saved == (len(list(folder.glob("*.pt"))) if finished else kill_after)
    again = Journal.open(folder, key, resume=True)
    calls: list[int] = []
    store = again.store("pass")

    class Counting:
        def get(self, k: tuple[int, int], points: Tensor) -> AttackResult | None:
            found = store.get(k, points)
            calls.append(found is not None)
            return found

        def put(self, k: tuple[int, int], points: Tensor, result: AttackResult) -> None:
            store.put(k, points, result)

    resumed = runner.run(model, x, y, 0.2, stages, store=Counting(), **kw)
    _same(resumed, whole)
    assert sum(calls) == saved  # every saved block was read, none attacked again
    again.close()
    assert not folder.exists()


def test_a_journal_of_another_run_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    folder = tmp_path / "run.state"
    Journal.open(folder, key_of(a=1), resume=False).store("p").put((0, 0), torch.arange(3),
                                                                     AttackResult(torch.zeros(3, 2), torch.zeros(3, dtype=torch.bool),
                                                                                  torch.zeros(3), torch.zeros(3, 4)))
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(ValueError, match="was written by another run"):
        Journal.open(folder, key_of(a=2), resume=True)
    with pytest.raises(ValueError, match="holds the state of an unfinished run: add --resume"):
        Journal.open(folder, key_of(a=1), resume=False)
    assert sorted(p.name for p in folder.iterdir()) == before
    with pytest.raises(ValueError, match="holds other points than this run's block"):
        Journal.open(folder, key_of(a=1), resume=True).store("p").get((0, 0), torch.arange(1, 4))
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not an advgrad run state"):
        Journal.open(folder, key_of(a=1), resume=True)


def test_a_state_file_runs_no_code(tmp_path: Path) -> None:
    """A block file is read with weights_only: a pickle that would run code is a one-line ValueError."""
    folder = tmp_path / "s"
    journal = Journal.open(folder, key_of(a=1), resume=False)
    store = journal.store("p")

    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (exec, ("raise SystemExit('ran code')",))

    torch.save({"points": torch.arange(2), "x_adv": Evil()}, store._path((0, 0)))
    with pytest.raises(ValueError, match="is not a readable block of this run"):
        store.get((0, 0), torch.arange(2))
