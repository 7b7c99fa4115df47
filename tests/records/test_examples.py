"""Transfer attacks: examples saved with their provenance come back bit for bit, are checked on the way in and
out, and their transfer success rate is the plain count it claims to be."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers.batches import mixed_digits
from torch import nn

from advgrad import __version__
from advgrad.attacks import pgd
from advgrad.data.builtin import Dataset
from advgrad.data.sources import load_data
from advgrad.evaluate.transfer import transfer_success
from advgrad.records.examples import PNG_LOSSY, Examples, export_png, load_examples, save_examples
from advgrad.records.write import sha256_file

EPS = 0.1


@pytest.fixture
def attacked(trained_small: tuple[nn.Module, dict], mnist5k: Dataset) -> tuple[torch.Tensor, torch.Tensor, Any]:
    x, y = mixed_digits(mnist5k, 40)
    result = pgd(trained_small[0], x, y, EPS, steps=5, generator=torch.Generator().manual_seed(0))
    return x, y, result


@pytest.fixture
def saved(tmp_path: Path, attacked: Any, trained_small_path: Path) -> Path:
    x, y, result = attacked
    return save_examples(tmp_path / "adv.npz", result.x_adv, y, attack="pgd", eps=EPS, norm="inf", seed=0,
                         model_sha256=sha256_file(trained_small_path), x=x, num_classes=10)


def test_examples_round_trip_with_their_provenance(saved: Path, attacked: Any, trained_small_path: Path) -> None:
    x, y, result = attacked
    ex = load_examples(saved)
    assert torch.equal(ex.x_adv, result.x_adv) and torch.equal(ex.y, y) and ex.x is not None and torch.equal(ex.x, x)
    # The provenance is inside the .npz, readable by numpy alone (no pickle).
    with np.load(saved, allow_pickle=False) as archive:
        meta = json.loads(str(archive["meta"][()]))
    assert meta == ex.meta
    assert meta["format"] == "advgrad-examples" and meta["attack"] == "pgd" and meta["eps"] == EPS
    assert meta["norm"] == "inf" and meta["seed"] == 0 and meta["advgrad_version"] == __version__
    assert meta["model_sha256"] == sha256_file(trained_small_path) and meta["bounds"] == [0.0, 1.0]
    assert meta["n"] == len(y) and meta["num_classes"] == 10


def test_transfer_to_the_source_model_is_the_attacks_own_success(saved: Path, attacked: Any,
                                                                trained_small: tuple[nn.Module, dict]) -> None:
    model = trained_small[0]
    x, y, result = attacked
    ex = load_examples(saved)
    report = transfer_success(model, ex, batch_size=len(y))
    with torch.no_grad():  # the plain count, on the same single batch (same ops, same shapes: same bits)
        clean_ok, adv_ok = model(x).argmax(1) == y, model(ex.x_adv).argmax(1) == y
    assert report["clean_accuracy"] == int(clean_ok.sum()) / len(y)
    assert report["adv_accuracy"] == int(adv_ok.sum()) / len(y)
    assert report["n_clean_correct"] == int(clean_ok.sum())
    assert report["success_rate"] == int((clean_ok & ~adv_ok).sum()) / int(clean_ok.sum())
    assert 0.0 < report["success_rate"] < 1.0 and report["source"]["attack"] == "pgd"
    # The attack's own flags, from its own forward passes (other batch shapes): they agree wherever the top two
    # logits are not tied to rounding.
    with torch.no_grad():
        top2 = model(ex.x_adv).topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 1e-4
    assert torch.equal(result.success[clear], ~adv_ok[clear])


def test_without_clean_inputs_success_is_the_error_rate(tmp_path: Path, attacked: Any,
                                                        trained_small: tuple[nn.Module, dict]) -> None:
    x, y, result = attacked
    path = save_examples(tmp_path / "adv.npz", result.x_adv, y, attack="pgd", eps=EPS)
    ex = load_examples(path)
    assert ex.x is None and ex.meta["seed"] is None and ex.meta["model_sha256"] is None
    report = transfer_success(trained_small[0], ex, batch_size=len(y))
    # fooled/n against 1 − correct/n: equal in exact arithmetic, apart by one rounding of a double here.
    assert report["clean_accuracy"] is None and report["success_rate"] == pytest.approx(1 - report["adv_accuracy"],
                                                                                         abs=1e-15)


def test_targets_that_do_not_fit_are_refused(saved: Path) -> None:
    ex = load_examples(saved)
    rgb = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.Linear(2 * 26 * 26, 10))
    narrow = nn.Sequential(nn.Flatten(), nn.Linear(784, 5))
    with pytest.raises(ValueError, match=r"fails on inputs of shape \(2, 1, 28, 28\)"):
        transfer_success(rgb, ex)
    with pytest.raises(ValueError, match=r"has 5 outputs but the data needs 10 classes"):
        transfer_success(narrow, ex)
    with pytest.raises(ValueError, match=r"live in bounds \(0.0, 1.0\) but the model takes \(-1, 1\)"):
        transfer_success(narrow, ex, bounds=(-1, 1))


def test_bad_examples_are_refused_before_anything_is_written(tmp_path: Path, attacked: Any) -> None:
    x, y, result = attacked
    far = (x + 2 * EPS).clamp(0, 1)
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "beyond eps": (dict(x_adv=far, x=x), r"an example lies 0\.2 from its clean input in Linf, more than eps = 0\.1"),
        "beyond bounds": (dict(x_adv=x + 0.5), r"x_adv has values in \[0\.5, 1\.5\], outside the bounds \[0, 1\]"),
        "NaN": (dict(x_adv=torch.full_like(x, float("nan"))), r"x_adv has values in \[nan, nan\]"),
        "labels": (dict(y=y[:3]), r"y must be 40 integer labels ≥ 0"),
        "float labels": (dict(y=y.float()), r"y must be 40 integer labels"),
        "x shape": (dict(x=x[:, :, :20]), r"x has shape \(40, 1, 20, 28\) but x_adv \(40, 1, 28, 28\)"),
        "not a batch": (dict(x_adv=x[0]), r"x_adv must be a non-empty float \(N, C, H, W\) batch"),
        "attack": (dict(attack=""), r"attack must be the attack's name"),
        "eps": (dict(eps=-1.0), r"eps must be finite and ≥ 0, got -1\.0"),
        "norm": (dict(norm="3"), r"unknown norm '3'"),
        "sha": (dict(model_sha256="abc"), r"model_sha256 must be a sha256 hex digest"),
        "not JSON": (dict(extra=float("nan")), r"Out of range float values are not JSON compliant"),
    }
    for name, (changes, pattern) in cases.items():
        kwargs: dict[str, Any] = dict(x_adv=result.x_adv, y=y, attack="pgd", eps=EPS, x=None) | changes
        with pytest.raises(ValueError, match=pattern) as info:
            save_examples(tmp_path / "out" / "adv.npz", **kwargs)
        assert "\n" not in str(info.value), name
    assert list(tmp_path.iterdir()) == []


def _tamper(src: Path, dst: Path, **changes: Any) -> Path:
    with np.load(src, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(str(arrays["meta"][()]))
    meta.update(changes.pop("meta", {}))
    arrays["meta"] = np.array(json.dumps(meta))
    arrays.update(changes)
    np.savez(dst, **{k: v for k, v in arrays.items() if v is not None})
    return dst


def test_tampered_files_are_one_line_data_errors(tmp_path: Path, saved: Path) -> None:
    with np.load(saved, allow_pickle=False) as archive:
        x_adv, x = archive["x_adv"], archive["x"]
    cases = {
        "no meta": (dict(meta=None), r"has no array 'meta'"),
        "meta not JSON": (dict(meta=np.array("{")), r"its meta entry is not a JSON record"),
        "format": ({"meta": {"format": "other"}}, r"not an advgrad examples file"),
        "version": ({"meta": {"format_version": 2}}, r"examples format 2; this advgrad reads 1"),
        "eps": ({"meta": {"eps": -1}}, r"eps must be finite and ≥ 0"),
        "bounds": ({"meta": {"bounds": [1, 0]}}, r"bounds must be finite with lo < hi"),
        "moved": (dict(x_adv=np.clip(x + 0.15, 0, 1)), r"lies 0\.15 from its clean input .* more than eps = 0\.1"),
        "out of bounds": (dict(x_adv=x_adv + 1), r"x_adv has values in \[1, 2\], outside the bounds"),
        "float y": (dict(y=np.zeros(40, np.float32)), r"y has dtype float32"),
        "int x": (dict(x=x.astype(np.int64)), r"x has dtype int64"),
    }
    for name, (changes, pattern) in cases.items():
        if "meta" in changes and not isinstance(changes["meta"], dict):  # replace or drop the whole entry
            with np.load(saved, allow_pickle=False) as archive:
                arrays = {k: archive[k] for k in archive.files}
            arrays["meta"] = changes["meta"]
            np.savez(tmp_path / f"{name}.npz", **{k: v for k, v in arrays.items() if v is not None})
            path = tmp_path / f"{name}.npz"
        else:
            path = _tamper(saved, tmp_path / f"{name}.npz", **changes)
        with pytest.raises(ValueError, match=pattern) as info:
            load_examples(path)
        assert "\n" not in str(info.value), name
    with pytest.raises(FileNotFoundError, match=r"no examples file at"):
        load_examples(tmp_path / "none.npz")


def test_png_export_is_lossy_and_says_so(tmp_path: Path, saved: Path) -> None:
    ex = load_examples(saved)
    report = export_png(tmp_path / "png", ex)
    assert report["files"] == len(ex) and report["warning"] == PNG_LOSSY and "8 bits" in PNG_LOSSY
    assert 0 < report["max_rounding"] <= 1 / 510 + 1e-7  # round to the nearest of 256 levels: at most half a step
    back = load_data(tmp_path / "png", grayscale=True)
    xs, ys = back.tensors()
    order = sorted(range(len(ex)), key=lambda i: (int(ex.y[i]), i))  # ImageFolder's order: class, then file name
    assert torch.equal(xs, (ex.x_adv[order] * 255).round() / 255) and torch.equal(ys, ex.y[order])


def test_png_export_refuses_what_png_cannot_hold(tmp_path: Path) -> None:
    ex = Examples(torch.zeros(2, 2, 4, 4), torch.zeros(2, dtype=torch.long), None,
                  {"bounds": [0.0, 1.0], "eps": 0.0, "norm": "inf"})
    with pytest.raises(ValueError, match=r"PNG export needs 1 or 3 channels in bounds \(0, 1\), got 2"):
        export_png(tmp_path / "png", ex)
    assert not (tmp_path / "png").exists()
