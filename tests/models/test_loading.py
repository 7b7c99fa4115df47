"""Your model: every kind open_model reads is the same function as the module it was made from.

Every kind is built here, in tmp_path, from one reference module, and the loaded model must give the same
logits bit for bit and the same robust accuracy (fixed seed) as the reference. Bit equality holds by
construction where the loaded model runs the same ATen ops on the same shapes in the same process as the
reference (a state dict loaded into the same architecture; Normalize in front computes (x − mean)/std with
the same float32 buffers): it is asserted under every ISA (make test-all reruns the isa tests under avx2
and default). TorchScript and torch.export programs replay the reference's ops; the tests found them equal too.
"""

from __future__ import annotations

import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers.batches import mixed_digits
from torch import nn

import advgrad
from advgrad.data.builtin import Dataset
from advgrad.evaluate import robust_accuracy
from advgrad.models.fitting import check_model_fits
from advgrad.models.loading import open_model

FACTORY = '''
from dataclasses import dataclass

import torch
from torch import nn

from advgrad.models.zoo import build_model


def make(num_classes=10):
    return build_model("cnn-small", input_shape=(1, 28, 28), num_classes=num_classes, mean=(0.1307,), std=(0.3081,))


def make_bare(num_classes=10):
    """cnn-small without its Normalize layer: it expects (x - mean) / std."""
    return build_model("cnn-small", input_shape=(1, 28, 28), num_classes=num_classes, mean=(0.1307,), std=(0.3081,))[1:]


@dataclass
class Output:
    logits: torch.Tensor
    features: torch.Tensor


class Wrap(nn.Module):
    def __init__(self, how):
        super().__init__()
        self.net, self.how = make(), how

    def forward(self, x):
        z = self.net(x)
        return {"tuple": lambda: (z, x), "dict": lambda: {"features": x, "logits": z}, "single": lambda: {"out": z},
                "object": lambda: Output(z, x), "softmax": lambda: z.softmax(1), "sigmoid": lambda: z.sigmoid(),
                "two": lambda: {"a": z, "b": z}, "3d": lambda: z[:, :, None], "nan": lambda: z * float("nan")}[self.how]()


def wrapped(how):
    return Wrap(how)


def boom():
    raise RuntimeError("boom")


def not_a_model():
    return 42
'''

ISA = pytest.mark.isa


def _files(root: Path) -> set[Path]:
    return set(root.rglob("*"))


@pytest.fixture
def digits(mnist5k: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    return mixed_digits(mnist5k, 48)


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    path = tmp_path / "nets.py"
    path.write_text(FACTORY)
    return path


@pytest.fixture
def weights(tmp_path: Path, trained_small: tuple[nn.Module, dict]) -> Path:
    path = tmp_path / "weights.pt"
    torch.save(trained_small[0].state_dict(), path)
    return path


def _same_function(loaded: nn.Module, reference: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   eps: float = 0.1) -> None:
    """Logits bit for bit, and robust accuracy (FGSM and 5-step PGD at ε, seed 0) record for record."""
    with torch.no_grad():
        assert torch.equal(loaded(x), reference(x))
    options: dict[str, Any] = dict(eps=(eps,), attacks=("fgsm", "pgd"), steps=5, seed=0, block=16)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in robust_accuracy(reference, x, y, **options)]
    got = [{k: v for k, v in r.items() if k != "seconds"} for r in robust_accuracy(loaded, x, y, **options)]
    assert got == strip
    assert 0.0 < strip[-1]["accuracy"] < 1.0  # the attacks fool some points and not others: a real comparison


@pytest.mark.slow
@ISA
@pytest.mark.parametrize("variant", ["plain", "ddp", "lightning"])
def test_factory_with_weights_is_the_trained_model(variant: str, factory: Path, tmp_path: Path,
                                                   trained_small: tuple[nn.Module, dict], digits: Any) -> None:
    model = trained_small[0]
    state = model.state_dict()
    key = None
    if variant == "ddp":  # DistributedDataParallel saves model.module's keys as "module.<key>"
        payload: Any = {f"module.{k}": v for k, v in state.items()}
    elif variant == "lightning":  # a LightningModule holding the net as self.model, in its checkpoint dict
        payload, key = {"epoch": 3, "state_dict": {f"model.{k}": v for k, v in state.items()}}, "state_dict"
    else:
        payload = state
    torch.save(payload, tmp_path / "w.ckpt")
    loaded = open_model(f"{factory}:make", weights=tmp_path / "w.ckpt", weights_key=key)
    assert loaded.info["stripped_prefixes"] == {"plain": [], "ddp": ["module."], "lightning": ["model."]}[variant]
    assert loaded.info["kind"] == "factory" and len(loaded.info["weights_sha256"]) == 64
    assert not loaded.model.training and loaded.warnings == ()
    assert check_model_fits(loaded.model, (1, 28, 28), 10) == []
    _same_function(loaded.model, model, *digits)
    assert not (tmp_path / "__pycache__").exists()  # running the factory file left nothing beside it


@pytest.mark.slow
@ISA
@pytest.mark.parametrize("kind", ["torchscript", "export"])
def test_programs_are_the_module_they_were_saved_from(kind: str, tmp_path: Path,
                                                      trained_small: tuple[nn.Module, dict], digits: Any) -> None:
    model = trained_small[0].eval()
    x, _ = digits
    if kind == "torchscript":
        path = tmp_path / "model.ts"
        with pytest.warns(FutureWarning):  # torch.jit is deprecated, still supported
            torch.jit.save(torch.jit.trace(model, x[:2]), path)
    else:
        path = tmp_path / "model.pt2"
        batch = torch.export.Dim("batch", min=1)
        torch.export.save(torch.export.export(model, (x[:2],), dynamic_shapes=({0: batch},)), path)
    loaded = open_model(path)
    assert loaded.info["kind"] == kind and len(loaded.info["sha256"]) == 64
    assert check_model_fits(loaded.model, (1, 28, 28), 10) == []
    _same_function(loaded.model, model, *digits)


@pytest.mark.slow
@ISA
def test_torchvision_resnet18_with_a_ddp_state_dict(tmp_path: Path) -> None:
    import torchvision

    torch.manual_seed(0)
    reference = torchvision.models.resnet18(num_classes=10).eval()
    torch.save({f"module.{k}": v for k, v in reference.state_dict().items()}, tmp_path / "resnet.pt")
    loaded = open_model("torchvision:resnet18", model_args='{"num_classes": 10}', weights=tmp_path / "resnet.pt")
    assert loaded.info["stripped_prefixes"] == ["module."] and loaded.warnings == ()
    assert check_model_fits(loaded.model, (3, 32, 32), 10) == []
    x = torch.rand((6, 3, 32, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = reference(x).argmax(1)  # its own predictions: every point is attacked
    _same_function(loaded.model, reference, x, y, eps=0.003)  # an untrained net: tiny ε already fools it


def test_torchvision_without_weights_warns_that_they_are_random() -> None:
    loaded = open_model("torchvision:resnet18", model_args={"num_classes": 10})
    assert loaded.warnings and "random" in loaded.warnings[0]


@ISA
def test_normalize_in_front_is_normalizing_by_hand(factory: Path, tmp_path: Path,
                                                   trained_small: tuple[nn.Module, dict], digits: Any) -> None:
    """mean/std wrap the bare network: the attack's inputs stay in [0, 1] and the network sees (x − m)/s."""
    model = trained_small[0]
    bare = model[1:]  # the trained layers after its Normalize
    torch.save(bare.state_dict(), tmp_path / "bare.pt")
    loaded = open_model(f"{factory}:make_bare", weights=tmp_path / "bare.pt", mean="0.1307", std=[0.3081])
    x, y = digits
    mean, std = torch.tensor([0.1307]).view(1, -1, 1, 1), torch.tensor([0.3081]).view(1, -1, 1, 1)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), bare((x - mean) / std))
    _same_function(loaded.model, model, x, y)  # and it is the trained model, Normalize and all


def test_an_advgrad_checkpoint_loads_as_before(trained_small_path: Path, trained_small: tuple[nn.Module, dict],
                                               digits: Any) -> None:
    x, _ = digits
    module = advgrad.load_model(trained_small_path)  # the old call: the module itself
    loaded = open_model(trained_small_path)
    assert loaded.info["kind"] == "checkpoint" and loaded.info["dataset"]["name"] == "mnist-5k"
    with torch.no_grad():
        assert torch.equal(module(x), trained_small[0](x)) and torch.equal(loaded.model(x), module(x))


@pytest.mark.parametrize("how", ["tuple", "dict", "single", "object"])
def test_outputs_are_reduced_to_the_logits(how: str, factory: Path, digits: Any) -> None:
    torch.manual_seed(0)
    loaded = open_model(f"{factory}:wrapped", model_args={"how": how}).model
    x, _ = digits
    with torch.no_grad():
        assert torch.equal(loaded(x), loaded.model.net(x))
    assert check_model_fits(loaded, (1, 28, 28), 10) == []


@pytest.mark.parametrize(("how", "shape"), [("softmax", "softmax probabilities"), ("sigmoid", "sigmoid outputs")])
def test_probabilities_get_a_warning(how: str, shape: str, factory: Path, weights: Path) -> None:
    loaded = open_model(f"{factory}:wrapped", model_args={"how": how}).model
    loaded.model.net.load_state_dict(torch.load(weights, weights_only=True))
    (warning,) = check_model_fits(loaded, (1, 28, 28), 10)
    assert shape in warning and "attack the logits" in warning


def test_a_program_exported_in_training_mode_gets_a_warning(tmp_path: Path) -> None:
    """BatchNorm in training mode normalizes by the batch's statistics: sample 0's logits depend on sample 1."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 26 * 26, 10)).train()
    batch = torch.export.Dim("batch")
    torch.export.save(torch.export.export(net, (torch.rand(4, 1, 28, 28),), dynamic_shapes=({0: batch},)),
                      tmp_path / "train.pt2")
    (warning,) = check_model_fits(open_model(tmp_path / "train.pt2").model, (1, 28, 28), 10)
    assert "batch statistics" in warning


def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return path


class _Exploit:
    """Unpickling this would create a file: a weights loader must never run it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def _bad_cases(tmp: Path, factory: Path, weights: Path) -> dict[str, tuple[dict[str, Any], type[Exception], str]]:
    """name → (open_model keywords, the error, a regex its one-line message must match)."""
    (tmp / "syntax.py").write_text("def make(:\n")
    torch.save({"extra": torch.zeros(1), **torch.load(weights, weights_only=True)}, tmp / "extra.pt")
    torch.save({k: v for k, v in torch.load(weights, weights_only=True).items() if k != "1.bias"}, tmp / "missing.pt")
    torch.save({"state_dict": torch.load(weights, weights_only=True)}, tmp / "nested.pt")
    torch.save({"weights": _Exploit(tmp / "pwned")}, tmp / "exploit.pt")
    (tmp / "text.pt").write_text("not a model")
    _zip(tmp / "other.pt2", {"a/readme.txt": b"hello"})
    real = tmp / "real.pt2"
    torch.export.save(torch.export.export(nn.Linear(2, 2), (torch.rand(1, 2),)), real)
    with zipfile.ZipFile(real) as z:  # a genuine export archive without its graph
        _zip(tmp / "broken.pt2", {n: z.read(n) for n in z.namelist() if not n.endswith("model.json")})
    (tmp / "script.ts").write_bytes((tmp / "real.pt2").read_bytes().replace(b"archive_format", b"archive_xxxxxx"))
    f = str(factory)
    return {
        "missing file": (dict(spec=tmp / "nope.pt"), FileNotFoundError, r"no model at '.*nope\.pt'"),
        "missing .py": (dict(spec=f"{tmp}/nope.py:make"), FileNotFoundError, r"no Python file at"),
        "bad attribute": (dict(spec=f"{f}:mkae"), ValueError, r"has no attribute 'mkae' \(did you mean make"),
        "bad module": (dict(spec="no_such_pkg.nets:make"), ValueError, r"cannot import module 'no_such_pkg\.nets'"),
        "syntax error": (dict(spec=f"{tmp}/syntax.py:make"), ValueError, r"running .*syntax\.py' failed \(SyntaxError"),
        "factory raises": (dict(spec=f"{f}:boom"), ValueError, r"boom\(\*\*\{\}\) raised RuntimeError: boom"),
        "bad model_args": (dict(spec=f"{f}:make", model_args={"width": 3}), ValueError, r"unexpected keyword argument 'width'"),
        "not a module": (dict(spec=f"{f}:not_a_model"), ValueError, r"returned a int, not a torch\.nn\.Module"),
        ".py without factory": (dict(spec=factory), ValueError, r"is Python code: name the function"),
        "unexpected key": (dict(spec=f"{f}:make", weights=tmp / "extra.pt"), ValueError, r"1 unexpected \(first 'extra'\)"),
        "missing keys": (dict(spec=f"{f}:make", weights=tmp / "missing.pt"), ValueError, r"keys 1 missing \(first '1\.bias'\)"),
        "shape mismatch": (dict(spec=f"{f}:make", model_args={"num_classes": 5}, weights=weights), ValueError,
                           r"'8\.weight' has shape \(10, 100\) in the file but \(5, 100\) in the model"),
        "nested, no key": (dict(spec=f"{f}:make", weights=tmp / "nested.pt"), ValueError, r"pick the weights with weights_key"),
        "absent key": (dict(spec=f"{f}:make", weights=tmp / "nested.pt", weights_key="model"), ValueError,
                       r"no entry 'model' \(weights_key 'model'; found 'state_dict'\)"),
        "pickled code": (dict(spec=f"{f}:make", weights=tmp / "exploit.pt"), ValueError,
                         r"cannot be read with torch\.load\(weights_only=True\) \(UnpicklingError"),
        "missing weights": (dict(spec=f"{f}:make", weights=tmp / "none.pt"), FileNotFoundError, r"no weights file at"),
        "key, no weights": (dict(spec=f"{f}:make", weights_key="state_dict"), ValueError, r"give weights too"),
        "not a model file": (dict(spec=tmp / "text.pt"), ValueError, r"is not a model file"),
        "zip, not a model": (dict(spec=tmp / "other.pt2"), ValueError, r"is a zip archive but not a torch\.save"),
        "broken export": (dict(spec=tmp / "broken.pt2"), ValueError, r"is not a loadable torch\.export program"),
        "export, renamed": (dict(spec=tmp / "script.ts"), ValueError, r"not a torch\.save, TorchScript or torch\.export"),
        "state dict as model": (dict(spec=weights), ValueError, r"not an advgrad checkpoint .*given as weights=FILE"),
        "weights for a program": (dict(spec=real, weights=weights), ValueError, r"weights apply to a factory or torchvision"),
        "unknown torchvision": (dict(spec="torchvision:resnet19"), ValueError, r"unknown torchvision model 'resnet19' \(did you mean resnet18"),
        "download": (dict(spec="torchvision:resnet18", model_args={"weights": "DEFAULT"}), ValueError, r"would download weights"),
        "bad JSON": (dict(spec="torchvision:resnet18", model_args="{num_classes: 3}"), ValueError, r"must be a JSON object"),
        "JSON list": (dict(spec="torchvision:resnet18", model_args="[1]"), ValueError, r"must be a JSON object"),
        "mean alone": (dict(spec=f"{f}:make", mean=[0.5]), ValueError, r"give mean and std together"),
        "bad std": (dict(spec=f"{f}:make", mean=[0.5], std=[0.0]), ValueError, r"std must be positive"),
        "bad mean text": (dict(spec=f"{f}:make", mean="a,b", std="1,1"), ValueError, r"comma-separated numbers"),
        "bad device": (dict(spec=f"{f}:make", device="tpu"), ValueError, r"unknown device 'tpu'"),
    }


def test_every_bad_model_input_is_one_line_and_writes_nothing(tmp_path: Path, factory: Path, weights: Path,
                                                              trained_small_path: Path) -> None:
    cases = _bad_cases(tmp_path, factory, weights)
    cases["mean/std for a checkpoint"] = (dict(spec=trained_small_path, mean=[0.5], std=[0.5]), ValueError,
                                          r"normalizes its inputs itself")
    before = _files(tmp_path)
    for name, (kwargs, error, pattern) in cases.items():
        with pytest.raises(error, match=pattern) as info:
            open_model(**kwargs)
        assert type(info.value) is error or error is ValueError, name
        assert "\n" not in str(info.value), name
    assert _files(tmp_path) == before
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(("how", "args", "pattern"), [
    ("make", ((1, 28, 28), 5), r"has 10 outputs but the data needs 5 classes"),
    ("make", ((1, 28, 28), 12), r"has 10 outputs but the data needs 12 classes"),
    ("make", ((3, 28, 28), 10), r"fails on inputs of shape \(2, 3, 28, 28\) in \[0, 1\] \(RuntimeError: Given groups"),
    ("make", ((1, 32, 32), 10), r"fails on inputs of shape \(2, 1, 32, 32\) .*mat1 and mat2"),
    ("3d", ((1, 28, 28), 10), r"must return logits of shape \(N, K\) = \(2, K\) .* got torch.float32 \(2, 10, 1\)"),
    ("nan", ((1, 28, 28), 10), r"returns NaN or Inf"),
    ("two", ((1, 28, 28), 10), r"returned a mapping with keys \['a', 'b'\]; expected logits"),
])
def test_a_model_that_does_not_fit_the_data_is_one_line(how: str, args: tuple[Any, ...], pattern: str,
                                                        factory: Path) -> None:
    spec, kwargs = (f"{factory}:make", {}) if how == "make" else (f"{factory}:wrapped", {"how": how})
    model = open_model(spec, model_args=kwargs).model
    with pytest.raises(ValueError, match=pattern) as info:
        check_model_fits(model, *args)
    assert "\n" not in str(info.value)


def test_labels_only_bound_the_classes_with_exact_false(factory: Path) -> None:
    model = open_model(f"{factory}:make").model
    assert check_model_fits(model, (1, 28, 28), 7, exact=False) == []
    with pytest.raises(ValueError, match=r"has 10 outputs but the data needs at least 11 classes"):
        check_model_fits(model, (1, 28, 28), 11, exact=False)


def test_a_program_exported_for_one_batch_size_is_named(tmp_path: Path, trained_small: tuple[nn.Module, dict]) -> None:
    torch.export.save(torch.export.export(trained_small[0].eval(), (torch.rand(5, 1, 28, 28),)), tmp_path / "b5.pt2")
    with pytest.raises(ValueError, match=r"exported for other input shapes .*dynamic batch dimension"):
        check_model_fits(open_model(tmp_path / "b5.pt2").model, (1, 28, 28), 10)


def test_module_factory_and_file_factory_agree(tmp_path: Path, factory: Path, weights: Path,
                                               monkeypatch: pytest.MonkeyPatch, digits: Any) -> None:
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(textwrap.dedent(FACTORY))
    monkeypatch.syspath_prepend(str(tmp_path))
    a = open_model("mypkg.nets:make", weights=weights).model
    b = open_model(f"{factory}:make", weights=weights).model
    with torch.no_grad():
        assert torch.equal(a(digits[0]), b(digits[0]))


def test_check_model_data_reads_the_class_count_the_data_declares(tmp_path: Path, factory: Path) -> None:
    from advgrad.data.sources import load_data
    from advgrad.models.fitting import check_model_data

    model = open_model(f"{factory}:make").model  # 10 outputs
    x, y = torch.zeros((3, 1, 28, 28), dtype=torch.uint8), torch.tensor([0, 1, 2])
    torch.save({"x": x, "y": y}, tmp_path / "labels_only.pt")  # 3 classes inferred: a lower bound
    torch.save({"x": x, "y": y, "class_names": ["a", "b", "c"]}, tmp_path / "declared.pt")  # exactly 3
    assert check_model_data(model, load_data(tmp_path / "labels_only.pt")) == []
    with pytest.raises(ValueError, match=r"has 10 outputs but the data needs 3 classes"):
        check_model_data(model, load_data(tmp_path / "declared.pt"))
    assert check_model_data(model, load_data("mnist-5k", n=2)) == []


def test_parse_floats() -> None:
    from advgrad.models.loading import parse_floats

    assert parse_floats("mean", "0.485, 0.456,-1") == (0.485, 0.456, -1.0) and parse_floats("std", None) is None
    with pytest.raises(ValueError, match=r"std must be finite"):
        parse_floats("std", "nan")
