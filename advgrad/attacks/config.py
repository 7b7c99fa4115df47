"""``AttackConfig``: everything that decides an attack, frozen and valid from the moment it exists.

One config travels whole from the CLI or a script through the evaluation to the attack function (no
unpacking into keywords and packing again). ``AttackConfig.of(method, **options)`` starts from the
method's own defaults (``ATTACKS[method].defaults``: FGSM is one step from x, MI-FGSM has momentum 1).
The radius ε is not part of it: evaluations sweep it, and the minimal-ε bisection gives every sample
its own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from torch import Tensor

from advgrad import _validate
from advgrad.attacks.registry import get_attack
from advgrad.losses import LOSSES, LossSpec
from advgrad.norms import Radius, get_norm


@dataclass(frozen=True)
class AttackConfig:
    """How to attack (per method, the fields that do not apply are ignored and say so in ``ATTACKS``).

    - ``method``: a name in ``advgrad.attacks.ATTACKS``; ``norm``: "inf", "2" or "1" (also 2, float("inf")).
    - ``steps``: iterations; ``alpha``: the step α (None: ``ATTACKS[method].alpha_factor``·ε/steps, e.g.
      PGD's 2.5·ε/steps, FGSM's ε); ``random_start``; ``restarts`` (the worst example per sample is kept).
    - ``targeted``: y holds target classes; ``loss``: a name in ``LOSSES`` or (logits, y) → per-sample loss.
    - ``bounds``: the box the inputs live in; ``early_stop``: fooled samples stop moving (evaluation).
    - ``chunk_size``: samples per forward pass (None: ``auto_chunk_size``); speed and memory only.
    - ``momentum``: MI-FGSM's decay μ of the normalised-gradient velocity (0: plain PGD).
    - ``targets``: target classes tried by the targeted AutoAttack members; ``queries``: Square's budget.
    """

    method: str = "pgd"
    norm: str = "inf"
    steps: int = 10
    alpha: float | None = None
    random_start: bool = True
    restarts: int = 1
    targeted: bool = False
    loss: LossSpec = "ce"
    bounds: tuple[float, float] = (0.0, 1.0)
    early_stop: bool = False
    chunk_size: int | None = None
    momentum: float = 0.0
    targets: int = 9
    queries: int = 5000

    def __post_init__(self) -> None:
        entry = get_attack(self.method)
        norm = get_norm(self.norm).name
        if norm not in entry.norms:
            raise ValueError(f"{self.method} implements the norms {', '.join(entry.norms)}, not {norm!r}")
        set_ = object.__setattr__  # frozen: normalise once, here
        set_(self, "norm", norm)
        for name in ("steps", "restarts", "targets", "queries"):
            _validate.count(name, getattr(self, name))
        if self.alpha is not None:
            set_(self, "alpha", _validate.number("alpha", self.alpha, minimum=0.0, strict=True))
        for name in ("random_start", "targeted", "early_stop"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if not callable(self.loss):
            _validate.one_of("loss", self.loss, LOSSES)
        set_(self, "bounds", _validate.bounds(self.bounds))
        _validate.optional_count("chunk_size", self.chunk_size)
        set_(self, "momentum", _validate.number("momentum", self.momentum, minimum=0.0))

    @classmethod
    def of(cls, method: str = "pgd", **options: Any) -> AttackConfig:
        """The config of ``method`` with its defaults, overridden by ``options``."""
        return cls(method=method, **{**get_attack(method).defaults, **options})

    def but(self, **changes: Any) -> AttackConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def step_size(self, eps: Radius) -> Radius:
        """α for radius ``eps`` (a float or per-sample tensor): the explicit one, or the method's default."""
        if self.alpha is not None:
            return self.alpha
        factor = get_attack(self.method).alpha_factor
        if factor is None:
            raise ValueError(f"{self.method} takes no step size")
        return factor * eps / self.steps if isinstance(eps, Tensor) else factor * float(eps) / self.steps

    def to_dict(self) -> dict[str, Any]:
        """Plain data for records (a callable loss is recorded by its name)."""
        d = asdict(self)
        if callable(self.loss):
            d["loss"] = getattr(self.loss, "__name__", "callable")
        d["bounds"] = list(self.bounds)
        return d
