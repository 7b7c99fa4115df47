"""The one place that writes files: every write goes to a temporary file in the target folder and is
moved into place with ``os.replace``, so a crash or Ctrl-C never leaves a half-written file behind.
Also builds the provenance block that every result record carries."""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import os
import platform
import shlex
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advgrad._version import __version__

# The command line of the CLI invocation in progress (set by advgrad.cli), so that provenance names the
# command the user typed even when the CLI runs inside another program (click's CliRunner, a script).
current_command: ContextVar[list[str] | None] = ContextVar("current_command", default=None)


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Fail early (ValueError) if ``path`` cannot be written, before any long computation runs."""
    p = Path(path)
    if p.exists() and p.is_dir():
        raise ValueError(f"output path {str(p)!r} is a directory, expected a file path")
    parent = p.parent if str(p.parent) else Path(".")
    # Walk up to the first existing ancestor: missing folders are created at write time.
    ancestor = parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"output path {str(p)!r} is not writable ({str(ancestor)!r} cannot be written)")
    return p


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic(path: str | os.PathLike[str], write: Callable[[io.BufferedWriter], None]) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    # A process killed with SIGKILL mid-write cannot remove its temporary file: sweep such leftovers of
    # this target (same name pattern as below) before writing it again.
    for stale in p.parent.glob(f".{glob.escape(p.name)}.*.tmp"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    def write(f: io.BufferedWriter) -> None:
        f.write(data)

    return _atomic(path, write)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return obj.item()
    if isinstance(obj, (Path,)):
        return str(obj)
    if isinstance(obj, (tuple, set)):
        return list(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=_jsonable, allow_nan=True) + "\n"


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return write_text(path, to_json(obj))


def write_csv(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]],
              fields: Sequence[str] | None = None) -> Path:
    rows = list(rows)
    names = list(fields) if fields is not None else (list(rows[0]) if rows else [])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=names, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_text(path, buf.getvalue())


def write_npz(path: str | os.PathLike[str], **arrays: Any) -> Path:
    buf = io.BytesIO()
    np.savez_compressed(buf, allow_pickle=False, **{k: np.asarray(v) for k, v in arrays.items()})
    return write_bytes(path, buf.getvalue())


def write_torch(path: str | os.PathLike[str], obj: Any) -> Path:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return write_bytes(path, buf.getvalue())


def write_figure(path: str | os.PathLike[str], fig: Any, dpi: int = 120) -> Path:
    """Save a matplotlib Figure; the format follows the suffix (.png, .svg, .pdf)."""
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight")
    return write_bytes(path, buf.getvalue())


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def provenance(*, seed: int | None = None, model_path: str | os.PathLike[str] | None = None,
               argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Who made a record and how: the command line, seed, model file hash, versions, machine, time."""
    if argv is None:
        argv = current_command.get() or sys.argv
    args = list(argv)
    if args:
        args[0] = Path(args[0]).name
    record: dict[str, Any] = {
        "command": shlex.join(args),
        "seed": seed,
        "advgrad_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, "
                   f"torch threads {torch.get_num_threads()}",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if model_path is not None:
        record["model_path"] = str(model_path)
        record["model_sha256"] = sha256_file(model_path)
    return record
