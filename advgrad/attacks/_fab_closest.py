"""Untargeted FAB's linearisation: the nearest of the boundaries between the true class and the others.

At the iterate x′, for every class j ≠ y (Croce & Hein, ICML 2020, arXiv 1907.02044, sec. 3.1),

    f_j = z_j − z_y,   w_j = ∇ₓz_j − ∇ₓz_y,   distance to the linearised boundary  |f_j| / ‖w_j‖_q,

with q the dual of the attacked norm (‖·‖₁ for L∞, ‖·‖₂ for L2, ‖·‖∞ for L1); FAB steps towards the class
j* of least distance, with the hyperplane of (f_j*, w_j*). The gradients are those of each logit
separately (one backward pass of the batch per class, as the reference computes them), and the
differences are taken afterwards, so that the arithmetic is the reference's (pyautoattack 0.2.0,
``FABAttack_PT.get_diff_logits_grads_batch``) and the iterates its bits.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from advgrad.attacks._fab_projections import length

DUAL = {"inf": "1", "2": "2", "1": "inf"}  # the attacked norm → the norm q that measures w
EXCLUDED = 1e10  # f of the true class itself: never the nearest


def _logit_gradients(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """(z (n, K), ∇ₓz_j for every class j as a (n, K, …) view of a (K, n, …) tensor): one forward pass and
    K backward passes through it, the input's gradient only. Every gradient after the first is added to
    zeros, as the reference accumulates it into its zeroed ``.grad`` (+0 + g turns a −0 into +0)."""
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        z = model(xg)                                             # (n, K)
        grads = []
        for j in range(z.shape[1]):
            mask = torch.zeros_like(z)
            mask[:, j] = 1.0
            (g,) = torch.autograd.grad(z, xg, grad_outputs=mask, retain_graph=j < z.shape[1] - 1)
            grads.append(g if j == 0 else torch.zeros_like(g).add_(g))
    return z.detach(), torch.stack(grads).transpose(0, 1)


def closest_boundary(model: nn.Module, x: Tensor, y: Tensor, norm: str) -> tuple[Tensor, Tensor]:
    """(f (n,), w (n, …)) of the boundary nearest to each row of x (see the module docstring); ``norm``
    is the attacked norm, "inf", "2" or "1"."""
    n = len(x)
    rows = torch.arange(n, device=x.device)
    z, grads = _logit_gradients(model, x)                         # (n, K), (n, K, …)
    f = z - z[rows, y].unsqueeze(1)                               # (n, K) z_j − z_y
    w = grads - grads[rows, y].unsqueeze(1)                       # (n, K, …) ∇z_j − ∇z_y
    f[rows, y] = EXCLUDED
    flat = w.reshape(n, w.shape[1], -1)                           # (n, K, D)
    dual = length(DUAL[norm])(flat)                               # (n, K) ‖w_j‖_q
    nearest = (f.abs() / (1e-12 + dual)).min(dim=1).indices      # (n,) ties: the reference's min
    return f[rows, nearest], w[rows, nearest]
