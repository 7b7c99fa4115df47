"""Your data: a folder of images, an .npz or a .pt file gives the same images, labels and accuracy as the
built-in set they were written from.

mnist-5k's digits are uint8 in the file and k/255 in float32 after loading; uint8 → PNG → uint8 is
lossless and both paths divide by 255 in float32, so the images are compared bit for bit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torch import nn

from advgrad._runtime import predict
from advgrad.data.builtin import Dataset
from advgrad.data.sources import TensorSource, load_data, parse_classes, select, source_of

N = 120  # test digits written out: 12 per class on average, some of every class


def _as_uint8(x: torch.Tensor) -> np.ndarray:
    return (x * 255).round().to(torch.uint8).numpy()


@pytest.fixture
def digits(mnist5k: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    return mnist5k.x_test[:N], mnist5k.y_test[:N]


@pytest.fixture
def png_folder(tmp_path: Path, digits: tuple[torch.Tensor, torch.Tensor]) -> Path:
    root = tmp_path / "digits"
    for i, (image, label) in enumerate(zip(*digits)):
        (root / str(int(label))).mkdir(parents=True, exist_ok=True)
        Image.fromarray(_as_uint8(image[0]), mode="L").save(root / str(int(label)) / f"{i:04d}.png")
    return root


def _folder_order(y: torch.Tensor) -> list[int]:
    """ImageFolder's order for files named by index: by class folder, then by file name."""
    return sorted(range(len(y)), key=lambda i: (int(y[i]), i))


@pytest.mark.parametrize("workers", [0, 1])
def test_a_png_folder_is_the_builtin_set(png_folder: Path, digits: Any, workers: int,
                                         trained_small: tuple[nn.Module, dict]) -> None:
    x, y = digits
    order = _folder_order(y)
    source = load_data(png_folder, grayscale=True, workers=workers)
    assert len(source) == N and source.input_shape == (1, 28, 28) and source.num_classes == 10
    assert source.class_names == tuple(str(d) for d in range(10)) and source.bounds == (0.0, 1.0)
    parts = list(source.batches(50))
    assert [len(p[1]) for p in parts] == [50, 50, 20]
    xs, ys = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    assert xs.dtype == torch.float32 and torch.equal(xs, x[order]) and torch.equal(ys, y[order])
    # The same images in the same batches: the model's predictions, and so its accuracy, are the built-in set's.
    model = trained_small[0]
    folder_correct = torch.cat([predict(model, xb, 50) == yb for xb, yb in parts])
    builtin_correct = predict(model, x[order], 50) == y[order]
    assert torch.equal(folder_correct, builtin_correct) and 0.8 < float(builtin_correct.float().mean()) < 1.0


def test_image_size_equal_to_the_images_changes_nothing(png_folder: Path, digits: Any) -> None:
    x, y = digits
    xs, _ = load_data(png_folder, grayscale=True, image_size="28").tensors()
    assert torch.equal(xs, x[_folder_order(y)])


def test_rgb_reading_replicates_gray_and_grayscale_is_luma(tmp_path: Path, png_folder: Path, digits: Any) -> None:
    x, y = digits
    rgb = load_data(png_folder).tensors()[0]  # gray PNGs read as RGB: three equal planes
    assert rgb.shape == (N, 3, 28, 28) and torch.equal(rgb, x[_folder_order(y)].expand(-1, 3, -1, -1))
    pixels = np.random.default_rng(0).integers(0, 256, (2, 9, 7, 3), dtype=np.uint8)
    for i, p in enumerate(pixels):
        (tmp_path / "rgb" / "a").mkdir(parents=True, exist_ok=True)
        Image.fromarray(p, mode="RGB").save(tmp_path / "rgb" / "a" / f"{i}.png")
    xs = load_data(tmp_path / "rgb", grayscale=True).tensors()[0][:, 0]  # (2, 9, 7) float32
    levels = (xs * 255).round()
    assert torch.equal(xs, levels / 255)  # 8-bit levels k/255, as the built-in sets hold them
    luma = torch.from_numpy(pixels.astype(np.float64)) @ torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)
    # ITU-R 601-2 luma, rounded to an integer: PIL's 16-bit fixed-point weights differ from 0.299/0.587/0.114 by
    # < 1e-5 each, so its result is within 0.5 + 255·3e-5 of the exact luma.
    assert float((levels.double() - luma).abs().max()) <= 0.5 + 0.01


@pytest.mark.parametrize(("size", "resize", "shape"), [((20, 20), None, (30, 40)), ((16, 24), None, (30, 40)),
                                                       ((24, 16), None, (50, 20)), ((20, 20), 28, (30, 40))])
def test_resize_and_crop_is_torchvisions(tmp_path: Path, size: tuple[int, int], resize: int | None,
                                         shape: tuple[int, int]) -> None:
    """Resize(s) then CenterCrop(size), s = ``resize`` or the least shorter side whose image covers size."""
    import torchvision.transforms as T
    import torchvision.transforms.functional as tf

    h, w = shape
    pixels = np.random.default_rng(1).integers(0, 256, (h, w, 3), dtype=np.uint8)
    (tmp_path / "imgs" / "c").mkdir(parents=True)
    Image.fromarray(pixels).save(tmp_path / "imgs" / "c" / "0.png")
    got = load_data(tmp_path / "imgs", image_size=size, resize=resize).tensors()[0][0]
    s = resize or min(n for n in range(1, 200) if T.Resize(n)(Image.fromarray(pixels)).size[0] >= size[1]
                      and T.Resize(n)(Image.fromarray(pixels)).size[1] >= size[0])
    expected = tf.pil_to_tensor(T.Compose([T.Resize(s), T.CenterCrop(size)])(Image.fromarray(pixels)))
    assert got.shape == (3, *size) and torch.equal(got, expected.float() / 255)


LAYOUTS = {"nchw": lambda a: a, "nhwc": lambda a: a.transpose(0, 2, 3, 1), "nhw": lambda a: a[:, 0]}


@pytest.mark.parametrize("suffix", [".npz", ".pt"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_array_files_are_the_builtin_set(tmp_path: Path, digits: Any, suffix: str, layout: str, dtype: str) -> None:
    x, y = digits
    images = _as_uint8(x) if dtype == "uint8" else x.numpy()
    arrays = {"x": LAYOUTS[layout](images), "y": y.numpy()}
    path = tmp_path / f"digits{suffix}"
    if suffix == ".npz":
        np.savez(path, **arrays)
    else:
        torch.save({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}, path)
    source = load_data(path)
    assert isinstance(source, TensorSource) and source.input_shape == (1, 28, 28) and len(source) == N
    assert source.num_classes == 10 and not source.classes_known and len(source.sha256 or "") == 64
    xs, ys = torch.cat([b[0] for b in source.batches(32)]), torch.cat([b[1] for b in source.batches(32)])
    assert xs.dtype == torch.float32 and torch.equal(xs, x) and torch.equal(ys, y)


def test_rgb_nhwc_and_class_names(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    pixels, labels = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8), np.array([0, 2, 1, 2, 0])
    np.savez(tmp_path / "rgb.npz", x=pixels, y=labels, class_names=np.array(["cat", "dog", "eel", "fox"]))
    torch.save({"x": torch.from_numpy(pixels), "y": torch.from_numpy(labels), "class_names": ["cat", "dog", "eel", "fox"]},
               tmp_path / "rgb.pt")
    for name in ("rgb.npz", "rgb.pt"):
        source = load_data(tmp_path / name)
        assert source.input_shape == (3, 32, 32) and source.class_names == ("cat", "dog", "eel", "fox")
        assert source.classes_known and source.num_classes == 4
        xs, ys = source.tensors()
        assert torch.equal(xs, torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255)
        assert ys.tolist() == labels.tolist()


def test_builtin_name_is_its_test_split(mnist5k: Dataset) -> None:
    source = load_data("mnist-5k", n=300, classes="1,7")
    keep = [i for i, label in enumerate(mnist5k.y_test.tolist()) if label in (1, 7)][:300]
    xs, ys = source.tensors()
    assert torch.equal(xs, mnist5k.x_test[keep]) and torch.equal(ys, mnist5k.y_test[keep])
    assert source.mean == mnist5k.mean and source.num_classes == 10  # labels keep their class indices
    whole = source_of(mnist5k)
    assert torch.equal(whole.tensors()[0], mnist5k.x_test) and source_of(mnist5k, "train").x is mnist5k.x_train


@settings(max_examples=200, deadline=None)
@given(labels=st.lists(st.integers(0, 5), min_size=1, max_size=40), n=st.none() | st.integers(1, 50),
       classes=st.none() | st.sets(st.integers(0, 5), min_size=1))
def test_selection_is_filter_then_first_n(labels: list[int], n: int | None, classes: set[int] | None) -> None:
    """``classes`` keeps the samples of those classes in order, then ``n`` the first N (fewer if fewer)."""
    expected = [i for i, label in enumerate(labels) if classes is None or label in classes][:n]
    if classes is not None and not expected:
        with pytest.raises(ValueError, match=r"holds no sample of classes"):
            select(labels, 6, n, sorted(classes))
        return
    got = select(labels, 6, n, None if classes is None else sorted(classes))
    assert (list(range(len(labels))) if got is None else got) == expected


def test_parse_classes() -> None:
    assert parse_classes("0-2,5") == (0, 1, 2, 5) and parse_classes([3, 1]) == (3, 1) and parse_classes(None) is None
    with pytest.raises(ValueError, match=r"classes must be class indices such as 0,3,5 or 0-4, got 'a'"):
        parse_classes("a")


class _Exploit:
    """Unpickling this would create a file: a data loader must never run it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def _bad_files(tmp: Path) -> dict[str, tuple[Path | str, dict[str, Any], type[Exception], str]]:
    """name → (spec, load_data keywords, the error, a regex its one-line message must match)."""
    ok = np.zeros((3, 1, 4, 4), np.uint8)
    y = np.array([0, 1, 1])
    for name, arrays in {"no_y": {"x": ok}, "int32": {"x": ok.astype(np.int32), "y": y},
                         "range": {"x": ok.astype(np.float32) + 2, "y": y},
                         "nan": {"x": np.full((3, 1, 4, 4), np.nan, np.float32), "y": y},
                         "yfloat": {"x": ok, "y": y.astype(np.float32)}, "ylen": {"x": ok, "y": y[:2]},
                         "yneg": {"x": ok, "y": y - 1}, "5d": {"x": ok[..., None], "y": y},
                         "empty": {"x": ok[:0], "y": y[:0]},
                         "names": {"x": ok, "y": y + 1, "class_names": np.array(["a", "b"])},
                         "three": {"x": ok, "y": y, "class_names": np.array(["a", "b", "c"])}}.items():
        np.savez(tmp / f"{name}.npz", **arrays)
    torch.save([1, 2], tmp / "list.pt")
    torch.save({"x": [[1.0]], "y": torch.zeros(1)}, tmp / "xlist.pt")
    torch.save({"x": _Exploit(tmp / "pwned"), "y": torch.zeros(1)}, tmp / "exploit.pt")
    (tmp / "data.csv").write_text("1,2\n")
    (tmp / "noclass").mkdir()
    (tmp / "noclass" / "a.png").write_bytes(b"")
    (tmp / "emptyclass" / "a").mkdir(parents=True)
    (tmp / "sizes" / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp / "sizes" / "a" / "0.png")
    Image.fromarray(np.zeros((5, 4), np.uint8)).save(tmp / "sizes" / "a" / "1.png")
    (tmp / "deep" / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), np.uint16) + 300).save(tmp / "deep" / "a" / "0.png")
    return {
        "missing path": (tmp / "nope.npz", {}, FileNotFoundError, r"no data at '.*nope\.npz'"),
        "unknown name": ("imagenet-21k", {}, ValueError, r"unknown data set 'imagenet-21k': expected one of mnist-5k"),
        "unknown suffix": (tmp / "data.csv", {}, ValueError, r"unknown data file type '\.csv'"),
        "no y": (tmp / "no_y.npz", {}, ValueError, r"has no array 'y' \(holds x\)"),
        "int32 x": (tmp / "int32.npz", {}, ValueError, r"x must be uint8 \(0\.\.255\) or floating point .* got int32"),
        "out of range": (tmp / "range.npz", {}, ValueError, r"must lie in \[0, 1\], found values in \[2, 2\]"),
        "NaN": (tmp / "nan.npz", {}, ValueError, r"must lie in \[0, 1\], found values in \[nan, nan\]"),
        "float labels": (tmp / "yfloat.npz", {}, ValueError, r"y must be a 1-D integer array of labels, got float32"),
        "label count": (tmp / "ylen.npz", {}, ValueError, r"x holds 3 images but y 2 labels"),
        "negative label": (tmp / "yneg.npz", {}, ValueError, r"label -1 is outside the 1 classes"),
        "5-D x": (tmp / "5d.npz", {}, ValueError, r"x must be \(N, C, H, W\), \(N, H, W, C\) or \(N, H, W\)"),
        "no images": (tmp / "empty.npz", {}, ValueError, r"x holds no images"),
        "label ≥ names": (tmp / "names.npz", {}, ValueError, r"label 2 is outside the 2 classes 0\.\.1"),
        "pt not a dict": (tmp / "list.pt", {}, ValueError, r"holds a list, not a dict with entries 'x', 'y'"),
        "pt x a list": (tmp / "xlist.pt", {}, ValueError, r"x must be a tensor, got list"),
        "pt pickled code": (tmp / "exploit.pt", {}, ValueError, r"cannot be read with torch\.load\(weights_only=True\)"),
        "no class folders": (tmp / "noclass", {}, ValueError, r"not an image folder in ImageFolder layout"),
        "empty class": (tmp / "emptyclass", {}, ValueError, r"Found no valid file for the classes a"),
        "image_size on arrays": (tmp / "names.npz", {"image_size": 32}, ValueError, r"apply to a folder of images"),
        "grayscale on a name": ("mnist-5k", {"grayscale": True}, ValueError, r"apply to a folder of images"),
        "root on a folder": (tmp / "sizes", {"root": tmp}, ValueError, r"root and download apply to the built-in"),
        "bad image_size": (tmp / "sizes", {"image_size": "0"}, ValueError, r"image_size must be H or H,W"),
        "three sizes": (tmp / "sizes", {"image_size": "1,2,3"}, ValueError, r"image_size must be H or H,W"),
        "resize < crop": (tmp / "sizes", {"image_size": 8, "resize": 4}, ValueError, r"resize .* must be ≥ image_size"),
        "n = 0": ("mnist-5k", {"n": 0}, ValueError, r"n must be an integer ≥ 1, got 0"),
        "workers < 0": ("mnist-5k", {"workers": -1}, ValueError, r"workers must be an integer ≥ 0, got -1"),
        "class out of range": ("mnist-5k", {"classes": "3,10"}, ValueError, r"class 10 is not one of the data's 10"),
        "repeated class": ("mnist-5k", {"classes": [1, 1]}, ValueError, r"classes must be distinct"),
        "empty selection": (tmp / "three.npz", {"classes": "2"}, ValueError, r"holds no sample of classes \[2\]"),
    }


def test_every_bad_data_input_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    cases = _bad_files(tmp_path)
    before = set(tmp_path.rglob("*"))
    for name, (spec, kwargs, error, pattern) in cases.items():
        with pytest.raises(error, match=pattern) as info:
            load_data(spec, **kwargs)
        assert "\n" not in str(info.value), name
    assert set(tmp_path.rglob("*")) == before and not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("workers", [0, 1])
@pytest.mark.parametrize(("folder", "kwargs", "pattern"), [
    ("sizes", {}, r"1\.png': is 5×4 but the first image is 4×4; pass image_size"),
    ("deep", {}, r"0\.png': I;16 images \(more than 8 bits per channel\) are not supported"),
    ("broken", {}, r"1\.png': is not a readable image \(UnidentifiedImageError"),
    ("broken", {"image_size": 8}, r"1\.png': is not a readable image \(UnidentifiedImageError"),
])
def test_a_bad_image_is_one_line_from_any_worker(tmp_path: Path, folder: str, kwargs: dict[str, Any], pattern: str,
                                                 workers: int) -> None:
    _bad_files(tmp_path)
    (tmp_path / "broken" / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "broken" / "a" / "0.png")
    (tmp_path / "broken" / "a" / "1.png").write_bytes(b"\x89PNG not really")
    source = load_data(tmp_path / folder, workers=workers, **kwargs)  # scanning reads no pixels
    with pytest.raises(ValueError, match=pattern) as info:
        list(source.batches(4))
    assert "\n" not in str(info.value)


def test_batch_size_is_checked(mnist5k: Dataset) -> None:
    with pytest.raises(ValueError, match=r"batch_size must be an integer ≥ 1, got 0"):
        next(source_of(mnist5k).batches(0))
