"""advgrad: adversarial examples from the input gradient.

Training differentiates the loss with respect to the parameters, ∂J/∂W; an attacker holds W fixed and
differentiates the same loss with respect to the input, ∂J/∂X. One step along sign(∂J/∂X) is FGSM
(Goodfellow et al. 2015); many projected steps are PGD (Madry et al. 2018).

The public API is re-exported here, lazily (PEP 562): ``import advgrad`` imports neither torch nor the
library, and ``advgrad.fgsm`` imports ``advgrad.attacks`` on first use, so that the ``advgrad`` command
answers ``--help`` at once. ``advgrad.plots`` stays a module of its own (matplotlib).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from advgrad._version import __version__

# module → the public names it defines (the one table of the API; ``__all__`` is its union)
_API: dict[str, tuple[str, ...]] = {
    "advgrad.catalog": ("ATTACKS", "DATASETS", "LOSSES", "MODELS", "NORMS", "OBJECTIVES"),
    "advgrad.configs": ("AdvConfig", "AttackConfig", "EvalConfig", "TrainConfig"),
    "advgrad._runtime": ("frozen_eval", "predict"),
    "advgrad.attacks": ("AttackResult", "AutoAttackResult", "FabStep", "apgd", "apgd_targeted", "autoattack", "fab",
                        "fab_targeted", "fgsm", "get_attack", "gradient_steps", "input_gradient", "mifgsm", "pgd",
                        "run_attack", "square"),
    # minimal-norm attacks, one module each
    "advgrad.attacks.minimal.alma": ("ALMAOptions", "alma"),
    "advgrad.attacks.minimal.cw": ("CWOptions", "cw"),
    "advgrad.attacks.minimal.ddn": ("ddn",),
    "advgrad.attacks.minimal.deepfool": ("deepfool",),
    "advgrad.attacks.minimal.ead": ("EADOptions", "ead"),
    "advgrad.attacks.minimal.fmn": ("FMNOptions", "fmn"),
    "advgrad.attacks.minimal.sigma_zero": ("SigmaZeroOptions", "sigma_zero"),
    # attacks that only query the model
    "advgrad.attacks.blackbox.boundary": ("boundary",),
    "advgrad.attacks.blackbox.hopskipjump": ("hopskipjump",),
    "advgrad.attacks.blackbox.rays": ("rays",),
    "advgrad.attacks.blackbox.spsa": ("spsa",),
    "advgrad.attacks.noise": ("sign_noise",),
    "advgrad.attacks.fast": ("aa_fast",),  # the fast evaluation (not AutoAttack: a method of its own)
    # its stages near the boundary
    "advgrad.attacks.near": ("apgd_targeted_near", "boundary_distance", "fab_targeted_near", "square_near"),
    # models that only answer queries (an ONNX graph, an API), and the cost of an attack in model passes
    "advgrad.models.query": ("QueryModel",),
    "advgrad.models.onnx": ("load_onnx",),
    "advgrad.models.counting": ("PassCounter", "Passes", "spending"),
    "advgrad.norms": ("Norm", "get_norm"),
    "advgrad.losses": ("resolve_loss",),
    # the zoo, checkpoints, and any classifier (checkpoint, factory, TorchScript, export)
    "advgrad.models": ("MODEL_NAMES", "Checkpoint", "LoadedModel", "Normalize", "OutputLogits", "build_for",
                       "build_model", "check_model_data", "check_model_fits", "checkpoint_meta", "load_checkpoint",
                       "load_model", "open_model", "save_checkpoint"),
    # built-in sets and any image data (tensors, folders, files)
    "advgrad.data": ("DataSource", "Dataset", "FolderSource", "TensorSource", "load_data", "load_dataset",
                     "source_of"),
    "advgrad.training": ("AdversarialObjective", "History", "RobustProbe", "accuracy", "fit", "make_objective"),
    "advgrad.records.examples": ("Examples", "export_png", "load_examples", "save_examples"),
    "advgrad.evaluate": ("CHECKS", "Evaluation", "SanityCheck", "SweepResult", "curve_from_min_eps",
                         "evaluate_model", "loss_landscape", "minimal_eps", "robust_accuracy", "sanity_report",
                         "sweep", "transfer_success"),
    "advgrad.backprop": ("ForwardPass", "HandGradients", "backward_pass", "forward_pass", "hand_gradients",
                         "hand_input_gradient"),
    "advgrad.gradcheck": ("GradientCheck", "central_differences", "check_gradients"),
}
_WHERE = {name: module for module, names in _API.items() for name in names}
__all__ = ["__version__", *_WHERE]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'advgrad' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once imported, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # the same names for type checkers and IDEs
    from advgrad._runtime import frozen_eval, predict  # noqa: F401
    from advgrad.attacks import AttackResult, get_attack, input_gradient, run_attack  # noqa: F401
    from advgrad.attacks.apgd import apgd, apgd_targeted  # noqa: F401
    from advgrad.attacks.autoattack import AutoAttackResult, autoattack  # noqa: F401
    from advgrad.attacks.blackbox.boundary import boundary  # noqa: F401
    from advgrad.attacks.blackbox.hopskipjump import hopskipjump  # noqa: F401
    from advgrad.attacks.blackbox.rays import rays  # noqa: F401
    from advgrad.attacks.blackbox.spsa import spsa  # noqa: F401
    from advgrad.attacks.fab import FabStep, fab, fab_targeted  # noqa: F401
    from advgrad.attacks.fast import aa_fast  # noqa: F401
    from advgrad.attacks.minimal.alma import ALMAOptions, alma  # noqa: F401
    from advgrad.attacks.minimal.cw import CWOptions, cw  # noqa: F401
    from advgrad.attacks.minimal.ddn import ddn  # noqa: F401
    from advgrad.attacks.minimal.deepfool import deepfool  # noqa: F401
    from advgrad.attacks.minimal.ead import EADOptions, ead  # noqa: F401
    from advgrad.attacks.minimal.fmn import FMNOptions, fmn  # noqa: F401
    from advgrad.attacks.minimal.sigma_zero import SigmaZeroOptions, sigma_zero  # noqa: F401
    from advgrad.attacks.near import (  # noqa: F401
        apgd_targeted_near,
        boundary_distance,
        fab_targeted_near,
        square_near,
    )
    from advgrad.attacks.noise import sign_noise  # noqa: F401
    from advgrad.attacks.pgd import fgsm, gradient_steps, mifgsm, pgd  # noqa: F401
    from advgrad.attacks.square import square  # noqa: F401
    from advgrad.backprop import (  # noqa: F401
        ForwardPass,
        HandGradients,
        backward_pass,
        forward_pass,
        hand_gradients,
        hand_input_gradient,
    )
    from advgrad.catalog import ATTACKS, DATASETS, LOSSES, MODELS, NORMS, OBJECTIVES  # noqa: F401
    from advgrad.configs import AdvConfig, AttackConfig, EvalConfig, TrainConfig  # noqa: F401
    from advgrad.data import (  # noqa: F401
        Dataset,
        DataSource,
        FolderSource,
        TensorSource,
        load_data,
        load_dataset,
        source_of,
    )
    from advgrad.evaluate import (  # noqa: F401
        CHECKS,
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
        transfer_success,
    )
    from advgrad.gradcheck import GradientCheck, central_differences, check_gradients  # noqa: F401
    from advgrad.losses import resolve_loss  # noqa: F401
    from advgrad.models import (  # noqa: F401
        MODEL_NAMES,
        Checkpoint,
        LoadedModel,
        Normalize,
        OutputLogits,
        build_for,
        build_model,
        check_model_data,
        check_model_fits,
        checkpoint_meta,
        load_checkpoint,
        load_model,
        open_model,
        save_checkpoint,
    )
    from advgrad.models.counting import PassCounter, Passes, spending  # noqa: F401
    from advgrad.models.onnx import load_onnx  # noqa: F401
    from advgrad.models.query import QueryModel  # noqa: F401
    from advgrad.norms import Norm, get_norm  # noqa: F401
    from advgrad.records.examples import Examples, export_png, load_examples, save_examples  # noqa: F401
    from advgrad.training import (  # noqa: F401
        AdversarialObjective,
        History,
        RobustProbe,
        accuracy,
        fit,
        make_objective,
    )
