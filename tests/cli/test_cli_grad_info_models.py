"""``advgrad grad`` and ``advgrad info`` on every kind of model `attack`/`eval` take, through the same
option group and loader: the factory, TorchScript and checkpoint routes of one trained module print the
same ∂J/∂X as autograd on that module (the reference below is written out here, independently of
advgrad.gradcheck); ``info`` reports the parameter count of the module and, for a torch.export program, the
input shape and class count its graph records; bad input is one ``Error:`` line, exit 2, nothing written.

The printed numbers are compared as the strings the command formats (4 significant digits): each route
runs the same float64 ops on the same sample in one process, and the reference differs from them only in
summation order at float64 rounding, ~1e-16 relative, far below the 4th digit."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.cli import assert_usage_error, invoke, run, tree
from helpers.model_files import write_export, write_factory, write_script

from advgrad.data.builtin import Dataset

INDEX = 7


def _reference(model: torch.nn.Module, data: Dataset) -> tuple[str, str]:
    """‖∂J/∂X‖₂ and max |∂J/∂X| of J = CE(model(x), y) at test sample INDEX in float64, by autograd, as the
    command formats them."""
    net = copy.deepcopy(model).double().eval()
    x = data.x_test[[INDEX]].double().requires_grad_(True)  # (1, 1, 28, 28)
    (g,) = torch.autograd.grad(F.cross_entropy(net(x), data.y_test[[INDEX]], reduction="sum"), [x])
    return f"{float(g.norm()):.4g}", f"{float(g.abs().max()):.3g}"


def _grad_lines(output: str) -> list[str]:
    """The lines of a grad report but the model line and the "(CLASS: ...)" note, which name the route."""
    lines = output.strip().splitlines()
    assert lines[0].startswith("model: ")
    return [line for line in lines[1:] if not line.startswith("(")]


@pytest.fixture
def routes(tmp_path: Path, trained_small: tuple[Any, dict], trained_small_path: Path,
           mnist5k: Dataset) -> dict[str, list[str]]:
    """--model for each route to the trained cnn-small (on mnist-5k)."""
    model = trained_small[0]
    py, weights = write_factory(tmp_path, model)
    script = write_script(tmp_path / "cnn.ts", model, mnist5k.x_test[:2])
    return {"checkpoint": ["--model", str(trained_small_path)],
            "factory": ["--model", f"{py}:make", "--weights", str(weights), "--data", "mnist-5k"],
            "torchscript": ["--model", str(script), "--data", "mnist-5k"]}


def test_grad_every_route_prints_autograds_input_gradient(routes: dict[str, list[str]], trained_small: Any,
                                                          mnist5k: Dataset) -> None:
    norm, top = _reference(trained_small[0], mnist5k)
    outputs = {}
    for name, args in routes.items():
        result = invoke("grad", *args, "--index", str(INDEX), "--fd-coords", "4")
        assert result.exit_code == 0, (name, result.output)
        outputs[name] = _grad_lines(result.stdout)
        assert f"‖∂J/∂X‖₂ index {INDEX}: {norm}   (max |∂J/∂X| {top})" in outputs[name], (name, result.stdout)
    assert outputs["factory"] == outputs["checkpoint"] == outputs["torchscript"]
    with torch.no_grad():
        pred = int(trained_small[0](mnist5k.x_test[[INDEX]]).argmax())
    assert any(line.startswith(f"index {INDEX}: predicted {pred} (") for line in outputs["factory"])


def test_grad_on_a_data_file_reads_the_same_sample(routes: dict[str, list[str]], mnist5k: Dataset,
                                                   tmp_path: Path) -> None:
    """--data as in eval: an .npz of the test digits (uint8 NHWC: k/255 both ways) gives the built-in's numbers."""
    x8 = (mnist5k.x_test[:20] * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
    np.savez(tmp_path / "d.npz", x=x8.numpy(), y=mnist5k.y_test[:20].numpy())
    args = routes["torchscript"][:2]
    a = invoke("grad", *args, "--data", "mnist-5k", "--index", str(INDEX), "--fd-coords", "4")
    b = invoke("grad", *args, "--data", str(tmp_path / "d.npz"), "--index", str(INDEX), "--fd-coords", "4")
    assert a.exit_code == 0 and b.exit_code == 0, (a.output, b.output)
    assert _grad_lines(a.stdout)[1:] == _grad_lines(b.stdout)[1:]  # all but the data line (names the set)
    assert _grad_lines(b.stdout)[0].startswith(f"data: {tmp_path / 'd.npz'}, index {INDEX} (label ")


@pytest.mark.slow
def test_info_describes_any_model(routes: dict[str, list[str]], trained_small: Any, mnist5k: Dataset,
                                  tmp_path: Path) -> None:
    model = trained_small[0]
    n_params = sum(p.numel() for p in model.parameters())
    program = write_export(tmp_path / "cnn.pt2", model, mnist5k.x_test[:2])
    result = invoke("info", "--model", str(program))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:2] == [
        f"model     {program} (export, ExportedModule), {n_params:,} parameters",
        "input     (1, 28, 28), 10 classes, bounds [0, 1]"]
    py, weights = routes["factory"][1].split(":")[0], routes["factory"][3]
    result = invoke("info", "--model", f"{py}:make", "--weights", weights, "--mean", "0.5", "--std", "0.25", "--json")
    assert result.exit_code == 0, result.output
    described = json.loads(result.stdout)
    assert described["parameters"] == n_params and described["class"] == "Sequential"  # cnn-small's Sequential
    assert described["weights_sha256"] == hashlib.sha256(Path(weights).read_bytes()).hexdigest()
    assert described["mean"] == [0.5] and described["input_shape"] is None and described["kind"] == "factory"
    script = invoke("info", "--model", routes["torchscript"][1])
    assert script.exit_code == 0 and f"{n_params:,} parameters" in script.stdout, script.output
    import torchvision

    reference = sum(p.numel() for p in torchvision.models.mobilenet_v3_small(num_classes=10).parameters())
    tv = invoke("info", "--model", "torchvision:mobilenet_v3_small", "--model-args", '{"num_classes": 10}')
    assert tv.exit_code == 0, tv.output
    assert tv.stdout.splitlines()[0] == (f"model     torchvision:mobilenet_v3_small (torchvision, MobileNetV3; "
                                         f"num_classes=10), {reference:,} parameters")
    assert "its weights are random" in tv.stderr  # nothing is downloaded


@pytest.mark.slow
def test_info_and_grad_in_a_real_process(routes: dict[str, list[str]], trained_small: Any, mnist5k: Dataset,
                                         tmp_path: Path) -> None:
    norm, _ = _reference(trained_small[0], mnist5k)
    proc = run(["grad", *routes["factory"], "--index", str(INDEX), "--fd-coords", "2"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"‖∂J/∂X‖₂ index {INDEX}: {norm} " in proc.stdout
    proc = run(["info", "--model", routes["torchscript"][1]], cwd=tmp_path)
    assert proc.returncode == 0 and "(torchscript, RecursiveScriptModule)" in proc.stdout, proc.stderr


def test_bad_input_is_one_line_exit_2_nothing_written(routes: dict[str, list[str]], trained_small_path: Path,
                                                      trained_small: Any, mnist5k: Dataset, tmp_path: Path) -> None:
    program = write_export(tmp_path / "cnn.pt2", trained_small[0], mnist5k.x_test[:2])
    factory, weights = routes["factory"][1], routes["factory"][3]
    cases = [
        (["grad", "--model", factory, "--weights", weights], "--data is needed"),
        (["grad", "--model", str(program), "--data", "mnist-5k"], "torch.export program"),
        (["grad", "--model", str(trained_small_path), "--weights", weights], "--weights applies"),
        (["grad", "--random-sigmoid", "784,10", "--data", "mnist-5k"], "--data applies to --model"),
        (["grad", "--random-sigmoid", "784,10", "--mean", "0.5"], "--mean applies to --model"),
        (["grad", *routes["torchscript"], "--index", "1000"], "index 1000 is out of range"),
        (["grad", *routes["torchscript"], "--plot", str(tmp_path / "g.png"), "--index", "-1"], "index -1"),
        (["info", "--model", str(trained_small_path), "--mean", "0.1", "--std", "0.3"], "drop mean/std"),
        (["info", "--model", factory, "--model-args", "{nope"], "model_args must be a JSON object"),
        (["info", "--model", f"{factory[:-5]}:nothing"], "nothing"),
        (["info", "--model", str(tmp_path / "missing.pt2")], "missing.pt2"),
    ]
    before = tree(tmp_path)
    for args, fragment in cases:
        result = invoke(*args)
        assert_usage_error(result.exit_code, result.stderr, fragment)
        assert tree(tmp_path) == before, args


def test_gradient_report_library_refuses_data_for_a_random_network() -> None:
    from advgrad.runs.gradients import gradient_report

    with pytest.raises(ValueError, match="random_widths runs on the mnist-5k test digits"):
        gradient_report(random_widths=(784, 10), data="mnist-5k")
    with pytest.raises(ValueError, match="random_widths runs on the mnist-5k test digits"):
        gradient_report(random_widths=(784, 10), weights="w.pt")


def test_grad_and_info_name_the_users_class_behind_mean_and_std(tmp_path: Path) -> None:
    """With --mean/--std the model runs behind a Normalize (a Sequential of two): grad's model line and its
    note name the user's class, as info does, not the wrapper's."""
    (tmp_path / "net.py").write_text(
        "import torch\n\n"
        "class TinyNet(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        torch.manual_seed(0)\n"
        "        self.fc = torch.nn.Linear(784, 10)\n\n"
        "    def forward(self, x):\n"
        "        return self.fc(x.flatten(1))\n\n"
        "def make():\n"
        "    return TinyNet()\n")
    spec = ["--model", f"{tmp_path / 'net.py'}:make", "--mean", "0.5", "--std", "0.25"]
    result = invoke("grad", *spec, "--data", "mnist-5k", "--index", "0", "--fd-coords", "2")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"model: {tmp_path / 'net.py'}:make (factory, TinyNet)"), lines[0]
    assert any(line.startswith("(TinyNet: ") for line in lines), result.stdout
    info = invoke("info", *spec, "--json")
    assert info.exit_code == 0 and json.loads(info.stdout)["class"] == "TinyNet", info.output
