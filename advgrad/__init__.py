"""advgrad: adversarial examples from the input gradient.

Training differentiates the loss with respect to the parameters, ∂J/∂W; an attacker holds W fixed and
differentiates the same loss with respect to the input, ∂J/∂X. One step along sign(∂J/∂X) is FGSM
(Goodfellow et al. 2015); many projected steps are PGD (Madry et al. 2018).

The public API is re-exported here; ``advgrad.plots`` stays a module of its own so that importing
advgrad does not import matplotlib.
"""

__version__ = "0.1.0"

from advgrad.adversarial import METHODS as ADV_METHODS
from advgrad.adversarial import AdvConfig, AdversarialObjective, RobustProbe, make_objective
from advgrad.attacks import AttackResult, fgsm, input_gradient, pgd, run_attack
from advgrad.backprop import (
    ForwardPass, GradientCheck, HandGradients, backward_pass, central_differences, check_gradients,
    forward_pass, hand_gradients, hand_input_gradient,
)
from advgrad.checkpoint import Checkpoint, load_checkpoint, load_model, save_checkpoint
from advgrad.data import DATASETS, Dataset, load_dataset
from advgrad.evaluate import (
    EvalConfig, Evaluation, SanityCheck, SweepResult, curve_from_min_eps, evaluate_model, loss_landscape,
    minimal_eps, robust_accuracy, sanity_report, sign_noise, square_search, sweep,
)
from advgrad.losses import LOSSES, resolve_loss
from advgrad.models import MODEL_NAMES, Normalize, build_model
from advgrad.norms import Norm, get_norm
from advgrad.train import History, TrainConfig, accuracy, fit

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
