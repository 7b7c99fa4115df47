"""One trained module saved as every kind of model file `--model` takes (for the CLI tests of your model):
a ``.py`` factory with a DDP-prefixed state dict, TorchScript, a torch.export ``.pt2``."""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

# Rebuilds cnn-small for mnist-5k with another seed: the weights file must set every weight.
FACTORY = textwrap.dedent("""
    from advgrad.data.builtin import load_dataset
    from advgrad.models.zoo import build_for

    def make():
        return build_for("cnn-small", load_dataset("mnist-5k"), seed=1)[0]
""")


def write_factory(folder: Path, model: nn.Module) -> tuple[Path, Path]:
    """``folder/cnn_small.py`` (``make``) and ``folder/ddp.pt``: the model's state dict with DDP's prefix."""
    (folder / "cnn_small.py").write_text(FACTORY)
    weights = folder / "ddp.pt"
    torch.save({"module." + k: v for k, v in model.state_dict().items()}, weights)
    return folder / "cnn_small.py", weights


def write_script(path: Path, model: nn.Module, example: Tensor) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated (still supported)
        torch.jit.save(torch.jit.trace(model.eval(), example), path)
    return path


def write_export(path: Path, model: nn.Module, example: Tensor) -> Path:
    """The model exported in eval mode with a dynamic batch dimension (any batch size 1..4096)."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(model.eval(), (example,), dynamic_shapes=({0: batch},))
    torch.export.save(program, path)
    return path
