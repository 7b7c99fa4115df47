"""Models known only by their answers: the black-box attacks' view of a classifier.

A ``QueryModel`` wraps any callable that takes a batch of images x (N, C, H, W) (any (N, ...) shape), float
in the data's bounds ([0, 1] for images), and answers either scores (N, K) (logits or probabilities: any
scores whose argmax is the predicted class) or labels (N,) (integers). Each row of x is one query; the model
counts them all (``queries``). With ``labels_only=True`` it answers the argmax only, whatever the callable
gives: a torch ``nn.Module`` wrapped so is an honest decision-based setting (the attack never sees a score).

An ``nn.Module`` is run in evaluation mode with its parameters' ``requires_grad`` off and under
``torch.no_grad``, each batch moved to the module's device and the answer brought back to x's; an attack
holds a ``session`` to enter that mode once for all its queries.

``Tally`` charges the rows of one attack call to the samples they belong to (``owners``), so that the
queries an attack reports per sample are exactly what the model answered for it, and refuses a query past
the budget. ``as_query_model`` is the one way an attack turns its ``model`` argument (an ``nn.Module`` or a
``QueryModel``) into a ``QueryModel``; ``is_query_only`` and ``refuse_query_only`` let a gradient attack's
caller turn a model without gradients away with one line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Union

import numpy as np
import torch
from torch import Tensor, nn

from advgrad._runtime import frozen_eval, model_device

__all__ = ["Classifier", "QueryModel", "Tally", "answer_rows", "as_query_model", "check_query_fits", "is_query_only",
           "labels_only_view", "refuse_query_only"]


class QueryModel:
    """A classifier that only answers queries: x (N, ...) → scores (N, K) or labels (N,).

    Parameters
    ----------
    fn : callable
        Takes x (a float tensor) and returns scores (N, K) (floating) or labels (N,) (integers), as a torch
        tensor or a NumPy array. An ``nn.Module`` is run under ``torch.no_grad`` in frozen evaluation mode.
    labels_only : bool
        Answer the argmax of the scores only (``scores`` then raises).
    num_classes : int, optional
        K, for a callable that answers labels (scores tell it at the first answer).
    name : str, optional
        What messages call the model (default: the callable's type).

    Examples
    --------
    >>> import torch
    >>> from advgrad import QueryModel
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> model = QueryModel(net, labels_only=True)
    >>> model.labels(torch.rand(5, 1, 2, 2)).shape, model.queries
    (torch.Size([5]), 5)
    """

    def __init__(self, fn: Callable[[Tensor], object], *, labels_only: bool = False,
                 num_classes: int | None = None, name: str | None = None) -> None:
        if not callable(fn):
            raise ValueError(f"a QueryModel wraps a callable, got {type(fn).__name__}")
        if not isinstance(labels_only, bool):
            raise ValueError(f"labels_only must be True or False, got {labels_only!r}")
        if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                        or num_classes < 2):
            raise ValueError(f"num_classes must be an integer ≥ 2 or None, got {num_classes!r}")
        self.fn = fn
        self.labels_only = labels_only
        self.num_classes = num_classes
        self.name = name or type(fn).__name__
        self.queries = 0  # rows answered since the model was made
        self._open = 0    # nesting depth of ``session``
        self._device = torch.device("cpu")  # a module's device, read when a session opens

    def __repr__(self) -> str:
        kind = "labels" if self.labels_only else "scores or labels"
        return f"QueryModel({self.name}, answers {kind}, {self.queries} queries so far)"

    @contextmanager
    def session(self) -> Iterator[QueryModel]:
        """Many queries in a row: a module's frozen evaluation mode entered once for all of them (each
        query outside a session enters and leaves it itself); restored on exit."""
        if not isinstance(self.fn, nn.Module) or self._open:
            self._open += 1
            try:
                yield self
            finally:
                self._open -= 1
            return
        with frozen_eval(self.fn):
            self._open, self._device = 1, model_device(self.fn)
            try:
                yield self
            finally:
                self._open = 0

    def _call(self, x: Tensor) -> object:
        with torch.no_grad():
            if not isinstance(self.fn, nn.Module):
                return self.fn(x)
            if self._open:
                return self.fn(x.to(self._device))
            with frozen_eval(self.fn):
                return self.fn(x.to(model_device(self.fn)))

    def __call__(self, x: Tensor) -> Tensor:
        """The answer for every row of x: scores (N, K) on x's device, or labels (N,) int64 when the callable
        answers labels or the model is ``labels_only``. Counts len(x) queries."""
        out = self._call(x)
        self.queries += len(x)
        if isinstance(out, np.ndarray):
            out = torch.from_numpy(out)
        if not isinstance(out, Tensor):
            raise ValueError(f"{self.name} must answer a tensor or an array, got {type(out).__name__}")
        if out.ndim == 2 and len(out) == len(x) and out.is_floating_point():
            self.num_classes = out.shape[1]
            return out.argmax(1).to(x.device) if self.labels_only else out.detach().to(x.device)
        if out.ndim == 1 and len(out) == len(x) and not out.is_floating_point() and not out.is_complex() \
                and out.dtype != torch.bool and bool((out >= 0).all()):
            return out.to(device=x.device, dtype=torch.int64)
        raise ValueError(f"{self.name} must answer scores (N, K) or labels (N,) ≥ 0 for N = {len(x)} inputs, "
                         f"got {out.dtype} of shape {tuple(out.shape)}")

    def labels(self, x: Tensor) -> Tensor:
        """The predicted class of every row of x, (N,) int64."""
        out = self(x)
        return out if out.ndim == 1 else out.argmax(1)

    def scores(self, x: Tensor) -> Tensor:
        """Scores (N, K); ValueError if the model answers labels only."""
        out = self(x)
        if out.ndim == 1:
            raise ValueError(f"{self.name} answers labels only; this needs its scores (a score-based attack "
                             "needs a model that answers scores (N, K))")
        return out


Classifier = Union[nn.Module, QueryModel]  # what the runner and the workflows attack: a module, or answers only


def labels_only_view(model: Classifier) -> QueryModel:
    """The same model answering its top-1 label only (``--labels-only``): a module wrapped, a QueryModel's
    callable rewrapped (its query count starts again at 0)."""
    if isinstance(model, QueryModel):
        return QueryModel(model.fn, labels_only=True, num_classes=model.num_classes, name=model.name)
    return QueryModel(model, labels_only=True, name=f"{type(model).__name__} (labels only)")


def answer_rows(model: QueryModel, x: Tensor, num_classes: int, batch: int = 500) -> Tensor:
    """(N, K) on x's device: the model's scores for x, ``batch`` rows per query; a model that answers labels
    only gives one-hot rows (K = ``num_classes``, or the model's own K where it told it)."""
    parts = []
    with model.session():
        for i in range(0, len(x), batch):
            out = model(x[i:i + batch])
            if out.ndim == 1:
                k = max(model.num_classes or num_classes, num_classes)
                out = torch.nn.functional.one_hot(out, k).to(torch.get_default_dtype())
            parts.append(out)
    return torch.cat(parts) if parts else x.new_empty((0, num_classes))


def check_query_fits(model: QueryModel, sample_shape: Sequence[int], num_classes: int,
                     bounds: tuple[float, float] = (0.0, 1.0), *, exact: bool = True) -> list[str]:
    """``models.fitting.check_model_fits`` for a model that only answers queries: the sample shape the
    callable declares (``fn.sample_shape``: an ONNX graph's (C, H, W), None where a dimension is symbolic)
    against ``sample_shape``, then 2 seeded random inputs in ``bounds``: ValueError (one line) if the model
    fails on them, answers NaN/Inf, or has another class count (K ≠ ``num_classes``; with ``exact=False``
    K < ``num_classes``). Returns no warnings (the list ``check_model_fits`` returns)."""
    shape = tuple(int(s) for s in sample_shape)
    declared = getattr(model.fn, "sample_shape", None)
    if declared is not None and (len(declared) != len(shape)
                                 or any(d is not None and d != s for d, s in zip(declared, shape))):
        dims = ", ".join("?" if d is None else str(d) for d in declared)
        raise ValueError(f"{model.name} takes inputs of shape (N, {dims}), but the data's samples are "
                         f"{shape}: give data of that shape (or the model made for this data)")
    lo, hi = bounds
    x = lo + (hi - lo) * torch.rand((2, *shape), generator=torch.Generator().manual_seed(0))
    out = model(x)  # ValueError, one line, when the callable fails or answers something else
    k = out.shape[1] if out.ndim == 2 else model.num_classes
    if out.ndim == 2 and not bool(torch.isfinite(out).all()):
        raise ValueError(f"{model.name} answers NaN or Inf on inputs of shape {tuple(x.shape)} in [{lo:g}, {hi:g}]")
    if k is not None and ((k != num_classes) if exact else (k < num_classes)):
        need = f"{num_classes}" if exact else f"at least {num_classes}"
        raise ValueError(f"{model.name} answers {k} classes but the data needs {need}")
    return []


def as_query_model(model: object) -> QueryModel:
    """A black-box attack's ``model``: an ``nn.Module`` (wrapped, scores and all) or a ``QueryModel`` (as is)."""
    if isinstance(model, QueryModel):
        return model
    if isinstance(model, nn.Module):
        return QueryModel(model)
    raise ValueError(f"model must be a torch nn.Module or an advgrad QueryModel, got {type(model).__name__}")


def is_query_only(model: object) -> bool:
    """True for a model that only answers queries (no gradient): a ``QueryModel``."""
    return isinstance(model, QueryModel)


def refuse_query_only(model: object, attack: str, alternatives: Sequence[str]) -> None:
    """ValueError, one line, when a gradient attack is given a model that only answers queries."""
    if is_query_only(model):
        raise ValueError(f"{attack} needs the model's gradient, but {getattr(model, 'name', 'this model')} "
                         f"only answers queries: use a black-box attack ({', '.join(alternatives)})")


class Tally:
    """The queries of one attack call, charged per sample: ``counts`` (n,) int64.

    Every request names, for each row, the sample it belongs to (``owners``, indices into the batch of n);
    rows go to the model ``chunk`` at a time. A request that would take a sample past ``budget`` raises
    RuntimeError before anything is asked (an attack must stop a sample before its budget runs out)."""

    def __init__(self, model: QueryModel, n: int, *, budget: int | None = None, chunk: int = 1024,
                 device: torch.device | str = "cpu") -> None:
        self.model = model
        self.n = n
        self.budget = budget
        self.chunk = chunk
        self.counts = torch.zeros(n, dtype=torch.int64, device=device)

    def left(self, owners: Tensor) -> Tensor:
        """The queries each sample of ``owners`` may still ask (a very large number without a budget)."""
        cap = self.budget if self.budget is not None else 2**62
        return cap - self.counts[owners]

    def _charge(self, owners: Tensor) -> None:
        new = self.counts + torch.bincount(owners, minlength=self.n)
        if self.budget is not None and bool((new > self.budget).any()):
            raise RuntimeError(f"an attack asked past its budget of {self.budget} queries per sample")
        self.counts = new

    def answers(self, x: Tensor, owners: Tensor) -> Tensor:
        """The model's answers for the rows x (M, ...), charged to ``owners`` (M,)."""
        self._charge(owners)
        parts = [self.model(x[i:i + self.chunk]) for i in range(0, len(x), self.chunk)]
        return torch.cat(parts) if parts else x.new_empty((0,), dtype=torch.int64)

    def labels(self, x: Tensor, owners: Tensor) -> Tensor:
        out = self.answers(x, owners)
        return out if out.ndim == 1 else out.argmax(1)
