"""Training: autograd with respect to the parameters, ∂J/∂W.

- ``train``: ``fit(model, data, config)`` (mini-batch gradient descent, optimizers, learning-rate schedules)
  and ``accuracy``;
- ``loop``: the epoch loop, its ``History``, Ctrl-C and resume state;
- ``objectives``: adversarial training objectives (FGSM, fast FGSM, PGD, TRADES), which move each batch
  with the input gradient ∂J/∂X of ``advgrad.attacks`` first, and the ``RobustProbe``;
- ``_ddp``: DistributedDataParallel plumbing of ``fit`` (the process group itself is
  ``advgrad.distributed``, which the attacks' runner shares).

Training imports the attacks; the attacks never import training.
"""

from advgrad.training.loop import History
from advgrad.training.objectives import AdversarialObjective, RobustProbe, make_objective
from advgrad.training.train import accuracy, fit

__all__ = ["AdversarialObjective", "History", "RobustProbe", "accuracy", "fit", "make_objective"]
