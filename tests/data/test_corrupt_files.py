"""Every broken data file gives one error type, DataError (a ValueError), with one line naming the file and the
fault; no EOFError (click would print "Aborted." and exit 130), zlib.error, BadGzipFile, struct.error,
UnpicklingError or KeyError escapes. Each case damages one file of an otherwise good set in one way, and
where a library error is the trigger, the test checks that it was (``__cause__``), so the case is real."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers.datafiles import make_cifar_folder, make_idx_set, make_npz

from advgrad.cli import main
from advgrad.data import builtin as data_mod
from advgrad.data._cifar_pickle import read_cifar_batch
from advgrad.data.builtin import DataError, load_dataset
from advgrad.data.files import read_idx


def _idx(array: np.ndarray, ndim: int | None = None, type_byte: int = 0x08) -> bytes:
    """IDX bytes for ``array``; ``ndim``/``type_byte`` override the header to make it lie."""
    ndim = array.ndim if ndim is None else ndim
    return bytes([0, 0, type_byte, ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _raise_one_line(call: Callable[[], object], path: Path, match: str) -> DataError:
    with pytest.raises(DataError, match=match) as info:
        call()
    message = str(info.value)
    assert repr(str(path)) in message and "\n" not in message
    return info.value


_GOOD = gzip.compress(_idx(np.zeros((12, 28, 28), np.uint8)))
_CUT = len(_GOOD) // 2
# (bytes written as train-images-idx3-ubyte.gz, message, library error that must be the cause or None)
_GZ_CASES = {
    "not gzip": (_idx(np.zeros((12, 28, 28), np.uint8)), "is not a complete gzip file", gzip.BadGzipFile),
    "gzip cut short": (_GOOD[:_CUT], "is not a complete gzip file", EOFError),
    "gzip header only": (_GOOD[:10], "is not a complete gzip file", EOFError),
    "bad deflate block": (_GOOD[:10] + b"\xff" + _GOOD[11:], "is not a complete gzip file", zlib.error),
    "bad crc": (_GOOD[:-8] + bytes([_GOOD[-8] ^ 1]) + _GOOD[-7:], "CRC check failed", gzip.BadGzipFile),
    "empty": (b"", r"is not an IDX file \(only 0 bytes\)", None),
    "header cut short": (gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">I", 12)), "header for 3 dimensions is cut short", None),
    "body cut short": (gzip.compress(_idx(np.zeros((12, 28, 28), np.uint8))[:-5]), r"header says \(12, 28, 28\) but holds", None),
    "bad magic": (gzip.compress(b"\x01" + _idx(np.zeros((12, 28, 28), np.uint8))[1:]), "bad magic number", None),
    "float type": (gzip.compress(_idx(np.zeros((12, 28, 28), np.uint8), type_byte=0x0D)), "got type 0x0d", None),
    "zero dims": (gzip.compress(_idx(np.zeros((12, 28, 28), np.uint8), ndim=0)), "declares 0 dimensions", None),
    "wrong rank": (gzip.compress(_idx(np.zeros((12, 784), np.uint8))), r"images must be uint8 of shape \(N, 28, 28\)", None),
    "wrong size": (gzip.compress(_idx(np.zeros((12, 32, 32), np.uint8))), r"got uint8 \(12, 32, 32\)", None),
    "fewer images": (gzip.compress(_idx(np.zeros((11, 28, 28), np.uint8))), "holds 11 images but 12 labels", None),
    "no images": (gzip.compress(_idx(np.zeros((0, 28, 28), np.uint8))), "holds no images", None),
}


@pytest.mark.parametrize("case", list(_GZ_CASES))
def test_broken_idx_images_file(tmp_path: Path, case: str) -> None:
    raw, match, cause = _GZ_CASES[case]
    folder = tmp_path / "FashionMNIST" / "raw"
    make_idx_set(folder, n_train=12)
    bad = folder / "train-images-idx3-ubyte.gz"
    bad.write_bytes(raw)
    error = _raise_one_line(lambda: load_dataset("fashion-mnist", root=tmp_path), bad, match)
    if cause is not None:
        assert isinstance(error.__cause__, cause)


@pytest.mark.parametrize("labels,match", [
    (np.full(12, 10, np.uint8), "label 10 is outside the 10 classes 0..9"),
    (np.zeros((12, 1), np.uint8), r"labels must be a 1-D integer array, got uint8 \(12, 1\)"),
    (np.zeros(13, np.uint8), "holds 12 images but 13 labels"),
])
def test_broken_idx_labels_file(tmp_path: Path, labels: np.ndarray, match: str) -> None:
    folder = tmp_path / "MNIST" / "raw"
    make_idx_set(folder, n_train=12, gz=False)
    bad = folder / "train-labels-idx1-ubyte"
    bad.write_bytes(_idx(labels))
    _raise_one_line(lambda: load_dataset("mnist", root=tmp_path), bad, match)


def test_unreadable_idx_path(tmp_path: Path) -> None:
    _raise_one_line(lambda: read_idx(tmp_path), tmp_path, r"cannot be read \(Is a directory\)")


def _batch(n: int = 4, **change: object) -> dict:
    """A well-formed batch of n images, with entries replaced (or removed, for value None) by ``change``."""
    batch: dict = {b"data": np.zeros((n, 3072), np.uint8), b"labels": [1] * n, b"batch_label": b"x"}
    for key, value in change.items():
        batch.pop(key.encode(), None)
        if value is not None:
            batch[key.encode()] = value
    return batch


class _Array:
    """Pickles as numpy does an array, ``_reconstruct(ndarray, (0,), b'b')`` then BUILD, with a chosen state."""

    def __init__(self, state: object) -> None:
        self.state = state

    def __reduce__(self) -> tuple[object, ...]:
        return np.zeros(1).__reduce__()[0], (np.ndarray, (0,), b"b"), self.state


def _deep_state() -> bytes:
    """A batch whose array state is a tuple nested 100,000 deep (EMPTY_TUPLE then TUPLE1 again and again):
    builtin repr, used naively in an error message, would raise RecursionError."""
    raw = pickle.dumps(_batch(data=_Array("DEEP")), protocol=3)  # protocol 3: no frames to keep consistent
    return raw.replace(pickle.BINUNICODE + struct.pack("<I", 4) + b"DEEP", pickle.EMPTY_TUPLE + pickle.TUPLE1 * 100_000)


_GOOD_BATCH = pickle.dumps(_batch())
# (bytes written as data_batch_3, message, library error that must be the cause or None)
_CIFAR_CASES = {
    # Caught by the opcode scan (pickletools), before the unpickler runs:
    "empty": (b"", r"not a readable CIFAR-10 batch \(ValueError: pickle exhausted before seeing STOP", ValueError),
    "truncated": (_GOOD_BATCH[:len(_GOOD_BATCH) // 2], "but only .* remain", ValueError),
    "no STOP": (_GOOD_BATCH[:-1], "pickle exhausted before seeing STOP", ValueError),
    "garbage": (b"\x00garbage", r"at position 0, opcode b'\\x00' unknown", ValueError),
    # Well-formed opcodes that fail when run: stack underflow, a memo slot never filled, a call of
    # numpy.ndarray (admitted only as an argument of _reconstruct, and never called).
    "stack underflow": (pickle.PROTO + b"\x04" + pickle.APPEND + pickle.STOP, "stack underflow", pickle.UnpicklingError),
    "memo miss": (pickle.PROTO + b"\x04" + pickle.BINGET + b"\x05" + pickle.STOP, "Memo value not found",
                  pickle.UnpicklingError),
    "calls ndarray": (pickle.PROTO + b"\x02" + pickle.GLOBAL + b"numpy\nndarray\n" + pickle.BININT + struct.pack("<i", -1)
                      + pickle.TUPLE1 + pickle.REDUCE + pickle.STOP, "is not callable", TypeError),
    "not a dict": (pickle.dumps([1, 2, 3]), "holds a list, not the dict of a CIFAR-10 batch", None),
    "no labels": (pickle.dumps(_batch(labels=None)), "has no 'labels' entry", None),
    "unknown key": (pickle.dumps(_batch(fine_labels=[0] * 4)), "unexpected key b'fine_labels'", None),
    "short rows": (pickle.dumps(_batch(data=np.zeros((4, 3071), np.uint8))), r"got uint8 \(4, 3071\)", None),
    "int64 data": (pickle.dumps(_batch(data=np.zeros((4, 3072), np.int64))), r"got int64 \(4, 3072\)", None),
    "list data": (pickle.dumps(_batch(data=[[0] * 3072] * 4)), "'data' must be a numpy array, got a list", None),
    "float data": (pickle.dumps(_batch(data=np.zeros((4, 3072)))), "dtype 'f8' is not an integer type", None),
    "short raw": (pickle.dumps(_batch(data=_Array((1, (4, 3072), np.dtype("u1"), False, b"\0" * 100)))),
                  r"shape \(4, 3072\) of uint8 needs 12288 bytes, the file holds 100 bytes", None),
    "negative dim": (pickle.dumps(_batch(data=_Array((1, (-4, 3072), np.dtype("u1"), False, b"")))),
                     r"malformed numpy array shape \(-4, 3072\)", None),
    "deep state": (_deep_state(), r"malformed numpy array state \(\(\(\(\.\.\.\),\),\),\)$", None),
    "state not a tuple": (pickle.dumps(_batch(data=_Array([1, (4, 3072)]))), "malformed numpy array state", None),
    "array labels 2-D": (pickle.dumps(_batch(labels=np.zeros((4, 1), np.int64))),
                         r"'labels' must be 1-D, got shape \(4, 1\)",
                         None),
    "1-D data": (pickle.dumps(_batch(data=np.zeros(4 * 3072, np.uint8))), r"got uint8 \(12288,\)", None),
    "float labels": (pickle.dumps(_batch(labels=[1.0] * 4)), "'labels' must be a list of ints", None),
    "bool labels": (pickle.dumps(_batch(labels=[True] * 4)), "'labels' must be a list of ints", None),
    "huge label": (pickle.dumps(_batch(labels=[2**70] * 4)), "too large to be a class", None),
    "label 10": (pickle.dumps(_batch(labels=[0, 1, 10, 2])), "label 10 is outside the 10 classes 0..9", None),
    "label -1": (pickle.dumps(_batch(labels=[0, -1, 1, 2])), "label -1 is outside", None),
    "fewer labels": (pickle.dumps(_batch(labels=[1] * 3)), "holds 4 images but 3 labels", None),
    "no images": (pickle.dumps(_batch(n=0)), "holds no images", None),
}


@pytest.mark.parametrize("case", list(_CIFAR_CASES))
def test_broken_cifar_batch(tmp_path: Path, case: str) -> None:
    raw, match, cause = _CIFAR_CASES[case]
    make_cifar_folder(tmp_path, n=2)
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    bad.write_bytes(raw)
    error = _raise_one_line(lambda: load_dataset("cifar10", root=tmp_path), bad, match)
    if cause is not None:
        assert isinstance(error.__cause__, cause)


def test_a_length_past_the_end_allocates_nothing(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """A BYTEARRAY8 whose 8-byte length was damaged: the unpickler would allocate that many bytes before reading
    (here 3e18: MemoryError, and CPython 3.11 also prints a stray "SystemError: deallocated bytearray object has
    exported buffers" to stderr). The opcode scan sees the length exceeds the file and stops first."""
    path = tmp_path / "data_batch_1"
    huge = struct.pack("<Q", 3 * 10**18)  # a claimed length of 3 exabytes
    path.write_bytes(pickle.PROTO + b"\x05" + pickle.BYTEARRAY8 + huge + b"x" * 64 + pickle.STOP)
    error = _raise_one_line(lambda: read_cifar_batch(path), path, r"expected 3000000000000000000 bytes in a bytearray8")
    assert isinstance(error.__cause__, ValueError) and capfd.readouterr().err == ""


@pytest.mark.parametrize("labels", [np.array([7, 3], "<i4"), np.array([7, 3], ">i8"), np.array([7, 3], np.uint8)],
                         ids=["int32", "big-endian int64", "uint8"])
def test_cifar_batch_variants_that_are_fine(tmp_path: Path, labels: np.ndarray) -> None:
    """Keys as str (a batch re-pickled with encoding='latin1'), labels as an integer array of any byte order,
    and data stored in Fortran order are the same data: the rebuilt arrays equal the pickled ones."""
    make_cifar_folder(tmp_path, n=2)
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    data = np.asfortranarray(np.arange(2 * 3072).astype(np.uint8).reshape(2, 3072) * 7)
    raw = pickle.dumps({"data": data, "labels": labels, "filenames": ["a", "b"]})
    batch.write_bytes(raw)
    got, got_labels = read_cifar_batch(batch)
    assert np.array_equal(got, data) and got_labels.tolist() == [7, 3] and got_labels.dtype == np.int64
    ds = load_dataset("cifar10", root=tmp_path)
    assert ds.y_test.tolist() == [7, 3] and np.array_equal((ds.x_test[1, 2] * 255).round().numpy(),
                                                            data[1, 2048:].reshape(32, 32))


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # stored, not deflated: a flipped byte reaches numpy's parser or the CRC check
    return buffer.getvalue()


def _good_arrays() -> dict[str, np.ndarray]:
    return {"x_train": np.zeros((4, 28, 28), np.uint8), "y_train": np.zeros(4, np.uint8),
            "x_test": np.zeros((2, 28, 28), np.uint8), "y_test": np.zeros(2, np.uint8)}


def _npz_with(**change: np.ndarray | None) -> bytes:
    arrays = {k: v for k, v in {**_good_arrays(), **change}.items() if v is not None}
    return _npz_bytes(**arrays)


def _flip_in_member(raw: bytes) -> bytes:
    """Flip one pixel byte of the stored x_test member: the zip's CRC no longer matches."""
    start = zipfile.ZipFile(io.BytesIO(raw)).getinfo("x_test.npy").header_offset
    at = raw.index(b"\x93NUMPY", start) + 200
    return raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1:]


_GOOD_NPZ = _npz_with()
_NPZ_CASES = {
    "empty": (b"", r"is not an .npz archive \(no zip signature; starts with b''\)", None),
    "truncated": (_GOOD_NPZ[:len(_GOOD_NPZ) // 2], "not a readable .npz archive", zipfile.BadZipFile),
    "bad crc": (_flip_in_member(_GOOD_NPZ), "Bad CRC-32", zipfile.BadZipFile),
    "pickle": (pickle.dumps({"x_train": 1}), "is not an .npz archive", None),
    "a .npy": (_npy_bytes(np.zeros((4, 28, 28), np.uint8)), r"starts with b'\\x93NUMPY", None),
    "object array": (_npz_with(y_test=np.array([0, 1], dtype=object)), "allow_pickle=False", ValueError),
    "missing key": (_npz_with(y_test=None), "has no array 'y_test'", None),
    "float images": (_npz_with(x_train=np.zeros((4, 28, 28), np.float32)), "images must be uint8", None),
    "label 10": (_npz_with(y_train=np.array([0, 10, 1, 1], np.uint8)), "x_train/y_train: label 10 is outside", None),
    "label -3": (_npz_with(y_test=np.array([-3, 1], np.int64)), "x_test/y_test: label -3 is outside", None),
    "float labels": (_npz_with(y_test=np.zeros(2, np.float64)), "labels must be a 1-D integer array", None),
    "fewer labels": (_npz_with(y_train=np.zeros(3, np.uint8)), "holds 4 images but 3 labels", None),
}


@pytest.mark.parametrize("case", list(_NPZ_CASES))
def test_broken_npz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    raw, match, cause = _NPZ_CASES[case]
    bad = tmp_path / "mnist5k.npz"
    bad.write_bytes(raw)
    monkeypatch.setattr(data_mod, "EMBEDDED", bad)
    error = _raise_one_line(lambda: load_dataset("mnist-5k"), bad, match)
    if cause is not None:
        assert isinstance(error.__cause__, cause)


def test_good_npz_still_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control for the cases above: the same writer, undamaged, gives a data set."""
    path = tmp_path / "mnist5k.npz"
    path.write_bytes(_GOOD_NPZ)
    monkeypatch.setattr(data_mod, "EMBEDDED", path)
    assert load_dataset("mnist-5k").x_train.shape == (4, 1, 28, 28)
    make_npz(path)  # and the compressed writer the other tests use
    assert load_dataset("mnist-5k").x_test.shape == (4, 1, 28, 28)


def test_cli_reports_a_cut_gzip_as_an_error_not_an_abort(tmp_path: Path) -> None:
    """An EOFError reaching click reads as Ctrl-C ("Aborted.", exit 130); a DataError is a one-line usage error."""
    folder = tmp_path / "FashionMNIST" / "raw"
    make_idx_set(folder)
    bad = folder / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-12])
    result = CliRunner().invoke(main, ["train", "--dataset", "fashion-mnist", "--data-root", str(tmp_path),
                                       "--model", "logreg", "--epochs", "1", "--out", str(tmp_path / "m.pt")])
    assert result.exit_code == 2, result.output
    expected = (f"Error: {str(bad)!r}: is not a complete gzip file (EOFError: Compressed file ended before the "
                "end-of-stream marker was reached)")
    assert result.output.splitlines() == [expected]
    assert not (tmp_path / "m.pt").exists()
