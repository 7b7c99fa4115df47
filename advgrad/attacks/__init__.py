"""Attacks: each one public function ``attack(model, x, y, eps, *, options) -> AttackResult``.

One module per family: ``gradient`` (∂J/∂X, ``input_gradient``); ``pgd`` (the one gradient loop: ``pgd``,
``fgsm``, ``mifgsm``, and ``gradient_steps`` for training); ``apgd``, ``fab``, ``square`` (AutoAttack's
members, the reference's algorithms) and ``autoattack`` (their cascade); ``minimal/`` (per-sample
minimal-norm attacks); ``blackbox/`` (attacks that only query the model). ``catalog.ATTACKS`` names them;
``run_attack`` calls any of them from an ``AttackConfig`` (``_calls``: the one generic step).

Every attack runs the model in eval mode with the parameters' gradients off (both restored afterwards),
differentiates with ``torch.autograd.grad`` on the input only, and never modifies the caller's tensors.
"""

from advgrad.attacks._calls import keyword_arguments, run_attack
from advgrad.attacks._chunks import CHUNK_MAX, CHUNK_MIN, auto_chunk_size
from advgrad.attacks.apgd import apgd, apgd_targeted
from advgrad.attacks.autoattack import AutoAttackResult, autoattack
from advgrad.attacks.fab import FabStep, fab, fab_targeted
from advgrad.attacks.gradient import input_gradient
from advgrad.attacks.pgd import fgsm, gradient_steps, mifgsm, pgd
from advgrad.attacks.result import AttackResult
from advgrad.attacks.square import square
from advgrad.catalog import ATTACKS, AttackEntry
from advgrad.configs import AttackConfig


def get_attack(name: str) -> AttackEntry:
    """The catalog entry of attack ``name`` (``entry.impl`` is the function); ValueError listing the names.

    Parameters
    ----------
    name : str
        A name of ``catalog.ATTACKS`` ("pgd", "apgd-ce", "fmn", ...).

    Returns
    -------
    AttackEntry
        The entry: ``impl`` the attack function, the norms it implements, the options its name fixes.

    Examples
    --------
    >>> from advgrad import get_attack, pgd
    >>> get_attack("pgd").impl is pgd
    True
    """
    return ATTACKS.get_entry(name)


__all__ = ["ATTACKS", "AttackConfig", "AttackEntry", "AttackResult", "AutoAttackResult", "CHUNK_MAX", "CHUNK_MIN",
           "FabStep", "apgd", "apgd_targeted", "auto_chunk_size", "autoattack", "fab", "fab_targeted", "fgsm",
           "get_attack", "gradient_steps", "input_gradient", "keyword_arguments", "mifgsm", "pgd", "run_attack",
           "square"]
