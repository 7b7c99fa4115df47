"""Evaluation: how robust is a model, and can that number be trusted? One module per question:

- ``robust``: accuracy under several attacks at several ε (``sweep``, ``robust_accuracy``);
- ``min_eps``: the per-sample minimal ε by bisection and the accuracy-versus-ε curve from it;
- ``sanity``: the checks that flag gradient masking, one function each (``CHECKS``, ``sanity_report``);
- ``landscape``: the loss along sign(∂J/∂X) against random directions;
- ``transfer``: adversarial examples made on another model, tried on this one (``transfer_success``);
- ``report``: all of it for one model and one ``EvalConfig`` (``evaluate_model``, what ``advgrad eval`` runs).

Everything runs on the model's device, in eval mode, with the parameters' gradients off (the attacks
restore mode and flags). ε is an L∞ radius by default (``norm``) on the pixel scale of ``bounds``.
"""

from advgrad._runtime import predict
from advgrad.attacks.noise import sign_noise
from advgrad.configs import EvalConfig
from advgrad.evaluate.landscape import loss_landscape
from advgrad.evaluate.min_eps import curve_from_min_eps, minimal_eps
from advgrad.evaluate.progress import Progress
from advgrad.evaluate.report import Evaluation, evaluate_model
from advgrad.evaluate.robust import WORST, SweepResult, robust_accuracy, sweep
from advgrad.evaluate.sanity import CHECKS, SanityCheck, sanity_report
from advgrad.evaluate.transfer import transfer_success

__all__ = ["CHECKS", "WORST", "EvalConfig", "Evaluation", "Progress", "SanityCheck", "SweepResult",
           "curve_from_min_eps", "evaluate_model", "loss_landscape", "minimal_eps", "predict", "robust_accuracy",
           "sanity_report", "sign_noise", "sweep", "transfer_success"]
