"""Random sign noise: the L∞ corner an adversary without ∂J/∂X tries first. The sanity report compares it
with PGD to flag gradient masking (a defence that only hides its gradients can fall to noise where PGD
cannot); the score-based black-box attack is Square (``advgrad.attacks.square``)."""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def sign_noise(x: Tensor, eps: float, *, bounds: tuple[float, float] = (0.0, 1.0),
               generator: torch.Generator | None = None) -> Tensor:
    """x + ε·s with s a uniformly random sign per coordinate, clipped to the bounds. No model is queried.

    Parameters
    ----------
    x : Tensor
        (N, ...) inputs within ``bounds``.
    eps : float
        The L∞ radius ε.
    bounds : (float, float)
        The box the result is clipped to.
    generator : torch.Generator, optional
        Draws the signs (the global RNG without one).

    Returns
    -------
    Tensor
        (N, ...) x + ε·s, clipped; a corner of the ε-ball wherever the clip does not bite.

    Examples
    --------
    >>> import torch
    >>> from advgrad import sign_noise
    >>> x = torch.full((2, 3), 0.5)
    >>> noisy = sign_noise(x, 0.1, generator=torch.Generator().manual_seed(0))
    >>> bool(((noisy - x).abs() - 0.1).abs().max() < 1e-6), (noisy - x).sign().tolist()
    (True, [[-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]])
    """
    u = torch.rand(x.shape, generator=generator, device=generator.device if generator else x.device)
    return (x + eps * torch.where(u.to(x.device) < 0.5, -1.0, 1.0).to(x.dtype)).clamp(*bounds)
