"""What every command shares: one-line errors with exit 2, the device choice, checkpoint loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, TypeVar

import click
import torch

from advgrad._runtime import DEVICES
from advgrad._runtime import resolve_device as _resolve_device
from advgrad.checkpoint import Checkpoint, load_checkpoint

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_MODEL = Path("runs/model.pt")


class UsageFail(click.ClickException):
    """A bad value from the user: printed as one line ``Error: ...``, exit status 2."""

    exit_code = 2


def resolve_device(name: str) -> torch.device:
    try:
        return _resolve_device(name)
    except ValueError:
        raise UsageFail("--device cuda: no CUDA device is available (use --device cpu or auto)") from None


def device_option(f: F) -> F:
    return click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
                        help="Where to compute.")(f)


def model_option(f: F) -> F:
    return click.option("--model", "model_path", type=click.Path(path_type=Path), default=DEFAULT_MODEL,
                        show_default=True, help="Checkpoint written by `advgrad train`.")(f)


def open_checkpoint(path: Path, device: torch.device | str = "cpu") -> Checkpoint:
    """Load a checkpoint, turning a missing or foreign file into a one-line usage error."""
    try:
        return load_checkpoint(path, map_location=device)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageFail(str(exc)) from None


def parse_widths(option: str, value: str, example: str) -> list[int]:
    """Comma-separated positive integers (layer widths), or a one-line usage error naming the value."""
    try:
        widths = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        widths = []
    if not widths or any(w < 1 for w in widths):
        raise UsageFail(f"{option} {value!r}: expected comma-separated positive integers such as {example}")
    return widths
