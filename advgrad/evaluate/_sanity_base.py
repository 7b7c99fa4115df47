"""What the sanity checks share: the line of the report (``SanityCheck``) and the ``Context`` every check
reads, with the PGD passes the checks share run once, on demand."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
from torch import Tensor, nn

from advgrad.attacks.runner import Journal
from advgrad.configs import EvalConfig
from advgrad.evaluate.robust import SweepResult, attack_mask


@dataclass(frozen=True)
class SanityCheck:
    """One line of the sanity report: ``ok`` or not (then "warn"), what was compared, the numbers.

    Parameters
    ----------
    name : str
        The check (a name in ``sanity.CHECKS``).
    ok : bool
    message : str
        One line: what was compared and what it found.
    values : dict
        The numbers behind it.

    Examples
    --------
    >>> from advgrad import SanityCheck
    >>> check = SanityCheck("pgd-vs-fgsm", False, "FGSM beats PGD at ε = 0.1", {"fgsm": 0.4, "pgd": 0.6})
    >>> check.status, check.to_dict()["check"]
    ('warn', 'pgd-vs-fgsm')

    References
    ----------
    Carlini et al., "On evaluating adversarial robustness", 2019, arXiv 1902.06705.
    """

    name: str
    ok: bool
    message: str
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "ok" if self.ok else "warn"

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.name, "status": self.status, "message": self.message, "values": self.values}


@dataclass
class Context:
    """What the checks read; the attacks they share (PGD's mask at ``check_eps``) run once, on demand."""

    model: nn.Module
    x: Tensor
    y: Tensor
    result: SweepResult
    config: EvalConfig
    check_eps: float
    journal: Journal | None = None  # where the checks' PGD passes keep their finished blocks

    @cached_property
    def accuracy(self) -> dict[tuple[str, float], float]:
        return {(r["attack"], r["eps"]): r["accuracy"] for r in self.result.records}

    @cached_property
    def grid(self) -> list[float]:
        return sorted({e for _, e in self.accuracy})

    @cached_property
    def noise(self) -> torch.Generator:
        """The generator of the sign-noise check's draws."""
        return torch.Generator(device=self.x.device).manual_seed(self.config.seed + 104729)

    def pgd_fooled(self, eps: float, seed: int, **changes: Any) -> Tensor:
        """PGD's success mask at ``eps`` on the correctly classified points."""
        return attack_mask(self.model, self.x, self.y, self.result.correct, eps, self.config.attack("pgd", **changes),
                           self.config, seed=seed, journal=self.journal,
                           name=f"sanity pgd {eps!r} {seed} {sorted(changes.items())}")

    @cached_property
    def base(self) -> Tensor:
        """PGD's robustness mask at ``check_eps``: from the sweep when it ran PGD there, else computed now."""
        mask = self.result.robust.get(("pgd", self.check_eps))
        if mask is not None:
            return mask
        return self.result.correct & ~self.pgd_fooled(self.check_eps, self.config.seed)
