"""The geometry of the Lp threat models: one small ``Norm`` object per p (∞, 2, 1, 0).

An attack needs four things from its norm, and nothing else differs between L∞, L2, L1 and L0 attacks:

- ``measure(delta)``: ‖δ‖ per sample, shape (N,).
- ``steepest(grad, size)``: the steepest-ascent step, argmax over ‖η‖ ≤ size of ⟨η, grad⟩.
- ``project(delta, eps)``: the closest point of the ε-ball (Euclidean projection).
- ``random_start(like, eps, generator)``: a point drawn uniformly from the ε-ball.

Every tensor is a batch (N, ...) of any shape; sample i is ``x[i].flatten()``. ``size`` and ``eps`` are a
float or a per-sample tensor (N,): one call can use a different radius for every sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union, overload

import torch
from torch import Tensor

from advgrad.catalog import NORMS, norm_name

Radius = Union[float, Tensor]  # a float, or a per-sample (N,) tensor
NormSpec = Union[str, float, int, "Norm"]


@overload
def per_sample(r: float, like: Tensor) -> float: ...
@overload
def per_sample(r: Tensor, like: Tensor) -> Tensor: ...
def per_sample(r: Radius, like: Tensor) -> Radius:
    """A float stays a float; an (N,) tensor becomes (N, 1, ..., 1) to broadcast against ``like``."""
    return per_point(r.to(like.dtype), like) if isinstance(r, Tensor) else r


def per_point(t: Tensor, like: Tensor) -> Tensor:
    """A per-sample (N,) tensor viewed as (N, 1, ..., 1), to broadcast against ``like`` (N, ...)."""
    return t.view(-1, *[1] * (like.ndim - 1))


def _uniform(like: Tensor, generator: torch.Generator | None) -> Tensor:
    """U[0, 1) shaped like ``like``, drawn on the generator's device, then moved to ``like``'s."""
    device = generator.device if generator is not None else like.device
    return torch.rand(like.shape, generator=generator, device=device, dtype=like.dtype).to(like.device)


@dataclass(frozen=True)
class Norm:
    """One Lp geometry (the module docstring lists its four operations).

    Parameters
    ----------
    name, p, symbol : str, float, str
        "inf", "2", "1" or "0"; the exponent p; the label ("L∞").
    skip_saturated : bool
        The attack loop zeroes the gradient of coordinates on a bound and pushed further out (L1 only).

    Examples
    --------
    >>> import torch
    >>> from advgrad import get_norm
    >>> get_norm("2").measure(torch.tensor([[3.0, 4.0]])), get_norm("inf").project(torch.tensor([[0.5]]), 0.1)
    (tensor([5.]), tensor([[0.1000]]))
    """

    name: str
    p: float
    symbol: str
    skip_saturated: bool = False

    def measure(self, delta: Tensor) -> Tensor:
        """‖δ‖_p per sample, shape (N,)."""
        return torch.linalg.vector_norm(delta.flatten(1), ord=self.p, dim=1)

    def steepest(self, grad: Tensor, size: Radius) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def project(self, delta: Tensor, eps: Radius) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def random_start(self, like: Tensor, eps: Radius,
                     generator: torch.Generator | None = None) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    # In-place versions for the attack loop: they overwrite their first argument (a buffer the loop owns)
    # and return it, so a PGD step allocates nothing; same values as the pure versions, bit for bit.
    def steepest_(self, grad: Tensor, size: Radius) -> Tensor:
        return self.steepest(grad, size)

    def project_(self, delta: Tensor, eps: Radius) -> Tensor:
        return self.project(delta, eps)

    def project_box(self, delta: Tensor, eps: Radius, x: Tensor, lo: float, hi: float) -> Tensor:
        """Onto the ε-ball, for x + δ then clipped to [lo, hi] by the caller (in place); L0 overrides it with
        the projection onto the ball ∩ box, which clipping after a plain projection is not."""
        return self.project_(delta, eps)

    def __str__(self) -> str:
        return self.name


class Linf(Norm):
    def __init__(self) -> None:
        super().__init__("inf", math.inf, "L∞")

    def steepest(self, grad: Tensor, size: Radius) -> Tensor:
        """size·sign(g): every coordinate moves by the full budget (FGSM's step)."""
        return per_sample(size, grad) * grad.sign()

    def project(self, delta: Tensor, eps: Radius) -> Tensor:
        """Clip every coordinate to [−ε, ε]."""
        return _clip(delta, eps, in_place=False)

    def steepest_(self, grad: Tensor, size: Radius) -> Tensor:
        return grad.sign_().mul_(per_sample(size, grad))

    def project_(self, delta: Tensor, eps: Radius) -> Tensor:
        return _clip(delta, eps, in_place=True)

    def random_start(self, like: Tensor, eps: Radius, generator: torch.Generator | None = None) -> Tensor:
        """U(−ε, ε) independently per coordinate: uniform in the L∞ ball (a cube). A float ε is drawn by
        ``uniform_(−ε, ε)`` itself, the very call torchattacks makes, so that the same seed gives the
        same start."""
        device = generator.device if generator is not None else like.device
        u = torch.empty(like.shape, device=device, dtype=like.dtype)
        if isinstance(eps, Tensor):
            return u.uniform_(-1.0, 1.0, generator=generator).to(like.device) * per_sample(eps, like)
        return u.uniform_(-eps, eps, generator=generator).to(like.device)


def _clip(delta: Tensor, eps: Radius, *, in_place: bool) -> Tensor:
    """δ clipped to [−ε, ε] per coordinate (ε a float or per sample)."""
    if isinstance(eps, Tensor):
        e = per_sample(eps, delta)
        return delta.clamp_(-e, e) if in_place else delta.clamp(-e, e)
    return delta.clamp_(-eps, eps) if in_place else delta.clamp(-eps, eps)


class L2(Norm):
    def __init__(self) -> None:
        super().__init__("2", 2.0, "L2")

    def _length(self, v: Tensor) -> Tensor:
        """‖v‖₂ per sample (N, 1, ..., 1), at least the smallest positive float (a zero sample divides to 0)."""
        return per_sample(self.measure(v).clamp_min(torch.finfo(v.dtype).tiny), v)

    def _unit(self, v: Tensor) -> Tensor:
        """v/‖v‖₂ per sample; a zero sample stays zero (no division by zero)."""
        return v / self._length(v)

    def steepest(self, grad: Tensor, size: Radius) -> Tensor:
        """size·g/‖g‖₂; a zero gradient gives a zero step."""
        return per_sample(size, grad) * self._unit(grad)

    def steepest_(self, grad: Tensor, size: Radius) -> Tensor:
        return grad.div_(self._length(grad)).mul_(per_sample(size, grad))

    def _shrink(self, delta: Tensor, eps: Radius) -> Tensor:
        """min(1, ε/‖δ‖₂) per sample, shaped (N, 1, ..., 1)."""
        return torch.clamp(per_sample(eps, delta) / self._length(delta), max=1.0)

    def project(self, delta: Tensor, eps: Radius) -> Tensor:
        """Scale δ by min(1, ε/‖δ‖₂): the points outside the ball move radially onto its surface."""
        return delta * self._shrink(delta, eps)

    def project_(self, delta: Tensor, eps: Radius) -> Tensor:
        return delta.mul_(self._shrink(delta, eps))

    def random_start(self, like: Tensor, eps: Radius, generator: torch.Generator | None = None) -> Tensor:
        """Uniform in the L2 ball: a Gaussian direction (uniform on the sphere) times the radius ε·U^(1/d),
        d = coordinates per sample (Muller 1959); in high dimension most starts lie near the surface."""
        device = generator.device if generator is not None else like.device
        g = torch.randn(like.shape, generator=generator, device=device, dtype=like.dtype).to(like.device)
        d = like[0].numel() if like.ndim > 1 else 1
        u = _uniform(like.new_empty(like.shape[0]), generator)  # (N,)
        radius = u.pow(1.0 / d) * (eps.to(like.dtype) if isinstance(eps, Tensor) else eps)
        return self._unit(g) * per_sample(radius, like)


class L1(Norm):
    """L1 geometry. The steepest step puts the whole mass s on the coordinate of largest |g| (a vertex of the
    ball; split evenly between ties), so L1 PGD moves one pixel per step. A pixel on a bound pushed outward
    would absorb every step: the loop first zeroes such gradients (``skip_saturated``; Tramèr & Boneh 2019)."""

    def __init__(self) -> None:
        super().__init__("1", 1.0, "L1", skip_saturated=True)

    def steepest(self, grad: Tensor, size: Radius) -> Tensor:
        a = grad.flatten(1).abs()  # (N, D)
        top = a.amax(dim=1, keepdim=True)
        mask = (a == top) & (top > 0)  # a zero gradient gives a zero step
        share = mask.to(grad.dtype) / mask.sum(dim=1, keepdim=True).clamp_min(1).to(grad.dtype)
        return per_sample(size, grad) * grad.sign() * share.view_as(grad)

    def project(self, delta: Tensor, eps: Radius) -> Tensor:
        """Exact Euclidean projection onto {‖δ‖₁ ≤ ε} by sorting (Duchi et al. 2008, fig. 1):
        soft-threshold |δ| by the θ ≥ 0 that brings the L1 norm down to ε; samples inside stay put."""
        v = delta.flatten(1)  # (N, D)
        n, d = v.shape
        a = v.abs()
        e = (eps.to(v.dtype).reshape(-1, 1) if isinstance(eps, Tensor)
             else torch.full((n, 1), float(eps), dtype=v.dtype, device=v.device))
        u = a.sort(dim=1, descending=True).values  # (N, D)
        css = u.cumsum(dim=1)
        j = torch.arange(1, d + 1, device=v.device, dtype=v.dtype)
        rho = (u * j > css - e).sum(dim=1, keepdim=True).clamp_min(1)  # how many coordinates stay non-zero
        theta = ((css.gather(1, rho - 1) - e) / rho.to(v.dtype)).clamp_min(0)  # (N, 1)
        inside = a.sum(dim=1, keepdim=True) <= e
        w = torch.where(inside, v, v.sign() * (a - theta).clamp_min(0))
        return w.view_as(delta)

    def random_start(self, like: Tensor, eps: Radius, generator: torch.Generator | None = None) -> Tensor:
        """Uniform in the L1 ball: with E₁…E_{d+1} i.i.d. Exp(1), (E₁…E_d)/ΣE is uniform in the simplex
        {u ≥ 0, Σu ≤ 1}; random signs spread it over the 2^d orthants (Barthe et al. 2005)."""
        n = like.shape[0]
        d = like[0].numel() if like.ndim > 1 else 1
        flat = like.new_empty(n, d + 1)
        expo = -torch.log1p(-_uniform(flat, generator))  # Exp(1)
        u = expo[:, :d] / expo.sum(dim=1, keepdim=True)
        signs = torch.where(_uniform(u, generator) < 0.5, -1.0, 1.0).to(like.dtype)
        return (u * signs).view_as(like) * per_sample(eps, like)


@dataclass(frozen=True, init=False)
class L0(Norm):
    """L0 geometry: ‖δ‖₀ counts the pixels δ changes; ε is a number of pixels (⌊ε⌋), its ball unbounded in
    magnitude. ``pixels=True`` (the registered "0"): the C channels of a location of an (N, C, H, W) batch
    are one pixel, changed if any channel is (Croce & Hein 2019); other ranks, and ``pixels=False`` always
    (adv-lib's, Foolbox's count), count coordinates. ``project`` keeps the ⌊ε⌋ pixels of largest magnitude
    (|δ| or Σ_c δ_c²; ties: lower flat index first); in a box, loops use ``project_box`` (L0-ball ∩ box),
    not ``project`` then a clip, which can spend the budget on pixels the clip zeroes."""

    pixels: bool = True

    def __init__(self, pixels: bool = True) -> None:
        super().__init__("0", 0.0, "L0")
        object.__setattr__(self, "pixels", pixels)

    def _view(self, t: Tensor) -> Tensor:
        """t (N, ...) as (N, P, C): the C coordinates of each of the P pixels."""
        return t.flatten(2).transpose(1, 2) if self.pixels and t.ndim == 4 else t.reshape(len(t), -1, 1)

    def _spread(self, mask: Tensor, like: Tensor) -> Tensor:
        """A per-pixel mask (N, P) as a per-coordinate one that broadcasts against ``like``."""
        return mask.view(len(like), 1, *like.shape[2:]) if self.pixels and like.ndim == 4 else mask.view(like.shape)

    def _magnitude(self, delta: Tensor) -> Tensor:
        pix = self._view(delta)  # (N, P, C)
        return pix[..., 0].abs() if pix.shape[-1] == 1 else pix.square().sum(dim=-1)

    def _keep(self, score: Tensor, eps: Radius, like: Tensor) -> Tensor:
        """The mask of the ⌊ε⌋ pixels of largest score (ties: lower index first), spread like ``like``."""
        n, p = score.shape
        k = torch.as_tensor(eps, dtype=torch.float64).clamp(0, p).floor().long().to(score.device).reshape(-1, 1)
        order = score.argsort(dim=1, descending=True, stable=True)  # (N, P)
        rank = torch.empty_like(order).scatter_(1, order, torch.arange(p, device=score.device).expand(n, p))
        return self._spread(rank < k, like)

    def measure(self, delta: Tensor) -> Tensor:
        """The number of pixels changed, per sample, as (N,) in delta's dtype."""
        return (self._view(delta) != 0).any(dim=-1).sum(dim=-1).to(delta.dtype)

    def steepest(self, grad: Tensor, size: Radius) -> Tensor:
        """size·g/‖g‖₁, Croce & Hein's PGD-L0 step: ⟨η, g⟩ has no maximum on the unbounded L0 ball, so the
        dense step borrows L1's length and the projection makes the iterate sparse (zero gradient: no step)."""
        return self.steepest_(grad.clone(), size)

    def steepest_(self, grad: Tensor, size: Radius) -> Tensor:
        length = L1_NORM.measure(grad).clamp_min(torch.finfo(grad.dtype).tiny)
        return grad.div_(per_sample(length, grad)).mul_(per_sample(size, grad))

    def project(self, delta: Tensor, eps: Radius) -> Tensor:
        """Keep the ⌊ε⌋ pixels of largest magnitude, zero the others."""
        return self.project_(delta.clone(), eps)

    def project_(self, delta: Tensor, eps: Radius) -> Tensor:
        return delta.masked_fill_(~self._keep(self._magnitude(delta), eps, delta), 0)

    def project_box(self, delta: Tensor, eps: Radius, x: Tensor, lo: float, hi: float) -> Tensor:
        """The closest δ′ to δ with ≤ ⌊ε⌋ pixels and x + δ′ in [lo, hi] (x in the box): a kept pixel becomes
        its clip c, so keep the ⌊ε⌋ of largest gain ‖δ_p‖² − ‖δ_p − c_p‖² (Croce & Hein 2019's PGD-L0)."""
        c = torch.maximum(torch.minimum(delta, hi - x), lo - x)  # (N, ...) the clip, per coordinate
        gain = self._view(delta.square() - (delta - c).square()).sum(dim=-1)  # (N, P)
        return c.masked_fill(~self._keep(gain, eps, delta), 0)

    def random_start(self, like: Tensor, eps: Radius, generator: torch.Generator | None = None) -> Tensor:
        """Uniform in L0-ball ∩ [−1, 1]^D (the ball has no volume of its own): ⌊ε⌋ pixels drawn uniformly
        without replacement, each of their coordinates U(−1, 1); clip x + δ to the bounds after."""
        score = _uniform(like.new_empty(self._view(like).shape[:2]), generator)  # (N, P) a random order
        return (2 * _uniform(like, generator) - 1).masked_fill_(~self._keep(score, eps, like), 0)


LINF, L2_NORM, L1_NORM, L0_NORM = Linf(), L2(), L1(), L0()


def get_norm(spec: NormSpec) -> Norm:
    """The ``Norm`` of a name in ``catalog.NORMS`` ("inf", "2", "1", "0", aliases such as "linf") or a number
    (float("inf"), 2, 1, 0); a ``Norm`` is returned as it is.

    Parameters
    ----------
    spec : str, float, int or Norm

    Returns
    -------
    Norm

    Raises
    ------
    ValueError
        An unknown norm.

    Examples
    --------
    >>> from advgrad import get_norm
    >>> get_norm(float("inf")).name, get_norm("l1").symbol
    ('inf', 'L1')
    """
    if isinstance(spec, Norm):
        return spec
    norm: Norm = NORMS[norm_name(spec)].impl
    return norm


# --- Minimal-norm geometry (DDN, DeepFool, CW): dual norms, spheres, steepest directions ----------------
_DUAL_P = {math.inf: 1.0, 2.0: 2.0, 1.0: math.inf}


def dual_measure(norm: Norm, v: Tensor) -> Tensor:
    """‖v‖_q per sample, shape (N,), q the dual exponent of the norm's p (1/p + 1/q = 1: ∞ ↔ 1, 2 ↔ 2).

    ‖v‖_q is the largest ⟨η, v⟩ over ‖η‖_p ≤ 1 (Hölder), so the affine function f(x) + ⟨v, η⟩ first reaches
    zero at the Lp distance |f(x)|/‖v‖_q: the distance DeepFool steps and the affine closed forms compute."""
    if norm.p not in _DUAL_P:
        raise ValueError(f"the dual norm is defined for L∞, L2 and L1, not {norm.symbol}")
    return torch.linalg.vector_norm(v.flatten(1), ord=_DUAL_P[norm.p], dim=1)


def rescale(norm: Norm, delta: Tensor, radius: Radius) -> Tensor:
    """δ·(r/‖δ‖_p) per sample: δ moved radially onto the sphere of radius r, from inside as from outside (DDN's
    step onto the sphere ‖δ‖ = ε, where ``project`` maps onto the ball). A zero sample stays zero."""
    length = norm.measure(delta).clamp_min(torch.finfo(delta.dtype).tiny)  # (N,)
    r = radius.to(delta.dtype) if isinstance(radius, Tensor) else radius
    return delta * per_sample(r / length, delta)


def ascent_direction(norm: Norm, w: Tensor) -> tuple[Tensor, Tensor]:
    """(u, ‖u‖_p): a direction u of steepest ascent of ⟨·, w⟩, not necessarily of unit length, and its length
    per sample (N,), so that the step of Lp length s along it is (s/‖u‖_p)·u, with ⟨u, w⟩ = ‖u‖_p·‖w‖_q.

    L2: (w, ‖w‖₂) unnormalised ((s/‖w‖)·w, DeepFool's form, rounds once); else ``steepest(w, 1)`` and 1."""
    if isinstance(norm, L2):
        return w, norm.measure(w)
    return norm.steepest(w, 1.0), torch.ones(len(w), dtype=w.dtype, device=w.device)


# --- the box ∩ L1 ball (APGD-L1 and Square-L1 of AutoAttack) ----------------------------------------------

def l1_box_correction(x: Tensor, delta: Tensor, eps: Radius, bounds: tuple[float, float] = (0.0, 1.0)) -> Tensor:
    """The change r that moves x + δ to its Euclidean projection onto {z : ‖z − x‖₁ ≤ ε, lo ≤ z ≤ hi}.

    For x in the box the projection of δ is, per coordinate, dᵢ = sign δᵢ · max(min(|δᵢ| − θ, mᵢ), 0) with
    mᵢ the room the box leaves in δᵢ's direction (hi − xᵢ or xᵢ − lo) and θ ≥ 0 the smallest threshold that
    brings ‖d‖₁ down to ε (θ = 0 when clipping to the box is enough). Coordinate i loses clamp(θ, aᵢ, |δᵢ|)
    of |δᵢ|, aᵢ = max(|δᵢ| − mᵢ, 0): the total loss is piecewise linear, non-decreasing in θ, kinked at the
    aᵢ and |δᵢ|, so θ is found on the sorted kinks in O(D log D) (Croce & Hein, ICML 2021, arXiv 2103.01208).
    Returns r = d − δ, shaped like δ (the caller forms x + δ + r). ``eps``: a float or per-sample (N,).

    The float operations are those of pyautoattack 0.2.0's ``L1_projection`` (box [0, 1]) in its order, so
    APGD-L1 and Square-L1 reproduce its bits (it bisects for the kink advgrad counts to). One case differs:
    θ below the second-smallest kink (at most one coordinate of δ zero or within the box, e.g. D = 1), where
    the reference extrapolates the wrong segment; advgrad solves on the first segment.
    """
    lo, hi = bounds
    n = len(x)
    xf, d = x.reshape(n, -1), delta.reshape(n, -1)                               # (N, D)
    cut = torch.min(torch.zeros_like(d), torch.min((hi - xf) - d, (xf - lo) + d))  # −aᵢ ≤ 0
    top = d.abs()                                                              # |δᵢ|, the most a coordinate loses
    kinks, order = torch.sort(-torch.cat((cut, -top), 1), dim=1)               # (N, 2D) ascending
    nxt = torch.cat((kinks[:, 1:], kinks.new_zeros(n, 1)), 1)
    slope = (2 * (order < d.shape[1]).to(d.dtype) - 1).cumsum(dim=1)           # active coordinates past each kink
    clipped = -cut.sum(dim=1, keepdim=True)                                    # (N, 1) loss at θ = 0
    short = (eps.to(d.dtype).view(-1, 1) if isinstance(eps, Tensor) else eps) - top.sum(dim=1, keepdim=True)
    lost = clipped + torch.cumsum((nxt - kinks) * slope, dim=1)                # (N, 2D) loss at each next kink
    below = (lost + short < 0).sum(dim=1, keepdim=True)                        # kinks past which ε is not met
    k = (below - 1).clamp_(0, 2 * d.shape[1] - 2)
    theta = torch.where(below > 0, (-lost.gather(1, k) - short) / slope.gather(1, k + 1) + nxt.gather(1, k),
                        (-clipped - short) / slope[:, :1] + kinks[:, :1])      # (N, 1); else the first segment
    shrunk = -torch.min(torch.max(-cut, theta), top)
    out = torch.where(clipped + short < 0, shrunk, cut)
    return (d.sign() * out).view(delta.shape)
