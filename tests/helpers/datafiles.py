"""Data files written the way their producers write them, for the data tests: IDX sets (torchvision's
layout, gzipped or raw), CIFAR-10 pickle batches (Python 3 and Python 2 pickles, as shipped), ``.npz`` sets."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> None:
    """IDX: two zero bytes, type 0x08 (uint8), ndim, big-endian uint32 dims, then the raw bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


def make_idx_set(folder: Path, n_train: int = 12, n_test: int = 6, gz: bool = True, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8)}
    for stem, arr in arrays.items():
        write_idx(folder / stem, arr, gz=gz)
    return arrays


def _py2_str(b: bytes) -> bytes:
    """A Python 2 str as cPickle wrote it: SHORT_BINSTRING (1-byte length) or BINSTRING (4-byte length)."""
    if len(b) < 256:
        return pickle.SHORT_BINSTRING + bytes([len(b)]) + b
    return pickle.BINSTRING + struct.pack("<i", len(b)) + b


def _py2_int(v: int) -> bytes:
    """An int as cPickle wrote it: BININT1, BININT2 or BININT (signed 4-byte)."""
    if 0 <= v < 256:
        return pickle.BININT1 + bytes([v])
    if 0 <= v < 65536:
        return pickle.BININT2 + struct.pack("<H", v)
    return pickle.BININT + struct.pack("<i", v)


def py2_cifar_batch(data: np.ndarray, labels: list[int], batch_label: bytes, filenames: list[bytes]) -> bytes:
    """The opcode stream of the real CIFAR-10 batches, written by Python 2's cPickle (protocol 2) and numpy 1.x:
    str as BINSTRING, the array as numpy.core.multiarray._reconstruct(ndarray, (0,), 'b') then BUILD with
    (1, shape, dtype('u1') with state (3, '|', None, None, None, -1, -1, 0), False, raw bytes)."""
    g = pickle.GLOBAL
    dtype = (g + b"numpy\ndtype\n" + _py2_str(b"u1") + _py2_int(0) + _py2_int(1) + pickle.TUPLE3 + pickle.REDUCE
             + pickle.MARK + _py2_int(3) + _py2_str(b"|") + pickle.NONE * 3 + _py2_int(-1) + _py2_int(-1)
             + _py2_int(0) + pickle.TUPLE + pickle.BUILD)
    array = (g + b"numpy.core.multiarray\n_reconstruct\n" + g + b"numpy\nndarray\n" + _py2_int(0) + pickle.TUPLE1
             + _py2_str(b"b") + pickle.TUPLE3 + pickle.REDUCE
             + pickle.MARK + _py2_int(1) + _py2_int(data.shape[0]) + _py2_int(data.shape[1]) + pickle.TUPLE2 + dtype
             + pickle.NEWFALSE + _py2_str(np.ascontiguousarray(data).tobytes()) + pickle.TUPLE + pickle.BUILD)
    items = [(b"data", array),
             (b"labels", pickle.EMPTY_LIST + pickle.MARK + b"".join(map(_py2_int, labels)) + pickle.APPENDS),
             (b"batch_label", _py2_str(batch_label)),
             (b"filenames", pickle.EMPTY_LIST + pickle.MARK + b"".join(map(_py2_str, filenames)) + pickle.APPENDS)]
    body = b"".join(_py2_str(key) + value for key, value in items)
    return pickle.PROTO + b"\x02" + pickle.EMPTY_DICT + pickle.MARK + body + pickle.SETITEMS + pickle.STOP


CIFAR_NAMES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def make_cifar_folder(root: Path, n: int = 4, seed: int = 0, py2: bool = False) -> dict[str, dict]:
    """root/cifar-10-batches-py/ with six batches of n images: Python 2 streams (as the real files) or
    batches pickled by this Python and this numpy (default protocol). Returns the batches as dicts."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    batches = {}
    for name in CIFAR_NAMES:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        files = [f"img_{name}_{i}.png".encode() for i in range(n)]
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data, b"filenames": files}
        raw = py2_cifar_batch(data, labels, name.encode(), files) if py2 else pickle.dumps(batch)
        (folder / name).write_bytes(raw)
        batches[name] = batch
    return batches


def make_npz(path: Path, n_train: int = 8, n_test: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """An .npz in the embedded mnist-5k layout: x_* uint8 (N, 28, 28), y_* uint8 (N,)."""
    rng = np.random.default_rng(seed)
    arrays = {"x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
              "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "y_test": rng.integers(0, 10, n_test, dtype=np.uint8)}
    np.savez_compressed(path, **arrays)
    return arrays
