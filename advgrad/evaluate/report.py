"""The whole evaluation of one model under one ``EvalConfig``: what ``advgrad eval`` runs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from advgrad.attacks.runner import Journal, Status
from advgrad.configs import EvalConfig
from advgrad.evaluate.min_eps import bisection_rounds, curve_from_min_eps, minimal_eps
from advgrad.evaluate.min_norm import MinNorms, minimal_norms
from advgrad.evaluate.progress import Progress, parts
from advgrad.evaluate.robust import config_from, passes_record, sweep
from advgrad.evaluate.sanity import CHECKS, SanityCheck, sanity_report
from advgrad.models.counting import spending
from advgrad.models.query import Classifier


@dataclass
class Evaluation:
    """What ``evaluate_model`` found; ``all_ok``: every sanity check passed.

    Parameters
    ----------
    config : EvalConfig
    clean_accuracy : float
    records : list of dict
        The sweep's records, then the minimal-ε and minimal-norm curves' (``robust_accuracy``'s keys).
    checks : list of SanityCheck
    min_eps : Tensor, optional
        (N,) float64 per-sample minimal ε: 0 misclassified clean, inf not broken within ``min_eps_max``.
    min_eps_max : float, optional
    min_norm : MinNorms, optional
        Per attack of ``config.min_norm``: the minimal distance per point.

    Examples
    --------
    >>> from advgrad import EvalConfig, Evaluation, SanityCheck
    >>> evaluation = Evaluation(EvalConfig(), 0.98, [], [SanityCheck("gradients", True, "finite, non-zero")])
    >>> evaluation.all_ok, evaluation.min_eps is None
    (True, True)
    """

    config: EvalConfig
    clean_accuracy: float
    records: list[dict[str, Any]]
    checks: list[SanityCheck]
    min_eps: Tensor | None = None  # (N,) 0 = misclassified clean, inf = not broken within eps_max
    min_eps_max: float | None = None
    min_norm: MinNorms | None = None  # per attack of config.min_norm: the minimal distance per point

    @property
    def all_ok(self) -> bool:
        return all(c.ok for c in self.checks)


def evaluate_model(model: Classifier, x: Tensor, y: Tensor, config: EvalConfig | None = None, *,
                   sanity: bool = True, progress: Progress | None = None, journal: Journal | None = None,
                   status: Status | None = None, **options: Any) -> Evaluation:
    """The sweep, the optional minimal-ε bisection (up to the largest ε of the grid) and the sanity report.
    ``progress(done, total)`` runs over all three: the sweep's and the bisection's passes of N samples,
    then N per sanity check.

    Under torch.distributed (``advgrad.distributed.setup``, as ``advgrad eval`` under torchrun) every
    process calls it with the same arguments and gets the same ``Evaluation``, bit for bit the one of a
    single process: every attack pass (the runner's blocks: the sweep, the bisection, the sanity report's PGD
    passes) shares its blocks of samples out; the clean predictions and the sanity report's other checks
    (gradients, sign noise, Square, ...) run whole on every process. Only process 0 should write the
    records (``distributed.is_main()``).

    Parameters
    ----------
    model : nn.Module
        Returns logits (N, K).
    x, y : Tensor
        (N, ...) inputs within ``config.bounds`` and (N,) labels.
    config : EvalConfig, optional
        Or its fields as keywords (``**options``).
    sanity : bool
        Run the sanity report.
    progress, journal, status
        Progress callback, the store of finished blocks (to resume), a callback for status lines.

    Returns
    -------
    Evaluation

    Examples
    --------
    >>> import torch
    >>> from advgrad import evaluate_model
    >>> _ = torch.manual_seed(0)  # the model's initial weights
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x = torch.rand(12, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    >>> y = model(x).argmax(1)  # every point correct when clean
    >>> evaluation = evaluate_model(model, x, y, eps=(0.0, 0.1), steps=3, min_eps=True, queries=20)
    >>> evaluation.clean_accuracy, [r["attack"] for r in evaluation.records if r["eps"] == 0.1]
    (1.0, ['fgsm', 'pgd', 'worst', 'min-eps'])
    >>> [check.name for check in evaluation.checks][:3], evaluation.min_eps.shape
    (['monotone', 'full-range', 'pgd-vs-fgsm'], torch.Size([12]))

    References
    ----------
    Carlini et al., "On evaluating adversarial robustness", 2019, arXiv 1902.06705.
    """
    config = config_from(config, options)
    n = len(y)
    eps_max = max(config.eps) if max(config.eps) > 0 else float(config.bounds[1] - config.bounds[0])
    sizes = [n * len(config.grid) * len(config.attacks),
             n * (1 + bisection_rounds(eps_max, config.precision)) if config.min_eps else 0,
             n * len(config.min_norm), n * len(CHECKS) if sanity else 0]
    on_sweep, on_bisection, on_min_norm, on_checks = parts(progress, sizes)
    result = sweep(model, x, y, config, progress=on_sweep, journal=journal, status=status)
    records = list(result.records)
    min_eps = None
    if config.min_eps:
        start = time.perf_counter()
        with spending() as tally:  # every round of the bisection
            min_eps = minimal_eps(model, x, y, config, eps_max=eps_max, progress=on_bisection, journal=journal)
        seconds = time.perf_counter() - start
        records += [{**r, "seconds": seconds, **passes_record(tally.passes), "steps": config.steps,
                     "restarts": config.restarts}
                    for r in curve_from_min_eps(min_eps, config.eps)]
    norms = None
    if config.min_norm:
        norms = minimal_norms(model, x, y, config, eps_max=eps_max, journal=journal, progress=on_min_norm)
        records += norms.curve(config.grid)
    # The sanity checks take gradients: a model that only answers queries has none to check.
    checks = sanity_report(model, x, y, result, config=config, progress=on_checks, journal=journal) \
        if sanity and isinstance(model, nn.Module) else []
    return Evaluation(config, float(result.correct.float().mean()), records, checks, min_eps,
                      eps_max if config.min_eps else None, norms)
