"""Running the peers' decision-based attacks on the same points, from the same kind of start, with their
queries counted here (calls × rows), and comparing their distances with advgrad's.

Both peers take starting points (Foolbox ``starting_points``, ART ``x_adv_init``); they get the ones
``noise_starts`` makes by advgrad's rule with advgrad's draws (so the very points advgrad's attack, seeded
alike, starts from), and the queries spent making them are added to their counts, so that advgrad's attack,
which finds its own start, runs with the same budget per point.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from tests.attacks.blackbox.conftest import Counting, norm_of


@dataclass
class Run:
    distance: Tensor  # (N,) ‖δ‖ (inf where the attack failed)
    queries: Tensor   # (N,) per point, the start's included


def _distances(model: nn.Module, x: Tensor, y: Tensor, adv: Tensor, norm: str) -> Tensor:
    with torch.no_grad():
        fooled = model(adv.to(x.dtype)).argmax(1) != y
    d = norm_of(adv.to(x.dtype) - x, norm)
    return torch.where(fooled, d, torch.full_like(d, math.inf))


def foolbox_run(model: nn.Module, x: Tensor, y: Tensor, starts: Tensor, spent: Tensor, attack: str, norm: str,
                steps: int, per_sample: bool) -> Run:
    """Foolbox 3's HopSkipJumpAttack or BoundaryAttack, the batch at once or one point at a time."""
    fb = pytest.importorskip("foolbox")
    counting = Counting(model)
    fmodel = fb.PyTorchModel(counting.eval(), bounds=(0, 1))
    if attack == "hopskipjump":
        runner = fb.attacks.HopSkipJumpAttack(steps=steps, constraint="l2" if norm == "2" else "linf")
    else:
        runner = fb.attacks.BoundaryAttack(steps=steps)
    torch.manual_seed(0)
    pieces = [slice(i, i + 1) for i in range(len(x))] if per_sample else [slice(0, len(x))]
    advs, queries = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for part in pieces:
            before = counting.rows
            advs.append(runner.run(fmodel, x[part], fb.criteria.Misclassification(y[part]),
                                   starting_points=starts[part]))
            queries += [(counting.rows - before) // len(x[part])] * len(x[part])
    return Run(_distances(model, x, y, torch.cat(advs), norm), torch.tensor(queries) + spent)


def art_run(model: nn.Module, x: Tensor, y: Tensor, starts: Tensor, spent: Tensor, attack: str, norm: str,
            steps: int) -> Run:
    """ART 1.20's HopSkipJump (max_iter = steps) or BoundaryAttack (untargeted, max_iter = steps), one point at a
    time (as ART itself loops), through a PyTorchClassifier; NumPy's global RNG seeded and restored."""
    evasion = pytest.importorskip("art.attacks.evasion")
    classification = pytest.importorskip("art.estimators.classification")
    counting = Counting(model)
    k = int(model(x[:1]).shape[1])
    clf = classification.PyTorchClassifier(counting, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                                           nb_classes=k, clip_values=(0.0, 1.0))
    if attack == "hopskipjump":
        runner = evasion.HopSkipJump(clf, norm=2 if norm == "2" else np.inf, max_iter=steps, max_eval=10_000,
                                     init_eval=100, verbose=False)
    else:
        runner = evasion.BoundaryAttack(clf, targeted=False, max_iter=steps, verbose=False)
    state = np.random.get_state()
    np.random.seed(0)
    advs, queries = [], []
    try:
        for i in range(len(x)):
            before = counting.rows
            adv = runner.generate(x[i:i + 1].numpy(), y=y[i:i + 1].numpy(), x_adv_init=starts[i:i + 1].numpy())
            advs.append(torch.from_numpy(np.asarray(adv)))
            queries.append(counting.rows - before)
    finally:
        np.random.set_state(state)
    return Run(_distances(model, x, y, torch.cat(advs), norm), torch.tensor(queries) + spent)


@dataclass
class Comparison:
    ratio: float       # advgrad's median ‖δ‖ / the peer's
    agree: list[float]  # per ε: share of points where both succeed within ε or both fail
    worse: list[float]  # per ε: share of points the peer fools within ε and advgrad does not
    eps: list[float]

    def __str__(self) -> str:
        cells = ", ".join(f"ε={e:.3g}: agree {a:.1%}, peer-only {w:.1%}" for e, a, w in
                          zip(self.eps, self.agree, self.worse))
        return f"median ratio {self.ratio:.3f}; {cells}"


def compare(ours: Tensor, theirs: Tensor, quantiles: tuple[float, ...] = (0.25, 0.5, 0.75)) -> Comparison:
    """advgrad's distances against a peer's on the same points, at ε = the peer's distance quantiles."""
    finite = theirs[theirs.isfinite()]
    eps = [float(finite.quantile(q)) for q in quantiles]
    agree = [float(((ours <= e) == (theirs <= e)).float().mean()) for e in eps]
    worse = [float(((theirs <= e) & ~(ours <= e)).float().mean()) for e in eps]
    return Comparison(float(ours.median() / theirs.median()), agree, worse, eps)
