"""A fast robustness evaluation (``aa_fast``, catalog name ``aa-fast``): a cascade of short attacks that
spends model passes on the points that can still fall. A different method from the reference: report
AutoAttack (``autoattack``, standard version, unchanged) for papers; use the fast one for sweeps, training
probes and model selection.

Where AutoAttack's passes go. Its members run on the survivors of the ones before, with early stop, so a
point that falls costs little; a point that survives pays for all of them: APGD-CE (100 steps, ≈ 200
sample-passes: a forward and a backward per step), APGD-T (9 targets × 100 steps, ≈ 1,800), FAB-T (9 × 100,
≈ 2,700) and Square (5,000 queries): ≈ 9,700 sample-passes (``advgrad.models.counting``) per robust point,
the same whether it nearly fell or lies far from any boundary. The fast cascade keeps the members whose
breaks were worth their passes on the models measured (``results/fast_eval.md``), shortened:

1. **APGD-CE**, ``steps`` (50) iterations, early stop: most points that fall, fall here.
2. **APGD-T** on the targeted DLR loss (z_t − z_y)/(z_π1 − (z_π3 + z_π4)/2) towards the ``targets`` (3)
   classes with the highest other logits at x, ``steps`` each: the minimum-margin idea of MM (Gao et al.),
   that a point falls, if at all, to one of the few classes nearest to it.
3. **APGD-DLR** (untargeted DLR, ``steps``): scale-free where cross-entropy saturates.
4. **PGD on the margin loss** max_{j≠y} z_j − z_y with ``restarts`` (2) random starts of ``steps`` // 2
   iterations: draws AutoAttack's single start per member does not make (which borderline points fall is
   largely the luck of the start).
5. **Square** (score-based random search, ``queries`` (300) queries): a short look where gradients mislead.

No FAB-T: on the models measured it broke next to nothing after these stages for ≈ 30 % of AutoAttack's
passes. What a survivor costs: ≈ 2·steps + 2·targets·steps + 2·steps + 2·restarts·(steps // 2) + queries
≈ 900 sample-passes at the defaults, 0.09× AutoAttack's, where A³ (Liu et al.) reports ≈ 0.09–0.17×.
A³'s online discarding (further restarts only for the points whose loss came closest to success) has no
counterpart here: every stage attacks every survivor, so the cascade runs on ``advgrad.attacks.runner``
as any ensemble (``advgrad eval --attacks aa-fast``, ``advgrad attack --method aa-fast``): in blocks, each
stage on the survivors of the one before, the same verdicts in any number of workers.

A point is broken only where one of the stages found an x_adv within ε that the model misclassifies, and
robust only where every stage failed (``broken_by``: the stage that broke it).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from advgrad import _validate
from advgrad._runtime import check_batch, logits
from advgrad.attacks import runner
from advgrad.attacks._checks import check_radius
from advgrad.attacks.autoattack import AutoAttackResult, robust_after
from advgrad.attacks.runner import BLOCK, Progress
from advgrad.catalog import norm_name
from advgrad.configs import AttackConfig
from advgrad.losses import margin

__all__ = ["aa_fast", "cascade_of", "fast_configs"]

NORMS = ("inf", "2")  # the threat models measured against AutoAttack (results/fast_eval.md)


def fast_configs(norm: object = "inf", *, steps: int = 50, targets: int = 3, restarts: int = 2,
                 queries: int = 300) -> list[AttackConfig]:
    """The stages of the fast cascade under ``norm``, in order (see the module docstring)."""
    name = _validate.one_of("norm", norm_name(norm), NORMS)
    for label, value in (("steps", steps), ("targets", targets), ("restarts", restarts), ("queries", queries)):
        _validate.count(label, value)
    short = max(1, steps // 2)
    return [AttackConfig.of("apgd-ce", name, steps=steps, early_stop=True),
            AttackConfig.of("apgd-t", name, steps=steps, targets=targets, early_stop=True),
            AttackConfig.of("apgd-dlr", name, steps=steps, early_stop=True),
            AttackConfig.of("pgd", name, steps=short, restarts=restarts, loss="margin", early_stop=True),
            AttackConfig.of("square", name, queries=queries)]


def cascade_of(config: AttackConfig) -> list[AttackConfig]:
    """The stages an "aa-fast" config runs (its steps, targets, restarts and queries, under its norm): what
    the runner attacks with when an evaluation names aa-fast."""
    return fast_configs(config.norm, steps=config.get("steps"), targets=config.get("targets"),
                        restarts=config.get("restarts"), queries=config.get("queries"))


def aa_fast(model: nn.Module, x: Tensor, y: Tensor, eps: float, *, norm: str = "inf", steps: int = 50,
            targets: int = 3, restarts: int = 2, queries: int = 300, seed: int = 0,
            bounds: tuple[float, float] = (0.0, 1.0), chunk_size: int | None = None, block: int = BLOCK,
            workers: int | None = None, progress: Progress | None = None) -> AutoAttackResult:
    """Robust accuracy at radius ``eps`` for about a tenth of AutoAttack's model passes: the cascade of the
    module docstring, each stage on the points no stage before it broke, in blocks of ``block`` points.

    A point counts as robust when the model classifies it correctly at x and no stage finds an
    x′ with ‖x′ − x‖ ≤ ε within ``bounds`` that it misclassifies:

        robust(x, y) = [argmax z(x) = y] · ∏_k [stage k fails on (x, y)]

    Parameters
    ----------
    model : nn.Module
        Returns logits (N, K), K ≥ 4 (APGD-T) and ``targets`` ≤ K − 1.
    x, y : Tensor
        Points (N, ...) within ``bounds`` and labels (N,).
    eps : float
        One radius for every point (≥ 0; at 0 the clean verdicts).
    norm : {"inf", "2"}
    steps : int
        Iterations of APGD-CE, of APGD-T per target and of APGD-DLR; PGD runs ``steps // 2``.
    targets : int
        Target classes of APGD-T (the highest other logits at x).
    restarts : int
        Random starts of the PGD stage.
    queries : int
        Square's queries per point.
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
        A bad argument (a norm other than "inf" or "2", a count below 1, a per-sample radius, …), named in
        one line.

    Examples
    --------
    >>> import torch
    >>> from advgrad import aa_fast
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 5))
    >>> x = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    >>> y = torch.arange(6) % 5
    >>> result = aa_fast(model, x, y, 0.1, steps=4, queries=10)
    >>> result.stages
    ('apgd-ce', 'apgd-t', 'apgd-dlr', 'pgd', 'square')
    >>> bool((result.success == (model(result.x_adv).argmax(1) != y)).all())
    True

    References
    ----------
    Liu et al., "Practical evaluation of adversarial robustness via adaptive auto attack", CVPR 2022, arXiv
    2203.05154. Gao et al., "Fast and reliable evaluation of adversarial robustness with minimum-margin
    attack", ICML 2022, arXiv 2206.07314. Croce & Hein, "Reliable evaluation of adversarial robustness with
    an ensemble of diverse parameter-free attacks", ICML 2020, arXiv 2003.01690.
    """
    check_batch(x, y)
    eps_ = check_radius("eps", eps, x, positive=False)
    if isinstance(eps_, Tensor):
        raise ValueError("aa_fast takes one radius for every point (a number), not a per-sample tensor")
    configs = fast_configs(norm, steps=steps, targets=targets, restarts=restarts, queries=queries)
    _validate.count("block", block)
    x, y = x.detach(), y.to(x.device)
    z = logits(model, x, batch_size=block).to(x.device)
    correct = z.argmax(1) == y  # (N,) classified correctly at x: the points the cascade attacks
    x_adv, z_adv = x.clone(), z.clone()
    broken_by = torch.where(correct, len(configs), -1)  # (N,) at ε = 0 nothing can move: the clean verdicts
    seconds = [0.0] * len(configs)
    if eps_ > 0:
        out = runner.run(model, x, y, eps_, configs, candidates=correct.cpu(), seed=seed, bounds=bounds,
                         block=block, workers=workers, chunk_size=chunk_size, progress=progress)
        fooled = out.success.to(x.device)
        x_adv[fooled] = out.x_adv[fooled.cpu()].to(x.device)
        if out.logits is not None:  # None: no point was attacked
            z_adv[fooled] = out.logits[fooled.cpu()].to(z_adv)
        broken_by, seconds = out.broken_by.to(x.device), out.seconds
    names = [c.method for c in configs]
    accuracy = {"clean": float(correct.float().mean()),
                **robust_after(broken_by, names[:len(configs) if eps_ > 0 else 0], torch.float32)}
    return AutoAttackResult(x_adv, broken_by < len(configs), margin(z_adv, y), z_adv, broken_by=broken_by,
                            stages=tuple(names), accuracy=accuracy, seconds=dict(zip(names, seconds)))
