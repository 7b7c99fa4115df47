"""Readers for the file formats behind advgrad's datasets: IDX (``.gz`` or raw), CIFAR-10's pickled
python batches, ``.npz`` archives, and ``.pt`` files of tensors (``torch.load(weights_only=True)``). Data
files are untrusted input: a reader returns plain numpy arrays (tensors for ``.pt``) or raises
:class:`DataError` with one line naming the file and what is wrong. No library error (EOFError,
zlib.error, struct.error, UnpicklingError, KeyError, ...) escapes, and no file runs code:
CIFAR-10 batches go through an unpickler that knows only the globals of a pickled numpy array and calls
none of them; the arrays are rebuilt with ``np.frombuffer`` from checked parts (``advgrad.data._cifar_pickle``).
"""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """A data file is corrupt or not in the expected format; the message names the file and the fault."""


def fail(where: str | Path, what: str) -> DataError:
    """The error for a bad file, on one line: ``'<file>': <what>`` (the path quoted, odd characters escaped)."""
    place = repr(str(where)) if isinstance(where, Path) else where
    return DataError(f"{place}: {' '.join(what.split())}")


def _why(exc: BaseException) -> str:
    """A library exception as a short phrase for a message: ``TypeName: text`` (text cut at 120 characters)."""
    text = " ".join(str(exc).split())
    text = text if len(text) <= 120 else text[:119] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when its name ends in ``.gz``."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise fail(path, f"cannot be read ({exc.strerror or _why(exc)})") from exc
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    # Not gzip → BadGzipFile (an OSError); stream cut short → EOFError; bad deflate data → zlib.error.
    except (OSError, EOFError, zlib.error) as exc:
        raise fail(path, f"is not a complete gzip file ({_why(exc)})") from exc


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format; ``.gz`` or raw): two zero bytes, type byte 0x08 (uint8),
    ndim, ndim big-endian uint32 sizes, then the row-major bytes."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise fail(path, f"is not an IDX file (only {len(data)} bytes)")
    if data[0] != 0 or data[1] != 0:
        raise fail(path, "is not an IDX file (bad magic number)")
    if data[2] != 0x08:
        raise fail(path, f"only unsigned-byte IDX data is supported, got type 0x{data[2]:02x}")
    ndim = data[3]
    start = 4 + 4 * ndim
    if ndim == 0:
        raise fail(path, "IDX header declares 0 dimensions")
    if len(data) < start:
        raise fail(path, f"IDX header for {ndim} dimensions is cut short ({len(data)} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4:start])
    size = len(data) - start
    expected = 1
    for d in dims:  # Python ints: no overflow, whatever the header says
        expected *= d
    if size != expected:
        raise fail(path, f"header says {dims} but holds {size} bytes")
    body = np.frombuffer(data, dtype=np.uint8, count=size, offset=start)
    return body.reshape(dims).copy()  # frombuffer is read-only; torch wants writable memory


def read_npz(path: str | Path, keys: Sequence[str], optional: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """The named arrays of an ``.npz`` archive (a zip of ``.npy`` files), and those of ``optional`` that it
    holds. Object arrays are refused (``allow_pickle`` stays False), and a file that is not a zip never
    reaches numpy's pickle fallback."""
    path = Path(path)
    raw = _read_bytes(path)
    if not raw.startswith(b"PK\x03\x04"):
        raise fail(path, f"is not an .npz archive (no zip signature; starts with {raw[:8]!r})")
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            missing = [k for k in keys if k not in archive.files]
            if missing:
                raise fail(path, f"has no array {missing[0]!r} (holds {', '.join(archive.files) or 'nothing'})")
            arrays = {k: archive[k] for k in [*keys, *optional] if k in archive.files}
    except DataError:
        raise
    # zipfile and numpy's .npy parser raise many types for a damaged archive (BadZipFile, EOFError,
    # zlib.error, ValueError, NotImplementedError, RuntimeError, OSError, ...): each means a broken file.
    except Exception as exc:
        raise fail(path, f"is not a readable .npz archive ({_why(exc)})") from exc
    for key, value in arrays.items():
        if not isinstance(value, np.ndarray):  # NpzFile hands back raw bytes for a member without the .npy magic
            raise fail(path, f"member {key}.npy is not a .npy array")
    return arrays


def read_torch_arrays(path: str | Path, keys: Sequence[str], optional: Sequence[str] = ()) -> dict[str, object]:
    """The named entries of a ``.pt`` file holding a dict (tensors, lists of str), read with
    ``torch.load(weights_only=True)``: tensors, containers, strings and numbers only, no pickled objects."""
    import torch

    path = Path(path)
    raw = _read_bytes(path)
    try:
        obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    # A refused global (UnpicklingError), a damaged zip or pickle, torch's own format errors: a broken file.
    except Exception as exc:
        raise fail(path, f"cannot be read with torch.load(weights_only=True) ({_why(exc)})") from exc
    if not isinstance(obj, dict):
        raise fail(path, f"holds a {type(obj).__name__}, not a dict with entries {', '.join(map(repr, keys))}")
    missing = [k for k in keys if k not in obj]
    if missing:
        held = ", ".join(repr(k) for k in list(obj)[:6]) or "nothing"
        raise fail(path, f"has no entry {missing[0]!r} (holds {held})")
    return {k: obj[k] for k in [*keys, *optional] if k in obj}
