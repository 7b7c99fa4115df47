"""Where a model comes from, read without surprises: which kind a spec names, and each kind's loader.

- ``path/to/file.py:factory`` or ``package.module:factory``: Python code, imported and run (a ``.py`` file is
  executed as a module: the user's explicit choice, as with ``python file.py``); ``factory(**model_args)``
  must return an ``nn.Module``.
- ``torchvision:NAME``: ``torchvision.models.get_model(NAME, weights=None, **model_args)``; nothing is
  downloaded.
- a file: sniffed from its zip directory (``torch.save``, ``torch.jit.save`` and ``torch.export.save`` all
  write zip archives): an ``archive_format`` entry is a torch.export program, a ``code/`` folder TorchScript,
  a lone ``data.pkl`` a ``torch.save`` file (an advgrad checkpoint). TorchScript and export files hold a
  program that torch runs (TorchScript/ATen ops, not arbitrary Python): load only files you trust.
- a file ending ``.onnx``: an ONNX graph, run by ONNX Runtime as a query-only model (``models.onnx``; no
  Python from the file ever runs).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import re
import sys
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from advgrad.models._weights import _why

TORCHVISION = "torchvision:"
_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def split_factory(spec: str) -> tuple[str, str] | None:
    """``(module or file.py, attribute)`` for a ``where:attr`` spec, None for anything else (a file path)."""
    where, sep, attr = spec.rpartition(":")
    if not sep or not _DOTTED.fullmatch(attr) or spec.startswith(TORCHVISION):
        return None
    if where.endswith(".py") or _DOTTED.fullmatch(where):
        return where, attr
    return None


def model_kind(spec: str) -> str:
    """"torchvision", "factory", or for a file "onnx" (by its suffix), "checkpoint", "torchscript" or "export" (by
    its contents).
    FileNotFoundError for a file that is not there; ValueError for one that is none of these."""
    if spec.startswith(TORCHVISION):
        return "torchvision"
    if split_factory(spec) is not None:
        return "factory"
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"no model at {spec!r} (expected a file, path/file.py:factory, "
                                "package.module:factory or torchvision:NAME)")
    if path.suffix == ".py":
        raise ValueError(f"{spec!r} is Python code: name the function that builds the model, e.g. {spec}:make_model")
    if not path.is_file():
        raise ValueError(f"{spec!r} is not a file")
    if path.suffix.lower() == ".onnx":  # a protobuf graph: no magic bytes to sniff; ONNX Runtime checks it
        return "onnx"
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{spec!r} is not a model file: torch.save, torch.jit.save and torch.export.save write "
                         "zip archives, and this is not one")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{spec!r} is a damaged zip archive ({_why(exc)})") from None
    tails = {n.split("/", 1)[-1] for n in names}
    if "archive_format" in tails:
        return "export"
    if "constants.pkl" in tails or any(t.startswith("code/") for t in tails):
        return "torchscript"
    if "data.pkl" in tails:
        return "checkpoint"
    raise ValueError(f"{spec!r} is a zip archive but not a torch.save, TorchScript or torch.export file")


def _run_file(path: Path) -> Any:
    """Execute a ``.py`` file as a fresh module (its folder importable while it runs) and return it."""
    if not path.is_file():
        raise FileNotFoundError(f"no Python file at {str(path)!r}")
    stem = re.sub(r"\W", "_", path.stem)
    name = f"advgrad_user_{stem}_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{str(path)!r} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and typing look their module up while the file runs
    sys.path.insert(0, str(path.resolve().parent))
    no_cache, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # leave no __pycache__ beside the file
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        del sys.modules[name]
        raise ValueError(f"running {str(path)!r} failed ({_why(exc)})") from None
    finally:
        sys.path.remove(str(path.resolve().parent))
        sys.dont_write_bytecode = no_cache
    return module


def _import(where: str) -> Any:
    try:
        return importlib.import_module(where)
    except (Exception, SystemExit) as exc:
        raise ValueError(f"cannot import module {where!r} ({_why(exc)})") from None


def build_factory(spec: str, args: Mapping[str, Any]) -> nn.Module:
    """``factory(**args)`` for ``file.py:factory`` (the file is executed) or ``package.module:factory``."""
    parts = split_factory(spec)
    if parts is None:
        raise ValueError(f"{spec!r} is not of the form path/file.py:factory or package.module:factory")
    where, attr = parts
    obj = _run_file(Path(where)) if where.endswith(".py") else _import(where)
    for name in attr.split("."):
        if not hasattr(obj, name):
            names = [n for n in dir(obj) if not n.startswith("_") and callable(getattr(obj, n, None))]
            near = difflib.get_close_matches(name, names, n=3)
            hint = f"did you mean {', '.join(near)}?" if near else f"it has {', '.join(names[:8]) or 'no callables'}"
            raise ValueError(f"{where!r} has no attribute {name!r} ({hint})")
        obj = getattr(obj, name)
    if not callable(obj):
        raise ValueError(f"{spec!r} is a {type(obj).__name__}, not a function or class that builds a model")
    try:
        model = obj(**args)
    except (Exception, SystemExit) as exc:
        raise ValueError(f"{spec}(**{dict(args)!r}) raised {_why(exc)}") from None
    if not isinstance(model, nn.Module):
        raise ValueError(f"{spec}(**{dict(args)!r}) returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def build_torchvision(spec: str, args: Mapping[str, Any]) -> nn.Module:
    """``torchvision.models.get_model(NAME, weights=None, **args)``: an untrained classifier, nothing fetched."""
    import torchvision.models as tvm

    name = spec.removeprefix(TORCHVISION)
    names = tvm.list_models(module=tvm)  # the classification models
    if name not in names:
        near = difflib.get_close_matches(name, names, n=3)
        hint = f"did you mean {', '.join(near)}?" if near else f"{len(names)} names, e.g. resnet18, vit_b_16"
        raise ValueError(f"unknown torchvision model {name!r} ({hint})")
    refused = sorted(k for k in args if k.startswith("weights"))
    if refused:
        raise ValueError(f"model_args {refused[0]!r} would download weights: pass a weights file instead")
    try:
        return tvm.get_model(name, weights=None, **args)
    except Exception as exc:
        raise ValueError(f"torchvision model {name!r} with {dict(args)!r} cannot be built ({_why(exc)})") from None


class ExportedModule(nn.Module):
    """An ``ExportedProgram.module()``. Its graph was captured in one mode (export in eval mode) and its own
    ``train()``/``eval()`` raise NotImplementedError, so here they only set this wrapper's flag; a guard
    failure (an input shape the program was not exported for) becomes a RuntimeError naming the shape."""

    def __init__(self, graph: nn.Module) -> None:
        super().__init__()
        self.graph = graph

    def train(self, mode: bool = True) -> ExportedModule:
        self.training = mode
        return self

    def forward(self, x: Tensor) -> Any:
        try:
            return self.graph(x)
        except AssertionError as exc:  # torch.export's shape guards
            guard = (str(exc).strip().splitlines() or ["AssertionError"])[0][:120]
            raise RuntimeError(f"the program was exported for other input shapes ({guard}): export it with "
                               "a dynamic batch dimension (torch.export.Dim)") from None

    def shapes(self) -> tuple[tuple[int, ...] | None, int | None]:
        """The sample shape (C, H, W) of the program's one input and its output width K, as the graph records
        them (its placeholder's and output's example values); None where one is not a fixed integer."""
        sample: tuple[int, ...] | None = None
        width: int | None = None
        for node in self.graph.graph.nodes:  # type: ignore[union-attr]  # a GraphModule: has .graph
            val = node.meta.get("val")
            if node.op == "placeholder" and isinstance(val, Tensor) and sample is None:
                dims = tuple(val.shape[1:])
                sample = tuple(int(d) for d in dims) if all(isinstance(d, int) for d in dims) else None
            if node.op == "output":
                leaves = [a.meta.get("val") for a in torch.utils._pytree.tree_leaves(node.args) if hasattr(a, "meta")]
                if len(leaves) == 1 and isinstance(leaves[0], Tensor) and leaves[0].ndim == 2:
                    k = leaves[0].shape[1]
                    width = int(k) if isinstance(k, int) else None
        return sample, width


def load_program(path: Path, kind: str) -> nn.Module:
    """A TorchScript module or torch.export program from ``path``, on the CPU."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated (still supported)
            # Both loaders are untyped in torch's stubs.
            if kind == "torchscript":
                load_script: Callable[..., nn.Module] = torch.jit.load
                return load_script(str(path), map_location="cpu")
            load_export: Callable[[str], Any] = torch.export.load
            return ExportedModule(load_export(str(path)).module())
    except Exception as exc:
        what = "TorchScript file" if kind == "torchscript" else "torch.export program"
        raise ValueError(f"{str(path)!r} is not a loadable {what} ({_why(exc)})") from None
