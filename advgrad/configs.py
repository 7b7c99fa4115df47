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

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
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
from advgrad.catalog import ATTACKS, LOSSES, MIN_EPS_ATTACKS, MIN_NORM_ATTACKS, norm_name

__all__ = ["ACCELERATION", "DEFAULT_BETA", "DEFAULT_STEPS", "AdvConfig", "AttackConfig", "EvalConfig", "LossSpec",
           "TrainConfig", "TrainingPlan"]

LossSpec = Union[str, Callable[..., Any]]  # a name in catalog.LOSSES, or (logits, y) → per-sample loss


def _flag(name: str, value: object) -> object:
    _validate.flag(name, value)
    return value


def _loss(name: str, value: object) -> object:
    return value if callable(value) else _validate.one_of(name, value, LOSSES)


# The checks of the options several attacks share, applied when a config is built (the attack function
# applies the same ``_validate`` rules to its own arguments when called directly): a mistake is a one-line
# ValueError before any model or data is loaded. Options of one attack alone are checked by that attack.
OPTION_RULES: dict[str, Callable[[str, Any], Any]] = {
    **dict.fromkeys(("steps", "restarts", "targets", "queries", "eot"), _validate.count),
    "alpha": lambda name, v: _validate.number(name, v, minimum=0.0, strict=True),
    "momentum": lambda name, v: _validate.number(name, v, minimum=0.0),
    **dict.fromkeys(("random_start", "targeted", "early_stop", "use_largereps"), _flag),
    "chunk_size": _validate.optional_count,
    "loss": _loss,
}


@dataclass(frozen=True)
class AttackConfig:
    """One attack as a config: ``method`` (a name in ``catalog.ATTACKS``), the threat model ``norm`` ("inf",
    "2", "1"; also 2, float("inf")) and ``options``: keyword arguments of the attack's function
    (``ATTACKS[method].options``, read from its signature; e.g. ``{"steps": 20, "restarts": 2}`` for pgd).
    An option the attack does not take is a ValueError listing the ones it does; the attack's own defaults
    fill the rest. The radius ε, the bounds and the randomness are not part of it: the runner supplies them
    (evaluations sweep ε, and the minimal-ε bisection gives every sample its own).

    Parameters
    ----------
    method : str
        A name in ``catalog.ATTACKS``.
    norm : str or float
        A norm the attack implements; normalised to "inf", "2", "1" or "0".
    options : Mapping[str, Any]
        Keyword arguments of the attack's function; stored read-only.

    Raises
    ------
    ValueError
        An unknown method, a norm it does not implement, an option it does not take or a bad value.

    Examples
    --------
    >>> from advgrad import AttackConfig
    >>> config = AttackConfig.of("pgd", 2, steps=20)
    >>> config.norm, config.get("steps"), config.get("restarts")
    ('2', 20, 1)
    >>> AttackConfig.of("fgsm", steps=3)
    Traceback (most recent call last):
    ...
    ValueError: fgsm takes no option 'steps' (its options: targeted, loss, chunk_size)
    """

    method: str = "pgd"
    norm: str = "inf"
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        entry = ATTACKS.get_entry(self.method)
        norm = norm_name(self.norm)
        if norm not in entry.norms:
            raise ValueError(f"{self.method} implements the norms {', '.join(entry.norms)}, not {norm!r}")
        if not isinstance(self.options, Mapping):
            raise ValueError(f"options must be a mapping of option names to values, got {self.options!r}")
        takes = entry.options
        options = dict(self.options)
        for name, value in options.items():
            if name not in takes:
                raise ValueError(f"{self.method} takes no option {name!r} (its options: {', '.join(takes)})")
            rule = OPTION_RULES.get(name)
            options[name] = value if rule is None else rule(name, value)
        object.__setattr__(self, "norm", norm)  # frozen: normalise once, here
        object.__setattr__(self, "options", MappingProxyType(options))

    @classmethod
    def of(cls, method: str = "pgd", norm: Any = "inf", **options: Any) -> AttackConfig:
        """The config of ``method`` under ``norm`` with these options."""
        return cls(method, norm, options)

    def but(self, **changes: Any) -> AttackConfig:
        """A copy with ``norm`` and/or some options changed (validated again)."""
        norm = changes.pop("norm", self.norm)
        return AttackConfig(self.method, norm, {**self.options, **changes})

    def get(self, name: str) -> Any:
        """The value ``name`` takes in a call: the option set here, else the one the name fixes, else the
        function's default (None where the function has no such parameter or no default)."""
        entry = ATTACKS[self.method]
        if name in self.options:
            return self.options[name]
        if name in entry.fixed:
            return entry.fixed[name]
        parameter = entry.parameters.get(name)
        return None if parameter is None or parameter.default is parameter.empty else parameter.default

    def to_dict(self) -> dict[str, Any]:
        """Plain data for records (a callable loss is recorded by its name)."""
        options = {k: getattr(v, "__name__", "callable") if k == "loss" and callable(v) else v
                   for k, v in self.options.items()}
        return {"method": self.method, "norm": self.norm, "options": options}


@dataclass(frozen=True)
class EvalConfig:
    """``eps``: the radii swept; ``attacks``: names in ``catalog.ATTACKS``; ``steps``/``restarts``: the
    iterative attacks' (PGD's α = 2.5·ε/steps); ``min_eps``: also bisect each sample's minimal ε to
    ``precision`` with the attack ``min_eps_attack`` (one that takes per-sample radii:
    ``catalog.MIN_EPS_ATTACKS``); ``min_norm``: attacks whose per-sample minimal ‖δ‖ is measured
    (minimal-norm attacks as they are, the others by the bisection: ``catalog.MIN_NORM_ATTACKS``);
    ``min_norm_steps``: the steps of those minimal-norm attacks that take steps (None: each its paper's);
    ``tolerance``: the slack (a fraction of the samples) the sanity checks allow; ``queries``: the
    score-based black-box search's budget in the sanity report; ``block``: points per attack call
    (``advgrad.attacks.runner``: the unit of random seeds, of the work shared between processes and of
    resume; 250, AutoAttack's reference batch); ``seed``: every pass's randomness.

    Parameters
    ----------
    eps : tuple of float
    attacks, min_norm : tuple of str
    steps, restarts, block, queries, seed : int
    norm : {"inf", "2", "1", "0"}
        Every attack of the evaluation must implement it.
    bounds : (float, float)
        The valid input range.
    min_eps : bool
    precision, tolerance : float
    min_eps_attack : str
    min_norm_steps : int, optional

    Raises
    ------
    ValueError
        A field out of its range, an unknown attack, or an attack that does not implement ``norm``.

    Examples
    --------
    >>> from advgrad import EvalConfig
    >>> config = EvalConfig(eps=(0.1, 0.0, 0.1), steps=10)
    >>> config.grid, dict(config.attack("pgd").options)
    ([0.0, 0.1], {'steps': 10, 'restarts': 1, 'early_stop': True})
    """

    eps: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3)
    attacks: tuple[str, ...] = ("fgsm", "pgd")
    steps: int = 20
    restarts: int = 1
    norm: str = "inf"
    bounds: tuple[float, float] = (0.0, 1.0)
    block: int = 250
    seed: int = 0
    min_eps: bool = False
    precision: float = 0.005
    min_eps_attack: str = "pgd"
    min_norm: tuple[str, ...] = ()
    min_norm_steps: int | None = None
    tolerance: float = 0.01
    queries: int = 300

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once, here
        set_(self, "eps", _validate.numbers("eps", self.eps))
        set_(self, "attacks", _validate.names("attacks", self.attacks, ATTACKS))
        for name in ("steps", "restarts", "block", "queries"):
            _validate.count(name, getattr(self, name))
        _validate.count("seed", self.seed, minimum=0)
        set_(self, "norm", norm_name(self.norm))
        set_(self, "bounds", _validate.bounds(self.bounds))
        _validate.flag("min_eps", self.min_eps)
        set_(self, "precision", _validate.number("precision", self.precision, minimum=0.0, strict=True))
        _validate.one_of("min_eps_attack", self.min_eps_attack, MIN_EPS_ATTACKS)
        if self.min_norm:
            set_(self, "min_norm", _validate.names("min_norm", self.min_norm, MIN_NORM_ATTACKS))
        _validate.optional_count("min_norm_steps", self.min_norm_steps)
        set_(self, "tolerance", _validate.number("tolerance", self.tolerance, minimum=0.0, below=1.0))
        for name in (*self.attacks, self.min_eps_attack, *self.min_norm):  # each runs this threat model (torch-free:
            entry = ATTACKS[name]                            # the attack's options are checked when it runs)
            if self.norm not in entry.norms:
                raise ValueError(f"{name} implements the norms {', '.join(entry.norms)}, not {self.norm!r}")

    @property
    def grid(self) -> list[float]:
        """The distinct radii, ascending."""
        return sorted(set(self.eps))

    def attack(self, name: str, **changes: Any) -> AttackConfig:
        """The attack ``name`` as this evaluation runs it: this norm, early stop where the attack has it (a
        fooled point is done), and this evaluation's steps and restarts where its catalog entry takes them
        (``sweep``: PGD's, say; FGSM keeps its single step and APGD its 100)."""
        entry = ATTACKS.get_entry(name)
        settings = {"steps": self.steps, "restarts": self.restarts}
        options: dict[str, Any] = {k: v for k, v in settings.items() if k in entry.sweep}
        if "early_stop" in entry.options:
            options["early_stop"] = True
        return AttackConfig(name, self.norm, {**options, **changes})

    def but(self, **changes: Any) -> EvalConfig:
        return EvalConfig(**{**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["eps"], d["attacks"], d["bounds"] = list(self.eps), list(self.attacks), list(self.bounds)
        d["min_norm"] = list(self.min_norm)
        return d
