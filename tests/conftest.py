"""Shared, seeded fixtures. Expensive ones are session-scoped and built once per test run."""

from __future__ import annotations

import importlib.util
import signal
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import matplotlib
import pytest
import torch
from helpers.peers import pytest_runtest_makereport  # noqa: F401  (the hook: a missing peer fails under make test-all)
from torch import nn

matplotlib.use("Agg")

from advgrad.data.builtin import Dataset, load_dataset  # noqa: E402
from advgrad.models.checkpoint import checkpoint_meta, save_checkpoint  # noqa: E402
from advgrad.models.zoo import build_for  # noqa: E402
from advgrad.training.train import TrainConfig, fit  # noqa: E402

# A shell starts background jobs with SIGINT ignored, and a process that starts so (pytest, and every
# process it spawns) never turns Ctrl-C into KeyboardInterrupt. The Ctrl-C tests need the ordinary
# disposition: Python's own handler here, so that spawned processes start with the default one.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def mnist5k() -> Dataset:
    """The embedded 5,000-digit MNIST subset (4,000 train / 1,000 test)."""
    return load_dataset("mnist-5k")


def _quick_train(data: Dataset, model_name: str, epochs: int, seed: int = 0) -> tuple[nn.Module, dict]:
    config = TrainConfig(epochs=epochs, batch_size=64, lr=2e-3, schedule="one-cycle", seed=seed, device="cpu")
    model, model_meta = build_for(model_name, data, seed=seed)
    history = fit(model, data, config)
    return model.eval(), checkpoint_meta(model_meta, data, config, history)


@pytest.fixture(scope="session")
def trained_small(mnist5k: Dataset) -> tuple[nn.Module, dict]:
    """Wong et al.'s cnn-small trained 2 epochs on mnist-5k (≈ 95 % test accuracy, a few seconds)."""
    return _quick_train(mnist5k, "cnn-small", epochs=2)


@pytest.fixture(scope="session")
def trained_small_path(trained_small: tuple[nn.Module, dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``trained_small`` saved as an advgrad checkpoint (read-only for tests: copy it to modify)."""
    model, meta = trained_small
    path = tmp_path_factory.mktemp("ckpt") / "cnn-small.pt"
    save_checkpoint(path, model, meta)
    return path


@pytest.fixture(scope="session")
def robust_small(mnist5k: Dataset) -> nn.Module:
    """cnn-small adversarially trained (FGSM with random start, ε = 0.2) for 3 epochs on mnist-5k: a
    robust-ish model, on which attacked points fall at every step rather than all at once."""
    from advgrad.training.objectives import AdvConfig, make_objective

    config = TrainConfig(epochs=3, batch_size=64, lr=3e-3, schedule="one-cycle", seed=0, device="cpu")
    model, _ = build_for("cnn-small", mnist5k, seed=0)
    fit(model, mnist5k, config, objective=make_objective(AdvConfig("fgsm-rs", eps=0.2), epochs=3, seed=0))
    return model.eval()


@pytest.fixture
def tiny_mlp() -> nn.Module:
    """A seeded 2-layer ReLU net on (1, 4, 4) inputs, 3 classes, in eval mode."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)).eval()


def _load_script(name: str) -> ModuleType:
    """scripts/<name>.py imported as a module, so a test can call its main() in-process."""
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def script() -> Callable[[str], ModuleType]:
    """A loader for the research scripts: ``script("bench_attacks").main([...])``."""
    return _load_script
