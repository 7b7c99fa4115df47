"""Closed forms for the minimal-norm attacks: an affine model z = Wx + b, whose minimal distance to a
misclassification is known exactly.

Untargeted, the points classified other than y form the union over j ≠ y of the half-spaces
{z_j ≥ z_y}, so the minimal Lp distance (no box) is min_j (z_y − z_j)/‖w_y − w_j‖_q, q the dual exponent
of p (p = ∞ → q = 1, p = 2 → q = 2, p = 1 → q = ∞). With a box [lo, hi] and p = 0, the fewest coordinates
to change for class j: the coordinates sorted by the most each can lower z_y − z_j within the box,
|w_i|·room_i, greedily until the margin is gone (exact for one half-space), then the minimum over j.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

DUAL = {math.inf: 1.0, 2.0: 2.0, 1.0: math.inf}


def affine(weight: Tensor, bias: Tensor) -> nn.Module:
    """Flatten → Linear with the given (K, D) weight and (K,) bias, in eval mode, in their dtype."""
    k, d = weight.shape
    model = nn.Sequential(nn.Flatten(), nn.Linear(d, k)).to(weight.dtype)
    with torch.no_grad():
        model[1].weight.copy_(weight)
        model[1].bias.copy_(bias)
    return model.eval()


def min_distance(weight: Tensor, bias: Tensor, x: Tensor, y: Tensor, p: float) -> Tensor:
    """(N,) the minimal unboxed Lp distance (p in 1, 2, ∞) from each x (N, ...) to a class other than y;
    0 where x is misclassified already."""
    z = x.flatten(1) @ weight.T + bias                                   # (N, K)
    rows = torch.arange(len(x))
    gap = z[rows, y].unsqueeze(1) - z                                    # (N, K) z_y − z_j
    dw = weight[y].unsqueeze(1) - weight.unsqueeze(0)                    # (N, K, D) w_y − w_j
    dist = gap.clamp_min(0) / torch.linalg.vector_norm(dw, ord=DUAL[float(p)], dim=2)
    dist[rows, y] = math.inf
    return dist.min(dim=1).values


def min_l0(weight: Tensor, bias: Tensor, x: Tensor, y: Tensor, lo: float, hi: float) -> Tensor:
    """(N,) the fewest coordinates of x (N, D) to change within [lo, hi] for a class other than y (inf where
    no class can be reached); 0 where x is misclassified already."""
    z = x.flatten(1) @ weight.T + bias
    out = torch.full((len(x),), math.inf, dtype=torch.float64)
    for i in range(len(x)):
        xi, yi = x[i].flatten(), int(y[i])
        for j in range(weight.shape[0]):
            if j == yi:
                continue
            gap = float(z[i, yi] - z[i, j])
            if gap < 0:
                out[i] = 0
                break
            w = weight[yi] - weight[j]                                   # lowering w·x lowers the gap
            gain = torch.where(w > 0, w * (xi - lo), -w * (hi - xi))     # (D,) the most each coordinate gives
            cum = gain.sort(descending=True).values.cumsum(0)
            reach = (cum > gap).nonzero()
            if len(reach):
                out[i] = min(float(out[i]), float(reach[0, 0]) + 1)
    return out
