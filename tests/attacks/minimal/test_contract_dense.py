"""The attack contract for the dense minimal-norm attacks (DDN, CW-L2, DeepFool L2 and L∞, ALMA L1 and L2,
EAD): the reported distance is the measured one, the box is kept, the caller's tensors, the model's mode
and its parameters' flags are left as they were and no parameter gradient appears; a radius ε only
filters; a point adversarial from the start is a success at distance 0; every bad argument is a one-line
ValueError."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import pytest
import torch
from closed_forms import affine
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from advgrad.attacks import AttackResult
from advgrad.attacks.minimal.alma import alma
from advgrad.attacks.minimal.cw import CWOptions, cw
from advgrad.attacks.minimal.ddn import ddn
from advgrad.attacks.minimal.deepfool import deepfool
from advgrad.attacks.minimal.ead import EADOptions, ead

Attack = Callable[..., AttackResult]
ATTACKS: dict[str, tuple[Attack, float]] = {  # cheap settings, and the norm each measures
    "ddn": (partial(ddn, steps=12, init_norm=0.5), 2.0),
    "cw": (partial(cw, steps=8, options=CWOptions(binary_search_steps=2, initial_const=1.0, lr=0.1)), 2.0),
    "deepfool-2": (partial(deepfool, norm=2, steps=6), 2.0),
    "deepfool-inf": (partial(deepfool, norm="inf", steps=6), math.inf),
    "alma-1": (partial(alma, norm=1, steps=15), 1.0),
    "alma-2": (partial(alma, norm=2, steps=15), 2.0),
    "ead": (partial(ead, steps=10, options=EADOptions(binary_search_steps=2, initial_const=1.0, lr=0.1)), 1.0),
}
TARGETED = ("ddn", "cw", "ead")


def _net(channels: int = 1) -> nn.Module:
    """A seeded conv net with dropout and batch norm (train mode would change its outputs), 3 classes."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
                         nn.Flatten(), nn.Linear(4 * 16, 3))


def _measured(result: AttackResult, x: Tensor, p: float) -> Tensor:
    return torch.linalg.vector_norm((result.x_adv - x).flatten(1).double(), ord=p, dim=1)


@pytest.mark.parametrize("name", sorted(ATTACKS))
@settings(max_examples=6, deadline=None)
@given(n=st.integers(1, 6), channels=st.integers(1, 2), lo=st.sampled_from([0.0, -1.0]),
       targeted=st.booleans(), seed=st.integers(0, 1000))
def test_invariants(name: str, n: int, channels: int, lo: float, targeted: bool, seed: int) -> None:
    attack, p = ATTACKS[name]
    targeted = targeted and name in TARGETED
    model = _net(channels).train()
    model[0].bias.requires_grad_(False)  # a mixed set of flags, to be restored as found
    flags = [q.requires_grad for q in model.parameters()]
    g = torch.Generator().manual_seed(seed)
    x = lo + (1.0 - lo) * torch.rand(n, channels, 4, 4, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    x0, y0 = x.clone(), y.clone()
    result = attack(model, x, y, targeted=targeted, bounds=(lo, 1.0)) if targeted else attack(model, x, y, bounds=(lo, 1.0))
    assert torch.equal(x, x0) and torch.equal(y, y0)
    assert model.training and [q.requires_grad for q in model.parameters()] == flags
    assert all(q.grad is None for q in model.parameters())
    assert result.distance is not None
    for t in (result.x_adv, result.success, result.loss, result.logits, result.distance):
        assert not t.requires_grad and t.grad_fn is None
    assert result.x_adv.shape == x.shape and result.logits.shape == (n, 3)
    assert bool((result.x_adv >= lo).all() and (result.x_adv <= 1.0).all())
    with torch.no_grad():
        z = model.eval()(result.x_adv)
    torch.testing.assert_close(result.logits, z)
    hit = z.argmax(1) == y if targeted else z.argmax(1) != y
    assert torch.equal(result.success, hit)  # success is what the model does at x_adv
    d = result.distance.double()
    torch.testing.assert_close(d[result.success], _measured(result, x, p)[result.success], rtol=1e-6, atol=1e-7)
    assert bool(torch.isinf(d[~result.success]).all()) and torch.equal(result.x_adv[~result.success], x[~result.success])


def _steep() -> nn.Module:
    """A seeded affine map with large weights, 3 classes: the cheap settings break most points."""
    g = torch.Generator().manual_seed(3)
    return affine(3 * torch.randn(3, 16, generator=g), torch.zeros(3))


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_a_radius_only_filters(name: str) -> None:
    """With ε (a float or one per sample) the search is the same; success needs ‖δ‖ ≤ ε."""
    attack, _ = ATTACKS[name]
    model = _steep()
    x = torch.rand(12, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    y = model(x).argmax(1)
    free = attack(model, x, y)
    assert free.distance is not None and int(free.success.sum()) >= 6
    eps = free.distance.nan_to_num(posinf=1.0).median().item()
    for radius in (eps, torch.full((12,), eps).index_fill_(0, torch.tensor([0, 1]), 0.0)):
        bound = attack(model, x, y, radius)
        within = free.success & (free.distance <= radius)
        assert torch.equal(bound.success, within) and 0 < int(within.sum()) < int(free.success.sum())
        assert torch.equal(bound.x_adv[within], free.x_adv[within])
        assert torch.equal(bound.x_adv[~within], x[~within])


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_a_point_misclassified_from_the_start(name: str, tiny_mlp: nn.Module) -> None:
    attack, _ = ATTACKS[name]
    x = torch.rand(4, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    wrong = (tiny_mlp(x).argmax(1) + 1) % 3
    result = attack(tiny_mlp, x, wrong)
    assert bool(result.success.all()) and torch.equal(result.x_adv, x)
    assert result.distance is not None and bool((result.distance == 0).all())


BAD: list[tuple[str, dict[str, object], str]] = [
    ("ddn", {"steps": 0}, "steps"), ("ddn", {"gamma": 1.0}, "gamma"), ("ddn", {"init_norm": 0.0}, "init_norm"),
    ("ddn", {"levels": 1}, "levels"), ("ddn", {"targeted": 1}, "targeted"), ("ddn", {"generator": 3}, "generator"),
    ("cw", {"norm": "inf"}, "norm 2 only"), ("cw", {"options": {"lr": 0.1}}, "options"), ("cw", {"steps": -1}, "steps"),
    ("deepfool-2", {"norm": 1}, "2, inf"), ("deepfool-2", {"overshoot": -0.1}, "overshoot"),
    ("deepfool-2", {"candidates": 1}, "candidates"), ("deepfool-2", {"norm": "l7"}, "l7"),
    ("alma-2", {"options": None}, "options"), ("alma-2", {"targeted": "yes"}, "targeted"),
    ("ead", {"norm": 2}, "norm 1 only"), ("ead", {"options": EADOptions}, "options"),
]
COMMON: list[tuple[dict[str, object], str]] = [
    ({"eps": -1.0}, "eps"), ({"bounds": (0.2, 1.0)}, "outside bounds"), ({"bounds": (1.0, 0.0)}, "bounds"),
    ({"chunk_size": 0}, "chunk_size"),
]


@pytest.mark.parametrize("name,options,match", BAD + [(a, o, m) for a in sorted(ATTACKS) for o, m in COMMON])
def test_bad_arguments_are_one_line_value_errors(name: str, options: dict[str, object], match: str,
                                                 tiny_mlp: nn.Module) -> None:
    attack, _ = ATTACKS[name]
    x, y = torch.rand(3, 1, 4, 4), torch.zeros(3, dtype=torch.long)
    x[0, 0, 0, 0] = 0.0
    options = dict(options)  # the parameter lists share their dicts
    eps = options.pop("eps", None)
    with pytest.raises(ValueError, match=match) as info:
        attack(tiny_mlp, x, y, eps, **options)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_bad_labels_and_shapes(name: str, tiny_mlp: nn.Module) -> None:
    attack, _ = ATTACKS[name]
    x = torch.rand(3, 1, 4, 4)
    for y, match in ((torch.tensor([0, 1, 7]), "outside the model's 3 classes"), (torch.zeros(2, dtype=torch.long), "labels"),
                     (torch.zeros(3), "integer")):
        with pytest.raises(ValueError, match=match):
            attack(tiny_mlp, x, y)
