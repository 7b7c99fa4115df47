"""``EvalConfig``: everything that decides an evaluation, frozen, valid once constructed, recorded beside
its results; and ``Tally``, the progress count every evaluation function reports through."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from advgrad import _validate
from advgrad.attacks import ATTACKS, AttackConfig
from advgrad.norms import get_norm

WORST = "worst"  # the record of points that survive every attack
Progress = Callable[[int, int], None]  # progress(samples done, samples in all)


@dataclass(frozen=True)
class EvalConfig:
    """``eps``: the radii swept; ``attacks``: names in ``ATTACKS``; ``steps``/``restarts``: the iterative
    attacks' (PGD's α = 2.5·ε/steps); ``min_eps``: also bisect each sample's minimal ε to ``precision``;
    ``tolerance``: the slack (a fraction of the samples) the sanity checks allow; ``queries``: the
    score-based black-box search's budget in the sanity report."""

    eps: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3)
    attacks: tuple[str, ...] = ("fgsm", "pgd")
    steps: int = 20
    restarts: int = 1
    norm: str = "inf"
    bounds: tuple[float, float] = (0.0, 1.0)
    batch_size: int = 500
    seed: int = 0
    min_eps: bool = False
    precision: float = 0.005
    tolerance: float = 0.01
    queries: int = 300

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once, here
        set_(self, "eps", _validate.numbers("eps", self.eps))
        set_(self, "attacks", _validate.names("attacks", self.attacks, ATTACKS))
        for name in ("steps", "restarts", "batch_size", "queries"):
            _validate.count(name.replace("_", " "), getattr(self, name))
        _validate.count("seed", self.seed, minimum=0)
        set_(self, "norm", get_norm(self.norm).name)
        set_(self, "bounds", _validate.bounds(self.bounds))
        if not isinstance(self.min_eps, bool):
            raise ValueError(f"min_eps must be True or False, got {self.min_eps!r}")
        set_(self, "precision", _validate.number("precision", self.precision, minimum=0.0, strict=True))
        set_(self, "tolerance", _validate.number("tolerance", self.tolerance, minimum=0.0, below=1.0))
        for name in self.attacks:  # every attack can run this threat model with these settings
            self.attack(name)

    @property
    def grid(self) -> list[float]:
        """The distinct radii, ascending."""
        return sorted(set(self.eps))

    def attack(self, name: str, **changes: Any) -> AttackConfig:
        """The attack ``name`` as this evaluation runs it: early stop (a fooled point is done), this norm,
        bounds, steps and restarts (FGSM keeps its single step)."""
        fixed = {"steps"} & set(ATTACKS[name].defaults)
        options: dict[str, Any] = {"norm": self.norm, "bounds": self.bounds, "early_stop": True,
                                   "restarts": self.restarts, "steps": self.steps}
        return AttackConfig.of(name, **{**{k: v for k, v in options.items() if k not in fixed}, **changes})

    def but(self, **changes: Any) -> EvalConfig:
        return EvalConfig(**{**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["eps"], d["attacks"], d["bounds"] = list(self.eps), list(self.attacks), list(self.bounds)
        return d


class Tally:
    """Counts samples done against a planned total for a ``progress`` callback (a no-op without one)."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0

    def __call__(self, k: int) -> None:
        self.done += k
        if self.progress is not None:
            self.progress(self.done, self.total)


def parts(progress: Progress | None, sizes: list[int]) -> list[Progress | None]:
    """One ``progress`` over consecutive parts of a run: part i's own (done, total) becomes a point of the
    whole (the parts before it done, out of their sum)."""
    total = sum(sizes)

    def part(i: int) -> Progress | None:
        before = sum(sizes[:i])
        return None if progress is None else (lambda done, _total: progress(before + done, total))

    return [part(i) for i in range(len(sizes))]
