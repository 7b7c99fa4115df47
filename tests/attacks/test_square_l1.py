"""Square Attack under L1 against pyautoattack 0.2.0's SquareAttack(norm='L1'), run in the same test, and its
invariants.

Bit-identical by construction on one batch in one piece (float32 in [0, 1]): the same draws from a generator
seeded like the reference's global RNG, the same float operations on the same shapes. One place where the
bits cannot be the reference's: its L1 search ends with x + δ + r, the projection onto the box ∩ L1 ball, and
does not clip, so a returned point may leave [0, 1] by one ulp; advgrad returns it clipped (the search
itself runs on the reference's points). The tests compare with the reference's points clipped to [0, 1].
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from advgrad.attacks._square_steps import _bump, _eta
from advgrad.attacks.square import square, window_side
from advgrad.losses import margin
from tests.attacks._l1ref import first_segment_calls


def reference(model: nn.Module, x: Tensor, y: Tensor, eps: float, queries: int, *, restarts: int = 1,
              seed: int = 0, p_init: float = 0.8) -> Tensor:
    """pyautoattack's L1 Square Attack as AutoAttack configures it; torch's global RNG restored."""
    ref_square = pytest.importorskip("pyautoattack.square")
    attack = ref_square.SquareAttack(model, norm="L1", n_queries=queries, eps=eps, p_init=p_init,
                                     n_restarts=restarts, seed=seed, verbose=False, resc_schedule=False,
                                     device=x.device)
    with torch.random.fork_rng(devices=[]):
        return attack.perturb(x, y)


def same_bits(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a.view(torch.int32), b.view(torch.int32))


def fooled_at(model: nn.Module, x_ref: Tensor, y: Tensor) -> Tensor:
    with torch.no_grad():
        return model(x_ref).max(dim=1).indices != y


def tiny_model(c: int, h: int, w: int, k: int, seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 12), nn.ReLU(), nn.Linear(12, k)).eval()


def tiny_batch(model: nn.Module, n: int, c: int, h: int, w: int, seed: int, lo: float = 0.0,
               hi: float = 1.0) -> tuple[Tensor, Tensor]:
    """Random images; the labels are the model's, except ~20 % that it gets wrong (not attacked)."""
    g = torch.Generator().manual_seed(seed)
    x = lo + (hi - lo) * torch.rand((n, c, h, w), generator=g)
    with torch.no_grad():
        z = model(x)
    y = z.argmax(1)
    return x, torch.where(torch.rand(n, generator=g) < 0.2, (y + 1) % z.shape[1], y)


def _tiles_fit(h: int, w: int) -> bool:
    """The reference's start fails when a tile lies partly outside the image (advgrad crops it)."""
    s = h // 5
    first = (h - 5 * s) // 2
    starts = [(first + i * s, h) for i in range(h // s)] + [(first + j * s, w) for j in range(w // s)]
    return all(a + s <= size or a >= size for a, size in starts)


# --- parity with the reference ----------------------------------------------------------------------

@pytest.mark.slow
def test_one_piece_is_the_reference_bit_for_bit(trained_small: Any, mnist5k: Any) -> None:
    """60 digits, 80 queries, two restarts, in one piece: points are fooled at many different queries (the
    live set shrinks all along) and in both runs; the query counts are the reference's counters."""
    model, _ = trained_small
    x, y = mnist5k.x_test[:60], mnist5k.y_test[:60]
    x_ref = reference(model, x, y, 12.0, 80, restarts=2, seed=3)
    res = square(model, x, y, 12.0, norm="1", queries=80, restarts=2, seed=3, chunk_size=len(x))
    assert same_bits(res.x_adv, x_ref.clamp(0.0, 1.0))
    assert torch.equal(res.success, fooled_at(model, x_ref, y))
    assert 0.2 < float(res.success.float().mean()) < 0.9
    assert res.queries is not None and len(res.queries[res.success].unique()) > 8
    assert bool((res.queries > 81).any())  # some point was fooled in the second run
    assert bool(((res.x_adv - x).flatten(1).abs().sum(1) <= 12.0).all())


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 9), c=st.integers(1, 3), h=st.integers(5, 11), w=st.integers(5, 11),
       eps=st.floats(0.05, 8.0), queries=st.integers(1, 30), restarts=st.integers(1, 2),
       p_init=st.sampled_from([0.05, 0.3, 0.8, 1.0]), seed=st.integers(0, 2**31 - 1))
def test_the_reference_bit_for_bit_over_shapes(n: int, c: int, h: int, w: int, eps: float, queries: int,
                                               restarts: int, p_init: float, seed: int) -> None:
    """Any image shape whose start tiles fit, batch size (one point included), budget, p_init, seed, and
    radii from tiny to box-filling (where the projection clips to the box more than to the ball)."""
    assume(_tiles_fit(h, w))
    model = tiny_model(c, h, w, 4, seed % 1000)
    x, y = tiny_batch(model, n, c, h, w, seed)
    try:
        with first_segment_calls() as odd:
            x_ref = reference(model, x, y, eps, queries, restarts=restarts, seed=seed, p_init=p_init)
    except RuntimeError as err:  # every point starts at margin ≤ 0: the reference fails on the empty batch
        assume("cannot reshape tensor of 0 elements" not in str(err))
        raise
    assume(not odd)
    res = square(model, x, y, eps, norm="1", queries=queries, restarts=restarts, seed=seed, p_init=p_init,
                 chunk_size=n)
    assert same_bits(res.x_adv, x_ref.clamp(0.0, 1.0))
    assert torch.equal(res.success, fooled_at(model, x_ref, y))


def test_l1_pattern_is_the_references_and_its_closed_form() -> None:
    """η_s for L1: bit-identical to the reference's eta(s) in either orientation (chosen by its draw), unit
    L1 norm, +bump above and −bump below, the bump at Chebyshev distance d ∝ Σ_{k=d}^{K−1} 1/(k+1)⁴."""
    ref_square = pytest.importorskip("pyautoattack.square")
    ref = ref_square.SquareAttack(None, norm="L1", device=torch.device("cpu"))
    with torch.random.fork_rng(devices=[]):
        for s in range(1, 30):
            for seed in range(4):
                torch.manual_seed(seed)
                transpose = bool(torch.rand([1]) > 0.5)
                torch.manual_seed(seed)
                assert same_bits(ref.eta(s).contiguous(), _eta(s, transpose, "1"))
    for s in (3, 8, 25):
        e = _eta(s, False, "1").double()
        assert math.isclose(float(e.abs().sum()), 1.0, rel_tol=1e-6)
        assert bool((e[: s // 2] > 0).all()) and bool((e[s // 2:] < 0).all())
        rows = s - s // 2
        k = max(rows, s) // 2 + 1
        table = torch.tensor([sum(1.0 / (j + 1) ** 4 for j in range(d, k)) for d in range(k)], dtype=torch.float64)
        closed = table[torch.maximum((torch.arange(rows) - rows // 2).abs()[:, None],
                                     (torch.arange(s) - s // 2).abs()[None, :])]
        torch.testing.assert_close(_bump(rows, s, "1").double(), closed / closed.sum(), rtol=1e-6, atol=0)


def test_window_sides_are_odd_and_at_least_three() -> None:
    assert [window_side(p, 1, 28, 28, "1") for p in (0.8, 0.4, 0.1, 0.003)] == [25, 19, 9, 3]
    assert all(window_side(0.8 / 2**k, 3, 32, 32, "1") == window_side(0.8 / 2**k, 3, 32, 32, "2") for k in range(10))


# --- invariants -------------------------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 10), c=st.integers(1, 3), h=st.integers(5, 9), w=st.integers(5, 9), eps=st.floats(0.0, 1.5),
       bounds=st.sampled_from([(0.0, 1.0), (-1.0, 1.0), (0.0, 255.0)]), queries=st.integers(1, 20),
       seed=st.integers(0, 2**32), chunk=st.integers(1, 12))
@example(n=2, c=1, h=8, w=5, eps=0.05531268180670469, bounds=(0.0, 1.0), queries=1, seed=244663913, chunk=1)
def test_invariants(n: int, c: int, h: int, w: int, eps: float, bounds: tuple[float, float], queries: int,
                    seed: int, chunk: int) -> None:
    """In the bounds (any bounds) and the L1 ball; x, y unmodified; x_adv = x where not fooled; logits, loss
    and flags at x_adv.

    The ball, to a stated tolerance: the search projects δ onto the radius ε·(1 − 10⁻⁶), as the reference
    does, but x + δ is then stored in float32, each of its D coordinates rounded by up to half an ulp of the
    box's largest magnitude m, and x_adv − x once more: ‖x_adv − x‖₁ ≤ ε + D·2⁻²³·m. The example above (the
    initial squares alone, D = 40 on [0, 1]) exceeds ε itself by 1.2·10⁻⁷ of it: a bound of ε alone fails there."""
    lo, hi = bounds
    eps = eps * (hi - lo) * c * h * w / 8
    model = tiny_model(c, h, w, 3, seed % 997)
    x, y = tiny_batch(model, n, c, h, w, seed % 991, lo, hi)
    x0, y0 = x.clone(), y.clone()
    res = square(model, x, y, eps, norm="1", queries=queries, seed=seed, bounds=bounds, chunk_size=chunk)
    assert torch.equal(x, x0) and torch.equal(y, y0)
    slack = x[0].numel() * 2.0**-23 * max(abs(lo), abs(hi))  # float32 rounding of x + δ and of x_adv − x
    assert bool(((res.x_adv - x).flatten(1).double().abs().sum(1) <= eps + slack).all())
    assert bool((res.x_adv >= lo).all()) and bool((res.x_adv <= hi).all())
    assert torch.equal(res.x_adv[~res.success], x[~res.success])
    scale = 1 + float(res.logits.abs().max())
    with torch.no_grad():
        torch.testing.assert_close(res.logits, model(res.x_adv), rtol=1e-5, atol=1e-5 * scale)
    assert torch.equal(res.success, res.logits.max(dim=1).indices != y)
    assert torch.equal(res.loss, margin(res.logits, y))


def test_small_images_are_refused_with_one_line() -> None:
    model = tiny_model(1, 4, 4, 3, 0)
    x, y = tiny_batch(model, 4, 1, 4, 4, 0)
    with pytest.raises(ValueError, match=r"^L1 Square Attack tiles its start .* H must be ≥ 5, got shape \(4, 1, 4, 4\)$"):
        square(model, x, y, 0.5, norm="1")
