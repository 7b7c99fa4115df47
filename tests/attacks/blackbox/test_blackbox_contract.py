"""The attack contract for every black-box attack (HopSkipJump L2/L∞, RayS, Boundary, SPSA): the result's
invariants over sizes, radii and flags; queries counted against an independent count (a wrapper that counts
calls × rows); the budget; labels-only models; chunk sizes; one-line ValueErrors for bad arguments."""

from __future__ import annotations

import doctest
import importlib
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from advgrad.attacks.blackbox.boundary import boundary
from advgrad.attacks.blackbox.hopskipjump import hopskipjump
from advgrad.attacks.blackbox.rays import rays
from advgrad.attacks.blackbox.spsa import spsa
from advgrad.attacks.result import AttackResult
from advgrad.losses import margin
from advgrad.models.query import QueryModel
from tests.attacks.blackbox.conftest import Counting, norm_of

Q = 160  # queries per sample: small, so that the budget binds


def _g() -> torch.Generator:
    return torch.Generator().manual_seed(0)


ATTACKS: dict[str, tuple[Callable[..., AttackResult], str, dict[str, Any]]] = {
    # name: (function, norm, options)
    "hsj-l2": (hopskipjump, "2", {"norm": 2, "steps": 3, "samples": 10, "generator": None}),
    "hsj-linf": (hopskipjump, "inf", {"norm": "inf", "steps": 3, "samples": 10, "generator": None}),
    "rays": (rays, "inf", {}),
    "boundary": (boundary, "2", {"generator": None}),
    "spsa": (spsa, "inf", {"samples": 4, "generator": None}),
}
DECISION = [a for a in ATTACKS if a != "spsa"]


def run(name: str, model: Any, x: Tensor, y: Tensor, eps: Any = None, **extra: Any) -> AttackResult:
    fn, _, options = ATTACKS[name]
    options = {**options, **extra}
    if "generator" in options and options["generator"] is None:
        options["generator"] = _g()
    options.setdefault("queries", Q)
    if name == "spsa" and eps is None:
        eps = 0.3
    return fn(model, x, y, eps, **options)


def _mlp(dtype: torch.dtype = torch.float32) -> nn.Module:
    """16 → 8 → 3 with ReLU, its first layer centred on the middle of [0, 1]^16 so that random points fall
    in every class."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        net[1].weight.mul_(4)
        net[1].bias.copy_(-0.5 * net[1].weight.sum(1))
        net[3].bias.sub_(net(_batch(4096, 99)).mean(0))  # classes balanced over the box
    return net.to(dtype).eval()


def _batch(n: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> Tensor:
    return torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def check_result(name: str, model: nn.Module, x: Tensor, y: Tensor, res: AttackResult, eps: Any, targeted: bool,
                 counted: int) -> None:
    n = len(x)
    norm = ATTACKS[name][1]
    assert res.x_adv.shape == x.shape and res.success.shape == (n,) and res.loss.shape == (n,)
    assert res.queries is not None and res.queries.dtype == torch.int64
    assert bool((res.queries >= 1).all()) and bool((res.queries <= Q).all())
    assert int(res.queries.sum()) == counted  # every row the model saw is charged to one sample
    assert bool((res.x_adv >= 0).all() and (res.x_adv <= 1).all())
    for t in (res.x_adv, res.loss, res.logits):
        assert not t.requires_grad
    with torch.no_grad():
        z = model(res.x_adv)
    labels = z.argmax(1)
    verdict = (labels == y) if targeted else (labels != y)
    dist = norm_of(res.x_adv - x, norm)
    if eps is not None:
        verdict &= dist <= (eps if not isinstance(eps, Tensor) else eps) + 1e-6
    assert torch.equal(res.success, verdict)
    torch.testing.assert_close(res.logits, z, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(res.loss, margin(res.logits, y))
    if name == "spsa":
        assert res.distance is None
        assert bool((dist <= (eps if not isinstance(eps, Tensor) else eps) + 1e-6).all())
        return
    assert res.distance is not None
    torch.testing.assert_close(res.distance[res.success], dist[res.success].to(res.distance.dtype))
    assert bool(torch.isinf(res.distance[~res.success]).all())
    assert torch.equal(res.x_adv[~res.success], x[~res.success])


@pytest.mark.parametrize("module", ["hopskipjump", "rays", "boundary", "spsa"])
def test_docstring_examples_run(module: str) -> None:
    outcome = doctest.testmod(importlib.import_module(f"advgrad.attacks.blackbox.{module}"))
    assert outcome.attempted > 0 and outcome.failed == 0


@settings(max_examples=5, deadline=None)
@given(n=st.integers(1, 5), radius=st.sampled_from(["none", "float", "tensor"]), targeted=st.booleans(),
       seed=st.integers(0, 3))
@pytest.mark.parametrize("name", list(ATTACKS))
def test_result_invariants(name: str, n: int, radius: str, targeted: bool, seed: int) -> None:
    """Bounds, the model's own verdict, ‖δ‖ as reported, x where failed, queries = the independent count and
    ≤ the budget, no graph; the caller's tensors, the mode and requires_grad as they were, no .grad."""
    net = _mlp().train()
    counting = Counting(net)
    x = _batch(n, seed)
    with torch.no_grad():
        y = net(x).argmax(1)
    if targeted:
        y = (y + 1) % 3
    eps = None if radius == "none" else 0.3 if radius == "float" else torch.linspace(0.1, 0.4, n)
    if name == "spsa" and eps is None:
        eps = 0.3
    x0, y0 = x.clone(), y.clone()
    res = run(name, counting, x, y, eps, targeted=targeted)
    assert torch.equal(x, x0) and torch.equal(y, y0)
    assert net.training and all(p.requires_grad and p.grad is None for p in net.parameters())
    check_result(name, net.eval(), x, y, res, eps, targeted, counting.rows)


@pytest.mark.parametrize("name", list(ATTACKS))
def test_already_misclassified_points_cost_one_query(name: str) -> None:
    net = _mlp()
    x = _batch(6)
    with torch.no_grad():
        y = (net(x).argmax(1) + 1) % 3  # every label wrong
    res = run(name, net, x, y)
    assert bool(res.success.all()) and torch.equal(res.x_adv, x) and res.queries.tolist() == [1] * 6
    if res.distance is not None:
        assert res.distance.tolist() == [0.0] * 6


@pytest.mark.parametrize("name", DECISION)
def test_labels_only_model_gives_the_same_examples(name: str) -> None:
    """Decision-based: the attack reads labels only, so hiding the scores changes no example, no count; the
    result's logits become one-hot rows."""
    net = _mlp()
    x = _batch(5, 1)
    y = net(x).argmax(1)
    full = run(name, net, x, y)
    hidden = run(name, QueryModel(net, labels_only=True), x, y)
    assert torch.equal(full.x_adv, hidden.x_adv) and torch.equal(full.queries, hidden.queries)
    assert torch.equal(full.success, hidden.success)
    assert torch.equal(hidden.logits, nn.functional.one_hot(full.logits.argmax(1), 3).float())


def test_score_attack_refuses_a_labels_only_model() -> None:
    net = _mlp()
    x = _batch(3)
    with pytest.raises(ValueError, match="answers labels only; SPSA is a score-based attack") as err:
        spsa(QueryModel(net, labels_only=True), x, net(x).argmax(1), 0.3)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", list(ATTACKS))
def test_chunk_size_is_speed_only(name: str) -> None:
    """Rows per request change no decision (float64): the same examples bit for bit from the decision-based
    attacks. SPSA's finite differences divide the model's rounding by 2δ, and a matrix product of 3 rows may
    round otherwise than one of 80 (another kernel): its examples agree to 1e-9."""
    net = _mlp(torch.float64)
    x = _batch(5, 2, torch.float64)
    y = net(x).argmax(1)
    a, b = run(name, net, x, y, chunk_size=3), run(name, net, x, y, chunk_size=4096)
    assert torch.equal(a.queries, b.queries) and torch.equal(a.success, b.success)
    if name == "spsa":
        torch.testing.assert_close(a.x_adv, b.x_adv, atol=1e-9, rtol=0)
    else:
        assert torch.equal(a.x_adv, b.x_adv)


@pytest.mark.parametrize("name", DECISION)
def test_eps_stops_a_sample_once_within(name: str) -> None:
    """With a radius the search stops a sample as soon as ‖δ‖ ≤ ε: fewer queries, success within ε."""
    net = _mlp()
    x = _batch(6, 3)
    y = net(x).argmax(1)
    free = run(name, net, x, y, queries=400)
    eps = float(free.distance[free.success].max()) * 2
    capped = run(name, net, x, y, eps, queries=400)
    assert bool(capped.success[free.success].all())
    assert int(capped.queries.sum()) < int(free.queries.sum())


@pytest.mark.parametrize("name", DECISION)
def test_a_budget_too_small_to_search_still_returns_a_valid_result(name: str) -> None:
    net = _mlp()
    x = _batch(4, 4)
    y = net(x).argmax(1)
    counting = Counting(net)
    res = run(name, counting, x, y, queries=3)
    assert bool((res.queries <= 3).all()) and int(res.queries.sum()) == counting.rows
    assert torch.equal(res.x_adv[~res.success], x[~res.success])


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("hsj-l2", {"norm": 1}, "supports norm '2' or 'inf', got 1"),
    ("rays", {"norm": 2}, "RayS supports norm 'inf', got 2"),
    ("boundary", {"norm": "inf"}, "supports norm '2', got 'inf'"),
    ("spsa", {"norm": "2"}, "SPSA supports norm 'inf'"),
    ("rays", {"queries": 1}, "queries must be an integer ≥ 2, got 1"),
    ("spsa", {"queries": 0}, "queries must be an integer ≥ 1, got 0"),
    ("hsj-l2", {"steps": 0}, "steps must be an integer ≥ 1, got 0"),
    ("hsj-l2", {"samples": 100, "max_samples": 50}, "max_samples must be an integer ≥ samples"),
    ("hsj-linf", {"gamma": 0.0}, "gamma must be finite and > 0"),
    ("boundary", {"source_step": 1.5}, "source_step must be finite and > 0 and < 1"),
    ("boundary", {"spherical_step": -1.0}, "spherical_step must be"),
    ("spsa", {"samples": 0}, "samples must be an integer ≥ 1, got 0"),
    ("spsa", {"delta": 0.0}, "delta must be"),
    ("spsa", {"lr": math.nan}, "lr must be"),
    ("rays", {"targeted": 1}, "targeted must be True or False, got 1"),
    ("boundary", {"generator": 7}, "generator must be a torch.Generator or None, got int"),
    ("hsj-l2", {"chunk_size": 0}, "chunk_size must be an integer ≥ 1, got 0"),
    ("rays", {"bounds": (1.0, 0.0)}, "bounds must be finite with lo < hi"),
    ("rays", {"bounds": (0.5, 1.0)}, "x lies outside bounds"),
]


@pytest.mark.parametrize(("name", "options", "match"), BAD, ids=[f"{n}-{next(iter(o))}" for n, o, _ in BAD])
def test_bad_arguments_are_one_line_value_errors(name: str, options: dict[str, Any], match: str) -> None:
    net = _mlp()
    x = _batch(2)
    with pytest.raises(ValueError) as err:
        run(name, net, x, net(x).argmax(1), **options)
    assert match in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(("name", "args", "match"), [
    ("rays", {"eps": -0.1}, "eps must be"),
    ("hsj-l2", {"y": torch.tensor([0, 7])}, "label 7 is outside the model's 3 classes"),
    ("boundary", {"model": "net.onnx"}, "model must be a torch nn.Module or an advgrad QueryModel, got str"),
    ("spsa", {"x": torch.rand(2, 1, 4, 4).double()}, "x is float64 but the model's parameters are float32"),
], ids=["eps", "label", "model", "dtype"])
def test_bad_inputs_are_one_line_value_errors(name: str, args: dict[str, Any], match: str) -> None:
    net = _mlp()
    x = args.get("x", _batch(2))
    y = args.get("y", torch.tensor([0, 1]))
    with pytest.raises(ValueError) as err:
        run(name, args.get("model", net), x, y, args.get("eps"))
    assert match in str(err.value) and "\n" not in str(err.value)
    if name == "spsa":
        with pytest.raises(ValueError, match="SPSA is a fixed-budget attack: give eps"):
            spsa(net, _batch(2), y, None)  # type: ignore[arg-type]
