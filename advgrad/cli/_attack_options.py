"""The attack options of ``advgrad attack``, shared with ``advgrad info --attacks``: which command-line
option sets which ``AttackConfig`` field, and the options each attack of the catalog takes."""

from __future__ import annotations

from advgrad.catalog import ATTACKS

# an attack function's keyword option → this command's option for it (``AttackEntry.options``)
FLAGS = {"steps": "--steps", "alpha": "--alpha", "restarts": "--restarts", "random_start": "--random-start",
         "targeted": "--targeted", "loss": "--loss", "queries": "--queries", "targets": "--n-targets"}


def flags_of(method: str) -> str:
    """The options of this command that ``method`` takes, for messages and ``advgrad info --attacks``."""
    return ", ".join(FLAGS[o] for o in ATTACKS[method].options if o in FLAGS) or "none of these"
