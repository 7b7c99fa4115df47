"""The training loop: ∂J/∂W by autograd, seeded determinism, schedules, the objective seam."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from advgrad.data.builtin import Dataset
from advgrad.models.zoo import build_for
from advgrad.training.train import TrainConfig, accuracy, fit, lr_factor


def weights(model: nn.Module) -> list[Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def small(data: Dataset, n: int = 400) -> Dataset:
    return Dataset(data.name, data.x_train[:n], data.y_train[:n], data.x_test[:200], data.y_test[:200],
                   data.class_names, data.mean, data.std)


@pytest.mark.parametrize("field,value,match", [
    ("epochs", 0, "epochs must be a positive integer"),
    ("batch_size", 0, "batch size must be a positive integer"),
    ("lr", 0.0, "lr must be a positive number"),
    ("lr", float("nan"), "lr must be a positive number"),
    ("weight_decay", -1.0, "weight decay"),
    ("optimizer", "rmsprop", "unknown optimizer 'rmsprop'"),
    ("schedule", "step", "unknown schedule 'step'"),
    ("loss", "margin", "unknown loss 'margin'"),
], ids=lambda v: str(v))
def test_config_rejects_bad_values(field: str, value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{field: value})


def test_schedules() -> None:
    assert lr_factor("constant", 0.7) == 1.0
    assert lr_factor("cosine", 0.0) == 1.0 and lr_factor("cosine", 0.5) == pytest.approx(0.5)
    assert lr_factor("cosine", 1.0) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor("one-cycle", 0.0) == 0.0 and lr_factor("one-cycle", 0.4) == 1.0
    assert lr_factor("one-cycle", 0.7) == pytest.approx(0.5) and lr_factor("one-cycle", 1.0) == 0.0


@pytest.mark.parametrize("model_name", ["logreg", "cnn-small"])
def test_same_seed_gives_bit_identical_weights(mnist5k: Dataset, model_name: str) -> None:
    data = small(mnist5k, 300)
    runs = []
    for seed in (7, 7, 8):
        config = TrainConfig(epochs=1, batch_size=32, seed=seed, device="cpu")
        model, _ = build_for(model_name, data, seed=seed)
        fit(model, data, config)
        runs.append(weights(model))
    assert all(torch.equal(a, b) for a, b in zip(runs[0], runs[1]))
    assert not all(torch.equal(a, b) for a, b in zip(runs[0], runs[2]))


def test_training_learns_mnist(trained_small: tuple[nn.Module, dict], mnist5k: Dataset) -> None:
    model, meta = trained_small
    acc = accuracy(model, mnist5k.x_test, mnist5k.y_test)
    assert acc > 0.9
    assert meta["metrics"]["test_accuracy"] == pytest.approx(acc)


def test_mse_loss_trains_a_sigmoid_network(mnist5k: Dataset) -> None:
    data = small(mnist5k, 2000)
    model, _ = build_for("mlp-sigmoid", data, seed=0, hidden=[64], head="sigmoid")
    before = accuracy(model, data.x_test, data.y_test)
    history = fit(model, data, TrainConfig(epochs=4, lr=5e-3, schedule="constant", loss="mse", device="cpu"))
    assert history.final["test_accuracy"] > max(0.7, before + 0.3)
    assert history.epochs[0]["train_loss"] > history.epochs[-1]["train_loss"]


def test_objective_seam_receives_every_batch_and_drives_the_update(mnist5k: Dataset) -> None:
    data = small(mnist5k, 100)
    model, _ = build_for("logreg", data, seed=0)
    start = weights(model)
    seen: list[tuple[int, float]] = []

    def zero_objective(model: nn.Module, x: Tensor, y: Tensor, progress: float) -> tuple[Tensor, Tensor]:
        seen.append((len(y), progress))
        logits = model(x)
        return 0.0 * logits.sum(), logits  # zero gradient: Adam's update is exactly zero

    history = fit(model, data, TrainConfig(epochs=2, batch_size=32, device="cpu"), objective=zero_objective)
    assert [n for n, _ in seen] == [32, 32, 32, 4] * 2
    progress = [p for _, p in seen]
    assert progress == sorted(progress) and progress[0] == 0.0 and progress[-1] < 1.0
    assert all(torch.equal(a, b) for a, b in zip(start, weights(model)))
    assert len(history.epochs) == 2
    assert set(history.final) >= {"train_loss", "train_accuracy", "test_accuracy", "seconds"}


def test_accuracy_restores_training_mode(trained_small: tuple[nn.Module, dict], mnist5k: Dataset) -> None:
    model, _ = trained_small
    model.train()
    try:
        accuracy(model, mnist5k.x_test[:50], mnist5k.y_test[:50])
        assert model.training
    finally:
        model.eval()
