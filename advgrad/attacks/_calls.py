"""The one generic step from a config to an attack: an ``AttackConfig`` mapped onto its function's keyword
arguments, read from the signature (``catalog.AttackEntry.parameters``). There is no adapter per attack:
the catalog names the public function, the config holds its options (checked against that same signature
when the config is built), and the runner supplies what is not the user's to choose — the radius, the box,
the randomness.

Randomness: a function that takes ``generator`` gets the runner's generator for the block; one that takes
``seed`` instead (AutoAttack's members, which reseed on every call as the reference does) gets the seed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from advgrad.attacks._checks import EpsSpec
from advgrad.attacks.result import AttackResult
from advgrad.catalog import ATTACKS, LABEL_ATTACKS, QUERY_ATTACKS
from advgrad.configs import AttackConfig
from advgrad.models.query import QueryModel, refuse_query_only


def keyword_arguments(config: AttackConfig, *, generator: torch.Generator | None = None, seed: int = 0,
                      **settings: Any) -> dict[str, Any]:
    """The keyword arguments of ``config``'s attack function: the options the name fixes, then the config's
    options and norm, then each of the runner's ``settings`` (``bounds``, ``early_stop``, ``chunk_size``, …)
    that the function takes and the config leaves unset (None values are skipped), then the generator or
    the seed."""
    entry = ATTACKS[config.method]
    takes = entry.parameters
    kwargs: dict[str, Any] = {**entry.fixed, **config.options}
    if "norm" in takes:
        kwargs["norm"] = config.norm
    kwargs.update({k: v for k, v in settings.items() if v is not None and k in takes and k not in kwargs})
    if "generator" in takes:
        kwargs["generator"] = generator
    elif "seed" in takes:
        kwargs["seed"] = seed
    return kwargs


def run_attack(model: nn.Module | QueryModel, x: Tensor, y: Tensor, eps: EpsSpec | None, config: AttackConfig, *,
               generator: torch.Generator | None = None, seed: int = 0, **settings: Any) -> AttackResult:
    """Any attack of ``catalog.ATTACKS``, as ``config`` describes it, on one batch: its function called with
    ``keyword_arguments(config, generator=…, seed=…, **settings)``. A model that only answers queries
    (``QueryModel``) is refused by a gradient attack, and one that answers labels only by a score-based one,
    with a line naming the attacks that apply.

    Parameters
    ----------
    model : nn.Module or QueryModel
        The classifier; a ``QueryModel`` only for the attacks that query.
    x, y : Tensor
        (N, ...) inputs and (N,) labels (targets when the config is targeted).
    eps : float, Tensor or None
        The radius (None for a minimal-norm attack run without one).
    config : AttackConfig
        The attack's name, norm and options.
    generator, seed
        Passed on to an attack that takes a generator, else to one that takes a seed.
    **settings
        ``bounds``, ``early_stop``, ``chunk_size``, ...: passed where the attack takes them.

    Returns
    -------
    AttackResult
        The attack's result.

    Raises
    ------
    ValueError
        A model the attack cannot use, or a bad option (one line).

    Examples
    --------
    >>> import torch
    >>> from advgrad import AttackConfig, run_attack
    >>> _ = torch.manual_seed(0)  # the model's initial weights
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x, y = torch.rand(5, 1, 2, 2), torch.randint(0, 3, (5,))  # global RNG, seeded above
    >>> config = AttackConfig.of("pgd", steps=3)
    >>> run_attack(model, x, y, 0.1, config, generator=torch.Generator().manual_seed(0)).x_adv.shape
    torch.Size([5, 1, 2, 2])
    """
    entry = ATTACKS[config.method]
    if entry.needs == "gradients":
        refuse_query_only(model, config.method, QUERY_ATTACKS)
    elif entry.needs == "scores" and isinstance(model, QueryModel) and model.labels_only:
        raise ValueError(f"{config.method} needs the model's scores, but {model.name} answers labels only: use a "
                         f"decision-based attack ({', '.join(LABEL_ATTACKS)})")
    fn = entry.impl
    result: AttackResult = fn(model, x, y, eps, **keyword_arguments(config, generator=generator, seed=seed,
                                                                    **settings))
    return result
