"""What an attack returns, per sample: the one result type of every attack."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class AttackResult:
    """The per-sample outcome of an attack on a batch of N points.

    ``success``: misclassified (untargeted) or classified as the target (targeted) at ``x_adv``, and, for an
    attack given a radius ε, ‖x_adv − x‖ ≤ ε. ``loss``: the attack's loss J at ``x_adv`` (not negated for
    targeted attacks). ``distance``: minimal-norm attacks report ‖x_adv − x‖ in their norm where ``success``
    and ``inf`` elsewhere (where x_adv is x); fixed-budget attacks leave it None. ``queries``: attacks that
    only query the model report how many queries each point used.

    Parameters
    ----------
    x_adv : Tensor
        (N, ...) the examples, within the bounds (and the ε-balls, where the attack takes a radius).
    success, loss : Tensor
        (N,) bool, as above; (N,) the loss at ``x_adv``.
    logits : Tensor
        (N, K) the model's logits at ``x_adv``.
    distance, queries : Tensor, optional
        (N,) as above; None where the attack does not report them.

    Examples
    --------
    >>> import torch
    >>> from advgrad import AttackResult
    >>> logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    >>> result = AttackResult(torch.zeros(2, 3), logits.argmax(1) != 0, torch.zeros(2), logits)
    >>> result.success.tolist(), result.distance is None
    ([False, True], True)
    """

    x_adv: Tensor    # (N, ...) within the bounds (and the ε-balls, where the attack takes a radius)
    success: Tensor  # (N,) bool
    loss: Tensor     # (N,)
    logits: Tensor   # (N, K) at x_adv
    distance: Tensor | None = None  # (N,) ‖x_adv − x‖ where success, inf elsewhere
    queries: Tensor | None = None   # (N,) int64: model queries spent on each point
