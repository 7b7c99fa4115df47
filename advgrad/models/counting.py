"""What an attack costs, counted the same way on every machine: the model's passes, in sample-passes.

``PassCounter(model)`` is an ``nn.Module`` that wraps any model and returns its outputs untouched, counting

- a **forward** of a batch of n samples as n forward sample-passes (under ``torch.no_grad`` too: a query
  of a black-box attack is a forward pass);
- a **backward** through that forward as n backward sample-passes, each time a gradient flows back into
  its output. The node of the autograd graph that made the output gets a pre-hook
  (``torch.autograd.graph.Node.register_prehook``) that fires when autograd is about to send the gradient
  with respect to the output back through the pass, during ``torch.autograd.grad`` as during
  ``.backward()``; the hook only counts and returns None, so the gradient is autograd's own, and no
  parameter ``.grad`` is read or written. The hook lives on the graph and goes with it. K backward passes
  through one forward (untargeted FAB differentiates each of the K logits) count K·n. A forward whose
  output needs no gradient (no_grad, or neither input nor parameters require one) cannot be
  differentiated and gets no hook; nor does an output that autograd did not compute (a model that returns
  its input itself: there is no pass to go back through).

A batch-size-independent unit: a forward of 250 samples in one call or in ten chunks of 25 counts 250.
AttackBench (Cinà et al., AAAI 2025, arXiv 2404.19460) counts calls of its wrapped model; sample-passes
are that count times the batch, and what an attack costs on a fixed number of points, whatever batches
it runs in.

The counts are kept under a lock: advgrad's AutoAttack runs blocks in worker threads that share the model
(``attacks/autoattack.py``), and every forward and every backward adds to the same totals. Read them with
``counter.passes`` (a ``Passes`` snapshot; differences of snapshots give what one attack spent), zero them
with ``counter.reset()``, and sum them over torchrun's processes with ``summed`` (a collective call).

``spending()`` opens a tally in the caller's context: what every attack pass run inside it spends
(``charge``, called by the runner, ``advgrad.attacks.runner``) is added to it, so that a caller sums the passes
of work it does not see pass by pass (a bisection's rounds, a whole evaluation). Tallies nest; each sees
every charge made inside it. They follow ``contextvars``: a charge made in another thread does not reach them
(the runner charges in the caller's thread, after its workers are done).

The wrapper changes no result: the inner model runs on the same arguments and its output is returned as
is (tested bit for bit for FGSM, PGD, APGD and AutoAttack). Attributes the wrapper does not have are read
from the inner model (``output_activation``, say), so code that inspects the model sees the same thing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from advgrad import distributed
from advgrad.models.query import QueryModel

__all__ = ["PassCounter", "Passes", "QueryCounter", "Spent", "charge", "spending", "summed"]


@dataclass(frozen=True)
class Passes:
    """Sample-passes: ``forward`` (a forward of n samples counts n) and ``backward`` (a backward through a
    forward of n samples counts n); ``total`` is their sum, AttackBench's cost of an attack. Snapshots add
    and subtract.

    Parameters
    ----------
    forward, backward : int
        The sample-passes counted each way.

    Examples
    --------
    >>> from advgrad import Passes
    >>> spent = Passes(forward=30, backward=20) - Passes(forward=10)
    >>> spent, spent.total, spent.per_sample(10)
    (Passes(forward=20, backward=20), 40, (2.0, 2.0))
    """

    forward: int = 0
    backward: int = 0

    @property
    def total(self) -> int:
        return self.forward + self.backward

    def __add__(self, other: Passes) -> Passes:
        return Passes(self.forward + other.forward, self.backward + other.backward)

    def __sub__(self, other: Passes) -> Passes:
        return Passes(self.forward - other.forward, self.backward - other.backward)

    def per_sample(self, n: int) -> tuple[float, float]:
        """(forward, backward) divided by n points: the mean passes an attack spent on each."""
        return self.forward / n, self.backward / n


class PassCounter(nn.Module):
    """``model`` wrapped so that its forward and backward sample-passes are counted (see the module
    docstring); ``PassCounter(model)(x)`` is ``model(x)``, the same tensor. ``passes`` reads the counts,
    ``reset()`` zeroes them (returning what was counted).

    Parameters
    ----------
    model : nn.Module
        Any model; attributes the counter lacks are read from it.

    Raises
    ------
    ValueError
        ``model`` is not an ``nn.Module``.

    Examples
    --------
    >>> import torch
    >>> from advgrad import PassCounter
    >>> counter = PassCounter(torch.nn.Linear(4, 3))
    >>> x = torch.zeros(5, 4, requires_grad=True)
    >>> (g,) = torch.autograd.grad(counter(x).sum(), x)
    >>> with torch.no_grad():
    ...     _ = counter(x[:2])
    >>> counter.passes
    Passes(forward=7, backward=5)
    """

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise ValueError(f"PassCounter wraps an nn.Module, got {type(model).__name__}")
        super().__init__()
        self.model = model
        self.training = model.training  # the wrapper's mode is the model's (code that reads it sees the same)
        self._lock = threading.Lock()
        self._forward = 0
        self._backward = 0

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        out = self.model(*args, **kwargs)
        n = _samples(out, args)
        with self._lock:
            self._forward += n
        node = out.grad_fn if isinstance(out, Tensor) else None  # None: not differentiable, or not computed here
        if node is not None:
            node.register_prehook(partial(self._add_backward, n))
        return out

    def _add_backward(self, n: int, grad_outputs: object = None) -> None:
        """The hook of a pass's output node: autograd is about to send a gradient back through the pass."""
        with self._lock:
            self._backward += n

    @property
    def passes(self) -> Passes:
        """The sample-passes counted since construction or the last ``reset``."""
        with self._lock:
            return Passes(self._forward, self._backward)

    def reset(self) -> Passes:
        """Zero the counts; returns those counted until now."""
        with self._lock:
            spent = Passes(self._forward, self._backward)
            self._forward = self._backward = 0
        return spent

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "model":
                raise
            return getattr(self.model, name)


class QueryCounter:
    """A model that only answers queries (``QueryModel``), counted apart: ``counter.model`` is a
    ``QueryModel`` asking ``model`` (same answers, same name and kind, every query still counted by
    ``model`` too) whose rows are counted, under a lock, as forward sample-passes (``counter.passes``)."""

    def __init__(self, model: QueryModel) -> None:
        self.inner = model
        self._lock = threading.Lock()
        self._rows = 0
        self.model = QueryModel(self._ask, labels_only=model.labels_only, num_classes=model.num_classes,
                                name=model.name)

    def _ask(self, x: Tensor) -> Tensor:
        with self._lock:
            self._rows += len(x)
        return self.inner(x)

    @property
    def passes(self) -> Passes:
        with self._lock:
            return Passes(self._rows, 0)


def _samples(out: Any, args: tuple[Any, ...]) -> int:
    """The batch size of a pass: the output's first dimension, else the first argument's (1 for a lone
    sample without a batch dimension)."""
    for t in (out, *args[:1]):
        if isinstance(t, Tensor):
            return int(t.shape[0]) if t.ndim else 1
    return 1


def summed(passes: Passes) -> Passes:
    """Every process's ``passes`` added up (under torchrun; a collective call every process makes), the
    same on all of them; in one process, ``passes`` itself."""
    total = distributed.all_sum(torch.tensor([passes.forward, passes.backward], dtype=torch.int64))
    return Passes(int(total[0]), int(total[1]))


class Spent:
    """A tally opened by ``spending``: ``passes``, what the attack passes charged inside it spent."""

    def __init__(self) -> None:
        self.passes = Passes()


_TALLIES: ContextVar[tuple[Spent, ...]] = ContextVar("advgrad_tallies", default=())


@contextmanager
def spending() -> Iterator[Spent]:
    """A tally of the passes charged (``charge``) in this context until the block ends (see the module
    docstring): what a run spends in all, across the attack calls it makes. Tallies nest; each sees every
    charge made while it is open, in this thread's context.

    Returns
    -------
    Iterator[Spent]
        A context manager; its ``Spent.passes`` grows with every ``charge`` until the block ends.

    Examples
    --------
    >>> from advgrad.models.counting import Passes, charge, spending
    >>> with spending() as outer:
    ...     charge(Passes(4, 2))
    ...     with spending() as inner:
    ...         charge(Passes(1, 1))
    >>> outer.passes, inner.passes
    (Passes(forward=5, backward=3), Passes(forward=1, backward=1))
    """
    spent = Spent()
    token = _TALLIES.set((*_TALLIES.get(), spent))
    try:
        yield spent
    finally:
        _TALLIES.reset(token)


def charge(passes: Passes) -> None:
    """Add ``passes`` to every tally open in the caller's context (none open: nothing happens)."""
    for spent in _TALLIES.get():
        spent.passes = spent.passes + passes
