"""Adversarial training objectives: the two gradients meeting in one loop.

``fit`` (advgrad.training.train) differentiates a batch loss with respect to the parameters, ∂J/∂W. An
adversarial objective first moves the batch uphill with the input gradient ∂J/∂X (an attack from
``advgrad.attacks``, run with the parameters' ``requires_grad`` off, so nothing is accumulated in parameter
``.grad``), then returns the loss at the moved batch, whose parameter gradient ``fit`` takes. The
perturbation is a constant for the parameter gradient (x′ is detached), as in all four papers
(``catalog.OBJECTIVES`` lists them; ``configs.AdvConfig`` configures one):

- ``fgsm``    Goodfellow et al. (2015): J̃ = ½·J(x) + ½·J(x + ε·sign ∇ₓJ).
- ``fgsm-rs`` Wong et al. (2020) "fast" training: uniform random start in the ε-ball, one signed step
              of α = 1.25·ε, projection; J(x′).
- ``pgd``     Madry et al. (2018): K-step PGD with random start (K = 7, α = 2.5·ε/K); J(x′).
- ``trades``  Zhang et al. (2019): CE(f(x), y) + β·KL(p(x) ‖ p(x′)), x′ from K-step PGD on that KL
              (random start, clean probabilities held fixed during the attack); β = 6.

Random starts come from a ``torch.Generator`` owned by the objective (seeded from the training seed),
never from the global RNG; its state is part of ``state_dict()`` so that a resumed run draws the same
starts. ``eps_warmup`` ramps ε linearly from 0 to ε over the first epochs (per step, by progress).

The catastrophic-overfitting guard is ``RobustProbe``: PGD accuracy on a fixed batch of training data
after each epoch, with a warning when it collapses (Wong et al. saw it fall to 0 within an epoch).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advgrad import _validate
from advgrad._runtime import frozen_eval, model_device, predict
from advgrad.attacks import gradient_steps
from advgrad.catalog import OBJECTIVES
from advgrad.configs import DEFAULT_BETA, DEFAULT_STEPS, AdvConfig
from advgrad.losses import LossFn, resolve_loss

COLLAPSE_DROP = 0.2  # a fall of the probe's robust accuracy by more than this below its best → warning

def _half_clean_half_adversarial(model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor, loss_fn: LossFn,
                                 beta: float) -> tuple[Tensor, Tensor]:
    logits_adv = model(x_adv)
    return 0.5 * loss_fn(model(x), y).mean() + 0.5 * loss_fn(logits_adv, y).mean(), logits_adv


def _adversarial(model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor, loss_fn: LossFn,
                 beta: float) -> tuple[Tensor, Tensor]:
    logits_adv = model(x_adv)
    return loss_fn(logits_adv, y).mean(), logits_adv


def _trades(model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor, loss_fn: LossFn,
            beta: float) -> tuple[Tensor, Tensor]:
    logits_clean = model(x)
    logits_adv = model(x_adv)
    kl = F.kl_div(F.log_softmax(logits_adv, dim=1), F.softmax(logits_clean, dim=1),
                  reduction="batchmean")  # KL(p(x) ‖ p(x′)), summed over classes, mean over the batch
    return loss_fn(logits_clean, y).mean() + beta * kl, logits_adv


METHODS = tuple(OBJECTIVES)
__all__ = ["COLLAPSE_DROP", "DEFAULT_BETA", "DEFAULT_STEPS", "METHODS", "OBJECTIVES", "AdvConfig",
           "AdversarialObjective", "RobustProbe", "make_objective"]


def _kl_per_sample(p_clean: Tensor, logits: Tensor) -> Tensor:
    """KL(p ‖ softmax(logits)) per sample, shape (N,); p held fixed."""
    log_q = F.log_softmax(logits, dim=1)
    return (p_clean * (torch.log(p_clean.clamp_min(1e-12)) - log_q)).sum(dim=1)


class AdversarialObjective:
    """``objective(model, x, y, progress) -> (loss, logits)`` for ``fit``; see the module docstring.

    The logits returned are those at the perturbed batch x′ (so ``fit``'s ``train_accuracy`` is the
    accuracy on the training attack). ``state_dict``/``load_state_dict`` carry the random-start generator
    for ``--resume``.

    Parameters
    ----------
    config : AdvConfig
        The method, ε (with its warm-up), steps, α, β and norm.
    epochs : int
        The run's length, for the ε warm-up.
    seed : int
        Seeds the objective's own random-start generator (the global RNG is not touched).
    loss : {"ce", "mse"}
    bounds : (float, float)

    Examples
    --------
    >>> import torch
    >>> from advgrad import AdvConfig, AdversarialObjective
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x, y = torch.rand(8, 1, 2, 2, generator=torch.Generator().manual_seed(0)), torch.arange(8) % 3
    >>> objective = AdversarialObjective(AdvConfig("pgd", 0.1, steps=2), epochs=1)
    >>> loss, logits = objective(model, x, y, 0.0)  # 0.0: the training progress
    >>> loss.shape, logits.shape, bool((objective.perturb(model, x, y, 0.0) - x).abs().max() <= 0.1 + 1e-6)
    (torch.Size([]), torch.Size([8, 3]), True)

    References
    ----------
    Madry et al., "Towards deep learning models resistant to adversarial attacks", ICLR 2018, arXiv
    1706.06083; Zhang et al., "Theoretically principled trade-off between robustness and accuracy", ICML 2019,
    arXiv 1901.08573; Wong, Rice, Kolter, "Fast is better than free: revisiting adversarial training",
    ICLR 2020, arXiv 2001.03994; Goodfellow, Shlens, Szegedy, "Explaining and harnessing adversarial
    examples", ICLR 2015, arXiv 1412.6572.
    """

    def __init__(self, config: AdvConfig, *, epochs: int, seed: int = 0, loss: str = "ce",
                 bounds: tuple[float, float] = (0.0, 1.0)) -> None:
        self.config = config
        self.epochs = int(epochs)
        self.loss = loss
        self.bounds = _validate.bounds(bounds)
        # Random starts: our own generator, so the global RNG (and hence model init, dropout) is untouched.
        self.generator = torch.Generator().manual_seed(int(seed) + 0x5EED)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, progress: float) -> Tensor:
        """x′ for this batch (detached, within the ε-ball and the bounds). Input gradients only."""
        c, entry = self.config, self.config.entry
        eps = c.eps_at(progress, self.epochs)
        if eps == 0:
            return x.detach().clone()
        if not entry.random_start and not entry.multi_step:  # FGSM: one step of α = ε from x
            return gradient_steps(model, x, y, eps, steps=1, alpha=eps, random_start=False, norm=c.norm,
                                  loss=self.loss, bounds=self.bounds)
        loss: Any = self.loss
        if entry.kl:  # climb KL(p(x) ‖ p(x′)) with p(x) fixed, computed in eval mode as the attack runs
            with torch.no_grad(), frozen_eval(model):
                p_clean = F.softmax(model(x), dim=1)  # (B, K)
            loss = lambda logits, _y: _kl_per_sample(p_clean, logits)  # noqa: E731
        # The generator lives on the CPU; the norms draw on its device and move the draw to x's.
        return gradient_steps(model, x, y, eps, steps=c.k, alpha=c.step_size(eps), norm=c.norm, random_start=True,
                              loss=loss, bounds=self.bounds, generator=self.generator)

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, progress: float) -> tuple[Tensor, Tensor]:
        x_adv = self.perturb(model, x, y, progress).detach()  # a constant for ∂J/∂W
        train_loss = self.config.entry.impl  # catalog.OBJECTIVES: (model, x, x_adv, y, loss_fn, beta) → (loss, logits)
        result: tuple[Tensor, Tensor] = train_loss(model, x, x_adv, y, resolve_loss(self.loss, model), self.config.beta)
        return result


def make_objective(config: AdvConfig, *, epochs: int, seed: int = 0, loss: str = "ce",
                   bounds: tuple[float, float] = (0.0, 1.0)) -> AdversarialObjective:
    """The ``fit`` objective for ``config`` (a thin alias of ``AdversarialObjective``).

    Parameters
    ----------
    config, epochs, seed, loss, bounds
        As ``AdversarialObjective``'s.

    Returns
    -------
    AdversarialObjective

    Examples
    --------
    >>> from advgrad import AdvConfig, make_objective
    >>> objective = make_objective(AdvConfig("trades", 0.3), epochs=10, seed=1)
    >>> objective.config.k, objective.config.beta
    (7, 6.0)
    """
    return AdversarialObjective(config, epochs=epochs, seed=seed, loss=loss, bounds=bounds)


class RobustProbe:
    """The catastrophic-overfitting guard: PGD accuracy on a fixed batch of training data.

    ``probe(model)`` attacks the same ``n`` training images every time with PGD (``steps``, α = 2.5·ε/steps,
    random start from a generator re-seeded on each call, so epochs are compared on equal terms) and
    returns the accuracy on the adversarial examples. ``update(epoch, record)`` adds ``robust_accuracy``
    (and ``probe_clean_accuracy``) to an epoch record, tracks the best epoch and warns
    (``RuntimeWarning``) when robust accuracy falls more than ``drop`` below its best so far.

    Parameters
    ----------
    x, y : Tensor
        The probe batch (N, ...) and its labels (N,).
    eps : float
    steps, seed : int
    bounds : (float, float)
    norm : str
    drop : float
        The fall in robust accuracy that counts as a collapse.

    Examples
    --------
    >>> import torch
    >>> from advgrad import RobustProbe
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x, y = torch.rand(8, 1, 2, 2, generator=torch.Generator().manual_seed(0)), torch.arange(8) % 3
    >>> probe, record = RobustProbe(x, y, 0.1, steps=2), {}
    >>> probe.update(1, record, model), sorted(record), probe.best_epoch
    (True, ['probe_clean_accuracy', 'robust_accuracy'], 1)

    References
    ----------
    Wong, Rice, Kolter, "Fast is better than free: revisiting adversarial training", ICLR 2020, arXiv
    2001.03994 (catastrophic overfitting, and early stopping on a PGD probe).
    """

    def __init__(self, x: Tensor, y: Tensor, eps: float, *, steps: int = 10, seed: int = 0,
                 bounds: tuple[float, float] = (0.0, 1.0), norm: str = "inf", drop: float = COLLAPSE_DROP) -> None:
        self.x, self.y = x.detach(), y.detach()
        self.eps, self.seed, self.drop = float(eps), int(seed), float(drop)
        self.steps, self.norm, self.bounds = int(steps), norm, bounds
        self.best: float = -1.0
        self.best_epoch: int | None = None
        self.collapsed: list[int] = []

    def probe(self, model: nn.Module) -> tuple[float, float]:
        """(clean accuracy, PGD accuracy) on the probe batch."""
        device = model_device(model)
        x, y = self.x.to(device), self.y.to(device)
        clean = float((predict(model, x, len(x)) == y).float().mean())
        x_adv = gradient_steps(model, x, y, self.eps, steps=self.steps, norm=self.norm, bounds=self.bounds,
                               generator=torch.Generator().manual_seed(self.seed + 0xC0DE))
        robust = float((predict(model, x_adv, len(x)) == y).float().mean())
        return clean, robust

    def update(self, epoch: int, record: dict[str, Any], model: nn.Module) -> bool:
        """Probe, write the figures into ``record``; True if this epoch is the best so far."""
        clean, robust = self.probe(model)
        record["probe_clean_accuracy"] = clean
        record["robust_accuracy"] = robust
        if self.best >= 0 and robust < self.best - self.drop:
            self.collapsed.append(epoch)
            record["collapse"] = True
            warnings.warn(f"epoch {epoch}: PGD accuracy on the probe batch fell to {robust:.1%} from a best of "
                          f"{self.best:.1%} (epoch {self.best_epoch}): catastrophic overfitting? the best "
                          "checkpoint is kept", RuntimeWarning, stacklevel=2)
        if robust > self.best:
            self.best, self.best_epoch = robust, epoch
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "collapsed": list(self.collapsed)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])
        self.best_epoch = state["best_epoch"]
        self.collapsed = list(state["collapsed"])
