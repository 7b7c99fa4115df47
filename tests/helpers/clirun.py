"""Several ``advgrad`` commands in one process (one launch, one torch import, one process group under
torchrun: ``advgrad.distributed.setup`` is idempotent), optionally with AutoAttack made cheap:

    python tests/helpers/clirun.py [--cheap-autoattack] ARGS [--then ARGS ...]
    torchrun ... tests/helpers/clirun.py [--cheap-autoattack] ARGS [--then ARGS ...]

After each command process 0 prints ``SEPARATOR`` on stdout (``sections`` splits the output there); the first
command that exits non-zero ends the program with its exit status.

--cheap-autoattack: the catalog's "autoattack" entry runs the standard cascade's four members in their order
(APGD-CE → APGD-T → FAB-T → Square), seeded as the entry is, with 5 iterations, 3 target classes and 40
Square queries instead of 100, 9 and 5,000: what the torchrun tests of the CLI's cascade record need is the
cascade's shape and its gathering across processes, not AutoAttack's strength.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from advgrad.cli import main

SEPARATOR = "=== clirun: next command ==="
aa = importlib.import_module("advgrad.attacks.autoattack")  # the module: the package exports a function of that name
CHEAP = aa.Budget(steps=5, targets=3, queries=40)


def cheap_cascade(config: Any) -> Any:
    """The members the runner expands "autoattack" into, made cheap (the standard version otherwise)."""
    return aa.member_configs(config.norm, "standard", None, CHEAP)


def sections(stdout: str) -> list[str]:
    """Process 0's stdout of each command, in order."""
    return stdout.split(SEPARATOR + "\n")[:-1]


def commands(argv: list[str]) -> list[list[str]]:
    out: list[list[str]] = [[]]
    for arg in argv:
        if arg == "--then":
            out.append([])
        else:
            out[-1].append(arg)
    return out


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["--cheap-autoattack"]:
        aa.cascade_of = cheap_cascade  # catalog.ATTACKS["autoattack"].members: resolved on every expansion
        argv = argv[1:]
    for args in commands(argv):
        try:
            main(args, prog_name="advgrad")
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise
        if os.environ.get("RANK", "0") == "0":
            print(SEPARATOR, flush=True)
