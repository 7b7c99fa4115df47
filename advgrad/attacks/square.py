"""Square Attack (Andriushchenko, Croce, Flammarion & Hein, ECCV 2020, arXiv:1912.00049), as AutoAttack runs it.

A score-based black-box attack: it reads the logits z and never a gradient. It minimises the margin
    L(x′) = z_y(x′) − max_{j≠y} z_j(x′)      (x′ is misclassified once L ≤ 0)
by random search over the ε-ball ∩ bounds. Query t (0-based) changes one square window of side
s ≈ √(p_t·H·W), with p_t = p_init halved after 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 queries,
and the change is kept for a point when its margin strictly decreases. Only points with L > 0 are queried.

- L∞: start from vertical stripes x ± ε (one sign per column and channel); a query adds ±2ε (one sign per
  channel) on the window and projects onto [x − ε, x + ε] ∩ bounds, so the window jumps to x ± ε.
- L2: start from a 5 × 5 grid of tiles, each ± a unit-norm pattern η_s (``_square_steps._eta``), scaled to
  ‖δ‖ = ε; a query moves the perturbation mass of a second window into the first, redrawn as ± the bump plus the old
  content, with the norm the budget allows, then rescales δ to ‖δ‖ = ε and clips to the bounds.
- L1: as L2 with L1 norms and a sharper bump (weights 1/(k+1)⁴, unit L1 norm), and instead of the rescaling
  the projection onto the box ∩ L1 ball of radius ε·(1 − 10⁻⁶) (``advgrad.norms.l1_box_correction``). The
  reference does not clip after that projection, whose x + δ + r can leave the bounds by one rounding; advgrad
  searches on the same points and clips only the returned ones (its flags are those of the clipped points).

Parity with AutoAttack's reference (pyautoattack 0.2.0 ``SquareAttack(p_init=.8, loss='margin',
resc_schedule=False)``): the reference reseeds torch's global RNG and draws uniforms from it; here a
private CPU generator seeded alike makes the same draws in the same order (one uint32 per float32 uniform),
and every float operation is the reference's, so on one batch in one piece the examples are bit-identical.
The draws of a query are SHARED by the batch: the window position(s) and, for L∞, the channel signs (for
L2 the signs are per point). So a point's result depends on its position in the batch and on the batch's
size (the start is drawn for the whole batch first) and, for L2, on when the other points were fooled
(each query draws signs only for the points still queried): parity holds for the same batch only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
from torch import Tensor, nn

from advgrad import _validate
from advgrad._runtime import frozen_eval
from advgrad.attacks._checks import check_batch, check_bounds, check_radius
from advgrad.attacks._chunks import chunk_for
from advgrad.attacks._square_steps import _forward, _margin, _query_l2, _query_linf, _start_l2, _start_linf
from advgrad.attacks.result import AttackResult
from advgrad.losses import margin
from advgrad.models.query import QueryModel
from advgrad.norms import NormSpec, get_norm

HALVE_AFTER = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)  # queries after which p halves


def p_schedule(it: int, p_init: float = 0.8) -> float:
    """The share p of the image that query ``it`` (0-based) changes: p_init, halved after each of
    ``HALVE_AFTER`` (Andriushchenko et al. §4; AutoAttack does not rescale it to the query budget)."""
    return p_init / 2 ** sum(it > t for t in HALVE_AFTER)


def window_side(p: float, c: int, h: int, w: int, norm: str = "inf") -> int:
    """Side s of the square window covering a share p of an (h, w) image: round(√(p·h·w)), at least 1
    (L∞) or an odd number ≥ 3 (L2, L1), at most min(h, w). 28 × 28 at p = 0.8: 25."""
    side = round(math.sqrt(p * (c * h * w) / c))  # the reference's expression (n_features / c)
    if norm != "inf":
        side = max(side, 3)
        side += 1 - side % 2
    return min(max(side, 1), h, w)


def _check_labels(logits: Tensor, y: Tensor) -> None:
    k = logits.shape[1]
    if bool((y >= k).any()):
        raise ValueError(f"label {int(y.max())} is outside the model's {k} classes (0..{k - 1})")


# --- one run and the attack ------------------------------------------------------------------------

def _search(model: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, eps: float, norm: str, queries: int,
            p_init: float, lo: float, hi: float, g: torch.Generator, chunk: int) -> tuple[Tensor, Tensor]:
    """One run on (x, y) (the reference's attack_single_run): the best point per sample (n, c, h, w) and the
    queries spent on it (n,). Points leave the search once their margin is ≤ 0 (their point is kept);
    the rest is a compact ``live`` set, re-indexed only when someone leaves."""
    n, c, h, w = x.shape
    linf = norm == "inf"
    best = _start_linf(x, eps, lo, hi, g) if linf else _start_l2(x, eps, lo, hi, g, norm)
    margin = _margin(_forward(model, best, chunk), y)
    spent = torch.ones(n, dtype=torch.long, device=x.device)
    if bool((margin < 0).all()):
        return best, spent
    # L∞: the box [x − ε, x + ε] ∩ bounds (n, 2, c, h, w); L2 and L1: x itself
    aux = torch.stack(((x - eps).clamp_(min=lo), (x + eps).clamp_(max=hi)), 1) if linf else x
    live = (margin > 0).nonzero().squeeze(1)
    cur, ys, m, aux = best[live], y[live], margin[live], aux[live]
    for it in range(queries):
        s = window_side(p_schedule(it, p_init), c, h, w, norm)
        # this query's uniforms, made even when no point is live (the reference draws, then stops)
        u = torch.rand(2 + c if linf else 5 + len(live) * c, generator=g)
        if len(live):
            if linf:
                m = _query_linf(model, cur, ys, m, aux, eps, s, u, chunk)
            else:
                m = _query_l2(model, cur, ys, m, aux, eps, s, u, lo, hi, chunk, norm)
            fooled = m <= 0
            if bool(fooled.any()):
                best[live[fooled]], spent[live[fooled]] = cur[fooled], it + 2
                keep = ~fooled
                live, cur, ys, m, aux = live[keep], cur[keep], ys[keep], m[keep], aux[keep]
        if len(live) == 0:
            break
    best[live], spent[live] = cur, it + 2
    return best, spent


def _check_options(x: Tensor, eps: float | Tensor, norm: str, p_init: float, seed: int) -> float:
    if not isinstance(eps, (int, float)):  # the project's rule: bad arguments raise ValueError
        raise ValueError(  # noqa: TRY004
            f"eps must be one number for the batch, got a tensor of shape {tuple(eps.shape)}")
    if norm not in ("inf", "2", "1"):
        raise ValueError(f"Square Attack supports norm 'inf', '2' or '1', got {norm!r}")
    if x.ndim != 4:
        raise ValueError(f"Square Attack needs images (N, C, H, W), got shape {tuple(x.shape)}")
    if norm != "inf" and x.shape[2] < 5:
        raise ValueError(f"L{norm} Square Attack tiles its start in 5 rows of ⌊H/5⌋ pixels: H must be ≥ 5, "
                         f"got shape {tuple(x.shape)}")
    if isinstance(p_init, bool) or not isinstance(p_init, (int, float)) or not 0 < p_init <= 1:
        raise ValueError(f"p_init must be a number in (0, 1], got {p_init!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise ValueError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    return float(eps)


def square(model: nn.Module | QueryModel, x: Tensor, y: Tensor, eps: float, *, norm: NormSpec = "inf",
           queries: int = 5000, p_init: float = 0.8, restarts: int = 1, bounds: tuple[float, float] = (0.0, 1.0),
           seed: int = 0, chunk_size: int | None = None) -> AttackResult:
    """Square Attack (Andriushchenko et al. 2020), untargeted, margin loss, as AutoAttack runs it.

    Minimises z_y − max_{j≠y} z_j by random search in ‖x′ − x‖ ≤ ε (L∞, L2 or L1) ∩ ``bounds``, ``queries``
    queries per run (see the module docstring). Points the model misclassifies at x are not attacked.
    Each of ``restarts`` runs attacks the points still classified correctly, continuing the random
    stream (seeded with ``seed``: a private generator, torch's global RNG is untouched).

    Returns per sample: ``x_adv`` = the first misclassified point found, else x itself (as the reference:
    the best unsuccessful point is discarded); ``success`` = argmax f(x_adv) ≠ y; ``loss`` = the margin
    max_{j≠y} z_j − z_y at x_adv; ``logits`` at x_adv; ``queries`` spent on each point: per run 1 for the
    start and 1 per query while the point was unbroken, summed over restarts, as the reference counts; 0 for
    points the model already misclassifies (they are not attacked).

    ``chunk_size`` splits forward passes (default ``auto_chunk_size``). With one piece (chunk_size ≥ N)
    the examples equal pyautoattack 0.2.0's ``SquareAttack(p_init, n_queries=queries, n_restarts=restarts,
    seed=seed, loss='margin', resc_schedule=False)`` on the same batch bit for bit (float32, bounds (0, 1);
    L1: clipped to the bounds, see the module docstring);
    in chunks, a forward pass of another batch size may round a logit differently. ``eps == 0`` returns
    x without querying. ``model`` may be a ``QueryModel`` that answers scores (an ONNX graph, an API): Square
    only ever queries it. Square never differentiates: every forward pass runs under ``torch.no_grad`` (with
    ``chunk_size=None`` on the CPU, ``auto_chunk_size`` may first probe the model once with autograd).

    Parameters
    ----------
    model : nn.Module or QueryModel
        Returns scores (N, K).
    x, y : Tensor
        (N, ...) inputs within ``bounds`` and (N,) labels.
    eps : float
        The radius ε.
    norm : {"inf", "2", "1"}
    queries, p_init, restarts, seed, chunk_size
        Queries per run, the initial square size p, runs, the private generator's seed, samples per pass.
    bounds : (float, float)

    Returns
    -------
    AttackResult
        As above, with ``queries``.

    Examples
    --------
    >>> import torch
    >>> from advgrad import square
    >>> _ = torch.manual_seed(0)  # the model's initial weights
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> x = torch.rand(4, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    >>> result = square(model, x, model(x).argmax(1), 0.3, queries=50)
    >>> bool(((result.x_adv - x).abs().amax((1, 2, 3)) <= 0.3 + 1e-6).all()), int(result.queries.max()) <= 51
    (True, True)

    References
    ----------
    Andriushchenko, Croce, Flammarion, Hein, "Square Attack: a query-efficient black-box adversarial attack
    via random search", ECCV 2020, arXiv 1912.00049.
    """
    xmin, xmax = check_batch(x, y)
    name = get_norm(norm).name
    lo, hi = check_bounds(bounds, xmin, xmax)
    eps_ = _check_options(x, check_radius("eps", eps, x, positive=False), name, p_init, seed)
    queries, restarts = _validate.count("queries", queries), _validate.count("restarts", restarts)
    x = x.detach()
    if isinstance(model, QueryModel):  # a model that only answers queries: Square needs its scores
        if model.labels_only:
            raise ValueError(f"square needs the model's scores, but {model.name} answers labels only: use a "
                             "decision-based attack (hopskipjump, rays, boundary)")
        chunk = chunk_size or len(x)
        session: AbstractContextManager[object] = model.session()
    else:
        chunk = chunk_for(chunk_size, model, x)
        session = frozen_eval(model)
    with session, torch.no_grad():
        logits = _forward(model, x, chunk)  # (N, K) at x
        _check_labels(logits, y)
        robust = logits.max(dim=1).indices == y  # the reference's clean check (its tie-breaking)
        x_adv, spent = x.clone(), torch.zeros(len(x), dtype=torch.long, device=x.device)
        g = torch.Generator().manual_seed(seed)
        for _ in range(restarts if eps_ > 0 else 0):
            idx = robust.nonzero().squeeze(1)  # (n,) still classified correctly
            if len(idx) == 0:
                break
            best, used = _search(model, x[idx], y[idx], eps_, name, queries, float(p_init), lo, hi, g, chunk)
            if name == "1":  # the reference's last projection can leave the box by a rounding
                best.clamp_(lo, hi)
            z = _forward(model, best, chunk)
            fooled = z.max(dim=1).indices != y[idx]
            hit = idx[fooled]
            x_adv[hit], logits[hit], robust[hit] = best[fooled], z[fooled], False
            spent[idx] += used
    return AttackResult(x_adv, ~robust, margin(logits, y), logits, queries=spent)
