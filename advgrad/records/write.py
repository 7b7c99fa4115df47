"""The one place that writes files: every write goes to a temporary file in the target folder and is
moved into place with ``os.replace``, so a crash or Ctrl-C never leaves a half-written file behind.
Also builds the provenance block that every result record carries.

numpy and torch are imported where they are needed, not here: the CLI imports this module to start up,
and ``advgrad --help`` must not wait for torch."""

from __future__ import annotations

import contextlib
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

# The command line of the CLI invocation in progress (set by advgrad.cli), so that provenance names the
# command the user typed even when the CLI runs inside another program (click's CliRunner, a script).
current_command: ContextVar[list[str] | None] = ContextVar("current_command", default=None)


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Prove that ``path`` can be written, before any long computation runs; ValueError if not.

    ``os.access`` is not proof (root is granted W_OK on /proc, where nothing can be created), so this does
    what the write will do: create the missing parent folders and a temporary file in the target folder
    (named like the writer's own temporaries, so a leftover is swept by the next write), then remove both.
    """
    p = Path(path)
    created: list[Path] = []
    try:
        if p.is_dir():
            raise ValueError(f"output path {str(p)!r} is a directory, expected a file path")
        if p.exists() and not p.is_file():  # os.replace would put a file where a device or pipe was
            raise ValueError(f"output path {str(p)!r} exists and is not a regular file")
        parent = p.parent  # Path("m.pt").parent is Path(".")
        missing: list[Path] = []
        folder = parent
        while not folder.exists() and folder != folder.parent:
            missing.append(folder)
            folder = folder.parent
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"output path {str(p)!r} is not writable ({str(folder)!r} is a file, not a folder)")
        for new in reversed(missing):  # outermost first
            new.mkdir()
            created.append(new)
        try:
            fd, probe = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=parent)
        except OSError as exc:
            raise ValueError(f"output path {str(p)!r} is not writable (cannot create a file in "
                             f"{str(parent)!r}: {exc.strerror or exc})") from None
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:  # a folder that cannot be made or looked into, a name too long
        where = f"{exc.filename!r}: " if exc.filename is not None else ""
        raise ValueError(f"output path {str(p)!r} is not writable ({where}{exc.strerror or exc})") from None
    except ValueError as exc:
        if str(exc).startswith("output path"):
            raise
        raise ValueError(f"output path {str(p)!r} is not a usable file name ({exc})") from None  # a NUL byte
    finally:
        for new in reversed(created):  # innermost first; a folder that gained files meanwhile stays
            with contextlib.suppress(OSError):
                new.rmdir()
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
    # An object of a numpy or torch type exists only if that library is imported: look, don't import.
    np, torch = sys.modules.get("numpy"), sys.modules.get("torch")
    if np is not None and isinstance(obj, np.generic):
        return obj.item()
    if torch is not None and isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return obj.item()
    if isinstance(obj, Path):
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
    import numpy as np

    buf = io.BytesIO()
    named: dict[str, Any] = {k: np.asarray(v) for k, v in arrays.items()}
    np.savez_compressed(buf, **named)
    return write_bytes(path, buf.getvalue())


def write_torch(path: str | os.PathLike[str], obj: Any) -> Path:
    import torch

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
    import torch

    from advgrad._version import __version__

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
        "machine": (f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, "
                    f"torch threads {torch.get_num_threads()}"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if model_path is not None:
        record["model_path"] = str(model_path)
        record["model_sha256"] = sha256_file(model_path)
    return record
