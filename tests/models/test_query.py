"""QueryModel (advgrad/querymodel.py): answers, counts, labels-only, the per-sample tally and its budget, and
the one-line refusals. References: the wrapped module itself (its argmax and scores) and counts kept here."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

import advgrad.models.query as qm_module
from advgrad.models.query import QueryModel, Tally, as_query_model, is_query_only, refuse_query_only


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 5)).eval()


def test_doctests_run() -> None:
    assert doctest.testmod(qm_module).failed == 0


def test_scores_labels_and_count_match_the_module() -> None:
    net = _net()
    x = torch.rand(7, 1, 4, 4)
    model = QueryModel(net)
    assert torch.equal(model.scores(x), net(x).detach())
    assert torch.equal(model.labels(x), net(x).argmax(1))
    assert model.queries == 14 and model.num_classes == 5


def test_labels_only_module_answers_the_argmax_and_refuses_scores() -> None:
    net = _net()
    x = torch.rand(6, 1, 4, 4)
    model = QueryModel(net, labels_only=True)
    assert torch.equal(model(x), net(x).argmax(1))
    with pytest.raises(ValueError, match="answers labels only") as err:
        model.scores(x)
    assert "\n" not in str(err.value)


def test_module_mode_flags_and_grads_restored() -> None:
    net = _net().train()
    flags = [p.requires_grad for p in net.parameters()]
    QueryModel(net).labels(torch.rand(3, 1, 4, 4))
    assert net.training and [p.requires_grad for p in net.parameters()] == flags
    assert all(p.grad is None for p in net.parameters())


def test_callables_answering_numpy_and_labels() -> None:
    x = torch.rand(4, 3)
    scores = QueryModel(lambda t: t.numpy() * 2.0)
    assert torch.equal(scores(x), x * 2.0)
    labels = QueryModel(lambda t: np.arange(len(t)), num_classes=4)
    assert torch.equal(labels(x), torch.arange(4)) and labels(x).dtype == torch.int64
    with pytest.raises(ValueError, match="labels only"):
        labels.scores(x)


@pytest.mark.parametrize("answer", [
    lambda t: t.sum(1).float(),                      # (N,) floats: neither scores nor labels
    lambda t: torch.zeros(len(t) + 1, 3),            # wrong N
    lambda t: torch.zeros(len(t), 3, 2),             # rank 3
    lambda t: torch.zeros(len(t), dtype=torch.bool),  # booleans
    lambda t: -torch.ones(len(t), dtype=torch.long),  # negative labels
    lambda t: "cat",                                 # not a tensor
], ids=["float-labels", "wrong-n", "rank-3", "bool", "negative", "string"])
def test_bad_answers_are_one_line_errors(answer) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError) as err:
        QueryModel(answer)(torch.rand(2, 3))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("args", "match"), [
    ((42,), "wraps a callable"),
    ((len,), "labels_only"),
])
def test_bad_construction(args: tuple, match: str) -> None:
    kwargs = {"labels_only": 1} if match == "labels_only" else {}
    with pytest.raises(ValueError, match=match):
        QueryModel(*args, **kwargs)
    with pytest.raises(ValueError, match="num_classes"):
        QueryModel(len, num_classes=1)


def test_as_query_model_and_refusal() -> None:
    net = _net()
    wrapped = as_query_model(net)
    assert isinstance(wrapped, QueryModel) and wrapped.fn is net and as_query_model(wrapped) is wrapped
    with pytest.raises(ValueError, match="nn.Module or an advgrad QueryModel, got str"):
        as_query_model("model.onnx")
    assert is_query_only(wrapped) and not is_query_only(net)
    refuse_query_only(net, "pgd", ["hopskipjump", "rays"])  # a module has gradients: no error
    with pytest.raises(ValueError) as err:
        refuse_query_only(wrapped, "pgd", ["hopskipjump", "rays"])
    message = str(err.value)
    assert "\n" not in message and message.startswith("pgd needs the model's gradient") and "hopskipjump, rays" in message


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 6), rows=st.lists(st.integers(0, 5), min_size=0, max_size=40), chunk=st.integers(1, 7))
def test_tally_charges_each_row_to_its_sample(n: int, rows: list[int], chunk: int) -> None:
    """Counts per sample = how often it is named; the model sees every row once, ≤ chunk rows a call."""
    owners = torch.tensor([r % n for r in rows], dtype=torch.long)
    seen: list[int] = []

    def fn(t: Tensor) -> Tensor:
        seen.append(len(t))
        return torch.zeros(len(t), 3)

    tally = Tally(QueryModel(fn), n, chunk=chunk)
    out = tally.labels(torch.zeros(len(owners), 2), owners)
    assert out.shape == (len(owners),)
    assert torch.equal(tally.counts, torch.bincount(owners, minlength=n))
    assert sum(seen) == len(owners) and all(s <= chunk for s in seen)


def test_tally_refuses_past_the_budget_before_asking() -> None:
    model = QueryModel(lambda t: torch.zeros(len(t), 2))
    tally = Tally(model, 2, budget=3)
    tally.answers(torch.zeros(3, 1), torch.tensor([0, 0, 1]))
    assert tally.left(torch.tensor([0, 1])).tolist() == [1, 2]
    with pytest.raises(RuntimeError, match="budget of 3"):
        tally.answers(torch.zeros(2, 1), torch.tensor([0, 0]))
    assert model.queries == 3 and tally.counts.tolist() == [2, 1]


def test_session_enters_eval_mode_once_and_restores() -> None:
    net = _net().train()
    model = QueryModel(net)
    with model.session():
        assert not net.training and not any(p.requires_grad for p in net.parameters())
        with model.session():  # nested: still one mode
            model.labels(torch.rand(2, 1, 4, 4))
        assert not net.training
        model.labels(torch.rand(2, 1, 4, 4))
    assert net.training and all(p.requires_grad for p in net.parameters())
    assert model.queries == 4
