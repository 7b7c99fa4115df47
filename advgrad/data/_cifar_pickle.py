"""CIFAR-10's python batches (pickled dicts of numpy arrays), read without running code: the pickle's
opcodes are scanned first, then an unpickler that knows only the globals of a pickled numpy array, and calls
none of them, builds the dict; the arrays are rebuilt with ``np.frombuffer`` from checked parts. Every
fault raises :class:`advgrad.data.files.DataError` with one line naming the file and what is wrong."""

from __future__ import annotations

import io
import pickle
import pickletools
import reprlib
from pathlib import Path
from typing import Any

import numpy as np

from advgrad.data.files import DataError, _read_bytes, _why, fail

CIFAR_KEYS = ("data", "labels", "batch_label", "filenames")  # what a genuine CIFAR-10 batch holds
CIFAR_ROW = 3 * 32 * 32  # one image: R, G, B planes of 32×32, row-major

# The globals a pickled numpy integer array names (numpy < 2 wrote numpy.core.*, numpy 2 numpy._core.*;
# _frombuffer is pickle protocol 5's). None of them is ever called: see _Pickled.
_NUMPY_GLOBALS = {("numpy", "ndarray"): "ndarray", ("numpy", "dtype"): "dtype",
                  **{(f"{core}.multiarray", "_reconstruct"): "reconstruct" for core in ("numpy.core", "numpy._core")},
                  **{(f"{core}.numeric", "_frombuffer"): "frombuffer" for core in ("numpy.core", "numpy._core")}}
_INT_DTYPES = frozenset(f"{kind}{size}" for kind in "iu" for size in (1, 2, 4, 8))
_DTYPE_STATE_TAIL = (None, None, None, -1, -1, 0)  # subarray, names, fields, elsize, alignment, flags
# EXT1/2/4 name a global by a number in copyreg's registry, and the unpickler may answer them from its
# cache without asking find_class; persistent ids call back into the application. No CIFAR batch has them.
_REFUSED_OPCODES = frozenset({"EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID"})


class _Pickled:
    """What the batch unpickler builds where a pickle calls numpy: the call's name and arguments, and the
    state a BUILD opcode passes. numpy's own unpickling code never sees the file (``dtype.__setstate__``
    crashes the interpreter on a malformed state tuple: numpy issue #30476); :func:`_array` rebuilds the
    array from checked parts with ``np.frombuffer``."""

    __slots__ = ("args", "kind", "state")

    def __init__(self, kind: str, args: tuple[object, ...]) -> None:
        self.kind, self.args = kind, args
        self.state: object = None

    def __setstate__(self, state: object) -> None:
        self.state = state


class _ShortRepr(reprlib.Repr):
    """A repr for messages that stays short and shallow whatever a pickle built (tuples nested 100,000 deep,
    a 30 MB bytes object): builtin repr would recurse or copy all of it."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxstring, self.maxother = 3, 24, 24

    def repr_bytes(self, x: bytes, level: int) -> str:
        return repr(x[:16]) + ("..." if len(x) > 16 else "")

    repr_bytearray = repr_bytes


_short = _ShortRepr().repr


def _text(value: object) -> object:
    """Python 2 wrote str, read here as bytes (encoding="bytes"); compare them as text."""
    return value.decode("latin-1") if isinstance(value, bytes) else value


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
    """An unpickler that knows only the globals of a pickled numpy array, and calls none of them: each
    resolves to a recorder of its arguments (:class:`_Pickled`). Every other global (``os.system``,
    ``builtins.exec``, ...) is refused when the pickle names it, before anything runs; dicts, lists,
    tuples, strings and numbers need no global."""

    def __init__(self, raw: bytes, path: Path) -> None:
        # Real CIFAR-10 batches were pickled by Python 2: its str are read as bytes, as the format intends.
        super().__init__(io.BytesIO(raw), encoding="bytes")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        kind = _NUMPY_GLOBALS.get((module, name))
        if kind is None:
            raise fail(self._path, f"refused to unpickle global {module}.{name}: a CIFAR-10 batch holds only "
                                   "a dict of numpy arrays, lists, strings and ints")
        if kind == "ndarray":  # only ever an argument of _reconstruct; a fresh marker, so no state is shared
            return _Pickled(kind, ())
        return lambda *args: _Pickled(kind, args)


def _dtype(path: Path, what: str, value: object) -> np.dtype:
    """An integer dtype from its pickled form: ``dtype(spec, False, True)`` then BUILD with
    ``(3, endian, None, None, None, -1, -1, 0)``, as numpy writes one."""
    if not isinstance(value, _Pickled) or value.kind != "dtype" or len(value.args) != 3:
        raise fail(path, f"{what}: expected a pickled numpy dtype, got {_describe(value)}")
    spec, state = _text(value.args[0]), value.state
    if not isinstance(spec, str) or spec not in _INT_DTYPES or value.args[1:] != (False, True):
        raise fail(path, f"{what}: dtype {_short(spec)} is not an integer type pickled by numpy")
    endian = _text(state[1]) if isinstance(state, tuple) and len(state) == 8 else None
    if not (isinstance(state, tuple) and state[0] == 3 and endian in ("|", "<", ">", "=")
            and state[2:] == _DTYPE_STATE_TAIL):
        raise fail(path, f"{what}: malformed state for dtype {spec}: {_short(state)}")
    return np.dtype(spec).newbyteorder("<" if endian == "<" else ">" if endian == ">" else "=")


def _array(path: Path, what: str, value: object) -> np.ndarray:
    """A numpy integer array from its pickled form, rebuilt by ``np.frombuffer`` once every part is checked:
    ``_reconstruct(ndarray, ...)`` then BUILD with ``(1, shape, dtype, is_fortran, raw)`` (protocols 0-4),
    or ``_frombuffer(raw, dtype, shape, order)`` (protocol 5)."""
    if not isinstance(value, _Pickled) or value.kind not in ("reconstruct", "frombuffer"):
        raise fail(path, f"{what} must be a numpy array, got {_describe(value)}")
    if value.kind == "frombuffer" and len(value.args) == 4:
        raw, dtype, shape, order = value.args
    else:
        state = value.state
        if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1 and type(state[3]) in (bool, int)):
            raise fail(path, f"{what}: malformed numpy array state {_short(state)}")
        _, shape, dtype, fortran, raw = state
        order = "F" if fortran else "C"
    dt = _dtype(path, what, dtype)
    if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)) or order not in ("C", "F"):
        raise fail(path, f"{what}: malformed numpy array shape {_short(shape)} or order {_short(order)}")
    count = 1
    for n in shape:  # Python ints: no overflow
        count *= n
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != count * dt.itemsize:
        held = f"{len(raw)} bytes" if isinstance(raw, (bytes, bytearray)) else _describe(raw)
        raise fail(path, f"{what}: shape {shape} of {dt} needs {count * dt.itemsize} bytes, the file holds {held}")
    return np.frombuffer(raw, dtype=dt, count=count).reshape(shape, order=order).copy(order="C")


def _describe(value: object) -> str:
    """A short description of an unpickled value for an error message."""
    if isinstance(value, _Pickled):
        return f"a pickled numpy {value.kind}"
    return f"a {type(value).__name__}"


def _cifar_labels(path: Path, labels: object) -> np.ndarray:
    """A batch's labels (a list of ints in the real files; a 1-D integer array is accepted too) → (N,) int64."""
    if isinstance(labels, list) and all(type(v) is int for v in labels):
        try:
            return np.array(labels, dtype=np.int64).reshape(len(labels))
        except OverflowError:
            raise fail(path, "'labels' holds an integer too large to be a class") from None
    if isinstance(labels, _Pickled):
        array = _array(path, "'labels'", labels)
        if array.ndim == 1:
            return array.astype(np.int64)
        raise fail(path, f"'labels' must be 1-D, got shape {array.shape}")
    raise fail(path, f"'labels' must be a list of ints, got {_describe(labels)}")


def _cifar_fields(path: Path, batch: object) -> dict[str, object]:
    """The batch dict with its keys as str (Python 2 wrote them as bytes); unknown or missing keys refused."""
    if not isinstance(batch, dict):
        raise fail(path, f"holds {_describe(batch)}, not the dict of a CIFAR-10 batch")
    fields: dict[str, object] = {}
    for key, value in batch.items():
        name = key.decode("latin-1") if isinstance(key, bytes) else key
        if not isinstance(name, str) or name not in CIFAR_KEYS:
            raise fail(path, f"unexpected key {_short(key)} (a CIFAR-10 batch holds {', '.join(CIFAR_KEYS)})")
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
    # A malformed pickle can fail in many ways as it runs (stack underflow, a missing memo slot, a call of
    # something not callable, an unhashable dict key, ...); all of them mean the file is broken.
    except Exception as exc:
        raise fail(path, f"is not a readable CIFAR-10 batch ({_why(exc)})") from exc
    fields = _cifar_fields(path, batch)
    data = _array(path, "'data'", fields["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != CIFAR_ROW:
        raise fail(path, f"'data' must be a uint8 array of shape (N, {CIFAR_ROW}), got {data.dtype} {data.shape}")
    labels = _cifar_labels(path, fields["labels"])
    if len(labels) != len(data):
        raise fail(path, f"holds {len(data)} images but {len(labels)} labels")
    return data, labels
