"""The loss along a direction: Goodfellow et al.'s (2015) linearity argument made visible."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from advgrad._runtime import frozen_eval, model_device
from advgrad.attacks import input_gradient
from advgrad.attacks.noise import sign_noise
from advgrad.losses import cross_entropy


def loss_landscape(model: nn.Module, x: Tensor, y: Tensor, *, eps_max: float = 0.3, points: int = 31,
                   n_random: int = 2, bounds: tuple[float, float] = (0.0, 1.0),
                   generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Cross-entropy J(x + t·d) for t in linspace(0, eps_max, points), clipped to ``bounds``: d =
    sign(∂J/∂X) and d = ``n_random`` random sign vectors per sample. Returns (t (P,), loss along the
    gradient's sign (N, P), loss along the random directions (N, R, P)). The loss climbs almost linearly
    along the gradient's sign and barely moves along random directions of the same L∞ size.

    Parameters
    ----------
    model : nn.Module
    x, y : Tensor
        (N, ...) inputs within ``bounds`` and (N,) labels.
    eps_max : float
    points, n_random : int
        P ≥ 2 steps of t, R ≥ 1 random directions (else ValueError).
    bounds : (float, float)
    generator : torch.Generator, optional
        Draws the random directions.

    Returns
    -------
    (Tensor, Tensor, Tensor)
        t (P,), the loss along the gradient's sign (N, P), along the random directions (N, R, P).

    Examples
    --------
    >>> import torch
    >>> from advgrad import loss_landscape
    >>> _ = torch.manual_seed(0)  # the model's initial weights
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x = torch.rand(12, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    >>> y = model(x).argmax(1)  # every point correct when clean
    >>> t, along_grad, along_random = loss_landscape(model, x, y, eps_max=0.2, points=3, n_random=2,
    ...                                              generator=torch.Generator().manual_seed(0))
    >>> t.tolist(), along_grad.shape, along_random.shape, bool((along_grad[:, -1] > along_grad[:, 0]).all())
    ([0.0, 0.10000000149011612, 0.20000000298023224], torch.Size([12, 3]), torch.Size([12, 2, 3]), True)

    References
    ----------
    Goodfellow, Shlens, Szegedy, "Explaining and harnessing adversarial examples", ICLR 2015, arXiv 1412.6572.
    """
    if points < 2 or n_random < 1:
        raise ValueError(f"points must be ≥ 2 and n_random ≥ 1, got {points} and {n_random}")
    device = model_device(model)
    x, y = x.to(device), y.to(device)
    d_grad = input_gradient(model, x, y).sign()
    d_rand = [sign_noise(torch.zeros_like(x), 1.0, bounds=(-1.0, 1.0), generator=generator) for _ in range(n_random)]
    t = torch.linspace(0.0, eps_max, points)
    along_grad, along_rand = [], []
    with torch.no_grad(), frozen_eval(model):
        for step in t.tolist():
            along_grad.append(cross_entropy(model((x + step * d_grad).clamp(*bounds)), y))
            along_rand.append(torch.stack([cross_entropy(model((x + step * d).clamp(*bounds)), y) for d in d_rand], 1))
    return t, torch.stack(along_grad, 1).cpu(), torch.stack(along_rand, 2).cpu()
