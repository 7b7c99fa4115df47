"""A fast robustness evaluation (``aa_fast``, catalog name ``aa-fast``): AutoAttack's cascade cut short
where the model passes bought little. A different method from the reference: report AutoAttack
(``autoattack``, standard version, unchanged) for papers; use the fast one for sweeps, training probes and
model selection.

Where AutoAttack's passes go. Its members run on the survivors of the ones before, with early stop, so a
point that falls costs little; a point that survives pays for all of them: APGD-CE (100 steps, ≈ 200
sample-passes: a forward and a backward per step), APGD-T (9 targets × 100 steps, ≈ 1,800), FAB-T (9 × 100,
≈ 2,700) and Square (5,000 queries): ≈ 9,700 sample-passes (``advgrad.models.counting``) per robust point,
the same whether it nearly fell or lies far from any boundary. The fast cascade, each stage on the points
no stage before it broke:

1. **APGD-CE**, ``steps`` (50) iterations, early stop: most points that fall, fall here.
2. **APGD-T** on the targeted DLR loss −(z_y − z_t)/(z_π1 − (z_π3 + z_π4)/2), in turn towards each of
   the ``targets`` (9) classes with the highest other logits at x, ``steps // 2`` (25) iterations each:
   MM's minimum-margin idea (Gao et al.), that a point falls, if at all, towards a class near it; but all
   of them, short, rather than a few, long (targets past the fourth broke points on the models measured).
3. **FMN** (Pintor et al.), 2·``steps`` (100) iterations, untargeted: the smallest ‖δ‖ it finds, kept
   where it is at most ε. Its ball shrinks after an adversarial iterate and grows after another, so it
   walks along the boundary where ascent on a loss at the fixed radius stalls; in that role it replaced
   AutoAttack's FAB-T (3 nearest targets × 50 steps), at under half its passes, and broke more points
   there on the models measured, some of them points that all of AutoAttack's members left standing.
4. **APGD-T, long, near the boundary** (``advgrad.attacks.near``): AutoAttack's own APGD-T (``targets`` ×
   2·``steps`` = 9 × 100) on the ``near`` (10 %) of the survivors nearest the decision boundary by
   DeepFool's first-order estimate at x.
5. **Square near the boundary**: 100·``steps`` (5,000) queries on the nearest ``near_square`` (3 %).

Stages 4 and 5 are A³'s lesson (Liu et al.: spend the iterations where the loss says a point can still
fall) read off the pass counts: the points that AutoAttack's long runs break and stages 1–3 miss lay, on the
models measured, among the survivors nearest the boundary (results/fast_eval.md: on 1,000 points of four
models, within the nearest 9 % on the two TRADES models), so the long runs go there and nowhere else.

A robust point costs ≈ 2·steps + 2·targets·(steps // 2) + 4·steps ≈ 750 sample-passes in stages 1–3
and ≈ 0.1 · 1,800 + 0.03 · 5,000 ≈ 330 more in 4–5: about 0.12× AutoAttack's (A³ reports ≈ 0.09–0.17×).
Left out, by what the pass counts showed (``results/fast_eval.md``, "How the stages were
chosen"): APGD-DLR, PGD on the margin with random restarts, and a short Square on every survivor broke
(almost) none of the points AutoAttack alone broke, for 100–1,000 passes a point each. Every stage attacks
the survivors of the one before, so the cascade runs on ``advgrad.attacks.runner`` as any ensemble
(``advgrad eval --attacks aa-fast``, ``advgrad attack --method aa-fast``): in blocks, each stage on the
survivors of the one before, the same verdicts in any number of workers (stages 4 and 5 choose their
points within a block).

A point is broken only where a stage found an x_adv within ε and the box that the model misclassifies, and
robust only where every stage failed (``broken_by``: the stage that broke it).
"""

from __future__ import annotations

from torch import Tensor, nn

from advgrad import _validate
from advgrad._runtime import check_batch
from advgrad.attacks._checks import check_radius
from advgrad.attacks.autoattack import AutoAttackResult, run_cascade
from advgrad.attacks.runner import BLOCK, Progress
from advgrad.catalog import norm_name
from advgrad.configs import AttackConfig

__all__ = ["aa_fast", "cascade_of", "fast_configs"]

NORMS = ("inf", "2")  # the threat models measured against AutoAttack (results/fast_eval.md)


def fast_configs(norm: object = "inf", *, steps: int = 50, targets: int = 9, near: float = 0.1,
                 near_square: float = 0.03) -> list[AttackConfig]:
    """The stages of the fast cascade under ``norm``, in order (see the module docstring); a stage near the
    boundary whose share is 0 is left out."""
    name = _validate.one_of("norm", norm_name(norm), NORMS)
    _validate.count("steps", steps, 2)
    _validate.count("targets", targets)
    near, near_square = _validate.fraction("near", near), _validate.fraction("near_square", near_square)
    stages = [AttackConfig.of("apgd-ce", name, steps=steps, early_stop=True),
              AttackConfig.of("apgd-t", name, steps=steps // 2, targets=targets, early_stop=True),
              AttackConfig.of("fmn", name, steps=2 * steps)]
    if near:
        stages.append(AttackConfig.of("apgd-t-near", name, share=near, steps=2 * steps, targets=targets,
                                      early_stop=True))
    if near_square:
        stages.append(AttackConfig.of("square-near", name, share=near_square, queries=100 * steps))
    return stages


def cascade_of(config: AttackConfig) -> list[AttackConfig]:
    """The stages an "aa-fast" config runs (its steps, targets and shares, under its norm): what
    the runner attacks with when an evaluation names aa-fast."""
    return fast_configs(config.norm, steps=config.get("steps"), targets=config.get("targets"),
                        near=config.get("near"), near_square=config.get("near_square"))


def aa_fast(model: nn.Module, x: Tensor, y: Tensor, eps: float, *, norm: str = "inf", steps: int = 50,
            targets: int = 9, near: float = 0.1, near_square: float = 0.03, seed: int = 0,
            bounds: tuple[float, float] = (0.0, 1.0), chunk_size: int | None = None, block: int = BLOCK,
            workers: int | None = None, progress: Progress | None = None) -> AutoAttackResult:
    """Robust accuracy at radius ``eps`` for about an eighth of AutoAttack's model passes: the cascade of the
    module docstring, each stage on the points no stage before it broke, in blocks of ``block`` points.

    A point counts as robust when the model classifies it correctly at x and no stage finds an
    x′ with ‖x′ − x‖ ≤ ε within ``bounds`` that it misclassifies:

        robust(x, y) = [argmax z(x) = y] · ∏_k [stage k fails on (x, y)]

    Parameters
    ----------
    model : nn.Module
        Returns logits (N, K), K ≥ 4 (APGD-T).
    x, y : Tensor
        Points (N, ...) within ``bounds`` and labels (N,).
    eps : float
        One radius for every point (≥ 0; at 0 the clean verdicts).
    norm : {"inf", "2"}
    steps : int
        Iterations of APGD-CE (≥ 2); APGD-T runs ``steps // 2`` per target, FMN 2·``steps``.
    targets : int
        Target classes of APGD-T (the highest other logits at x; ≤ K − 1).
    near, near_square : float
        The share (0 to 1) of each block's survivors, nearest the boundary, that the long APGD-T
        (2·``steps`` per target) and Square (100·``steps`` queries) attack; 0 leaves the stage out.
    seed : int
        Every stage's randomness (the same call gives the same result).
    bounds : (float, float)
    chunk_size : int, optional
        Samples per forward pass inside a stage (speed and memory only).
    block : int
        Points per stage call (the unit of seeds; 250, AutoAttack's batch).
    workers : int, optional
        Blocks run at once on the CPU (default ``runner.default_workers()``); the same verdicts whatever it is.
    progress : callable, optional
        ``progress(done, total)``: points whose verdict is sealed.

    Returns
    -------
    AutoAttackResult
        ``success`` per point (broken by a stage, or misclassified at x), ``x_adv`` (x where robust),
        ``broken_by`` (the stage that broke each point: −1 misclassified at x, ``len(stages)`` robust),
        ``stages``, robust ``accuracy`` after each stage, ``seconds`` per stage.

    Raises
    ------
    ValueError
        A bad argument (a norm other than "inf" or "2", steps below 2, targets below 1 or above K − 1, a
        per-sample radius, …), named in one line.

    Examples
    --------
    >>> import torch
    >>> from advgrad import aa_fast
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 5))
    >>> x = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    >>> y = torch.arange(6) % 5
    >>> result = aa_fast(model, x, y, 0.1, steps=4, targets=3)
    >>> result.stages
    ('apgd-ce', 'apgd-t', 'fmn', 'apgd-t-near', 'square-near')
    >>> bool((result.success == (model(result.x_adv).argmax(1) != y)).all())
    True

    References
    ----------
    Liu et al., "Practical evaluation of adversarial robustness via adaptive auto attack", CVPR 2022, arXiv
    2203.05154. Gao et al., "Fast and reliable evaluation of adversarial robustness with minimum-margin
    attack", ICML 2022, arXiv 2206.07314. Pintor et al., "Fast minimum-norm adversarial attacks through
    adaptive norm constraints", NeurIPS 2021, arXiv 2102.12827. Croce & Hein, "Reliable evaluation of
    adversarial robustness with an ensemble of diverse parameter-free attacks", ICML 2020, arXiv 2003.01690.
    """
    check_batch(x, y)
    eps_ = check_radius("eps", eps, x, positive=False)
    if isinstance(eps_, Tensor):
        raise ValueError("aa_fast takes one radius for every point (a number), not a per-sample tensor")
    configs = fast_configs(norm, steps=steps, targets=targets, near=near, near_square=near_square)
    _validate.count("seed", seed, 0)
    return run_cascade(model, x, y, eps_, configs, seed=seed, bounds=bounds, chunk_size=chunk_size, block=block,
                       workers=workers, progress=progress)
