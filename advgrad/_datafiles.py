"""Readers for the file formats behind advgrad's datasets: IDX (``.gz`` or raw), CIFAR-10's pickled
python batches, and ``.npz`` archives. Data files are untrusted input: a reader returns plain numpy
arrays or raises :class:`DataError` with one line naming the file and what is wrong. No library error
(EOFError, zlib.error, struct.error, UnpicklingError, KeyError, ...) escapes, and no file runs code:
CIFAR-10 batches go through an unpickler that admits only numpy's array-rebuilding globals.
"""

from __future__ import annotations

import gzip
import io
import pickle
import pickletools
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

CIFAR_KEYS = ("data", "labels", "batch_label", "filenames")  # what a genuine CIFAR-10 batch holds
CIFAR_ROW = 3 * 32 * 32  # one image: R, G, B planes of 32×32, row-major


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


def _numpy_rebuilders() -> dict[tuple[str, str], object]:
    """The globals a pickled numpy array names, mapped to numpy's own objects. The functions are taken from
    how this numpy pickles an array (no private module is imported); files from numpy < 2 name
    ``numpy.core.*``, files from numpy 2 ``numpy._core.*``; ``_frombuffer`` is pickle protocol 5's."""
    probe = np.zeros(1, np.uint8)
    reconstruct, frombuffer = probe.__reduce__()[0], probe.__reduce_ex__(5)[0]
    allowed: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return allowed


_NUMPY_GLOBALS = _numpy_rebuilders()


# EXT1/2/4 name a global by a number in copyreg's registry, and the unpickler may answer them from its
# cache without asking find_class; persistent ids call back into the application. No CIFAR batch has them.
_REFUSED_OPCODES = frozenset({"EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID"})


def _scan_opcodes(raw: bytes, path: Path) -> None:
    """Walk the pickle's opcodes without building anything. pickletools checks every counted length against
    the bytes left, so a damaged length is caught here rather than by the unpickler, which allocates a
    BINBYTES8/BYTEARRAY8 buffer of the stated size before reading (a flipped byte can ask for exabytes)."""
    try:
        for opcode, _, position in pickletools.genops(raw):
            if opcode.name in _REFUSED_OPCODES:
                raise fail(path, f"refused pickle opcode {opcode.name} at byte {position}: a CIFAR-10 batch "
                                 "names no global through copyreg's registry and has no persistent ids")
    except DataError:
        raise
    except Exception as exc:  # ValueError for an unknown opcode or a length past the end, among others
        raise fail(path, f"is not a readable CIFAR-10 batch ({_why(exc)})") from exc


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that resolves only numpy's array-rebuilding globals. Every other global (``os.system``,
    ``builtins.exec``, ...) is refused when the pickle names it, before anything is called; dicts,
    lists, tuples, strings and numbers need no global. (Opcodes that reach globals another way are
    refused by :func:`_scan_opcodes` first.)"""

    def __init__(self, raw: bytes, path: Path) -> None:
        # Real CIFAR-10 batches were pickled by Python 2: its str are read as bytes, as the format intends.
        super().__init__(io.BytesIO(raw), encoding="bytes")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        found = _NUMPY_GLOBALS.get((module, name))
        if found is None:
            raise fail(self._path, f"refused to unpickle global {module}.{name}: a CIFAR-10 batch holds only "
                                   "a dict of numpy arrays, lists, strings and ints")
        return found


def _describe(value: object) -> str:
    """A short description of an unpickled value for an error message."""
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    return f"a {type(value).__name__}"


def _cifar_labels(path: Path, labels: object) -> np.ndarray:
    """A batch's labels (a list of ints in the real files; a 1-D integer array is accepted too) → (N,) int64."""
    if isinstance(labels, list) and all(type(v) is int for v in labels):
        try:
            return np.array(labels, dtype=np.int64).reshape(len(labels))
        except OverflowError:
            raise fail(path, "'labels' holds an integer too large to be a class") from None
    if isinstance(labels, np.ndarray) and labels.ndim == 1 and labels.dtype.kind in "iu":
        return labels.astype(np.int64)
    raise fail(path, f"'labels' must be a list of ints, got {_describe(labels)}")


def _cifar_fields(path: Path, batch: object) -> dict[str, object]:
    """The batch dict with its keys as str (Python 2 wrote them as bytes); unknown or missing keys refused."""
    if not isinstance(batch, dict):
        raise fail(path, f"holds {_describe(batch)}, not the dict of a CIFAR-10 batch")
    fields: dict[str, object] = {}
    for key, value in batch.items():
        name = key.decode("latin-1") if isinstance(key, bytes) else key
        if not isinstance(name, str) or name not in CIFAR_KEYS:
            raise fail(path, f"unexpected key {repr(key)[:40]} (a CIFAR-10 batch holds {', '.join(CIFAR_KEYS)})")
        fields[name] = value
    for name in ("data", "labels"):
        if name not in fields:
            raise fail(path, f"has no {name!r} entry, so it is not a CIFAR-10 batch")
    return fields


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch → (images (N, 3072) uint8: R, G, B planes of 32×32 row-major, labels (N,) int64).
    Label values are not range-checked here (the caller knows the class count)."""
    path = Path(path)
    raw = _read_bytes(path)
    _scan_opcodes(raw, path)
    try:
        batch = _BatchUnpickler(raw, path).load()
    except DataError:
        raise
    # A malformed pickle can fail inside any constructor it reaches (numpy's included), with any exception
    # type; all of them mean the same thing here: the file is broken.
    except Exception as exc:
        raise fail(path, f"is not a readable CIFAR-10 batch ({_why(exc)})") from exc
    fields = _cifar_fields(path, batch)
    data = fields["data"]
    if type(data) is not np.ndarray or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != CIFAR_ROW:
        raise fail(path, f"'data' must be a uint8 array of shape (N, {CIFAR_ROW}), got {_describe(data)}")
    labels = _cifar_labels(path, fields["labels"])
    if len(labels) != len(data):
        raise fail(path, f"holds {len(data)} images but {len(labels)} labels")
    return data, labels


def read_npz(path: str | Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """The named arrays of an ``.npz`` archive (a zip of ``.npy`` files). Object arrays are refused
    (``allow_pickle`` stays False), and a file that is not a zip never reaches numpy's pickle fallback."""
    path = Path(path)
    raw = _read_bytes(path)
    if not raw.startswith(b"PK\x03\x04"):
        raise fail(path, f"is not an .npz archive (no zip signature; starts with {raw[:8]!r})")
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            missing = [k for k in keys if k not in archive.files]
            if missing:
                raise fail(path, f"has no array {missing[0]!r} (holds {', '.join(archive.files) or 'nothing'})")
            arrays = {k: archive[k] for k in keys}
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
