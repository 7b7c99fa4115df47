"""Square Attack (advgrad/attacks/square.py) against pyautoattack 0.2.0's SquareAttack, the paper's numbers and
its invariants.

Bit-level assertions are made only where the two sides run the same float32 operations on tensors of the
same shapes in one process (one piece, same batch): that is bit-identical by construction. Elsewhere the
tests check what does not depend on rounding, and say why.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from advgrad.attacks import input_gradient, pgd
from advgrad.attacks._square_steps import _bump, _eta, _index
from advgrad.attacks.result import AttackResult
from advgrad.attacks.square import p_schedule, square, window_side
from advgrad.losses import margin
from advgrad.norms import get_norm

REF_NORM = {"inf": "Linf", "2": "L2"}


def reference(model: nn.Module, x: Tensor, y: Tensor, eps: float, norm: str, queries: int, *, restarts: int = 1,
              seed: int = 0, p_init: float = 0.8) -> Tensor:
    """pyautoattack's Square Attack as AutoAttack configures it; torch's global RNG is restored afterwards."""
    ref_square = pytest.importorskip("pyautoattack.square")
    attack = ref_square.SquareAttack(model, norm=REF_NORM[norm], n_queries=queries, eps=eps, p_init=p_init,
                                     n_restarts=restarts, seed=seed, verbose=False, resc_schedule=False,
                                     device=x.device)
    with torch.random.fork_rng(devices=[]):
        return attack.perturb(x, y)


def same_bits(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a.view(torch.int32), b.view(torch.int32))


def reference_flags(model: nn.Module, x: Tensor, y: Tensor, x_ref: Tensor) -> Tensor:
    """Misclassified at the reference's output, as AutoAttack checks it (one forward pass, max(1)[1])."""
    with torch.no_grad():
        return model(x_ref).max(dim=1).indices != y


@pytest.fixture(scope="module")
def digits(mnist5k: Any) -> tuple[Tensor, Tensor]:
    return mnist5k.x_test[:200], mnist5k.y_test[:200]


# --- parity with the reference ----------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize(("norm", "eps", "queries"), [("inf", 0.2, 300), ("2", 2.0, 150)])
def test_bit_identical_to_reference(trained_small: Any, digits: tuple[Tensor, Tensor], norm: str, eps: float,
                                    queries: int) -> None:
    """200 digits in one piece: same draws, same float ops, same batch shapes → the same bits. The ε are
    chosen so that points are fooled at many different queries (the live set shrinks all along)."""
    model, _ = trained_small
    x, y = digits
    x_ref = reference(model, x, y, eps, norm, queries)
    res = square(model, x, y, eps, norm=norm, queries=queries, chunk_size=len(x))
    assert same_bits(res.x_adv, x_ref)
    assert torch.equal(res.success, reference_flags(model, x, y, x_ref))
    assert 0.2 < float(res.success.float().mean()) < 0.95  # a mix of fooled and robust points
    fooled_at = res.queries[res.success & (res.queries > 0)]
    assert len(fooled_at.unique()) > 20  # fooled at many different queries


@pytest.mark.slow
def test_restarts_and_query_counts_match_reference(trained_small: Any, digits: tuple[Tensor, Tensor]) -> None:
    """Restarts continue the reference's random stream; per-point query counts are its attack_single_run's."""
    ref_square = pytest.importorskip("pyautoattack.square")
    model, _ = trained_small
    x, y = digits[0][:60], digits[1][:60]
    for norm, eps in (("inf", 0.15), ("2", 1.5)):
        x_ref = reference(model, x, y, eps, norm, 40, restarts=3, seed=7)
        res = square(model, x, y, eps, norm=norm, queries=40, restarts=3, seed=7, chunk_size=len(x))
        assert same_bits(res.x_adv, x_ref)
        assert torch.equal(res.success, reference_flags(model, x, y, x_ref))
        # one run: the reference's counter (1 for the start + 1 per query while unbroken)
        one = square(model, x, y, eps, norm=norm, queries=40, seed=7, chunk_size=len(x))
        attack = ref_square.SquareAttack(model, norm=REF_NORM[norm], n_queries=40, eps=eps, seed=7,
                                         verbose=False, resc_schedule=False)
        correct = model(x).max(dim=1).indices == y
        attack.init_hyperparam(x)
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(7)
            counts, _ = attack.attack_single_run(x[correct], y[correct])
        assert torch.equal(one.queries[correct], counts.long())
        assert bool((one.queries[~correct] == 0).all())
        assert bool((res.queries >= one.queries).all())


@pytest.mark.slow
@pytest.mark.parametrize(("norm", "eps", "queries", "p_init", "sides"),
                         [pytest.param("inf", 0.12, 5000, 0.8, {3, 4, 6, 9, 13, 18, 25}, marks=pytest.mark.heavy),
                          ("2", 2.0, 300, 0.1, {3, 5, 7, 9})])
def test_full_budget_bit_identical_to_reference(trained_small: Any, digits: tuple[Tensor, Tensor], norm: str,
                                                eps: float, queries: int, p_init: float, sides: set[int]) -> None:
    """AutoAttack's setting on 64 points. A window side shows in the result only through the points that
    are fooled while it is in use (the others are returned as x), so the test asserts fooled points in
    every listed phase, and survivors of the whole budget. L∞: the full 5,000 queries, once (window
    sides 25 … 3 are each seen to fool a point; side 2, from query 4,001, runs but fools none here). L2:
    the phase changes only the window side, and AutoAttack's budget takes it through 25, 19, 13, 9, 7, 5,
    3 (``test_window_sides``); ``test_bit_identical_to_reference`` reaches 13, and here p_init = 0.1 goes
    9, 7, 5, 3 within 300 queries (the whole budget would cost ~2.5× the L∞ run for no other code).
    The time is per query, not per point (measured: 16 and 64 points take the same)."""
    model, _ = trained_small
    x, y = digits[0][:64], digits[1][:64]
    x_ref = reference(model, x, y, eps, norm, queries, p_init=p_init)
    res = square(model, x, y, eps, norm=norm, queries=queries, p_init=p_init, chunk_size=len(x))
    assert same_bits(res.x_adv, x_ref)
    assert torch.equal(res.success, reference_flags(model, x, y, x_ref))
    assert int(res.queries.max()) == queries + 1  # someone ran the whole budget
    # queries = 1 (the start) + 1 per query up to the fooling one: fooled at query index q − 2
    fooled_at = res.queries[res.success & (res.queries > 1)]
    assert {window_side(p_schedule(int(q) - 2, p_init), 1, 28, 28, norm) for q in fooled_at} >= sides


def _tiles_fit(h: int, w: int) -> bool:
    """The reference's L2 start fails when a tile lies partly outside the image (advgrad crops it)."""
    s = h // 5
    first = (h - 5 * s) // 2
    starts = [(first + i * s, h) for i in range(h // s)] + [(first + j * s, w) for j in range(w // s)]
    return all(a + s <= size or a >= size for a, size in starts)


class Round(nn.Module):
    """Integer logits: margins of exactly 0 (ties) become common."""

    def forward(self, z: Tensor) -> Tensor:
        return torch.round(4 * z)


def tiny_model(c: int, h: int, w: int, k: int, seed: int, ties: bool = False) -> nn.Sequential:
    torch.manual_seed(seed)
    layers = [nn.Flatten(), nn.Linear(c * h * w, 12), nn.ReLU(), nn.Linear(12, k), *([Round()] if ties else [])]
    return nn.Sequential(*layers).eval()


def tiny_batch(model: nn.Module, n: int, c: int, h: int, w: int, k: int, seed: int, lo: float = 0.0,
               hi: float = 1.0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = lo + (hi - lo) * torch.rand((n, c, h, w), generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)
    wrong = torch.rand(n, generator=g) < 0.2  # some points misclassified at x: they are not attacked
    return x, torch.where(wrong, (y + 1) % k, y)


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(norm=st.sampled_from(["inf", "2"]), n=st.integers(1, 9), c=st.integers(1, 3), h=st.integers(1, 11),
       w=st.integers(1, 11), eps=st.floats(0.02, 0.6), queries=st.integers(1, 40), restarts=st.integers(1, 3),
       p_init=st.sampled_from([0.05, 0.3, 0.8, 1.0]), seed=st.integers(0, 2**31 - 1), ties=st.booleans())
def test_reference_parity_over_shapes(norm: str, n: int, c: int, h: int, w: int, eps: float, queries: int,
                                      restarts: int, p_init: float, seed: int, ties: bool) -> None:
    """Any image shape, batch size (including one point: the reference squeezes it), budget, p_init and
    seed, and models with tied logits (a margin of exactly 0 ends a point's search, but argmax may still
    pick y: the point is then attacked again in the next restart, and a run whose points all start at
    margin ≤ 0 still makes one query's draws): bit-identical to the reference in one piece."""
    if norm == "2":
        assume(h >= 5 and _tiles_fit(h, w))
    model = tiny_model(c, h, w, 4, seed % 1000, ties)
    x, y = tiny_batch(model, n, c, h, w, 4, seed)
    try:
        x_ref = reference(model, x, y, eps, norm, queries, restarts=restarts, seed=seed, p_init=p_init)
    except RuntimeError as err:  # L2 when every point starts at margin ≤ 0: the reference fails on the
        assume("cannot reshape tensor of 0 elements" not in str(err))  # empty batch (advgrad stops)
        raise
    res = square(model, x, y, eps, norm=norm, queries=queries, restarts=restarts, seed=seed, p_init=p_init,
                 chunk_size=n)
    assert same_bits(res.x_adv, x_ref)
    assert torch.equal(res.success, reference_flags(model, x, y, x_ref))


def test_a_run_with_no_point_to_query_still_makes_one_querys_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference enters its loop unless every start margin is < 0; when the points all sit at ≤ 0 with a
    tie among them, it makes the first query's draws for an empty batch, then stops. advgrad draws them too,
    and the next restart (whose stream follows, here its start) is bit-identical. Seed 7 of this tie model
    is such a case (checked by recording the calls); skipping those draws changes the result."""
    import importlib

    # the module, not the function advgrad.attacks re-exports under the same name
    mod = importlib.import_module("advgrad.attacks.square")

    calls: list[str] = []

    def recorded(fn: Any, tag: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append(tag)
            return fn(*args, **kwargs)
        return call

    for name, tag in (("window_side", "w"), ("_query_linf", "q"), ("_search", "S")):
        monkeypatch.setattr(mod, name, recorded(getattr(mod, name), tag))
    model = tiny_model(1, 6, 6, 4, 7, ties=True)
    x, y = tiny_batch(model, 2, 1, 6, 6, 4, 7)
    res = square(model, x, y, 0.3, queries=5, restarts=2, seed=7, chunk_size=2)
    assert "".join(calls) == "SwSw"  # two runs, each one query's draws and no model query
    x_ref = reference(model, x, y, 0.3, "inf", 5, restarts=2, seed=7)
    assert same_bits(res.x_adv, x_ref)
    assert torch.equal(res.success, reference_flags(model, x, y, x_ref))


# --- the paper's schedule and the L2 window pattern --------------------------------------------------------

def test_p_schedule_is_the_papers() -> None:
    """p_init, halved after 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000 queries (Andriushchenko et al.
    2020, §4 and App. B; AutoAttack runs it unrescaled), also against the reference's p_selection."""
    ref_square = pytest.importorskip("pyautoattack.square")
    ref = ref_square.SquareAttack(None, p_init=0.8, resc_schedule=False)
    paper = [(0, 1), (10, 1), (11, 2), (50, 2), (51, 4), (200, 4), (201, 8), (500, 8), (501, 16), (1000, 16),
             (1001, 32), (2000, 32), (2001, 64), (4000, 64), (4001, 128), (6000, 128), (6001, 256),
             (8000, 256), (8001, 512), (9999, 512)]  # (query, p_init / p)
    for it, divisor in paper:
        assert p_schedule(it, 0.8) == 0.8 / divisor == ref.p_selection(it)
        assert p_schedule(it, 0.3) == 0.3 / divisor


def test_window_sides() -> None:
    """round(√(p·h·w)): MNIST 28 × 28 over AutoAttack's 5,000 queries goes 25, 18, 13, 9, 6, 4, 3, 2 (L∞);
    L2 keeps it odd and ≥ 3. Hand-computed: √(0.8·784) = 25.04, √(0.4·784) = 17.7, √(0.05·784) = 6.26 …"""
    phases = [0, 11, 51, 201, 501, 1001, 2001, 4001]  # first query of each phase below 5,000
    assert [window_side(p_schedule(it), 1, 28, 28) for it in phases] == [25, 18, 13, 9, 6, 4, 3, 2]
    assert [window_side(p_schedule(it), 1, 28, 28, "2") for it in phases] == [25, 19, 13, 9, 7, 5, 3, 3]
    assert window_side(0.8, 3, 32, 32) == 29  # CIFAR-10: √(0.8·1024) = 28.6, channels do not count
    assert window_side(0.05, 3, 299, 299) == 67  # the paper's ImageNet p_init: √(0.05·299²) = 66.9
    assert window_side(0.8 / 512, 1, 28, 28) == 1 and window_side(1.0, 1, 5, 9) == 5  # ≥ 1, ≤ min(h, w)


@pytest.mark.slow
@pytest.mark.parametrize("span", [6, 10, 19, 27, 31])
def test_window_position_rounds_like_torch(span: int) -> None:
    """The reference draws the window's corner as long(span · u) in float32; over every float32 uniform
    torch.rand can return (k·2⁻²⁴), a few products round up to the next integer, and advgrad's position
    follows them (a float64 product would not). The corner span itself is never drawn."""
    u = (torch.arange(2**24, dtype=torch.float64) * 2.0**-24).float()
    ref = (span * u).long()
    exact = (span * u.double()).floor().long()
    rounded_up = (ref != exact).nonzero().flatten()
    assert len(rounded_up) > 0
    others = torch.randint(0, 2**24, (300,), generator=torch.Generator().manual_seed(span))
    for i in torch.cat([rounded_up, others]).tolist():
        assert _index(float(u[i]), span) == int(ref[i])
    assert int(ref.max()) == span - 1


def test_eta_matches_reference_and_its_closed_form() -> None:
    """The L2 pattern η_s: bit-identical to the reference's eta(s) (either orientation, chosen by its own
    draw), unit L2 norm, +bump on the upper ⌊s/2⌋ rows and −bump below, where the bump at Chebyshev
    distance d from its centre is ∝ Σ_{k=d}^{K−1} 1/(k+1)² (checked in float64, to float32 rounding)."""
    ref_square = pytest.importorskip("pyautoattack.square")
    ref = ref_square.SquareAttack(None, norm="L2", device=torch.device("cpu"))
    with torch.random.fork_rng(devices=[]):
        for s in range(1, 30):
            for seed in range(4):
                torch.manual_seed(seed)
                transpose = bool(torch.rand([1]) > 0.5)
                torch.manual_seed(seed)
                assert same_bits(ref.eta(s).contiguous(), _eta(s, transpose))
    for s in (3, 8, 25):
        e = _eta(s).double()
        assert math.isclose(float(e.norm()), 1.0, rel_tol=1e-6)
        assert bool((e[: s // 2] > 0).all()) and bool((e[s // 2:] < 0).all())
        for rows in (s // 2, s - s // 2):
            k = max(rows, s) // 2 + 1
            sums = [sum(1.0 / (j + 1) ** 2 for j in range(d, k)) for d in range(k)]
            table = torch.tensor(sums, dtype=torch.float64)
            i = (torch.arange(rows) - rows // 2).abs()[:, None]
            j = (torch.arange(s) - s // 2).abs()[None, :]
            closed = table[torch.maximum(i, j)]
            torch.testing.assert_close(_bump(rows, s).double(), closed / closed.norm(), rtol=1e-6, atol=0)


# --- invariants -------------------------------------------------------------------------------------

class Recorder(nn.Module):
    """Wraps a model; records, per forward pass, whether autograd could record anything."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.graph: list[bool] = []

    def forward(self, x: Tensor) -> Tensor:
        out = self.net(x)
        self.graph.append(torch.is_grad_enabled() or x.requires_grad or out.requires_grad)
        return out


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(norm=st.sampled_from(["inf", "2"]), n=st.integers(1, 12), c=st.integers(1, 3), h=st.integers(5, 9),
       w=st.integers(5, 9), eps=st.floats(0.0, 0.8),
       bounds=st.sampled_from([(0.0, 1.0), (-1.0, 1.0), (0.0, 255.0)]), queries=st.integers(1, 30),
       restarts=st.integers(1, 2), seed=st.integers(0, 2**63), chunk=st.integers(1, 14),
       training=st.booleans())
def test_invariants(norm: str, n: int, c: int, h: int, w: int, eps: float, bounds: tuple[float, float],
                    queries: int, restarts: int, seed: int, chunk: int, training: bool) -> None:
    lo, hi = bounds
    eps = eps * (hi - lo) * (1 if norm == "inf" else math.sqrt(c * h * w) / 3)
    net = tiny_model(c, h, w, 3, seed % 997)
    model = Recorder(net).train(training)
    frozen = net[1].weight.requires_grad_(False)  # one parameter's flag off: it must come back off
    x, y = tiny_batch(net, n, c, h, w, 3, seed % 991, lo, hi)
    x.requires_grad_(True)
    x0, y0, rng = x.detach().clone(), y.clone(), torch.get_rng_state()
    res = square(model, x, y, eps, norm=norm, queries=queries, restarts=restarts, seed=seed, bounds=bounds,
                 chunk_size=chunk)
    # the caller's tensors, model and global RNG are as they were; no gradient anywhere
    assert torch.equal(x.detach(), x0) and torch.equal(y, y0) and x.requires_grad and x.grad is None
    assert model.training == training and net.training == training
    assert not frozen.requires_grad and all(p.requires_grad for p in net.parameters() if p is not frozen)
    assert all(p.grad is None for p in net.parameters())
    assert torch.equal(torch.get_rng_state(), rng)
    assert model.graph and not any(model.graph)
    assert isinstance(res, AttackResult) and res.queries is not None and res.x_adv.grad_fn is None and not res.x_adv.requires_grad
    # the ball (float32 rounding of x ± ε and of ε·δ/‖δ‖ adds a few ulps) and the bounds
    dist = get_norm(norm).measure(res.x_adv - x0)
    assert bool((dist <= eps * (1 + 1e-5) + 1e-5 * (hi - lo)).all())
    assert bool((res.x_adv >= lo).all()) and bool((res.x_adv <= hi).all())
    # success means misclassified at x_adv (same batch shapes as the attack's last check: exact); the rest
    # are returned as x; the logits and loss are those at x_adv; queries within the budget
    with torch.no_grad():
        clean_wrong = net(x0).argmax(1) != y
    assert bool(res.success[clean_wrong].all())
    assert torch.equal(res.x_adv[~res.success], x0[~res.success])
    # (another batch shape rounds the logits differently: tolerance relative to their scale, x up to 255)
    scale = 1 + float(res.logits.abs().max())
    torch.testing.assert_close(res.logits, net(res.x_adv).detach(), rtol=1e-5, atol=1e-5 * scale)
    assert torch.equal(res.success, res.logits.max(dim=1).indices != y)
    assert torch.equal(res.loss, margin(res.logits, y))
    assert bool((res.queries[clean_wrong] == 0).all())
    assert bool((res.queries <= restarts * (queries + 1)).all())
    if eps == 0:
        assert torch.equal(res.x_adv, x0) and not bool(res.queries.any())


def test_linf_window_lands_on_the_ball_surface(trained_small: Any, digits: tuple[Tensor, Tensor]) -> None:
    """L∞ Square only ever writes x ± ε (clipped to the bounds): every pixel of x_adv is at the surface of
    the ball or on a bound (Andriushchenko et al.: the search is over the vertices of the ε-box)."""
    model, _ = trained_small
    x, y = digits[0][:50], digits[1][:50]
    res = square(model, x, y, 0.25, queries=100)
    found = res.success & (res.queries > 0)  # not the digits misclassified at x (returned as x)
    d = (res.x_adv - x)[found]
    on_bound = (res.x_adv[found] == 0) | (res.x_adv[found] == 1)
    assert bool((((d.abs() - 0.25).abs() <= 1e-6) | on_bound).all())
    assert int(found.sum()) > 20


BAD = [
    ({"norm": "3"}, "unknown norm"),
    ({"eps": -0.1}, "eps must be finite and ≥ 0"),
    ({"eps": float("nan")}, "eps must be finite"),
    ({"eps": torch.full((4,), 0.1)}, "eps must be one number"),
    ({"queries": 0}, "queries must be an integer ≥ 1, got 0"),
    ({"queries": 2.5}, "queries must be an integer"),
    ({"restarts": True}, "restarts must be an integer"),
    ({"p_init": 0.0}, r"p_init must be a number in \(0, 1\], got 0.0"),
    ({"p_init": 1.5}, "p_init must be a number"),
    ({"seed": -1}, r"seed must be an integer in \[0, 2\*\*64\), got -1"),
    ({"seed": 1.0}, "seed must be an integer"),
    ({"bounds": (1.0, 0.0)}, "bounds must be finite with lo < hi"),
    ({"bounds": (0.2, 1.0)}, "x lies outside bounds"),
    ({"chunk_size": 0}, "chunk_size must be an integer ≥ 1, got 0"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD)
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    model = tiny_model(1, 6, 6, 3, 0)
    x, y = tiny_batch(model, 4, 1, 6, 6, 3, 0)
    args = {"eps": 0.1} | kwargs
    with pytest.raises(ValueError, match=message):
        square(model, x, y, **args)


def test_bad_shapes_and_labels() -> None:
    model = tiny_model(1, 6, 6, 3, 0)
    x, y = tiny_batch(model, 4, 1, 6, 6, 3, 0)
    with pytest.raises(ValueError, match=r"needs images \(N, C, H, W\), got shape \(4, 36\)"):
        square(nn.Sequential(nn.Unflatten(1, (1, 6, 6)), model), x.flatten(1), y, 0.1)
    small = tiny_model(1, 4, 4, 3, 0)
    with pytest.raises(ValueError, match=r"H must be ≥ 5, got shape \(4, 1, 4, 4\)"):
        square(small, torch.rand(4, 1, 4, 4), y, 0.5, norm="2")
    with pytest.raises(ValueError, match="label 3 is outside the model's 3 classes"):
        square(model, x, torch.tensor([0, 1, 2, 3]), 0.1)
    with pytest.raises(ValueError, match="x has 4 samples but y has 3 labels"):
        square(model, x, y[:3], 0.1)


# --- chunks, strength, gradient masking ---------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize(("norm", "eps", "queries"), [("inf", 0.2, 100), ("2", 2.0, 60)])
def test_chunked_forward_passes_agree(trained_small: Any, mnist5k: Any, norm: str, eps: float,
                                      queries: int) -> None:
    """150 digits, forward passes in chunks of 32 and 50 (the live set shrinks through several chunk
    counts) vs one piece. The draws are the same (they never depend on chunking), so only the logits'
    rounding can differ: a matrix product over another number of rows may round a logit's last bit
    differently, and that changes an outcome only if it flips a strict margin comparison. Flags and query
    counts are therefore compared, not bits (on the CPU this was written on, the bits agree from 16 rows)."""
    model, _ = trained_small
    x, y = mnist5k.x_test[200:350], mnist5k.y_test[200:350]
    one = square(model, x, y, eps, norm=norm, queries=queries, chunk_size=len(x))
    assert 0.2 < float(one.success.float().mean()) < 0.95
    for chunk in (32, 50):
        part = square(model, x, y, eps, norm=norm, queries=queries, chunk_size=chunk)
        assert torch.equal(part.success, one.success)
        assert torch.equal(part.queries, one.queries)


@pytest.mark.slow
@pytest.mark.parametrize(("norm", "eps"), [("inf", 0.3), ("2", 5.0)])
def test_large_eps_breaks_a_standard_model(trained_small: Any, mnist5k: Any, norm: str, eps: float) -> None:
    """A standard (not adversarially trained) cnn-small at ε = 0.3 (L∞) / 5 (L2) on MNIST: 1,000 queries
    leave no digit standing (measured: all 100 fooled within 340 queries)."""
    model, _ = trained_small
    x, y = mnist5k.x_test[:100], mnist5k.y_test[:100]
    res = square(model, x, y, eps, norm=norm, queries=1000)
    assert float(res.success.float().mean()) >= 0.99


class Quantize(nn.Module):
    """x → round(255·x)/255: the model sees the same digits, but ∂J/∂X = 0 almost everywhere."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.round(x * 255) / 255


@pytest.mark.slow
def test_square_breaks_a_gradient_masking_model(trained_small: Any, mnist5k: Any) -> None:
    """Input quantisation masks the gradient: PGD (with its random start) fools almost nothing, while
    Square, which never looks at a gradient, fools nearly every digit the plain model loses to PGD.
    Measured on these 100 digits at ε = 0.3: PGD 85 % accuracy on the masked model (0 % on the plain one),
    Square 2 % after 300 queries."""
    model, _ = trained_small
    masked = nn.Sequential(Quantize(), model).eval()
    x, y = mnist5k.x_test[:100], mnist5k.y_test[:100]
    assert bool((input_gradient(masked, x, y) == 0).all())
    pgd_plain = pgd(model, x, y, 0.3, steps=20, generator=torch.Generator().manual_seed(0))
    pgd_masked = pgd(masked, x, y, 0.3, steps=20, generator=torch.Generator().manual_seed(0))
    sq = square(masked, x, y, 0.3, queries=300)
    assert float(pgd_plain.success.float().mean()) >= 0.95
    assert float(pgd_masked.success.float().mean()) <= 0.3
    assert float(sq.success.float().mean()) >= 0.9
