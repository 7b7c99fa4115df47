"""Adversarial training objectives: the two gradients meeting in one loop.

``fit`` (advgrad.train) differentiates a batch loss with respect to the parameters, ∂J/∂W. An
adversarial objective first moves the batch uphill with the input gradient ∂J/∂X (the attack module,
run with the parameters' ``requires_grad`` off, so nothing is accumulated in parameter ``.grad``), then
returns the loss at the moved batch, whose parameter gradient ``fit`` takes. The perturbation is a
constant for the parameter gradient (x′ is detached), as in all four papers.

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

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advgrad.attacks import fgsm, pgd
from advgrad.losses import resolve_loss

METHODS = ("fgsm", "fgsm-rs", "pgd", "trades")
DEFAULT_STEPS = 7
DEFAULT_BETA = 6.0
FGSM_RS_ALPHA = 1.25  # α = 1.25·ε (Wong et al. 2020)
COLLAPSE_DROP = 0.2  # a fall of the probe's robust accuracy by more than this below its best → warning


@dataclass(frozen=True)
class AdvConfig:
    """How the training batch is perturbed. ``steps``/``alpha`` None mean the method's defaults."""

    method: str
    eps: float
    steps: int | None = None   # pgd, trades: K (default 7)
    alpha: float | None = None  # step size (fgsm: ε; fgsm-rs: 1.25·ε; pgd/trades: 2.5·ε/K)
    beta: float = DEFAULT_BETA  # trades only
    eps_warmup: int = 0         # epochs over which ε grows linearly from 0 (0: none)
    norm: str = "inf"

    def validate(self) -> "AdvConfig":
        """Raise ValueError naming the first bad field."""
        if self.method not in METHODS:
            raise ValueError(f"unknown adversarial method {self.method!r}: expected one of {', '.join(METHODS)}")
        if isinstance(self.eps, bool) or not isinstance(self.eps, (int, float)) or not math.isfinite(self.eps) \
                or self.eps < 0:
            raise ValueError(f"eps must be a finite number ≥ 0, got {self.eps!r}")
        if self.steps is not None and (isinstance(self.steps, bool) or int(self.steps) != self.steps
                                       or self.steps < 1):
            raise ValueError(f"adversarial steps must be an integer ≥ 1, got {self.steps!r}")
        if self.alpha is not None and not (math.isfinite(self.alpha) and self.alpha > 0):
            raise ValueError(f"adversarial step size alpha must be > 0, got {self.alpha!r}")
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"beta must be a finite number ≥ 0, got {self.beta!r}")
        if int(self.eps_warmup) != self.eps_warmup or self.eps_warmup < 0:
            raise ValueError(f"eps warm-up must be a whole number of epochs ≥ 0, got {self.eps_warmup!r}")
        if self.norm not in ("inf", "2", "1"):
            raise ValueError(f"unknown norm {self.norm!r}: expected 'inf', '2' or '1'")
        return self

    @property
    def k(self) -> int:
        """The number of attack steps per batch."""
        if self.method in ("pgd", "trades"):
            return int(self.steps or DEFAULT_STEPS)
        return 1

    def step_size(self, eps: float) -> float:
        """α for radius ``eps`` (the explicit ``alpha`` scales with ε during warm-up)."""
        if self.alpha is not None:
            return self.alpha * (eps / self.eps if self.eps > 0 else 1.0)
        if self.method == "fgsm":
            return eps
        if self.method == "fgsm-rs":
            return FGSM_RS_ALPHA * eps
        return 2.5 * eps / self.k

    def eps_at(self, progress: float, epochs: int) -> float:
        """ε at training progress ∈ [0, 1] of a run of ``epochs`` epochs (linear warm-up)."""
        if self.eps_warmup <= 0:
            return float(self.eps)
        return float(self.eps) * min(1.0, progress * epochs / self.eps_warmup)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _kl_per_sample(p_clean: Tensor, logits: Tensor) -> Tensor:
    """KL(p ‖ softmax(logits)) per sample, shape (N,); p held fixed."""
    log_q = F.log_softmax(logits, dim=1)
    return (p_clean * (torch.log(p_clean.clamp_min(1e-12)) - log_q)).sum(dim=1)


class AdversarialObjective:
    """``objective(model, x, y, progress) -> (loss, logits)`` for ``fit``; see the module docstring.

    The logits returned are those at the perturbed batch x′ (so ``fit``'s ``train_accuracy`` is the
    accuracy on the training attack). ``state_dict``/``load_state_dict`` carry the random-start
    generator for ``--resume``.
    """

    def __init__(self, config: AdvConfig, *, epochs: int, seed: int = 0, loss: str = "ce",
                 bounds: tuple[float, float] = (0.0, 1.0)) -> None:
        self.config = config.validate()
        self.epochs = int(epochs)
        self.loss = loss
        self.bounds = (float(bounds[0]), float(bounds[1]))
        # Random starts: our own generator, so the global RNG (and hence model init, dropout) is untouched.
        self.generator = torch.Generator().manual_seed(int(seed) + 0x5EED)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, progress: float) -> Tensor:
        """x′ for this batch (detached, within the ε-ball and the bounds). Input gradients only."""
        c = self.config
        eps = c.eps_at(progress, self.epochs)
        if eps == 0:
            return x.detach().clone()
        alpha = c.step_size(eps)
        gen = self.generator  # on the CPU; the norms draw on its device and move the draw to x's
        if c.method == "fgsm":
            return fgsm(model, x, y, eps, norm=c.norm, loss=self.loss, bounds=self.bounds)
        if c.method == "fgsm-rs":
            return pgd(model, x, y, eps, alpha=alpha, steps=1, norm=c.norm, random_start=True,
                       loss=self.loss, bounds=self.bounds, generator=gen)
        if c.method == "pgd":
            return pgd(model, x, y, eps, alpha=alpha, steps=c.k, norm=c.norm, random_start=True,
                       loss=self.loss, bounds=self.bounds, generator=gen)
        # trades: maximise KL(p(x) ‖ p(x′)) with p(x) fixed (computed in eval mode, as the attack runs).
        was_training = model.training
        model.eval()
        with torch.no_grad():
            p_clean = F.softmax(model(x), dim=1)  # (B, K)
        model.train(was_training)
        return pgd(model, x, y, eps, alpha=alpha, steps=c.k, norm=c.norm, random_start=True,
                   loss=lambda logits, _y: _kl_per_sample(p_clean, logits), bounds=self.bounds,
                   generator=gen)

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, progress: float) -> tuple[Tensor, Tensor]:
        x_adv = self.perturb(model, x, y, progress).detach()  # a constant for ∂J/∂W
        loss_fn = resolve_loss(self.loss, model)
        method = self.config.method
        if method == "fgsm":
            logits_clean = model(x)
            logits_adv = model(x_adv)
            return 0.5 * loss_fn(logits_clean, y).mean() + 0.5 * loss_fn(logits_adv, y).mean(), logits_adv
        if method == "trades":
            logits_clean = model(x)
            logits_adv = model(x_adv)
            kl = F.kl_div(F.log_softmax(logits_adv, dim=1), F.softmax(logits_clean, dim=1),
                          reduction="batchmean")  # KL(p(x) ‖ p(x′)), summed over classes, mean over batch
            return loss_fn(logits_clean, y).mean() + self.config.beta * kl, logits_adv
        logits_adv = model(x_adv)
        return loss_fn(logits_adv, y).mean(), logits_adv


def make_objective(config: AdvConfig, *, epochs: int, seed: int = 0, loss: str = "ce",
                   bounds: tuple[float, float] = (0.0, 1.0)) -> AdversarialObjective:
    """The ``fit`` objective for ``config`` (a thin alias of ``AdversarialObjective``)."""
    return AdversarialObjective(config, epochs=epochs, seed=seed, loss=loss, bounds=bounds)


class RobustProbe:
    """The catastrophic-overfitting guard: PGD accuracy on a fixed batch of training data.

    ``probe(model)`` attacks the same ``n`` training images every time with PGD (``steps``, α = 2.5·ε/steps,
    random start from a generator re-seeded on each call, so epochs are compared on equal terms) and
    returns the accuracy on the adversarial examples. ``update(epoch, record)`` adds
    ``robust_accuracy`` (and ``probe_clean_accuracy``) to an epoch record, tracks the best epoch and
    warns (``RuntimeWarning``) when robust accuracy falls more than ``drop`` below its best so far.
    """

    def __init__(self, x: Tensor, y: Tensor, eps: float, *, steps: int = 10, seed: int = 0,
                 bounds: tuple[float, float] = (0.0, 1.0), norm: str = "inf", drop: float = COLLAPSE_DROP) -> None:
        self.x, self.y = x.detach(), y.detach()
        self.eps, self.steps, self.seed, self.bounds, self.norm = float(eps), int(steps), int(seed), bounds, norm
        self.drop = float(drop)
        self.best: float = -1.0
        self.best_epoch: int | None = None
        self.collapsed: list[int] = []

    def probe(self, model: nn.Module) -> tuple[float, float]:
        """(clean accuracy, PGD accuracy) on the probe batch."""
        device = next(model.parameters()).device
        x, y = self.x.to(device), self.y.to(device)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            clean = float((model(x).argmax(1) == y).float().mean())
        x_adv = pgd(model, x, y, self.eps, steps=self.steps, norm=self.norm, bounds=self.bounds,
                    generator=torch.Generator().manual_seed(self.seed + 0xC0DE))
        with torch.no_grad():
            robust = float((model(x_adv).argmax(1) == y).float().mean())
        model.train(was_training)
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
