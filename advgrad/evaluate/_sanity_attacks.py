"""The sanity checks that attack PGD's survivors with something else — random sign noise, the score-based
Square search, a decision-based attack that sees only labels — and count what they fool that PGD missed."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from advgrad._runtime import predict, spans
from advgrad.attacks.noise import sign_noise
from advgrad.attacks.square import square
from advgrad.catalog import ATTACKS
from advgrad.evaluate._sanity_base import Context, SanityCheck


def sign_noise_check(c: Context) -> SanityCheck:
    generator = c.noise
    fooled = torch.zeros(len(c.y), dtype=torch.bool, device=c.x.device)
    idx = c.result.correct.nonzero().squeeze(1)
    for part in spans(len(idx), c.config.block):
        b = idx[part]
        x_noise = sign_noise(c.x[b], c.check_eps, bounds=c.config.bounds, generator=generator)
        fooled[b] = predict(c.model, x_noise, c.config.block) != c.y[b]
    acc_noise = float((c.result.correct & ~fooled).float().mean())
    acc_base = float(c.base.float().mean())
    extra = float((c.base & fooled).float().mean())
    return SanityCheck("sign-noise", extra <= c.config.tolerance,
                       f"at ε = {c.check_eps:g}: random sign noise {acc_noise:.1%} vs PGD {acc_base:.1%}; "
                       f"noise fools {extra:.1%} of points PGD missed",
                       {"eps": c.check_eps, "accuracy": acc_noise, "accuracy_pgd": acc_base, "extra_fooled": extra})


def _on_survivors(c: Context, attack: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """(N,) bool: the points PGD left standing that ``attack(x, y) -> success`` fools, block by block."""
    fooled = torch.zeros(len(c.y), dtype=torch.bool, device=c.x.device)
    survivors = c.base.nonzero().squeeze(1)
    for part in spans(len(survivors), c.config.block):
        b = survivors[part]
        fooled[b] = attack(c.x[b], c.y[b]).to(fooled.device)
    return fooled


def _skipped(name: str, attack: str, c: Context) -> SanityCheck:
    return SanityCheck(name, True, f"skipped: {attack} attacks images (N, C, H, W) under "
                       f"{'/'.join(ATTACKS[attack].norms)}; here {tuple(c.x.shape[1:])}, L{c.config.norm}",
                       {"skipped": True})


def black_box(c: Context) -> SanityCheck:
    """Square (5,000-query budget in AutoAttack; here ``config.queries``) on the points PGD left standing."""
    if c.x.ndim != 4 or c.config.norm not in ATTACKS["square"].norms:
        return _skipped("black-box", "square", c)
    fooled = _on_survivors(c, lambda x, y: square(c.model, x, y, c.check_eps, norm=c.config.norm,
                                                  queries=c.config.queries, bounds=c.config.bounds,
                                                  seed=c.config.seed + 104729).success)
    acc_base, extra = float(c.base.float().mean()), float(fooled.float().mean())
    acc_box = float((c.base & ~fooled).float().mean())
    return SanityCheck("black-box", extra <= c.config.tolerance,
                       f"at ε = {c.check_eps:g}: Square ({c.config.queries} queries) on PGD's survivors fools "
                       f"{extra:.1%} more (PGD {acc_base:.1%} → PGD + black-box {acc_box:.1%})",
                       {"eps": c.check_eps, "queries": c.config.queries, "accuracy_pgd": acc_base,
                        "accuracy_combined": acc_box, "extra_fooled": extra})


def hard_label(c: Context) -> SanityCheck:
    """A decision-based attack (RayS under L∞, HopSkipJump under L2; ``config.queries`` each) on the points
    PGD left standing: it sees only the top-1 label, so where it fools what the gradient missed, the
    gradient is likely masked."""
    name = {"inf": "rays", "2": "hopskipjump"}.get(c.config.norm, "rays")
    if c.x.ndim != 4 or c.config.norm not in ATTACKS[name].norms:
        return _skipped("hard-label", name, c)
    fn = ATTACKS[name].impl
    seeded = {"generator": torch.Generator().manual_seed(c.config.seed + 15485863)} if name == "hopskipjump" else {}
    fooled = _on_survivors(c, lambda x, y: fn(c.model, x, y, c.check_eps, norm=c.config.norm,
                                              queries=c.config.queries, bounds=c.config.bounds, **seeded).success)
    extra = float(fooled.float().mean())
    return SanityCheck("hard-label", extra <= c.config.tolerance,
                       f"at ε = {c.check_eps:g}: {ATTACKS[name].title} ({c.config.queries} queries, labels only) "
                       f"on PGD's survivors fools {extra:.1%} more", {"eps": c.check_eps, "attack": name,
                                                                       "queries": c.config.queries,
                                                                       "extra_fooled": extra})
