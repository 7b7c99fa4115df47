"""The choices and defaults that the commands' ``--help`` shows, written out here so that a command's
module imports no torch: ``advgrad train --help`` answers at once. Each one is a copy of a library value;
tests/test_cli_startup.py checks every copy against the library, so they cannot drift apart unnoticed."""

from __future__ import annotations

DATASETS = ("mnist-5k", "fashion-mnist", "mnist", "cifar10")  # advgrad.data.DATASETS
MODEL_NAMES = ("logreg", "mlp-sigmoid", "mlp", "cnn", "cnn-small", "preact-resnet18")  # advgrad.models
HEADS = ("softmax", "sigmoid")  # advgrad.models.HEADS
DEVICES = ("auto", "cpu", "cuda")  # advgrad.train.DEVICES
OPTIMIZERS = ("sgd", "adam")  # advgrad.train.OPTIMIZERS
SCHEDULES = ("constant", "cosine", "one-cycle")  # advgrad.train.SCHEDULES
ADV_METHODS = ("fgsm", "fgsm-rs", "pgd", "trades")  # advgrad.adversarial.METHODS
DEFAULT_BETA = 6.0  # advgrad.adversarial.DEFAULT_BETA
LOSSES = ("ce", "mse", "margin")  # advgrad.losses.LOSSES
HAND_LOSSES = ("mse", "ce")  # advgrad.backprop.HAND_LOSSES

# advgrad.train.TrainConfig's defaults
TRAIN = {"epochs": 8, "batch_size": 64, "optimizer": "adam", "lr": 2e-3, "schedule": "one-cycle",
         "weight_decay": 0.0, "momentum": 0.9}
# advgrad.evaluate.EvalConfig's defaults
EVAL = {"steps": 20, "restarts": 1, "batch_size": 500, "precision": 0.005, "queries": 300}
