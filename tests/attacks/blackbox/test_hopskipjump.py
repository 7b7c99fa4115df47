"""HopSkipJump (advgrad/attacks/blackbox/hopskipjump.py) against the closed form of an affine model and
against the peers, ART 1.20's HopSkipJump and Foolbox 3's HopSkipJumpAttack, on the same points from the
same starts (advgrad's own, made again by the test with the same draws) with the same query budget per
point (tests/attacks/blackbox/peers.py).

Matching the peers' settings:
- Foolbox is Chen et al.'s algorithm with γ = 1 (advgrad's default); but for L2 it divides the batch's
  gradient estimates by one norm, that of the whole batch (``approximate_gradients``), which shrinks every
  step by about √N, so it runs one point at a time there (then its estimate is Chen et al.'s). For L∞ the
  sign of the estimate makes that norm irrelevant and it runs batched.
- ART fixes θ = 0.01/√d (L2) and 0.01/d (L∞), which is γ = 0.01·d in Chen et al.'s θ = γ/d^{3/2} and γ/d²;
  advgrad runs with that γ against it. ART ends each iteration with a step and bisects at the start of the
  next, so its last point is off the boundary; advgrad bisects after every step.
The attacks are random (their directions differ), so the points differ run to run; the comparison is on
the median ‖δ‖ (advgrad's within 5 % of the peer's, or lower) and, at ε = the peer's quartiles, on the
points the peer fools within ε and advgrad does not (at most 2 %). Measured on 100 digits (40 for Foolbox
L2), advgrad/peer medians: ART L2 0.969, ART L∞ 0.864, Foolbox L∞ 0.942, Foolbox L2 0.993; peer-only
points 0–2.5 %; both-or-neither agreement 79–100 % (lower where advgrad is ahead).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from advgrad.attacks.blackbox.hopskipjump import hopskipjump
from tests.attacks.blackbox.conftest import affine, min_distance, startable
from tests.attacks.blackbox.peers import art_run, compare, foolbox_run

WIDE = (-10.0, 11.0)  # no box in the affine model's way


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("norm", ["2", "inf"])
def test_two_classes_reach_the_closed_form(norm: str) -> None:
    """One hyperplane: HopSkipJump converges to the closest point. Measured after 10 iterations (≈1,900
    queries): at most 2.6 % (L2) and 4.6 % (L∞) above the minimum; held to 6 %. The floor is the bisection's
    threshold θ = γ/d^{3/2} = 1/64 for d = 16, which leaves a point up to 1.6 % of its distance beyond the
    boundary."""
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(2, 16, generator=g, dtype=torch.float64)
    bias = torch.randn(2, generator=g, dtype=torch.float64) * 0.1
    x = torch.rand(16, 1, 4, 4, generator=g, dtype=torch.float64)
    model = affine(weight, bias)
    y = model(x).argmax(1)
    res = hopskipjump(model, x, y, norm=norm, steps=10, queries=2500, bounds=WIDE, generator=_g())
    ratio = res.distance / min_distance(weight, bias, x, y, 2.0 if norm == "2" else math.inf)
    assert bool(res.success.all())
    assert bool((ratio >= 1 - 1e-9).all()) and bool((ratio <= 1.06).all()), ratio


@pytest.mark.parametrize("norm", ["2", "inf"])
def test_four_classes_never_below_the_closed_form(affine_problem: tuple, norm: str) -> None:
    """Four classes: a union of half-spaces, and HopSkipJump settles on the face its start lies on, not
    always the nearest (measured: median 1.8 % above the minimum, the worst 2.2×). Held: never below the
    minimum, median within 5 %."""
    model, weight, bias, x, y = affine_problem
    res = hopskipjump(model, x, y, norm=norm, steps=10, queries=2500, bounds=WIDE, generator=_g())
    ratio = res.distance / min_distance(weight, bias, x, y, 2.0 if norm == "2" else math.inf)
    assert bool(res.success.all()) and bool((ratio >= 1 - 1e-9).all())
    assert float(ratio.median()) <= 1.05


def _hyperplane() -> tuple[nn.Module, Tensor, Tensor]:
    """A two-class affine model on 1×8×8 images and 16 points whose noise start succeeds."""
    g = torch.Generator().manual_seed(0)
    model = affine(torch.randn(2, 64, generator=g), torch.zeros(2))
    x = torch.rand(64, 1, 8, 8, generator=g)
    return model, x, model(x).argmax(1).detach()


def _against(model: nn.Module, x: Tensor, y: Tensor, peer: str, norm: str, steps: int,
             n: int) -> tuple[Tensor, Tensor]:
    """(advgrad's distances, the peer's) on the first n points whose noise start succeeds; the peer starts
    where advgrad does (same draws), advgrad gets the peer's mean budget."""
    x, y, starts, spent, _ = startable(model, x, y, seed=0)
    x, y, starts, spent = x[:n], y[:n], starts[:n], spent[:n]
    if peer == "art":
        theirs = art_run(model, x, y, starts, spent, "hopskipjump", norm, steps)
        gamma = 0.01 * x[0].numel()
    else:
        theirs = foolbox_run(model, x, y, starts, spent, "hopskipjump", norm, steps, per_sample=norm == "2")
        gamma = 1.0
    ours = hopskipjump(model, x, y, norm=norm, steps=steps, queries=int(theirs.queries.float().mean()),
                       gamma=gamma, generator=_g())
    assert bool((ours.queries <= theirs.queries.float().mean()).all())
    return ours.distance, theirs.distance


def test_as_close_as_foolbox_on_a_hyperplane() -> None:
    """The default lane's version of the comparison (L∞, Foolbox batched, 16 points, 6 iterations, the
    same starts). With 16 points two runs of one attack differ in median by several per cent (measured:
    advgrad/Foolbox 1.056 here, 0.95 for L2), so the bound is 10 %, and at most 1 point fooled within ε by
    Foolbox only; the 5 % and 2 % bounds are the heavy test's, on 100 digits."""
    model, x, y = _hyperplane()
    result = compare(*_against(model, x, y, "foolbox", "inf", steps=6, n=16))
    assert result.ratio <= 1.10, str(result)
    assert max(result.worse) <= 1 / 16 + 1e-9, str(result)


@pytest.mark.heavy
@pytest.mark.parametrize(("peer", "norm", "n"), [("art", "2", 100), ("art", "inf", 100), ("foolbox", "inf", 100),
                                                 ("foolbox", "2", 40)])
def test_as_close_as_the_peers_on_digits(digits_model: tuple[nn.Module, Tensor, Tensor], peer: str, norm: str,
                                         n: int) -> None:
    """cnn-small on mnist-5k digits, 10 iterations (≈ 2,400 queries a point): advgrad's median within 5 % of
    the peer's, or lower; at ε = the peer's quartiles, at most 2 % of the points (at least one) fooled within
    ε by the peer only. Foolbox L2 runs point by point (40 points; see the module docstring)."""
    model, x, y = digits_model
    ours, theirs = _against(model, x, y, peer, norm, steps=10, n=n)
    result = compare(ours, theirs)
    print(f"hopskipjump {norm} vs {peer}, {n} digits: {result}")
    assert result.ratio <= 1.05, str(result)
    assert max(result.worse) <= max(0.02, 1 / n) + 1e-9, str(result)
