"""``--model model.onnx`` on the command line: ``attack``, ``eval`` and ``info`` on an ONNX graph (ONNX Runtime,
a query-only model), ``--labels-only``, and the one-line refusals.

Reference: the torch model the graph was exported from (``torch.onnx.export(..., dynamo=False)`` in the
test), attacked by the same command through its advgrad checkpoint. ONNX Runtime's float32 kernels round
differently from torch's (logits agree to ~1e-6 here, held to 1e-4), so a decision-based search takes the
same steps until a query lands within that rounding of the boundary (a bisection goes there on purpose);
from then on the two runs part. What the tests hold: the clean labels are equal, the verdicts (which
points are broken, within ε where one is given) are equal, the median ‖δ‖ agrees within 5 %, and the
query counts are equal (the search stops on the same budget).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers.cli import assert_usage_error, invoke, tree
from torch import nn

from advgrad.data.builtin import Dataset

pytest.importorskip("onnxruntime")

N = 12  # test digits per attack: a few seconds for the three attacks on both models


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _export(model: nn.Module, path: Path, shape: tuple[int, ...] = (1, 28, 28)) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation notice
        torch.onnx.export(model.eval(), (torch.rand(2, *shape),), str(path), input_names=["x"], output_names=["z"],
                          dynamic_axes={"x": {0: "n"}, "z": {0: "n"}}, dynamo=False)
    return path


@pytest.fixture(scope="module")
def graph(trained_small: tuple[nn.Module, dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``trained_small`` (cnn-small on mnist-5k) exported to ONNX."""
    return _export(trained_small[0], tmp_path_factory.mktemp("onnx") / "small.onnx")


def _attack(tmp: Path, model: Path, name: str, *args: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    out, examples = tmp / f"{name}.json", tmp / f"{name}.npz"
    result = invoke("attack", "--model", str(model), "--data", "mnist-5k", "--n", str(N), "--out", str(out),
                    "--save-examples", str(examples), *args)
    assert result.exit_code == 0, result.output
    with np.load(examples) as f:
        return json.loads(out.read_text()), {k: f[k] for k in f.files}


def test_graph_answers_as_the_torch_model(graph: Path, trained_small: tuple[nn.Module, dict],
                                          mnist5k: Dataset) -> None:
    from advgrad.models.loading import open_model

    model = open_model(graph).model
    x = mnist5k.x_test[:200]
    with torch.no_grad():
        z = trained_small[0](x)
    scores = model(x)  # type: ignore[operator]  # a QueryModel: scores (N, K)
    torch.testing.assert_close(scores, z, atol=1e-4, rtol=0)
    assert torch.equal(scores.argmax(1), z.argmax(1))


@pytest.mark.parametrize("method, args", [
    ("rays", ("--queries", "300")),
    ("hopskipjump", ("--norm", "2", "--queries", "400")),
    ("square", ("--eps", "0.15", "--queries", "200")),
])
def test_attack_on_the_graph_gives_the_torch_model_verdicts(graph: Path, trained_small_path: Path, tmp_path: Path,
                                                             method: str, args: tuple[str, ...]) -> None:
    (onnx_rec, onnx_ex), (torch_rec, torch_ex) = (_attack(tmp_path, m, f"{method}-{m.suffix[1:]}", "--method",
                                                          method, *args) for m in (graph, trained_small_path))
    assert np.array_equal(onnx_ex["pred_clean"], torch_ex["pred_clean"])
    assert np.array_equal(onnx_ex["pred_adv"] != onnx_ex["y"], torch_ex["pred_adv"] != torch_ex["y"])
    assert onnx_rec["adversarial_accuracy"] == torch_rec["adversarial_accuracy"]
    assert onnx_rec["queries"] == torch_rec["queries"] and onnx_rec["queries"]["mean"] > 0
    if "min_norm" in onnx_rec:
        assert onnx_rec["min_norm"]["median"] == pytest.approx(torch_rec["min_norm"]["median"], rel=0.05)
    model = onnx_rec["model"]
    assert model["kind"] == "onnx" and model["query_only"] is True and model["input"]["name"] == "x"
    assert "kind" not in torch_rec["model"] or torch_rec["model"]["kind"] != "onnx"


def test_labels_only_graph_and_labels_only_torch_model_agree(graph: Path, trained_small_path: Path,
                                                             tmp_path: Path) -> None:
    """--labels-only on the graph and on the torch checkpoint: the same decision-based setting."""
    (a, ex_a), (b, ex_b) = (_attack(tmp_path, m, f"l-{m.suffix[1:]}", "--method", "rays", "--queries", "300",
                                    "--labels-only") for m in (graph, trained_small_path))
    assert a["model"]["labels_only"] is True and b["model"]["labels_only"] is True
    assert a["mean_confidence_adv"] is None  # a model that answers labels gives no confidence
    assert np.array_equal(ex_a["pred_adv"] != ex_a["y"], ex_b["pred_adv"] != ex_b["y"])
    assert a["min_norm"]["median"] == pytest.approx(b["min_norm"]["median"], rel=0.05)


def test_eval_and_info_on_the_graph(graph: Path, tmp_path: Path) -> None:
    out = tmp_path / "e.json"
    result = invoke("eval", "--model", str(graph), "--data", "mnist-5k", "--n", "6", "--attacks", "spsa",
                    "--eps", "0.1", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "sanity report needs the model's gradients: skipped" in result.stderr
    record = json.loads(out.read_text())
    assert record["model"]["kind"] == "onnx" and record["sanity"] == [] and record["records"][0]["attack"] == "spsa"
    info = invoke("info", "--model", str(graph))
    assert info.exit_code == 0, info.output
    assert "x: tensor(float) (n, 1, 28, 28)" in info.stdout and "ai.onnx" in info.stdout
    assert "rays" in info.stdout and "pgd" not in info.stdout
    described = json.loads(invoke("info", "--model", str(graph), "--json").stdout)
    assert described["kind"] == "onnx" and described["outputs"][0]["shape"] == ["n", 10]
    assert described["input_shape"] == [1, 28, 28] and described["num_classes"] == 10


def test_bad_input_is_one_line_exit_2_nothing_written(graph: Path, trained_small_path: Path, tmp_path: Path) -> None:
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"PK\x03\x04 this is no protobuf graph" * 10)
    torch.manual_seed(0)
    small = _export(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), tmp_path / "eight.onnx", (1, 8, 8))
    out = tmp_path / "out" / "a.json"
    common = ("--data", "mnist-5k", "--n", "4", "--out", str(out))
    cases = [
        (("attack", "--model", str(fake), "--method", "rays", *common), "ONNX Runtime cannot load"),
        (("attack", "--model", str(small), "--method", "rays", *common), "takes inputs of shape (N, 1, 8, 8)"),
        (("attack", "--model", str(graph), "--method", "pgd", "--eps", "0.1", *common),
         "pgd needs the model's gradients"),
        (("attack", "--model", str(graph), "--method", "pgd", "--eps", "0.1", "--labels-only", *common),
         "answers top-1 labels only: use a decision-based attack (hopskipjump, rays, boundary)"),
        (("attack", "--model", str(graph), "--method", "square", "--eps", "0.1", "--labels-only", *common),
         "square needs the model's scores"),
        (("attack", "--model", str(trained_small_path), "--method", "spsa", "--eps", "0.1", "--labels-only",
          *common), "spsa needs the model's scores"),
        (("attack", "--model", str(graph), "--method", "rays", "--mean", "0.1", "--std", "0.3", *common),
         "an ONNX graph normalizes its inputs itself"),
        (("eval", "--model", str(graph), *common), "fgsm needs the model's gradients"),
        (("attack", "--model", str(graph), "--method", "rays", "--n", "4"), "--data is needed"),
        (("grad", "--model", str(graph), "--data", "mnist-5k"), "only answers queries"),
    ]
    before = tree(tmp_path)
    for args, fragment in cases:
        result = invoke(*args)
        assert_usage_error(result.exit_code, result.stderr, fragment)
        assert tree(tmp_path) == before, args
