"""advgrad: adversarial examples from the input gradient.

Training differentiates the loss with respect to the parameters, ∂J/∂W; an attacker holds W fixed and
differentiates the same loss with respect to the input, ∂J/∂X. One step along sign(∂J/∂X) is FGSM
(Goodfellow et al. 2015); many projected steps are PGD (Madry et al. 2018).
"""

__version__ = "0.1.0"

from advgrad.attacks import fgsm, input_gradient, pgd
from advgrad.checkpoint import Checkpoint, load_checkpoint, load_model, save_checkpoint
from advgrad.data import DATASETS, Dataset, load_dataset
from advgrad.models import MODEL_NAMES, Normalize, build_model
from advgrad.train import History, TrainConfig, accuracy, fit

__all__ = [
    "Checkpoint", "DATASETS", "Dataset", "History", "MODEL_NAMES", "Normalize", "TrainConfig",
    "accuracy", "build_model", "load_checkpoint", "load_dataset", "load_model", "save_checkpoint", "fit",
    "fgsm", "input_gradient", "pgd",
]
