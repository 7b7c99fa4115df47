"""What every black-box attack shares: its arguments checked once, the oracle it asks, its random draws, and
the result it returns.

Queries, per sample, of a decision-based attack (``minimal``): one at x (is it already misclassified? its
scores), those of the search, and one at the example found (its scores for the result, and the model's own
word that it is adversarial). ``queries`` caps their total; the search gets ``queries − 2``. (SPSA, which
reads scores at every step, needs no last query: it counts one at x and its steps.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from advgrad import _validate
from advgrad._runtime import check_dtype
from advgrad.attacks._checks import EpsSpec, check_batch, check_bounds, check_generator, check_radius
from advgrad.attacks.result import AttackResult
from advgrad.losses import margin
from advgrad.models.query import QueryModel, Tally, as_query_model
from advgrad.norms import Norm, NormSpec, Radius, get_norm

ROWS = 1024  # rows per query by default (black-box attacks keep no graph: a large batch is cheap)


@dataclass(frozen=True)
class Problem:
    """One attack call, validated: the batch flattened to (N, D), and everything its search reads."""

    model: QueryModel
    x: Tensor          # (N, ...) the caller's x, detached
    flat: Tensor       # (N, D) a copy
    y: Tensor          # (N,)
    norm: Norm
    eps: Radius | None
    lo: float
    hi: float
    targeted: bool
    queries: int
    generator: torch.Generator | None
    chunk: int

    def rows(self, flat: Tensor) -> Tensor:
        """(M, D) → (M, ...) in the shape the model takes."""
        return flat.view(-1, *self.x.shape[1:])


def problem(model: object, x: Tensor, y: Tensor, eps: EpsSpec | None, *, name: str, norm: NormSpec,
            norms: tuple[str, ...], targeted: bool, bounds: object, queries: int,
            generator: torch.Generator | None, chunk_size: int | None, min_queries: int = 2) -> Problem:
    """Every argument checked once (ValueError, one line each); ``norms``: those the attack implements."""
    xmin, xmax = check_batch(x, y)
    lo, hi = check_bounds(bounds, xmin, xmax)
    qm = as_query_model(model)
    if isinstance(qm.fn, nn.Module):
        check_dtype(qm.fn, x)
    the_norm = get_norm(norm)
    if the_norm.name not in norms:
        raise ValueError(f"{name} supports norm {' or '.join(map(repr, norms))}, got {norm!r}")
    radius = None if eps is None else check_radius("eps", eps, x, positive=False)
    _validate.flag("targeted", targeted)
    _validate.count("queries", queries, min_queries)
    check_generator(generator)
    chunk = ROWS if chunk_size is None else _validate.count("chunk_size", chunk_size)
    x = x.detach()
    return Problem(qm, x, x.flatten(1).clone(), y.detach(), the_norm, radius, lo, hi, targeted, queries,
                   generator, chunk)


class Oracle:
    """The search's view of the model for the samples ``idx`` of the batch (the search numbers them 0..n-1):
    is a row adversarial for its sample, and how many queries each sample has left (one kept for the end)."""

    def __init__(self, p: Problem, tally: Tally, idx: Tensor) -> None:
        self.p, self.tally, self.idx = p, tally, idx
        self.y = p.y[idx]

    def left(self, local: Tensor | None = None) -> Tensor:
        owners = self.idx if local is None else self.idx[local]
        return self.tally.left(owners) - 1

    def adversarial(self, flat: Tensor, local: Tensor) -> Tensor:
        """(M,) bool for the rows flat (M, D) of the samples ``local`` (M,)."""
        labels = self.tally.labels(self.p.rows(flat), self.idx[local])
        return labels == self.y[local] if self.p.targeted else labels != self.y[local]

    def scores(self, flat: Tensor, local: Tensor) -> Tensor:
        """(M, K) scores; ValueError if the model answers labels only."""
        out = self.tally.answers(self.p.rows(flat), self.idx[local])
        if out.ndim == 1:
            raise ValueError(f"{self.p.model.name} answers labels only; this is a score-based attack")
        return out


def draw(p: Problem, shape: tuple[int, ...], kind: str = "uniform") -> Tensor:
    """U[0, 1) or N(0, 1) of ``shape`` from the attack's generator (on its device), in x's dtype and device."""
    device = p.generator.device if p.generator is not None else p.x.device
    make = torch.rand if kind == "uniform" else torch.randn
    return make(shape, generator=p.generator, device=device, dtype=p.x.dtype).to(p.x.device)


def scores_of(answers: Tensor, y: Tensor, model: QueryModel) -> Tensor:
    """Scores (N, K) from answers: scores as they are, labels as one-hot rows (K = the model's number of
    classes when known, else enough for every label and y)."""
    if answers.ndim == 2:
        return answers
    k = model.num_classes or int(max(int(answers.max()), int(y.max()))) + 1
    return torch.nn.functional.one_hot(answers, k).to(torch.get_default_dtype())


def labels_of(answers: Tensor) -> Tensor:
    """(N,) the labels in answers (N,) or (N, K)."""
    return answers if answers.ndim == 1 else answers.argmax(1)


def start(p: Problem) -> tuple[Tally, Tensor, Tensor]:
    """The tally, the answers at x (N, K) or (N,), and which points are already adversarial (N,) bool."""
    n = len(p.x)
    tally = Tally(p.model, n, budget=p.queries, chunk=p.chunk, device=p.x.device)
    everyone = torch.arange(n, device=p.x.device)
    clean = tally.answers(p.x, everyone)
    labels = labels_of(clean)
    if clean.ndim == 2 and bool((p.y >= clean.shape[1]).any()):
        raise ValueError(f"label {int(p.y.max())} is outside the model's {clean.shape[1]} classes "
                         f"(0..{clean.shape[1] - 1})")
    return tally, clean, (labels == p.y) if p.targeted else (labels != p.y)


def finish(p: Problem, tally: Tally, clean: Tensor, fooled: Tensor, found: Tensor, adv: Tensor) -> AttackResult:
    """The minimal-norm result: ``adv`` (N, D) where ``found`` (and within ε, when given) and the model, asked
    once more there, agrees; x elsewhere. ``fooled``: adversarial at x already (success at distance 0)."""
    dist = p.norm.measure(adv - p.flat)
    ok = found & ~fooled
    if p.eps is not None:
        ok &= dist <= (p.eps if isinstance(p.eps, Tensor) else torch.full_like(dist, p.eps))
    ask = ok.nonzero().squeeze(1)
    scores = scores_of(clean, p.y, p.model).clone()
    if len(ask):
        final = tally.answers(p.rows(adv[ask]), ask)
        labels = labels_of(final)
        agrees = (labels == p.y[ask]) if p.targeted else (labels != p.y[ask])
        ok[ask[~agrees]] = False
        scores[ask[agrees]] = scores_of(final, p.y, p.model)[agrees].to(scores.dtype)
    x_adv = torch.where(ok[:, None], adv, p.flat).view_as(p.x)
    success = ok | fooled
    distance = torch.where(ok, dist, torch.where(fooled, 0.0, math.inf))
    return AttackResult(x_adv, success, margin(scores, p.y), scores, distance=distance, queries=tally.counts)


Search = Callable[["Oracle", Tensor], tuple[Tensor, Tensor]]


def minimal(p: Problem, search: Search) -> AttackResult:
    """A decision-based minimal-norm attack: the query at x, ``search(oracle, labels at x (N,))`` → (points
    (n, D), found (n,)) on the samples not already adversarial, and the result."""
    with p.model.session():
        tally, clean, fooled = start(p)
        adv, found = p.flat.clone(), torch.zeros_like(fooled)
        idx = (~fooled).nonzero().squeeze(1)
        if len(idx):
            adv[idx], found[idx] = search(Oracle(p, tally, idx), labels_of(clean))
        return finish(p, tally, clean, fooled, found, adv)


def within(p: Problem, dist: Tensor, idx: Tensor) -> Tensor:
    """(n,) bool: ‖δ‖ ≤ ε for the samples ``idx`` (all False without ε: a minimal-norm search never stops early)."""
    if p.eps is None:
        return torch.zeros_like(dist, dtype=torch.bool)
    return dist <= (p.eps[idx] if isinstance(p.eps, Tensor) else p.eps)
