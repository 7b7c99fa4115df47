"""Property: whatever a data file holds, loading gives either a valid Dataset or a one-line DataError /
DataNotFound naming a file under the data root; never any other exception. Small valid file sets of each
kind (IDX .gz in torchvision's FashionMNIST/raw layout, a CIFAR-10 batch folder, an .npz) are damaged by
truncation, byte flips (biased towards headers and trailers, where the structure is), garbage and
appended bytes, either in the file as stored or inside its compressed/zipped payload, then loaded."""

from __future__ import annotations

import gzip
import io
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from helpers.datafiles import CIFAR_NAMES, make_cifar_folder, make_idx_set, make_npz
from hypothesis import given, settings
from hypothesis import strategies as st

from advgrad.data import builtin as data_mod
from advgrad.data.builtin import DataError, DataNotFound, Dataset, load_dataset

FUZZ = settings(max_examples=120, deadline=None)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _good(build: Callable[[Path], object], sub: str) -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as d:
        build(Path(d))
        return _files(Path(d) / sub)


IDX = _good(lambda root: make_idx_set(root / "FashionMNIST" / "raw", n_train=3, n_test=2), "FashionMNIST/raw")
CIFAR = {py2: _good(lambda root, py2=py2: make_cifar_folder(root, n=1, py2=py2), "cifar-10-batches-py")
         for py2 in (False, True)}  # pickled by this Python and numpy, or byte for byte as the real files
NPZ = _good(lambda root: (root / "npz").mkdir() or make_npz(root / "npz" / "d.npz", n_train=3, n_test=2), "npz")


@st.composite
def damaged(draw: st.DrawFn, raw: bytes) -> bytes:
    """``raw`` truncated, with bytes flipped, replaced by garbage, or with bytes appended or inserted."""
    kind = draw(st.sampled_from(["truncate", "flip", "garbage", "append", "insert"]))
    if kind == "truncate":
        return raw[:draw(st.integers(0, max(len(raw) - 1, 0)))]
    if kind == "garbage":
        return draw(st.binary(max_size=64))
    if kind == "append":
        return raw + draw(st.binary(min_size=1, max_size=32))
    last = max(len(raw) - 1, 0)
    where = st.one_of(st.integers(0, min(63, last)), st.integers(0, last), st.integers(max(0, last - 63), last))
    if kind == "insert":
        at = draw(where)
        return raw[:at] + draw(st.binary(min_size=1, max_size=16)) + raw[at:]
    out = bytearray(raw)
    for at in draw(st.lists(where, min_size=1, max_size=4)):
        if out:
            out[at] ^= draw(st.integers(1, 255))
    return bytes(out)


def _regzip(raw: bytes, change: Callable[[bytes], bytes]) -> bytes:
    return gzip.compress(change(gzip.decompress(raw)))


def _rezip(raw: bytes, member: str, change: Callable[[bytes], bytes]) -> bytes:
    """The archive with one member's bytes changed and a correct CRC, so the damage reaches numpy's parser."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            dst.writestr(info.filename, change(body) if info.filename == member else body)
    return out.getvalue()


def _assert_valid(ds: Dataset, shape: tuple[int, int, int]) -> None:
    assert ds.input_shape == shape and ds.num_classes == 10
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        assert x.dtype == torch.float32 and x.shape[1:] == shape and len(x) == len(y) > 0
        assert bool(((x >= 0) & (x <= 1)).all())  # also false for NaN
        assert y.dtype == torch.int64 and y.ndim == 1
        assert int(y.min()) >= 0 and int(y.max()) < ds.num_classes


def _load_or_fail(load: Callable[[], Dataset], root: Path, shape: tuple[int, int, int]) -> str:
    try:
        ds = load()
    except (DataError, DataNotFound) as exc:
        message = str(exc)
        assert "\n" not in message and str(root) in message, message
        return "error"
    _assert_valid(ds, shape)
    return "ok"


def _write(folder: Path, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, raw in files.items():
        (folder / name).write_bytes(raw)


@pytest.mark.parametrize("kind", ["idx", "cifar", "npz"])
def test_undamaged_files_load(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: the fuzzed file sets load as they are."""
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        if kind == "idx":
            _write(root / "FashionMNIST" / "raw", IDX)
            assert _load_or_fail(lambda: load_dataset("fashion-mnist", root), root, (1, 28, 28)) == "ok"
        elif kind == "cifar":
            for py2 in (False, True):
                _write(root / "cifar-10-batches-py", CIFAR[py2])
                assert _load_or_fail(lambda: load_dataset("cifar10", root), root, (3, 32, 32)) == "ok"
        else:
            _write(root, NPZ)
            monkeypatch.setattr(data_mod, "EMBEDDED", root / "d.npz")
            assert _load_or_fail(lambda: load_dataset("mnist-5k"), root, (1, 28, 28)) == "ok"


@pytest.mark.slow
@FUZZ
@given(name=st.sampled_from(sorted(IDX)), inside=st.booleans(), data=st.data())
def test_damaged_idx_set(name: str, inside: bool, data: st.DataObject) -> None:
    files = dict(IDX)
    if inside:  # damage the IDX bytes and gzip them again: header and dims reach the IDX parser
        files[name] = _regzip(files[name], lambda raw: data.draw(damaged(raw)))
    else:
        files[name] = data.draw(damaged(files[name]))
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        _write(root / "FashionMNIST" / "raw", files)
        _load_or_fail(lambda: load_dataset("fashion-mnist", root), root, (1, 28, 28))


@pytest.mark.slow
@FUZZ
@given(name=st.sampled_from(CIFAR_NAMES), py2=st.booleans(), data=st.data())
def test_damaged_cifar_folder(name: str, py2: bool, data: st.DataObject) -> None:
    files = dict(CIFAR[py2])
    files[name] = data.draw(damaged(files[name]))
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        _write(root / "cifar-10-batches-py", files)
        _load_or_fail(lambda: load_dataset("cifar10", root), root, (3, 32, 32))


@pytest.mark.slow
@FUZZ
@given(member=st.sampled_from([None, "x_train.npy", "y_train.npy", "x_test.npy", "y_test.npy"]), data=st.data())
def test_damaged_npz(member: str | None, data: st.DataObject) -> None:
    raw = NPZ["d.npz"]
    if member is None:
        raw = data.draw(damaged(raw))
    else:  # a damaged .npy inside an intact zip: numpy's header parser and array reader see it
        raw = _rezip(raw, member, lambda body: data.draw(damaged(body)))
    with tempfile.TemporaryDirectory() as d, pytest.MonkeyPatch.context() as patch:
        root = Path(d)
        (root / "d.npz").write_bytes(raw)
        patch.setattr(data_mod, "EMBEDDED", root / "d.npz")
        _load_or_fail(lambda: load_dataset("mnist-5k"), root, (1, 28, 28))
