"""Models from ONNX files, run by ONNX Runtime, as query-only models (``QueryModel``).

``load_onnx(path)`` opens an exported graph (``torch.onnx.export`` and every other exporter) whose one input
is an image batch (N, C, H, W) of floats in the data's bounds and whose first output is scores (N, K) or
labels (N,). The black-box attacks query it; the gradient attacks cannot (there is no gradient to take).

Safety: an ONNX file is a protobuf graph of standard operators. ONNX Runtime interprets it in C++ and never
executes Python from it (unlike a pickle); an operator outside the standard domains fails to load unless its
library is registered, and advgrad registers none. Weights kept in external data files are read from the
model's folder. The file is checked as it loads: one line (ValueError) for a file that is no ONNX graph, an
input that is not a rank-4 float tensor, or an output that is neither (N, K) scores nor (N,) labels.

Needs onnxruntime: ``pip install advgrad[onnx]``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor

from advgrad.models.query import QueryModel

_FLOATS = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16}
_LABELS = ("tensor(int64)", "tensor(int32)")
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def _onnxruntime() -> ModuleType:
    try:
        return importlib.import_module("onnxruntime")
    except ImportError:
        raise ImportError("reading ONNX models needs onnxruntime: pip install advgrad[onnx]") from None


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class OnnxRun:
    """The callable a QueryModel wraps: x (a tensor) → the graph's first output (a NumPy array). A graph with
    a fixed batch size B is run B rows at a time (the last piece padded with zeros, its padding dropped)."""

    def __init__(self, session: Any, name: str, path: Path | None = None) -> None:
        self.session, self.name, self.path = session, name, path
        node = session.get_inputs()[0]
        self.input, self.dtype = node.name, _FLOATS[node.type]
        self.output = session.get_outputs()[0].name
        self.batch = node.shape[0] if isinstance(node.shape[0], int) and node.shape[0] > 0 else None
        # (C, H, W) as the graph declares them: an int where fixed, None where symbolic ("height", ...)
        self.sample_shape = tuple(d if isinstance(d, int) and d > 0 else None for d in node.shape[1:])

    def signature(self) -> dict[str, Any]:
        """What the graph takes and returns: its input (name, type, shape; a symbolic dimension by its name),
        its outputs, and the operator sets it imports (read with the ``onnx`` package where installed, the
        graph only, no external weights; None without it)."""
        def node(n: Any) -> dict[str, Any]:
            return {"name": n.name, "type": n.type, "shape": list(n.shape or ())}

        return {"input": node(self.session.get_inputs()[0]),
                "outputs": [node(n) for n in self.session.get_outputs()], "opset": _opsets(self.path)}

    def _run(self, arr: np.ndarray) -> np.ndarray:
        try:
            out = self.session.run([self.output], {self.input: arr})[0]
        except Exception as exc:  # onnxruntime raises its own exception types, one per failure kind
            raise ValueError(f"the ONNX model {self.name} cannot take x of shape {arr.shape}: {_line(exc)}") from None
        return np.asarray(out)

    def __call__(self, x: Tensor) -> np.ndarray:
        arr = x.detach().cpu().numpy().astype(self.dtype, copy=False)
        if self.batch is None or len(arr) == self.batch:
            return self._run(arr)
        parts = []
        for i in range(0, len(arr), self.batch):
            piece = arr[i:i + self.batch]
            pad = np.zeros((self.batch - len(piece), *arr.shape[1:]), dtype=arr.dtype)
            parts.append(self._run(np.concatenate([piece, pad]))[:len(piece)])
        return np.concatenate(parts)


def _opsets(path: Path | None) -> dict[str, int] | None:
    """{domain: version} of the operator sets the graph at ``path`` imports ("ai.onnx" for the default one)."""
    try:
        onnx = importlib.import_module("onnx")
        proto = onnx.load(str(path), load_external_data=False) if path is not None else None
    except Exception:  # no onnx package, or a file only ONNX Runtime reads: the opset is not said
        return None
    return None if proto is None else {(o.domain or "ai.onnx"): int(o.version) for o in proto.opset_import}


def _check_graph(session: Any, name: str) -> int | None:
    """Refuse a graph the attacks cannot query; K when the graph declares it."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        raise ValueError(f"the ONNX model {name} takes {len(inputs)} inputs; advgrad feeds one, images (N, C, H, W)")
    node = inputs[0]
    if node.type not in _FLOATS or len(node.shape or ()) != 4:
        raise ValueError(f"the ONNX model {name} takes {node.type} of shape {node.shape}; advgrad feeds float "
                         "images (N, C, H, W)")
    out = outputs[0]
    rank = len(out.shape or ())
    if not ((out.type in _FLOATS and rank == 2) or (out.type in _LABELS and rank == 1)):
        raise ValueError(f"the ONNX model {name} answers {out.type} of shape {out.shape}; advgrad reads scores "
                         "(N, K) (float) or labels (N,) (integers)")
    k = out.shape[1] if rank == 2 else None
    return k if isinstance(k, int) and k >= 2 else None


def load_onnx(path: str | Path, *, device: str = "cpu", labels_only: bool = False) -> QueryModel:
    """An ONNX file as a query-only model run by ONNX Runtime.

    Parameters
    ----------
    path : str or Path
        The ``.onnx`` file.
    device : "cpu", "cuda" or "auto"
        ONNX Runtime's CPU execution provider, or its CUDA provider (onnxruntime-gpu; "auto": CUDA when
        present, else the CPU).
    labels_only : bool
        Answer the argmax only (a decision-based setting), whatever the graph outputs.

    Returns
    -------
    QueryModel
        Taking x (N, C, H, W) (converted to the graph's float type) and answering the graph's first output.

    Raises
    ------
    ImportError
        Without onnxruntime (one line: ``pip install advgrad[onnx]``).
    FileNotFoundError
        For a path that is not there.
    ValueError
        One line: a file that is no ONNX graph, a graph whose input is not (N, C, H, W) float or whose output
        is neither (N, K) scores nor (N,) labels, an unknown device, or CUDA asked for and absent.

    Examples
    --------
    >>> import torch, tempfile, os
    >>> from advgrad import load_onnx
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> path = os.path.join(tempfile.mkdtemp(), "net.onnx")
    >>> torch.onnx.export(net, (torch.rand(1, 1, 2, 2),), path, input_names=["x"], dynamo=False,
    ...                   dynamic_axes={"x": {0: "n"}})
    >>> load_onnx(path).labels(torch.rand(5, 1, 2, 2)).shape
    torch.Size([5])
    """
    ort = _onnxruntime()
    if device not in ("cpu", "cuda", "auto"):
        raise ValueError(f"unknown device {device!r}: expected one of cpu, cuda, auto")
    available = ort.get_available_providers()
    if device == "auto":
        device = "cuda" if PROVIDERS["cuda"] in available else "cpu"
    if device == "cuda" and PROVIDERS["cuda"] not in available:
        raise ValueError("device 'cuda' asked for, but this onnxruntime has no CUDA execution provider "
                         "(install onnxruntime-gpu, or use cpu)")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no ONNX file at {str(path)!r}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    providers = [PROVIDERS[device]] + ([PROVIDERS["cpu"]] if device == "cuda" else [])
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime's own exception types: InvalidProtobuf, Fail, InvalidGraph, ...
        raise ValueError(f"ONNX Runtime cannot load {str(path)!r} (not a valid ONNX graph, or operators it "
                         f"does not implement): {_line(exc)}") from None
    k = _check_graph(session, path.name)
    return QueryModel(OnnxRun(session, path.name, path), labels_only=labels_only, num_classes=k,
                      name=f"ONNX {path.name}")
