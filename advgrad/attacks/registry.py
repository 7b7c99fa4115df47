"""The one list of attack names: ``ATTACKS`` maps a name to its entry. The CLI's choices, ``AttackConfig``,
the evaluation's dispatch and the plots' styles all read it; an attack module adds itself with one
``@register(...)`` line. Entries are plain data around a plain function (no base class)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from advgrad.attacks.config import AttackConfig
    from advgrad.attacks.result import AttackResult

    RunFn = Callable[[nn.Module, Tensor, Tensor, Any, AttackConfig, torch.Generator | None], AttackResult]


@dataclass(frozen=True)
class AttackEntry:
    """``run(model, x, y, eps, config, generator) -> AttackResult``; ``defaults``: the AttackConfig fields
    this method sets unless the user does (FGSM: one step, no random start); ``alpha_factor``: the default
    step α = alpha_factor·ε/steps; ``norms``: the threat models it implements; ``gradient_free``: it never
    asks for ∂J/∂X (the sanity report's black-box check)."""

    name: str
    run: RunFn
    summary: str
    norms: tuple[str, ...] = ("inf", "2", "1")
    defaults: Mapping[str, Any] = field(default_factory=dict)
    alpha_factor: float | None = None
    gradient_free: bool = False
    paper: str = ""


ATTACKS: dict[str, AttackEntry] = {}


def register(name: str, summary: str, **fields: Any) -> Callable[[RunFn], RunFn]:
    """Decorator: add ``run`` to ``ATTACKS`` under ``name`` (a name may be registered once)."""

    def add(run: RunFn) -> RunFn:
        if name in ATTACKS:
            raise RuntimeError(f"attack {name!r} is registered twice")
        ATTACKS[name] = AttackEntry(name, run, summary, **fields)
        return run

    return add


def get_attack(name: str) -> AttackEntry:
    """The entry for ``name``; ValueError listing the known names otherwise."""
    try:
        return ATTACKS[name]
    except KeyError:
        raise ValueError(f"unknown attack {name!r}: expected one of {', '.join(ATTACKS)}") from None
