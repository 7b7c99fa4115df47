"""How the CLI ends when something unexpected happens: one line on stderr that names the exception and a
file holding its full traceback, exit status 1. The user never sees a traceback; a bug report needs the
file."""

from __future__ import annotations

import os
import platform
import shlex
import tempfile
import traceback
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

MAX_MESSAGE = 500  # characters of the exception's message on the error line; the file has all of it


def log_dir() -> Path:
    """Where tracebacks go: ``advgrad/`` in the system's temporary folder (``$TMPDIR`` if set)."""
    return Path(tempfile.gettempdir()) / "advgrad"


def save_traceback(exc: BaseException, argv: Sequence[str]) -> Path:
    """Write the command line, versions and the traceback of ``exc`` to a new file (atomically: a
    temporary file moved into place) named by the time and process id; returns its path."""
    from advgrad._version import __version__
    from advgrad.runs.output import write_text

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    path = log_dir() / f"traceback-{stamp}-{os.getpid()}.txt"
    text = (f"command: {shlex.join(argv)}\nadvgrad {__version__}, Python {platform.python_version()}, "
            f"{platform.platform()}\n\n" + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    return write_text(path, text)


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` as one line (a text of several lines: its stripped lines joined by a space), cut at
    ``limit`` characters. A text of one line is kept as it is."""
    lines = text.splitlines()
    flat = text if lines == [text] else " ".join(line.strip() for line in lines if line.strip())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def internal_error_line(exc: BaseException, argv: Sequence[str]) -> str:
    """``Error: internal error: Type: message (traceback saved in PATH)``, saving the traceback."""
    try:
        where = f"traceback saved in {save_traceback(exc, argv)}"
    except Exception as failed:  # a full or read-only temporary folder must not hide the original error
        where = f"traceback not saved: {type(failed).__name__}: {one_line(str(failed), 200)}"
    message = one_line(str(exc))
    return f"Error: internal error: {type(exc).__name__}{': ' + message if message else ''} ({where})"
