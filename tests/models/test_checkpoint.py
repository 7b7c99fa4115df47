"""Checkpoints: round trip, untrusted input refused (weights_only), atomic writes."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from helpers.cli import fake_dataset, logreg_checkpoint
from torch import nn

from advgrad.data.builtin import Dataset
from advgrad.models.checkpoint import check_data, load_checkpoint, save_checkpoint
from advgrad.models.loading import load_model
from advgrad.models.zoo import build_for
from advgrad.records import write as results


def test_round_trip_gives_identical_predictions(trained_small: tuple[nn.Module, dict],
                                                trained_small_path: Path, mnist5k: Dataset) -> None:
    model, meta = trained_small
    loaded = load_model(trained_small_path)
    assert not loaded.training
    x = mnist5k.x_test[:200]
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    ckpt = load_checkpoint(trained_small_path)
    assert ckpt.meta["model"]["name"] == "cnn-small"
    assert ckpt.meta["dataset"]["name"] == "mnist-5k" and ckpt.bounds == (0.0, 1.0)
    assert ckpt.meta["dataset"]["class_names"] == [str(d) for d in range(10)]
    assert ckpt.meta["train_config"]["seed"] == 0 and ckpt.meta["torch_version"] == torch.__version__
    assert ckpt.meta["metrics"]["test_accuracy"] == meta["metrics"]["test_accuracy"]


class _Exploit:
    """Unpickling this would create a file: a checkpoint loader must never run it."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (Path(self.marker),))


def test_pickled_code_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "advgrad-checkpoint", "payload": _Exploit(str(marker))}, evil)
    with pytest.raises(ValueError, match="not an advgrad checkpoint"):
        load_checkpoint(evil)
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("content", [b"hello world", pickle.dumps({"a": 1})], ids=["bytes", "plain-pickle"])
def test_foreign_files_are_rejected(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not an advgrad checkpoint"):
        load_checkpoint(path)


def test_torch_file_without_header_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "plain.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match="no 'advgrad-checkpoint' header"):
        load_checkpoint(path)


def test_missing_file_says_how_to_train(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="advgrad train"):
        load_checkpoint(tmp_path / "nope.pt")


def test_failed_write_leaves_nothing_behind(tmp_path: Path, trained_small: tuple[nn.Module, dict],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    model, meta = trained_small
    target = tmp_path / "m.pt"
    save_checkpoint(target, model, meta)
    before = target.read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(results.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(target, model, {**meta, "metrics": {"test_accuracy": 0.0}})
    assert target.read_bytes() == before  # the old checkpoint is intact
    assert os.listdir(tmp_path) == ["m.pt"]  # and no temporary file is left


# --- the metadata is checked when loaded -------------------------------------------------------------

def _resave(src: Path, dst: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    """A copy of the checkpoint ``src`` whose payload ``edit`` changed (as a damaged or hostile file would)."""
    payload = torch.load(src, weights_only=True)
    edit(payload)
    torch.save(payload, dst)
    return dst


@pytest.mark.parametrize("edit,message", [
    (lambda p: p["meta"]["dataset"].update(bounds=[1.0, 0.0]), "bounds [1.0, 0.0]"),
    (lambda p: p["meta"]["dataset"].update(bounds="01"), "bounds '01'"),
    (lambda p: p["meta"]["dataset"].update(input_shape=[1, 28]), "input_shape [1, 28]"),
    (lambda p: p["meta"]["dataset"].update(num_classes=True), "num_classes True"),
    (lambda p: p["meta"]["dataset"].update(class_names=["0"]), "class_names"),
    (lambda p: p["meta"]["dataset"].update(std=[0.0]), "std [0.0]"),
    (lambda p: p["meta"]["dataset"].update(n_test=-1), "n_test -1"),
    (lambda p: p["meta"].pop("dataset"), "'model' and 'dataset' blocks"),
    (lambda p: p["meta"]["model"].update(name=3), "meta model 3"),
    (lambda p: p.update(state_dict=[1, 2]), "state_dict: expected a dict of tensors"),
    (lambda p: p["state_dict"].pop("2.bias"), "'2.bias' has shape None"),
], ids=["bounds-order", "bounds-type", "shape", "classes-bool", "class-names", "std-zero", "n-test", "no-dataset",
        "model-name", "state-type", "missing-weight"])
def test_damaged_metadata_is_one_value_error(tmp_path: Path, mnist5k: Dataset, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    src = logreg_checkpoint(tmp_path / "ok.pt", mnist5k)
    assert load_checkpoint(src).meta["dataset"]["n_test"] == 1000  # the unedited file loads
    bad = _resave(src, tmp_path / "bad.pt", edit)
    with pytest.raises(ValueError, match="damaged advgrad checkpoint") as info:
        load_checkpoint(bad)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_damaged_width_is_refused_without_allocating_it(tmp_path: Path, mnist5k: Dataset) -> None:
    """meta says an mlp 10⁹ units wide (4·784·10⁹ bytes of weights): the weight shapes are compared with a
    model built on the meta device, so loading fails at once instead of allocating terabytes."""
    model, model_meta = build_for("mlp", mnist5k, seed=0, hidden=[8])
    src = save_checkpoint(tmp_path / "mlp.pt", model, {"model": model_meta, "dataset": mnist5k.meta()})
    bad = _resave(src, tmp_path / "wide.pt", lambda p: p["meta"]["model"]["kwargs"].update(hidden=[10**9]))
    needs = r"damaged .* weight .2.bias. has shape \(8,\), the model in meta needs \(1000000000,\)"
    with pytest.raises(ValueError, match=needs):
        load_checkpoint(bad)


# --- check_data: the data a model is evaluated on against the data it was trained on -------------------

def test_check_data_accepts_the_training_data(trained_small_path: Path, mnist5k: Dataset) -> None:
    ckpt = load_checkpoint(trained_small_path)
    assert check_data(ckpt, mnist5k) == [] and check_data(ckpt.meta, mnist5k) == []


@pytest.mark.parametrize("channels,size,classes,message", [
    (3, 28, 10, "inputs of shape 1×28×28 (mnist-5k), but mnist-5k has 3×28×28"),
    (1, 14, 10, "inputs of shape 1×28×28 (mnist-5k), but mnist-5k has 1×14×14"),
    (1, 28, 5, "the model has 10 classes (mnist-5k), but mnist-5k has 5"),
])
def test_check_data_refuses_another_shape_or_class_count(trained_small_path: Path, mnist5k: Dataset, channels: int,
                                                         size: int, classes: int, message: str) -> None:
    other = fake_dataset(mnist5k, channels=channels, size=size, classes=classes)
    with pytest.raises(ValueError) as info:
        check_data(load_checkpoint(trained_small_path), other)
    assert message in str(info.value)


def test_check_data_warns_about_other_split_sizes_names_and_bounds(mnist5k: Dataset) -> None:
    meta = {"dataset": {**mnist5k.meta(), "n_train": 60000, "n_test": 999}}
    warnings = check_data(meta, mnist5k)
    assert len(warnings) == 2
    assert "4000 train images here but had 60000" in warnings[0] and "1000 test images here but had 999" in warnings[1]
    renamed = {"dataset": {**mnist5k.meta(), "name": "mnist", "class_names": list("abcdefghij"), "bounds": [0, 255]}}
    warnings = check_data(renamed, mnist5k)
    assert [w.split(" ")[:4] for w in warnings] == [["the", "model", "was", "trained"],
                                                    ["the", "model's", "class", "names"],
                                                    ["the", "model", "was", "trained"]]
    assert "trained on mnist, the data is mnist-5k" in warnings[0] and "bounds (0, 255)" in warnings[2]
    # An older checkpoint that records no split sizes: nothing to compare, no warning.
    old = {"dataset": {k: v for k, v in mnist5k.meta().items() if k not in ("n_train", "n_test")}}
    assert check_data(old, mnist5k) == []
    with pytest.raises(ValueError, match="records no data set"):
        check_data({"model": {}}, mnist5k)
