"""Models: the zoo, checkpoints, and loading any classifier.

- ``layers``: the layers every model wears: ``Normalize`` in front, so that every model takes inputs in
  [0, 1], and ``OutputLogits`` behind a model whose output is more than its logits;
- ``zoo``: the built-in architectures (``build_model``, ``build_for``), each with ``Normalize`` in front;
- ``checkpoint``: advgrad's ``.pt`` files (weights + everything needed to rebuild the model), written
  atomically and read as untrusted input (``load_checkpoint``; the metadata checked by the private ``_meta``);
- ``loading``: any model ``attack``/``eval`` take — a checkpoint, ``file.py:factory``, ``module:factory``,
  ``torchvision:NAME``, TorchScript, ``.pt2``, an ONNX graph (``open_model``, ``load_model``); model files
  and weights are read by the private ``_files`` and ``_weights``;
- ``fitting``: whether a model fits the data (``check_model_fits``, ``check_model_data``);
- ``query``, ``onnx``: models that only answer queries (``QueryModel``, ``load_onnx``);
- ``counting``: the cost of anything run on a model, in forward and backward sample-passes (``PassCounter``).
"""

from advgrad.models.checkpoint import Checkpoint, checkpoint_meta, load_checkpoint, save_checkpoint
from advgrad.models.fitting import check_model_data, check_model_fits
from advgrad.models.layers import Normalize, OutputLogits
from advgrad.models.loading import LoadedModel, load_model, open_model
from advgrad.models.zoo import MODEL_NAMES, build_for, build_model

__all__ = ["MODEL_NAMES", "Checkpoint", "LoadedModel", "Normalize", "OutputLogits", "build_for", "build_model",
           "check_model_data", "check_model_fits", "checkpoint_meta", "load_checkpoint", "load_model", "open_model",
           "save_checkpoint"]
