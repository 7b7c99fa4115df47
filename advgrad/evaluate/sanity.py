"""Checks that flag gradient masking and broken evaluations, after Carlini et al. (2019, "On evaluating
adversarial robustness") and AutoAttack's ``checks.py``. Each check is one function from a ``Context``
(the model, the data, the sweep and the config) to a ``SanityCheck``: ok or warn, with its numbers.
``CHECKS`` is their list, in report order; ``sanity_report`` runs them all.

1. ``monotone``: accuracy never rises with ε, for every attack.
2. ``full-range``: PGD at ε = hi − lo (any image within the bounds is reachable) is at or below chance, 1/K.
3. ``pgd-vs-fgsm``: PGD accuracy ≤ FGSM accuracy at every ε.
4. ``steps-restarts``: PGD with twice the steps and one more restart does not raise accuracy (and does not
   lower it by more than 3× the slack: the base attack had converged).
5. ``gradients``: few correctly classified points have an all-zero or non-finite input gradient ∂J/∂X.
6. ``sign-noise``: random sign noise at ε fools no point that PGD left standing.
7. ``black-box``: the score-based square search fools no point that PGD left standing.
8. ``hard-label``: a decision-based attack (RayS under L∞, HopSkipJump under L2), which sees only the
   top-1 label, fools no point that PGD left standing (else the gradient is likely masked).
9. ``randomised``: two forward passes on the same inputs agree (else: AutoAttack's ``rand`` version, EOT).
10. ``logits``: the outputs are logits, not probabilities (softmax inside flattens the loss's gradient).
11. ``autoattack-vs-pgd``: AutoAttack (when run) leaves no more points standing than the best PGD-family
    attack (it contains APGD: a higher accuracy is a bug).

The checks that need extra attacks run them at ``check_eps`` (default: the lower median of the positive ε
of the sweep), with slack ``config.tolerance`` (a fraction of the samples).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from advgrad._runtime import logits, model_device, spans
from advgrad.attacks import input_gradient
from advgrad.attacks.runner import Journal
from advgrad.configs import EvalConfig
from advgrad.evaluate._sanity_attacks import black_box, hard_label, sign_noise_check
from advgrad.evaluate._sanity_base import Context
from advgrad.evaluate._sanity_base import SanityCheck as SanityCheck  # re-exported: the report's line type
from advgrad.evaluate.progress import Progress, Tally
from advgrad.evaluate.robust import SweepResult, sweep


def monotone(c: Context) -> SanityCheck:
    rises = []
    for attack in dict.fromkeys(a for a, _ in c.accuracy):
        curve = [c.accuracy[(attack, e)] for e in c.grid if (attack, e) in c.accuracy]
        rises += [(attack, b - a) for a, b in zip(curve, curve[1:]) if b > a + c.config.tolerance]
    return SanityCheck("monotone", not rises, "accuracy never rises with ε" if not rises else
                       "accuracy rises with ε: " + ", ".join(f"{a} +{d:.1%}" for a, d in rises),
                       {"largest_rise": max((d for _, d in rises), default=0.0)})


def full_range(c: Context) -> SanityCheck:
    lo, hi = c.config.bounds
    full = float(hi - lo)
    k = int(logits(c.model, c.x[:1]).shape[1])
    acc = float((c.result.correct & ~c.pgd_fooled(full, c.config.seed)).float().mean())
    return SanityCheck("full-range", acc <= 1.0 / k + c.config.tolerance,
                       f"PGD accuracy at ε = {full:g} (the full bounds range) is {acc:.1%}; chance is {1 / k:.1%}",
                       {"eps": full, "accuracy": acc, "chance": 1.0 / k})


def pgd_vs_fgsm(c: Context) -> SanityCheck | None:
    if not {"fgsm", "pgd"} <= set(c.config.attacks):
        return None
    gaps = [(e, c.accuracy[("pgd", e)] - c.accuracy[("fgsm", e)]) for e in c.grid
            if ("pgd", e) in c.accuracy and ("fgsm", e) in c.accuracy]
    worse = [(e, d) for e, d in gaps if d > c.config.tolerance]
    return SanityCheck("pgd-vs-fgsm", not worse, "PGD accuracy ≤ FGSM accuracy at every ε" if not worse else
                       "PGD is weaker than FGSM at " + ", ".join(f"ε={e:g} (+{d:.1%})" for e, d in worse),
                       {"largest_gap": max((d for _, d in gaps), default=0.0)})


def steps_restarts(c: Context) -> SanityCheck:
    cfg, tol = c.config, c.config.tolerance
    acc_base = float(c.base.float().mean())
    stronger = c.pgd_fooled(c.check_eps, cfg.seed + 7919, steps=2 * cfg.steps, restarts=cfg.restarts + 1)
    acc_strong = float((c.result.correct & ~stronger).float().mean())
    ok = acc_base - 3 * tol <= acc_strong <= acc_base + tol
    return SanityCheck(
        "steps-restarts", ok,
        f"at ε = {c.check_eps:g}: PGD-{cfg.steps}×{cfg.restarts} {acc_base:.1%}, "
        f"PGD-{2 * cfg.steps}×{cfg.restarts + 1} {acc_strong:.1%}"
        + ("" if ok else (" (stronger attack raised accuracy)" if acc_strong > acc_base
                          else " (the base attack has not converged)")),
        {"eps": c.check_eps, "accuracy": acc_base, "accuracy_stronger": acc_strong})


def gradients(c: Context) -> SanityCheck:
    idx = c.result.correct.nonzero().squeeze(1)
    bad = 0
    for part in spans(len(idx), c.config.block):
        b = idx[part]
        g = input_gradient(c.model, c.x[b], c.y[b]).flatten(1)
        bad += int(((g == 0).all(1) | ~torch.isfinite(g).all(1)).sum())
    share = bad / max(1, len(idx))
    return SanityCheck("gradients", share <= c.config.tolerance,
                       f"{share:.1%} of {len(idx)} correctly classified points have a zero or non-finite ∂J/∂X",
                       {"share": share, "count": bad, "n": len(idx)})


def randomised(c: Context) -> SanityCheck:
    """Two forward passes on the same inputs must agree: a model that draws randomness at test time hides
    behind it, and needs attacks that average their gradients over draws (AutoAttack's "rand": EOT)."""
    x = c.x[:c.config.block]
    first, second = logits(c.model, x), logits(c.model, x)
    gap = float((first - second).abs().max())
    return SanityCheck("randomised", gap == 0.0, "two forward passes on the same inputs agree" if gap == 0.0 else
                       f"two forward passes on the same inputs differ by up to {gap:.3g}: a randomised model? "
                       "evaluate it with AutoAttack's version 'rand' (gradients averaged over draws)",
                       {"largest_difference": gap})


def logits_check(c: Context) -> SanityCheck:
    """Attacks climb the loss of the logits; a model that outputs probabilities (softmax inside) flattens
    the cross-entropy's gradient where it is confident."""
    z = logits(c.model, c.x[:c.config.block])
    softmax_like = bool((z >= 0).all()) and bool(torch.allclose(z.sum(1), torch.ones(len(z), dtype=z.dtype),
                                                                atol=1e-4))
    in_unit = bool(((z >= 0) & (z <= 1)).all())
    ok = not (softmax_like or in_unit)
    return SanityCheck("logits", ok, "the outputs look like logits" if ok else
                       "the outputs look like probabilities (" + ("rows sum to 1" if softmax_like else "all in [0, 1]")
                       + "): remove the final softmax/sigmoid and attack the logits", {"probabilities": not ok})


def autoattack_vs_pgd(c: Context) -> SanityCheck | None:
    """AutoAttack includes APGD, a stronger PGD: its accuracy above the best PGD-family attack's is a bug."""
    rivals = [a for a in c.config.attacks if a in ("fgsm", "pgd", "mifgsm", "apgd-ce", "apgd-dlr", "apgd-t")]
    if "autoattack" not in c.config.attacks or not rivals:
        return None
    gaps = [(e, c.accuracy[("autoattack", e)] - min(c.accuracy[(a, e)] for a in rivals)) for e in c.grid
            if ("autoattack", e) in c.accuracy]
    worse = [(e, d) for e, d in gaps if d > c.config.tolerance]
    return SanityCheck("autoattack-vs-pgd", not worse,
                       f"AutoAttack accuracy ≤ the best of {', '.join(rivals)} at every ε" if not worse else
                       "AutoAttack is weaker than " + "/".join(rivals) + " at "
                       + ", ".join(f"ε={e:g} (+{d:.1%})" for e, d in worse) + ": a bug, please report it",
                       {"largest_gap": max((d for _, d in gaps), default=0.0)})


# The report, in order; a check may decline (None) when the evaluation lacks what it compares.
CHECKS: tuple[tuple[str, Callable[[Context], SanityCheck | None]], ...] = (
    ("monotone", monotone), ("full-range", full_range), ("pgd-vs-fgsm", pgd_vs_fgsm),
    ("steps-restarts", steps_restarts), ("gradients", gradients), ("sign-noise", sign_noise_check),
    ("black-box", black_box), ("hard-label", hard_label), ("randomised", randomised), ("logits", logits_check),
    ("autoattack-vs-pgd", autoattack_vs_pgd),
)


def _lower_median(values: Sequence[float]) -> float:
    vals = sorted(values)
    return vals[(len(vals) - 1) // 2]


def sanity_report(model: nn.Module, x: Tensor, y: Tensor, result: SweepResult | None = None, *,
                  config: EvalConfig | None = None, check_eps: float | None = None,
                  progress: Progress | None = None, journal: Journal | None = None) -> list[SanityCheck]:
    """Every check of ``CHECKS``. ``result`` is a ``sweep`` over (x, y) with ``config`` (computed if absent).
    ``progress(done, total)``: N per check.

    Parameters
    ----------
    model : nn.Module
    x, y : Tensor
        (N, ...) inputs within ``config.bounds`` and (N,) labels.
    result : SweepResult, optional
    config : EvalConfig, optional
    check_eps : float, optional
        The radius of the checks that attack at one ε (default: the lower median of the positive radii
        swept, else a tenth of the bounds' range).
    progress, journal
        Progress callback; the store of finished blocks (to resume).

    Returns
    -------
    list of SanityCheck
        One per check that applies (a check declines when the evaluation lacks what it compares).

    Examples
    --------
    >>> import torch
    >>> from advgrad import EvalConfig, sanity_report, sweep
    >>> _ = torch.manual_seed(0)  # the model's initial weights
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x = torch.rand(12, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    >>> y = model(x).argmax(1)  # every point correct when clean
    >>> config = EvalConfig(eps=(0.0, 0.1), steps=3, queries=20)
    >>> checks = sanity_report(model, x, y, sweep(model, x, y, config), config=config)
    >>> [check.name for check in checks][:5]
    ['monotone', 'full-range', 'pgd-vs-fgsm', 'steps-restarts', 'gradients']

    References
    ----------
    Carlini et al., "On evaluating adversarial robustness", 2019, arXiv 1902.06705.
    """
    config = config or EvalConfig()
    device = model_device(model)
    x, y = x.to(device), y.to(device)
    if result is None:
        result = sweep(model, x, y, config)
    positive = [r["eps"] for r in result.records if r["eps"] > 0]
    if check_eps is None:
        lo, hi = config.bounds
        check_eps = _lower_median(sorted(set(positive))) if positive else 0.1 * (hi - lo)
    context = Context(model, x, y, result, config, float(check_eps), journal)
    tally = Tally(progress, len(y) * len(CHECKS))
    checks = []
    for _, fn in CHECKS:
        check = fn(context)
        if check is not None:
            checks.append(check)
        tally(len(y))
    return checks
