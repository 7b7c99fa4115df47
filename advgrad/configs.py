"""Every config: frozen dataclasses, valid from the moment they exist, passed whole from the CLI or a script
to the library. Like ``advgrad.catalog`` this module imports neither torch nor the library, so the CLI
validates the user's options — and answers ``--help`` — before torch loads.

- ``TrainConfig``: a training run (``advgrad.training.train.fit``); stored in the checkpoint.
- ``AdvConfig``: how adversarial training perturbs each batch (``advgrad.training.objectives``).
- ``AttackConfig``: one attack (any name in ``catalog.ATTACKS``); the radius ε is not part of it:
  evaluations sweep it, and the minimal-ε bisection gives every sample its own.
- ``EvalConfig``: an evaluation (``advgrad.evaluate``); recorded beside its results.
- ``TrainingPlan``: a whole training run as ``advgrad train`` runs it (``advgrad.runs.training``): data,
  model, the two configs above, the probe, and the files it writes.

The training side (``TrainConfig``, ``AdvConfig``, ``TrainingPlan``) lives in ``advgrad._train_configs``;
import all of them from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, Union

from advgrad import _validate
from advgrad._train_configs import (
    ACCELERATION,
    DEFAULT_BETA,
    DEFAULT_STEPS,
    AdvConfig,
    TrainConfig,
    TrainingPlan,
)
from advgrad.catalog import ATTACKS, LOSSES, MIN_EPS_ATTACKS, norm_name

__all__ = ["ACCELERATION", "DEFAULT_BETA", "DEFAULT_STEPS", "AdvConfig", "AttackConfig", "EvalConfig", "LossSpec",
           "TrainConfig", "TrainingPlan"]

LossSpec = Union[str, Callable[..., Any]]  # a name in catalog.LOSSES, or (logits, y) → per-sample loss


@dataclass(frozen=True)
class AttackConfig:
    """How to attack (per method, the fields that do not apply are ignored; ``catalog.ATTACKS`` says which).

    - ``method``: a name in ``catalog.ATTACKS``; ``norm``: "inf", "2" or "1" (also 2, float("inf")).
    - ``steps``: iterations; ``alpha``: the step α (None: ``ATTACKS[method].alpha_factor``·ε/steps, e.g.
      PGD's 2.5·ε/steps, FGSM's ε); ``random_start``; ``restarts`` (the worst example per sample is kept).
    - ``targeted``: y holds target classes; ``loss``: a name in ``LOSSES`` or (logits, y) → per-sample loss.
    - ``bounds``: the box the inputs live in; ``early_stop``: fooled samples stop moving (evaluation).
    - ``chunk_size``: samples per forward pass (None: ``auto_chunk_size``); speed and memory only.
    - ``momentum``: MI-FGSM's decay μ of the normalised-gradient velocity (0: plain PGD).
    - ``targets``: target classes tried by the targeted AutoAttack members; ``queries``: Square's budget;
      ``eot``: gradients averaged over that many forward passes (APGD, for randomised models).
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
    eot: int = 1

    def __post_init__(self) -> None:
        entry = ATTACKS.get_entry(self.method)
        norm = norm_name(self.norm)
        if norm not in entry.norms:
            raise ValueError(f"{self.method} implements the norms {', '.join(entry.norms)}, not {norm!r}")
        set_ = object.__setattr__  # frozen: normalise once, here
        set_(self, "norm", norm)
        for name in ("steps", "restarts", "targets", "queries", "eot"):
            _validate.count(name, getattr(self, name))
        if self.alpha is not None:
            set_(self, "alpha", _validate.number("alpha", self.alpha, minimum=0.0, strict=True))
        for name in ("random_start", "targeted", "early_stop"):
            _validate.flag(name, getattr(self, name))
        if not callable(self.loss):
            _validate.one_of("loss", self.loss, LOSSES)
        set_(self, "bounds", _validate.bounds(self.bounds))
        _validate.optional_count("chunk_size", self.chunk_size)
        set_(self, "momentum", _validate.number("momentum", self.momentum, minimum=0.0))

    @classmethod
    def of(cls, method: str = "pgd", **options: Any) -> AttackConfig:
        """The config of ``method`` with its defaults, overridden by ``options``."""
        return cls(method=method, **{**ATTACKS.get_entry(method).defaults, **options})

    def but(self, **changes: Any) -> AttackConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def step_size(self, eps: Any) -> Any:
        """α for radius ``eps`` (a float or a per-sample tensor): the explicit one, or the method's default."""
        if self.alpha is not None:
            return self.alpha
        factor = ATTACKS[self.method].alpha_factor
        if factor is None:
            raise ValueError(f"{self.method} takes no step size")
        return factor * eps / self.steps

    def to_dict(self) -> dict[str, Any]:
        """Plain data for records (a callable loss is recorded by its name)."""
        d = asdict(self)
        if callable(self.loss):
            d["loss"] = getattr(self.loss, "__name__", "callable")
        d["bounds"] = list(self.bounds)
        return d


@dataclass(frozen=True)
class EvalConfig:
    """``eps``: the radii swept; ``attacks``: names in ``catalog.ATTACKS``; ``steps``/``restarts``: the
    iterative attacks' (PGD's α = 2.5·ε/steps); ``min_eps``: also bisect each sample's minimal ε to
    ``precision`` with the attack ``min_eps_attack`` (one that takes per-sample radii:
    ``catalog.MIN_EPS_ATTACKS``); ``tolerance``: the slack (a fraction of the samples) the sanity checks
    allow; ``queries``: the score-based black-box search's budget in the sanity report."""

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
    min_eps_attack: str = "pgd"
    tolerance: float = 0.01
    queries: int = 300

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once, here
        set_(self, "eps", _validate.numbers("eps", self.eps))
        set_(self, "attacks", _validate.names("attacks", self.attacks, ATTACKS))
        for name in ("steps", "restarts", "batch_size", "queries"):
            _validate.count(name.replace("_", " "), getattr(self, name))
        _validate.count("seed", self.seed, minimum=0)
        set_(self, "norm", norm_name(self.norm))
        set_(self, "bounds", _validate.bounds(self.bounds))
        _validate.flag("min_eps", self.min_eps)
        set_(self, "precision", _validate.number("precision", self.precision, minimum=0.0, strict=True))
        _validate.one_of("min_eps_attack", self.min_eps_attack, MIN_EPS_ATTACKS)
        set_(self, "tolerance", _validate.number("tolerance", self.tolerance, minimum=0.0, below=1.0))
        for name in (*self.attacks, self.min_eps_attack):  # each runs this threat model with these settings
            self.attack(name)

    @property
    def grid(self) -> list[float]:
        """The distinct radii, ascending."""
        return sorted(set(self.eps))

    def attack(self, name: str, **changes: Any) -> AttackConfig:
        """The attack ``name`` as this evaluation runs it: early stop (a fooled point is done), this norm,
        bounds, steps and restarts (FGSM keeps its single step)."""
        fixed = {"steps"} & set(ATTACKS.get_entry(name).defaults)
        options: dict[str, Any] = {"norm": self.norm, "bounds": self.bounds, "early_stop": True,
                                   "restarts": self.restarts, "steps": self.steps}
        return AttackConfig.of(name, **{**{k: v for k, v in options.items() if k not in fixed}, **changes})

    def but(self, **changes: Any) -> EvalConfig:
        return EvalConfig(**{**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["eps"], d["attacks"], d["bounds"] = list(self.eps), list(self.attacks), list(self.bounds)
        return d
