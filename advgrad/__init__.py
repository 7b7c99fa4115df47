"""advgrad: adversarial examples from the input gradient.

Training differentiates the loss with respect to the parameters, ∂J/∂W; an attacker holds W fixed and
differentiates the same loss with respect to the input, ∂J/∂X. One step along sign(∂J/∂X) is FGSM
(Goodfellow et al. 2015); many projected steps are PGD (Madry et al. 2018).

The public API is re-exported here, lazily (PEP 562): ``import advgrad`` imports neither torch nor the
library, and ``advgrad.fgsm`` imports advgrad.attacks on first use, so that the ``advgrad`` command starts
at once. ``advgrad.plots`` stays a module of its own (matplotlib).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name → (module, attribute in it)
_EXPORTS = {
    "ADV_METHODS": ("advgrad.adversarial", "METHODS"),
    **{name: ("advgrad.adversarial", name) for name in ("AdvConfig", "AdversarialObjective", "RobustProbe",
                                                        "make_objective")},
    **{name: ("advgrad.attacks", name) for name in ("AttackResult", "fgsm", "input_gradient", "pgd", "run_attack")},
    **{name: ("advgrad.backprop", name) for name in (
        "ForwardPass", "GradientCheck", "HandGradients", "backward_pass", "central_differences", "check_gradients",
        "forward_pass", "hand_gradients", "hand_input_gradient")},
    **{name: ("advgrad.checkpoint", name) for name in ("Checkpoint", "load_checkpoint", "load_model",
                                                       "save_checkpoint")},
    **{name: ("advgrad.data", name) for name in ("DATASETS", "Dataset", "load_dataset")},
    **{name: ("advgrad.evaluate", name) for name in (
        "EvalConfig", "Evaluation", "SanityCheck", "SweepResult", "curve_from_min_eps", "evaluate_model",
        "loss_landscape", "minimal_eps", "robust_accuracy", "sanity_report", "sign_noise", "square_search", "sweep")},
    **{name: ("advgrad.losses", name) for name in ("LOSSES", "resolve_loss")},
    **{name: ("advgrad.models", name) for name in ("MODEL_NAMES", "Normalize", "build_model")},
    **{name: ("advgrad.norms", name) for name in ("Norm", "get_norm")},
    **{name: ("advgrad.train", name) for name in ("History", "TrainConfig", "accuracy", "fit")},
}

__all__ = [
    # attacks: the input gradient and what is built on it
    "input_gradient", "fgsm", "pgd", "run_attack", "AttackResult", "Norm", "get_norm", "LOSSES", "resolve_loss",
    # models, data, training (the parameter gradient), checkpoints
    "MODEL_NAMES", "Normalize", "build_model", "DATASETS", "Dataset", "load_dataset",
    "TrainConfig", "History", "fit", "accuracy", "Checkpoint", "save_checkpoint", "load_checkpoint", "load_model",
    # adversarial training
    "ADV_METHODS", "AdvConfig", "AdversarialObjective", "make_objective", "RobustProbe",
    # evaluation
    "EvalConfig", "Evaluation", "SanityCheck", "SweepResult", "sweep", "robust_accuracy", "minimal_eps",
    "curve_from_min_eps", "sanity_report", "evaluate_model", "sign_noise", "square_search", "loss_landscape",
    # the backward pass by hand
    "ForwardPass", "HandGradients", "GradientCheck", "forward_pass", "backward_pass", "hand_gradients",
    "hand_input_gradient", "central_differences", "check_gradients",
]


def __getattr__(name: str) -> Any:
    """Import a re-exported name's module on first use (PEP 562) and keep the value here."""
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'advgrad' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what type checkers and IDEs see: the same names, imported eagerly
    from advgrad.adversarial import METHODS as ADV_METHODS  # noqa: F401
    from advgrad.adversarial import AdvConfig, AdversarialObjective, RobustProbe, make_objective  # noqa: F401
    from advgrad.attacks import AttackResult, fgsm, input_gradient, pgd, run_attack  # noqa: F401
    from advgrad.backprop import (  # noqa: F401
        ForwardPass, GradientCheck, HandGradients, backward_pass, central_differences, check_gradients,
        forward_pass, hand_gradients, hand_input_gradient,
    )
    from advgrad.checkpoint import Checkpoint, load_checkpoint, load_model, save_checkpoint  # noqa: F401
    from advgrad.data import DATASETS, Dataset, load_dataset  # noqa: F401
    from advgrad.evaluate import (  # noqa: F401
        EvalConfig, Evaluation, SanityCheck, SweepResult, curve_from_min_eps, evaluate_model, loss_landscape,
        minimal_eps, robust_accuracy, sanity_report, sign_noise, square_search, sweep,
    )
    from advgrad.losses import LOSSES, resolve_loss  # noqa: F401
    from advgrad.models import MODEL_NAMES, Normalize, build_model  # noqa: F401
    from advgrad.norms import Norm, get_norm  # noqa: F401
    from advgrad.train import History, TrainConfig, accuracy, fit  # noqa: F401
