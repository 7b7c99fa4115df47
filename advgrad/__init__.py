"""advgrad: adversarial examples from the input gradient.

Training differentiates the loss with respect to the parameters, ∂J/∂W; an attacker holds W fixed and
differentiates the same loss with respect to the input, ∂J/∂X. One step along sign(∂J/∂X) is FGSM
(Goodfellow et al. 2015); many projected steps are PGD (Madry et al. 2018).

The public API is re-exported here; ``advgrad.plots`` stays a module of its own so that importing
advgrad does not import matplotlib.
"""

from advgrad._runtime import frozen_eval, predict
from advgrad._version import __version__
from advgrad.adversarial import METHODS as ADV_METHODS
from advgrad.adversarial import OBJECTIVES, AdvConfig, AdversarialObjective, RobustProbe, make_objective
from advgrad.attacks import (
    ATTACKS,
    AttackConfig,
    AttackResult,
    fgsm,
    get_attack,
    input_gradient,
    mifgsm,
    perturb,
    pgd,
    run_attack,
)
from advgrad.attacks.noise import sign_noise, square_search
from advgrad.backprop import (
    ForwardPass,
    HandGradients,
    backward_pass,
    forward_pass,
    hand_gradients,
    hand_input_gradient,
)
from advgrad.checkpoint import Checkpoint, checkpoint_meta, load_checkpoint, load_model, save_checkpoint
from advgrad.data import DATASETS, Dataset, load_dataset
from advgrad.evaluate import (
    CHECKS,
    EvalConfig,
    Evaluation,
    SanityCheck,
    SweepResult,
    curve_from_min_eps,
    evaluate_model,
    loss_landscape,
    minimal_eps,
    robust_accuracy,
    sanity_report,
    sweep,
)
from advgrad.gradcheck import GradientCheck, central_differences, check_gradients
from advgrad.losses import LOSSES, resolve_loss
from advgrad.models import MODEL_NAMES, MODELS, Normalize, build_for, build_model
from advgrad.norms import NORMS, Norm, get_norm
from advgrad.train import History, TrainConfig, accuracy, fit

__all__ = [
    "__version__",
    # attacks: the input gradient and what is built on it
    "input_gradient", "fgsm", "pgd", "mifgsm", "perturb", "run_attack", "AttackConfig", "AttackResult", "ATTACKS",
    "get_attack", "Norm", "NORMS", "get_norm", "LOSSES", "resolve_loss", "sign_noise", "square_search",
    # models, data, training (the parameter gradient), checkpoints
    "MODELS", "MODEL_NAMES", "Normalize", "build_model", "build_for", "DATASETS", "Dataset", "load_dataset",
    "TrainConfig", "History", "fit", "accuracy", "predict", "frozen_eval",
    "Checkpoint", "save_checkpoint", "load_checkpoint", "load_model", "checkpoint_meta",
    # adversarial training
    "ADV_METHODS", "OBJECTIVES", "AdvConfig", "AdversarialObjective", "make_objective", "RobustProbe",
    # evaluation
    "EvalConfig", "Evaluation", "SanityCheck", "SweepResult", "CHECKS", "sweep", "robust_accuracy", "minimal_eps",
    "curve_from_min_eps", "sanity_report", "evaluate_model", "loss_landscape",
    # the backward pass by hand, and gradient checking
    "ForwardPass", "HandGradients", "forward_pass", "backward_pass", "hand_gradients", "hand_input_gradient",
    "GradientCheck", "central_differences", "check_gradients",
]
