"""SPSA (Uesato, O'Donoghue, van den Oord & Kohli, ICML 2018, arXiv:1802.05666): a score-based L∞ attack
that estimates the gradient of the margin from finite differences along random sign directions.

With the loss f = z_y − max_{j≠y} z_j (targeted: max_{j≠t} z_j − z_t), to be minimised, each step estimates
    ĝ = 1/S Σ_s [f(x′ + δ·v_s) − f(x′ − δ·v_s)] / (2δ·v_s)      v_s ∈ {−1, 1}^D Rademacher
from 2S queries, takes an Adam step on the perturbation d (x′ = x + d) and projects it: d ← clip(d, −ε, ε),
then x + d into the bounds. One more query at the new x′ gives its scores; a sample leaves once it is
adversarial. The steps follow from the budget: ⌊(queries − 1)/(2S + 1)⌋ (one query for x itself).

As in advertorch and torchattacks (whose ``SPSA`` this follows operation for operation), the directions of
a step are SHARED by the batch: one draw of S sign vectors per step (``bernoulli_`` on an (S, 1, ...)
tensor from ``generator``), so a sample's path does not depend on which others are still attacked, and the
same seed gives torchattacks' ``SPSA(eps, delta, lr, nb_iter, nb_sample=S, max_batch_size=S)`` draws.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from advgrad import _validate
from advgrad.attacks._checks import EpsSpec, is_zero
from advgrad.attacks.blackbox._oracle import Oracle, Problem, labels_of, problem, start
from advgrad.attacks.result import AttackResult
from advgrad.losses import margin
from advgrad.models.query import QueryModel

BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults, as torchattacks runs it


def _f(oracle: Oracle, rows: Tensor, local: Tensor) -> tuple[Tensor, Tensor]:
    """(f (M,), scores (M, K)) at the rows (M, D): f the loss to minimise."""
    z = oracle.scores(rows, local)
    m = margin(z, oracle.y[local])
    return (m if oracle.p.targeted else -m), z


def _estimate(oracle: Oracle, at: Tensor, local: Tensor, v: Tensor, delta: float) -> Tensor:
    """ĝ (n, D) at ``at`` (n, D) from the shared directions v (S, 1, D)."""
    s, (n, d) = len(v), at.shape
    ats = at.unsqueeze(0).expand(s, n, d).reshape(s * n, d)
    vs = v.expand(s, n, d).reshape(s * n, d)
    owners = local.repeat(s)
    df = _f(oracle, ats + delta * vs, owners)[0] - _f(oracle, ats - delta * vs, owners)[0]  # (S·n,)
    grad = (df.view(-1, 1) / (2.0 * delta * vs)).view(s, n, d).sum(0)
    return grad / s


def _adam(d: Tensor, grad: Tensor, m: Tensor, v: Tensor, t: int, lr: float) -> None:
    """torch.optim.Adam's step (single-tensor form, default betas and eps) on d, in place."""
    m.lerp_(grad, 1 - BETAS[0])
    v.mul_(BETAS[1]).addcmul_(grad, grad, value=1 - BETAS[1])
    step = lr / (1 - BETAS[0] ** float(t))
    denom = (v.sqrt() / (1 - BETAS[1] ** float(t)) ** 0.5).add_(ADAM_EPS)
    d.addcdiv_(m, denom, value=-step)


def _clip(p: Problem, x: Tensor, d: Tensor, eps: float | Tensor) -> None:
    """d ← clip(d, −ε, ε), then x + d into the bounds (torchattacks' linf_clamp_, in place)."""
    if isinstance(eps, Tensor):
        e = eps[:, None]
        dc = torch.minimum(torch.maximum(d, -e), e)
    else:
        dc = torch.clamp(d, min=-eps, max=eps)
    x_adv = torch.clamp(x + dc, min=p.lo, max=p.hi)
    d += x_adv - x - d


def _search(p: Problem, oracle: Oracle, samples: int, delta: float, lr: float, scores: Tensor) -> Tensor:
    """x′ (n, D) for the samples of ``oracle``; ``scores`` (n, K) updated in place at each sample's last x′."""
    x = p.flat[oracle.idx]
    n, d_ = x.shape
    eps = p.eps[oracle.idx] if isinstance(p.eps, Tensor) else float(p.eps or 0.0)
    d, m, v = torch.zeros_like(x), torch.zeros_like(x), torch.zeros_like(x)
    live = torch.arange(n, device=x.device)
    for t in range(1, (p.queries - 1) // (2 * samples + 1) + 1):
        device = p.generator.device if p.generator is not None else x.device
        signs = torch.empty((samples, 1, d_), dtype=x.dtype, device=device).bernoulli_(generator=p.generator)
        signs = signs.mul_(2.0).sub_(1.0).to(x.device)  # (S, 1, D)
        grad = _estimate(oracle, x[live] + d[live], live, signs, delta)
        dl, ml, vl = d[live], m[live], v[live]
        _adam(dl, grad, ml, vl, t, lr)
        _clip(p, x[live], dl, eps[live] if isinstance(eps, Tensor) else eps)
        d[live], m[live], v[live] = dl, ml, vl
        z = oracle.scores(x[live] + d[live], live)
        scores[live] = z.to(scores.dtype)
        fooled = (labels_of(z) == oracle.y[live]) if p.targeted else (labels_of(z) != oracle.y[live])
        live = live[~fooled]
        if len(live) == 0:
            break
    return x + d


def _run(p: Problem, samples: int, delta: float, lr: float) -> AttackResult:
    with p.model.session():
        return _attack(p, samples, delta, lr)


def _attack(p: Problem, samples: int, delta: float, lr: float) -> AttackResult:
    tally, clean, fooled = start(p)
    if clean.ndim == 1:
        raise ValueError(f"{p.model.name} answers labels only; SPSA is a score-based attack")
    scores, x_adv = clean.clone(), p.flat.clone()
    idx = (~fooled).nonzero().squeeze(1)
    if len(idx) and not is_zero(p.eps if p.eps is not None else 0.0):
        sub = scores[idx]
        x_adv[idx] = _search(p, Oracle(p, tally, idx), samples, delta, lr, sub)
        scores[idx] = sub
    labels = labels_of(scores)
    success = (labels == p.y) if p.targeted else (labels != p.y)
    return AttackResult(x_adv.view_as(p.x), success, margin(scores, p.y), scores, queries=tally.counts)


def spsa(model: nn.Module | QueryModel, x: Tensor, y: Tensor, eps: EpsSpec, *, norm: str = "inf",
         queries: int = 10_000, samples: int = 128, delta: float = 0.01, lr: float = 0.01,
         targeted: bool = False, bounds: tuple[float, float] = (0.0, 1.0),
         generator: torch.Generator | None = None, chunk_size: int | None = None) -> AttackResult:
    """SPSA (Uesato et al. 2018): an L∞ attack on the margin from score queries only.

    See the module docstring for the step. A fixed-budget attack: success is an adversarial x′ with
    ‖x′ − x‖∞ ≤ ε (always true of x′).

    Parameters
    ----------
    model, x, y
        An nn.Module or QueryModel (only queried; it must answer scores); inputs (N, ...) in ``bounds``;
        labels (targets) (N,).
    eps : float or Tensor
        The L∞ radius (one per sample as an (N,) tensor).
    norm : "inf"
    queries : int
        Queries per sample at most: 1 at x, then 2·samples + 1 per step.
    samples : int
        S, direction pairs per gradient estimate (torchattacks' nb_sample).
    delta, lr : float
        The finite-difference size δ and Adam's learning rate (0.01 each, as torchattacks).
    targeted, bounds, generator, chunk_size
        As every attack; ``chunk_size`` rows per query (default 1024), speed only.

    Returns
    -------
    AttackResult
        With ``queries`` (N,); ``loss`` the margin and ``logits`` the scores at x′.

    Raises
    ------
    ValueError
        For a bad argument (one line naming it), a norm other than inf, or a model that answers labels only.

    Examples
    --------
    >>> import torch
    >>> from advgrad import spsa
    >>> _ = torch.manual_seed(0)  # the model's initial weights
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> x = torch.rand(4, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    >>> res = spsa(model, x, model(x).argmax(1), 0.3, queries=600, samples=16,
    ...            generator=torch.Generator().manual_seed(0))
    >>> bool(((res.x_adv - x).abs().amax((1, 2, 3)) <= 0.3).all()), int(res.queries.max()) <= 600
    (True, True)

    References
    ----------
    Jonathan Uesato, Brendan O'Donoghue, Aaron van den Oord, Pushmeet Kohli, "Adversarial Risk and the
    Dangers of Evaluating Against Weak Attacks", ICML 2018, arXiv:1802.05666.
    """
    if eps is None:
        raise ValueError("SPSA is a fixed-budget attack: give eps, the L∞ radius")
    p = problem(model, x, y, eps, name="SPSA", norm=norm, norms=("inf",), targeted=targeted, bounds=bounds,
                queries=queries, generator=generator, chunk_size=chunk_size, min_queries=1)
    return _run(p, _validate.count("samples", samples), _validate.number("delta", delta, minimum=0.0, strict=True),
                _validate.number("lr", lr, minimum=0.0, strict=True))
