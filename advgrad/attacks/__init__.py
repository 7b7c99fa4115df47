"""Attacks from the input gradient ∂J/∂X (and, for the black-box check, from scores alone).

One module per family, one registry of names (``ATTACKS``) that the CLI, the configs, the evaluation and
the plots read:

- ``gradient``: ∂J/∂X chunk by chunk (``input_gradient``);
- ``pgd``: the one gradient loop — ``pgd``, ``fgsm`` (one step), ``mifgsm`` (momentum), restarts;
- ``apgd``, ``fab``, ``square``: AutoAttack's members (Auto-PGD, FAB and FAB-T, Square), the reference's algorithms;
- ``autoattack``: the cascade of those members (standard / plus / rand / custom);
- ``AttackConfig`` (``advgrad.configs``) and the names ``ATTACKS`` (``advgrad.catalog``);
- ``_checks``, ``_chunks``: input validation and the CPU chunking policy.

Every attack is a plain function ``(model, x, y, eps, config, generator) -> AttackResult``. It runs the
model in eval mode with the parameters' gradients off (both restored afterwards), differentiates with
``torch.autograd.grad`` on the input only, and never modifies the caller's tensors.
"""

from advgrad.attacks._chunks import CHUNK_MAX, CHUNK_MIN, auto_chunk_size
from advgrad.attacks.apgd import apgd, apgd_targeted
from advgrad.attacks.autoattack import AutoAttackResult, autoattack
from advgrad.attacks.fab import fab, fab_targeted
from advgrad.attacks.gradient import input_gradient
from advgrad.attacks.pgd import fgsm, mifgsm, perturb, pgd, run_attack
from advgrad.attacks.result import AttackResult
from advgrad.attacks.square import square
from advgrad.catalog import ATTACKS, AttackEntry
from advgrad.configs import AttackConfig


def get_attack(name: str) -> AttackEntry:
    """The catalog entry of attack ``name`` (``entry.impl`` is the function); ValueError listing the names."""
    return ATTACKS.get_entry(name)


__all__ = ["ATTACKS", "AttackConfig", "AttackEntry", "AttackResult", "AutoAttackResult", "apgd", "apgd_targeted",
           "autoattack", "fab", "fab_targeted", "square", "CHUNK_MAX", "CHUNK_MIN", "auto_chunk_size",
           "fgsm", "get_attack", "input_gradient", "mifgsm", "perturb", "pgd", "run_attack"]
