"""``advgrad train --data FILE|FOLDER --test-data FILE|FOLDER``: your images as the training split and an
explicit held-out split. The run equals the library's ``fit`` on a ``Dataset`` holding the same tensors
(bit for bit: same ops, same batches, same seed, one process); the model's Normalize statistics are the
training images' per-channel mean and std, checked against numpy; the test accuracy the run records is the
saved model's accuracy on the test file, recomputed here. Bad input: one ``Error:`` line, exit 2, nothing
written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.cli import assert_usage_error, invoke, tree
from PIL import Image

from advgrad.data.builtin import Dataset
from advgrad.models.checkpoint import load_checkpoint
from advgrad.models.zoo import build_for
from advgrad.training.train import TrainConfig, fit


def _files(tmp_path: Path, data: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """tr.npz: 300 training digits as uint8 NHWC; te.npz: 100 test digits as float32 NCHW in [0, 1]."""
    x8 = (data.x_train[:300] * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    np.savez(tmp_path / "tr.npz", x=x8, y=data.y_train[:300].numpy())
    np.savez(tmp_path / "te.npz", x=data.x_test[:100].numpy(), y=data.y_test[:100].numpy())
    return x8, data.y_train[:300].numpy()


@pytest.mark.slow
def test_train_on_files_equals_fit_on_the_same_tensors(mnist5k: Dataset, tmp_path: Path) -> None:
    x8, y = _files(tmp_path, mnist5k)
    out = tmp_path / "m.pt"
    result = invoke("train", "--data", str(tmp_path / "tr.npz"), "--test-data", str(tmp_path / "te.npz"), "--model",
                    "cnn-small", "--epochs", "2", "--batch-size", "50", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"training cnn-small on {tmp_path / 'tr.npz'} (300 train / 100 test)" in result.stdout
    ckpt = load_checkpoint(out)
    ds = ckpt.meta["dataset"]
    # The statistics are of the float32 images the model sees (k/255 rounded to float32), taken in float64.
    x = (x8.astype(np.float32) / np.float32(255)).astype(np.float64)  # (300, 28, 28, 1)
    assert ds["mean"] == pytest.approx([x.mean()], abs=1e-12) and ds["std"] == pytest.approx([x.std(ddof=1)], abs=1e-12)
    assert ds["num_classes"] == 10 and ds["n_train"] == 300 and ds["n_test"] == 100
    # The reference: fit on a Dataset of the same tensors (the built-in set's own), with the recorded statistics (numpy's agree with
    # them above to rounding; using them makes Normalize, hence every step, the same ops on the same values).
    assert torch.equal(torch.from_numpy(x8).permute(0, 3, 1, 2).float() / 255, mnist5k.x_train[:300])  # k/255 both
    data = Dataset("ref", mnist5k.x_train[:300], torch.from_numpy(y), mnist5k.x_test[:100], mnist5k.y_test[:100], tuple(str(i) for i in range(10)),
                   tuple(ds["mean"]), tuple(ds["std"]))
    model, _ = build_for("cnn-small", data, seed=0)
    history = fit(model, data, TrainConfig(epochs=2, batch_size=50, seed=0, device="cpu"))
    for (k, a), b in zip(model.state_dict().items(), ckpt.model.state_dict().values()):
        assert torch.equal(a, b), k
    metrics = json.loads(out.with_suffix(".json").read_text())
    with torch.no_grad():
        correct = int((ckpt.model(mnist5k.x_test[:100]).argmax(1) == mnist5k.y_test[:100]).sum())
    assert round(metrics["history"][-1]["test_accuracy"] * 100) == correct
    assert metrics["history"][-1]["test_accuracy"] == history.epochs[-1]["test_accuracy"]
    # A checkpoint trained on a file has no built-in test split to fall back on: eval asks for --data.
    bad = invoke("eval", "--model", str(out), "--eps", "0.1", "--out", str(tmp_path / "e.json"))
    assert_usage_error(bad.exit_code, bad.stderr, "--data is needed", "tr.npz")
    ok = invoke("eval", "--model", str(out), "--data", str(tmp_path / "te.npz"), "--eps", "0.1", "--attacks", "fgsm",
                "--no-sanity", "--out", str(tmp_path / "e.json"))
    assert ok.exit_code == 0, ok.output
    assert "warning" not in ok.stderr  # a model trained on one file is meant to meet another
    assert round(json.loads((tmp_path / "e.json").read_text())["clean_accuracy"] * 100) == correct


def _digit_folder(tmp_path: Path, data: Dataset, n: int = 40) -> Path:
    """The first ``n`` training digits as 8-bit PNGs in ImageFolder layout (class folders c0..c9)."""
    for i in range(n):
        label = int(data.y_train[i])
        (tmp_path / "digits" / f"c{label}").mkdir(parents=True, exist_ok=True)
        img = (data.x_train[i, 0] * 255).round().to(torch.uint8).numpy()
        Image.fromarray(img).save(tmp_path / "digits" / f"c{label}" / f"{i}.png")
    return tmp_path / "digits"


def test_train_on_a_folder_reads_its_classes(mnist5k: Dataset, tmp_path: Path) -> None:
    """A PNG folder (read as RGB without --grayscale) as the training split; one epoch."""
    _digit_folder(tmp_path, mnist5k)
    np.savez(tmp_path / "te.npz", x=np.zeros((4, 3, 28, 28), np.uint8), y=np.zeros(4, np.int64))
    out = tmp_path / "m.pt"
    result = invoke("train", "--data", str(tmp_path / "digits"), "--test-data", str(tmp_path / "te.npz"),
                    "--model", "logreg", "--epochs", "1", "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    ds = load_checkpoint(out).meta["dataset"]
    classes = sorted({f"c{int(c)}" for c in mnist5k.y_train[:40]})
    assert ds["class_names"] == classes and ds["input_shape"] == [3, 28, 28] and ds["n_train"] == 40


def test_folder_options_reach_the_training_images(mnist5k: Dataset, tmp_path: Path) -> None:
    """--image-size 20 --grayscale read the training folder as load_data reads it (the library's reader,
    the reference here): the checkpoint's input shape is (1, 20, 20) and its Normalize statistics are those
    of load_data's tensors; the .npz test split is a file, which the folder options leave alone."""
    from advgrad.data.sources import load_data

    folder = _digit_folder(tmp_path, mnist5k)
    np.savez(tmp_path / "te.npz", x=np.zeros((4, 1, 20, 20), np.uint8), y=np.zeros(4, np.int64))
    out = tmp_path / "m.pt"
    result = invoke("train", "--data", str(folder), "--test-data", str(tmp_path / "te.npz"), "--image-size", "20",
                    "--grayscale", "--model", "logreg", "--epochs", "1", "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    ckpt = load_checkpoint(out)
    assert ckpt.meta["dataset"]["input_shape"] == [1, 20, 20]
    x, _ = load_data(folder, image_size=20, grayscale=True).tensors()  # (40, 1, 20, 20)
    assert x.shape == (40, 1, 20, 20)
    # float64 statistics of the same pixels: a difference beyond rounding means other pixels were read
    ds = ckpt.meta["dataset"]
    assert ds["mean"] == pytest.approx(x.double().mean(dim=(0, 2, 3)).tolist(), rel=1e-12)
    assert ds["std"] == pytest.approx(x.double().std(dim=(0, 2, 3)).tolist(), rel=1e-12)


def test_bad_training_data_is_one_line_exit_2_nothing_written(mnist5k: Dataset, tmp_path: Path) -> None:
    _files(tmp_path, mnist5k)
    np.savez(tmp_path / "rgb.npz", x=np.zeros((4, 3, 28, 28), np.uint8), y=np.zeros(4, np.int64))
    np.savez(tmp_path / "k12.npz", x=np.zeros((4, 1, 28, 28), np.uint8), y=np.full(4, 11, np.int64))
    tr, te = str(tmp_path / "tr.npz"), str(tmp_path / "te.npz")
    out = ["--out", str(tmp_path / "runs" / "m.pt")]
    cases = [
        (["train", "--data", tr, *out], "needs --test-data"),
        (["train", "--dataset", "mnist-5k", "--test-data", te, *out], "--test-data is the held-out split"),
        (["train", "--data", tr, "--test-data", te, "--data-root", str(tmp_path), *out], "data_root/download apply to built-in"),
        (["train", "--data", tr, "--test-data", str(tmp_path / "rgb.npz"), *out], "(3, 28, 28)"),
        (["train", "--data", tr, "--test-data", str(tmp_path / "k12.npz"), *out], "label 11"),
        (["train", "--data", tr, "--test-data", str(tmp_path / "none.npz"), *out], "none.npz"),
        (["train", "--data", "nothing-like-this", *out], "not a built-in data set"),
        (["train", "--dataset", "mnist-5k", "--grayscale", *out], "grayscale apply to a folder of images"),
        (["train", "--data", tr, "--test-data", te, "--image-size", "0", *out], "image_size"),
        (["train", "--data", tr, "--test-data", te, "--image-size", "2,x", *out], "image_size"),
    ]
    before = tree(tmp_path)
    for args, fragment in cases:
        result = invoke(*args)
        assert_usage_error(result.exit_code, result.stderr, fragment)
        assert tree(tmp_path) == before, args


def test_resume_knows_a_run_on_files(mnist5k: Dataset, tmp_path: Path) -> None:
    """The run's identity (what --resume compares) holds the files' data: the same command resumes, other
    test data is another run."""
    _files(tmp_path, mnist5k)
    args = ["train", "--data", str(tmp_path / "tr.npz"), "--test-data", str(tmp_path / "te.npz"), "--model", "logreg",
            "--epochs", "1", "--out", str(tmp_path / "m.pt")]
    assert invoke(*args).exit_code == 0
    again = invoke(*args, "--resume")
    assert again.exit_code == 0 and "already holds all 1 epochs" in again.stdout, again.output
    np.savez(tmp_path / "te2.npz", x=mnist5k.x_test[:50].numpy(), y=mnist5k.y_test[:50].numpy())
    other = invoke(*[str(tmp_path / "te2.npz") if a.endswith("te.npz") else a for a in args], "--resume")
    assert other.exit_code == 2 and other.stderr.startswith("Error: ") and len(other.stderr.splitlines()) == 1, \
        other.output
