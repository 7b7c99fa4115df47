"""``advgrad attack``/``eval``/``transfer`` on your model and your data: a ``.py`` factory with DDP-prefixed
weights, a TorchScript export, a PNG folder and an ``.npz`` give the numbers of the checkpoint route and of
the library on the same module; bad input is one ``Error:`` line, exit 2, nothing written.

Bit-for-bit comparisons (accuracies as exact count ratios, examples arrays) are between routes that run the
same module's ops on the same batches in one process: the factory rebuilds cnn-small with the checkpoint's
weights (OutputLogits passes a tensor through untouched), and the folder's 8-bit PNGs decode to exactly the
uint8 digits mnist-5k holds (k/255 both ways), so both routes feed identical float32 tensors."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers.batches import digits_folder
from helpers.cli import assert_usage_error, invoke, run, tree
from torch import nn

from advgrad.configs import EvalConfig
from advgrad.data.builtin import Dataset
from advgrad.evaluate import evaluate_model
from advgrad.evaluate.transfer import transfer_success
from advgrad.records.examples import load_examples

FACTORY = textwrap.dedent("""
    from advgrad.data.builtin import load_dataset
    from advgrad.models.zoo import build_for

    def make(k=10):
        data = load_dataset("mnist-5k")
        model, _ = build_for("cnn-small", data, seed=1)  # another seed: the weights file must set every weight
        if k != 10:  # a model of the wrong width for the data
            return __import__("torch").nn.Sequential(model, __import__("torch").nn.Linear(10, k))
        return model
""")


@pytest.fixture
def factory(tmp_path: Path, trained_small: tuple[nn.Module, dict]) -> tuple[Path, Path]:
    """cnn-small.py:make and the trained weights saved as a DDP state dict (``module.`` prefix)."""
    (tmp_path / "cnn_small.py").write_text(FACTORY)
    weights = tmp_path / "ddp.pt"
    torch.save({"module." + k: v for k, v in trained_small[0].state_dict().items()}, weights)
    return tmp_path / "cnn_small.py", weights


def _records(path: Path) -> list[tuple[str, float, float]]:
    return [(r["attack"], r["eps"], r["accuracy"]) for r in json.loads(path.read_text())["records"]]


@pytest.mark.slow
def test_eval_factory_route_equals_checkpoint_route_and_library(trained_small_path: Path, trained_small: Any,
                                                                 mnist5k: Dataset, factory: tuple[Path, Path],
                                                                 tmp_path: Path) -> None:
    common = ["--eps", "0.05,0.1", "--attacks", "fgsm,pgd", "--steps", "5", "--n", "120", "--block", "50",
              "--no-sanity"]
    a, b = tmp_path / "ckpt.json", tmp_path / "factory.json"
    r1 = invoke("eval", "--model", str(trained_small_path), *common, "--out", str(a))
    r2 = invoke("eval", "--model", f"{factory[0]}:make", "--weights", str(factory[1]), "--data", "mnist-5k",
                *common, "--out", str(b))
    assert r1.exit_code == 0 and r2.exit_code == 0, (r1.output, r2.output)
    config = EvalConfig(eps=(0.05, 0.1), attacks=("fgsm", "pgd"), steps=5, block=50)
    torch.manual_seed(config.seed)
    lib = evaluate_model(trained_small[0], mnist5k.x_test[:120], mnist5k.y_test[:120], config, sanity=False)
    expected = [(r["attack"], r["eps"], r["accuracy"]) for r in lib.records]
    assert _records(a) == _records(b) == expected
    rec = json.loads(b.read_text())
    assert rec["model"]["kind"] == "factory" and rec["model"]["stripped_prefixes"] and rec["dataset"] == "mnist-5k"


@pytest.mark.slow
def test_attack_torchscript_on_png_folder_equals_npz(trained_small: Any, mnist5k: Dataset, tmp_path: Path) -> None:
    x, y = digits_folder(tmp_path / "digits", mnist5k, 60)
    np.savez(tmp_path / "digits.npz", x=(x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy(), y=y.numpy())
    script = tmp_path / "cnn.ts"
    torch.jit.save(torch.jit.trace(trained_small[0].eval(), mnist5k.x_test[:2]), script)
    outs = {}
    for data, options in (("digits", ["--grayscale"]), ("digits.npz", [])):  # PNGs are read as RGB unless
        out, ex = tmp_path / f"{data}.json", tmp_path / f"{data}.ex.npz"
        result = invoke("attack", "--model", str(script), "--data", str(tmp_path / data), *options, "--eps", "0.1",
                        "--method", "pgd", "--steps", "3", "--block", "25", "--out", str(out),
                        "--save-examples", str(ex))
        assert result.exit_code == 0, result.output
        outs[data] = (json.loads(out.read_text()), np.load(ex))
    (a, ea), (b, eb) = outs["digits"], outs["digits.npz"]
    for key in ("clean_accuracy", "adversarial_accuracy", "attack_success_rate", "n", "max_linf"):
        assert a[key] == b[key], key
    assert np.array_equal(ea["x_adv"], eb["x_adv"]) and np.array_equal(ea["x"], x.numpy())
    with torch.no_grad():
        clean = int((trained_small[0](x).argmax(1) == y).sum())
    assert a["clean_accuracy"] == pytest.approx(clean / 60, abs=1e-12) and a["model"]["kind"] == "torchscript"


def test_transfer_command_equals_library_and_exports_png(trained_small_path: Path, factory: tuple[Path, Path],
                                                          tmp_path: Path) -> None:
    ex, out, png = tmp_path / "ex.npz", tmp_path / "t.json", tmp_path / "png"
    made = invoke("attack", "--model", str(trained_small_path), "--eps", "0.2", "--method", "mifgsm", "--steps",
                  "5", "--n", "50", "--save-examples", str(ex), "--out", str(tmp_path / "a.json"))
    assert made.exit_code == 0, made.output
    examples = load_examples(ex)
    assert examples.meta["attack"] == "mifgsm-5" and examples.meta["eps"] == 0.2 and examples.meta["model_sha256"]
    target = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()  # an untrained linear target
    torch.manual_seed(3)
    nn.init.normal_(target[1].weight, std=0.05)
    (tmp_path / "lin.py").write_text("from torch import nn\ndef make():\n"
                                     "    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))\n")
    torch.save(target.state_dict(), tmp_path / "lin.pt")
    result = invoke("transfer", "--examples", str(ex), "--model", f"{tmp_path / 'lin.py'}:make", "--weights",
                    str(tmp_path / "lin.pt"), "--png", str(png), "--out", str(out))
    assert result.exit_code == 0, result.output
    rec, lib = json.loads(out.read_text()), transfer_success(target, examples)
    for key in ("n", "clean_accuracy", "adv_accuracy", "n_clean_correct", "success_rate"):
        assert rec[key] == lib[key], key
    assert rec["png"]["files"] == 50 == len(list(png.rglob("*.png")))
    assert "lossy" not in result.stdout and "PNG stores 8 bits" in result.stderr


def _bad(tmp_path: Path, ckpt: Path, factory: tuple[Path, Path]) -> list[tuple[list[str], str]]:
    f, w = factory
    (tmp_path / "exploit.pt").write_bytes(_exploit_bytes(tmp_path / "pwned"))
    (tmp_path / "notes.npz").write_bytes(b"PK\x03\x04 not really")
    ex = ["--eps", "0.1", "--out", str(tmp_path / "o.json")]
    return [
        (["attack", "--model", f"{f}:make", "--weights", str(w), *ex], "--data is needed"),
        (["attack", "--model", str(ckpt), "--weights", str(w), *ex], "--weights applies"),
        (["eval", "--model", f"{f}:make", "--model-args", "{k: 3", "--data", "mnist-5k", "--out",
          str(tmp_path / "o.json")], "model_args must be a JSON object"),
        (["attack", "--model", f"{f}:make", "--model-args", '{"k": 3}', "--data", "mnist-5k", *ex],
         "the model has 3 outputs but the data needs 10"),
        (["attack", "--model", f"{f}:make", "--weights", str(w), "--data", "no-such-set", *ex], "unknown data set"),
        (["attack", "--model", f"{f}:make", "--weights", str(tmp_path / "exploit.pt"), "--data", "mnist-5k", *ex],
         "weights_only"),
        (["attack", "--model", str(f), "--data", "mnist-5k", *ex], "name the function"),
        (["attack", "--model", f"{f}:make", "--weights", str(w), "--data", "mnist-5k", "--classes", "12", *ex],
         "class 12"),
        (["transfer", "--examples", str(tmp_path / "notes.npz"), "--model", str(ckpt), "--out",
          str(tmp_path / "o.json")], "notes.npz"),
    ]


class _Exploit:
    """Unpickling this would create a file: a weights loader must never run it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def _exploit_bytes(marker: Path) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save({"weights": _Exploit(marker)}, buf)
    return buf.getvalue()


def test_bad_input_is_one_line_exit_2_nothing_written(trained_small_path: Path, factory: tuple[Path, Path],
                                                       tmp_path: Path) -> None:
    cases = _bad(tmp_path, trained_small_path, factory)
    before = tree(tmp_path)
    for args, fragment in cases:
        result = invoke(*args)
        assert_usage_error(result.exit_code, result.stderr, fragment)
        assert tree(tmp_path) == before, args
    assert not (tmp_path / "pwned").exists()


@pytest.mark.slow
def test_real_process_factory_on_npz(factory: tuple[Path, Path], trained_small: Any, mnist5k: Dataset,
                                     tmp_path: Path) -> None:
    x, y = mnist5k.x_test[:40], mnist5k.y_test[:40]
    np.savez(tmp_path / "d.npz", x=x.numpy(), y=y.numpy())  # float32 NCHW in [0, 1]
    out = tmp_path / "a.json"
    proc = run(["attack", "--model", f"{factory[0]}:make", "--weights", str(factory[1]), "--data",
                str(tmp_path / "d.npz"), "--eps", "0.1", "--out", str(out)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with torch.no_grad():
        clean = int((trained_small[0](x).argmax(1) == y).sum())
    rec = json.loads(out.read_text())
    assert rec["clean_accuracy"] == clean / 40 and rec["n"] == 40


def test_eval_on_a_folder_goes_chunk_by_chunk(trained_small_path: Path, mnist5k: Dataset, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder is evaluated in chunks of --block images whose counts add up to the in-memory result:
    FGSM is deterministic, so chunking changes no prediction; the merged accuracy is the exact count ratio
    (float64), the in-memory one a float32 mean of the same count, hence approx at float32 resolution."""
    x, y = digits_folder(tmp_path / "digits", mnist5k, 70)
    np.savez(tmp_path / "digits.npz", x=x.numpy(), y=y.numpy())
    import advgrad.runs.evaluation as evaluation

    seen: list[int] = []
    real = evaluation.evaluate_model
    monkeypatch.setattr(evaluation, "evaluate_model", lambda m, x, y, *a, **k: seen.append(len(y)) or real(m, x, y, *a, **k))
    recs = {}
    for data, options in (("digits", ["--grayscale"]), ("digits.npz", [])):
        out = tmp_path / f"{data}.json"
        result = invoke("eval", "--model", str(trained_small_path), "--data", str(tmp_path / data), *options,
                        "--eps", "0.1,0.2", "--attacks", "fgsm", "--block", "30", "--no-sanity", "--out", str(out))
        assert result.exit_code == 0, result.output
        recs[data] = json.loads(out.read_text())
    folder, arrays = recs["digits"], recs["digits.npz"]
    assert seen == [30, 30, 10, 70]  # the folder in chunks, the arrays (in memory already) at once
    assert [r["n"] for r in folder["records"]] == [70] * len(arrays["records"])
    for a, b in zip(folder["records"], arrays["records"]):
        assert (a["attack"], a["eps"]) == (b["attack"], b["eps"])
        assert round(a["accuracy"] * 70) == round(b["accuracy"] * 70)
        assert a["accuracy"] == pytest.approx(b["accuracy"], abs=1e-6)
    assert folder["clean_accuracy"] == pytest.approx(arrays["clean_accuracy"], abs=1e-6)
