"""Checkpoints: round trip, untrusted input refused (weights_only), atomic writes."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from advgrad import results
from advgrad.checkpoint import load_checkpoint, load_model, save_checkpoint
from advgrad.data import Dataset


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
