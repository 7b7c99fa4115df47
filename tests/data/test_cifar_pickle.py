"""CIFAR-10 batches are pickles from strangers: the loader's unpickler must refuse every global that is not
numpy's array rebuilding, before calling anything. Each malicious batch here is first shown to be live
(the standard unpickler runs it and a marker file appears), then shown to be refused with no marker."""

from __future__ import annotations

import builtins
import copyreg
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.datafiles import make_cifar_folder
from numpy.testing._private import utils as np_testing_utils

from advgrad.data._cifar_pickle import read_cifar_batch
from advgrad.data.builtin import load_dataset
from advgrad.data.files import DataError


class _Call:
    """Pickles as a call of ``func(*args)`` (a REDUCE opcode: what a malicious file does), then, with
    ``state``, a BUILD opcode that passes it to the result's ``__setstate__``."""

    def __init__(self, func: Callable[..., Any], *args: Any, state: object = None) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _payloads(marker: Path) -> dict[str, _Call]:
    """Four ways to run code on load, each of which creates ``marker``."""
    write = f"open({str(marker)!r}, 'w').close()"
    return {"os.system": _Call(os.system, f"touch '{marker}'"),
            "builtins.exec": _Call(builtins.exec, write),
            "subprocess.call": _Call(subprocess.call, [sys.executable, "-c", write]),
            # A gadget inside numpy itself: the allowlist is two functions and two types, not "numpy".
            "numpy runstring": _Call(np_testing_utils.runstring, write, {})}


def _placements(payload: _Call) -> dict[str, object]:
    """The payload anywhere in an otherwise well-formed batch (or as the whole file)."""
    good = np.zeros((1, 3072), np.uint8)
    return {"whole file": payload,
            "as data": {b"data": payload, b"labels": [0]},
            "inside labels": {b"data": good, b"labels": [payload]},
            "as a key": {b"data": good, b"labels": [0], payload: 1}}


def _global_name(payload: _Call) -> str:
    return f"{payload.func.__module__}.{payload.func.__qualname__}"


@pytest.mark.parametrize("kind", ["os.system", "builtins.exec", "subprocess.call", "numpy runstring"])
@pytest.mark.parametrize("place", ["whole file", "as data", "inside labels", "as a key"])
def test_malicious_batch_is_refused_before_its_payload_runs(tmp_path: Path, kind: str, place: str) -> None:
    marker = tmp_path / "pwned"
    payload = _payloads(marker)[kind]
    # The whole-file case in protocol 2 with GLOBAL opcodes, as Python 2 wrote; the others with STACK_GLOBAL.
    raw = pickle.dumps(_placements(payload)[place], protocol=2 if place == "whole file" else 4, fix_imports=False)
    # Control: the standard unpickler runs the payload, so the file really is an exploit.
    pickle.loads(raw)
    assert marker.exists()
    marker.unlink()
    path = tmp_path / "data_batch_1"
    path.write_bytes(raw)
    with pytest.raises(DataError) as info:
        read_cifar_batch(path)
    message = str(info.value)
    assert not marker.exists()
    assert f"refused to unpickle global {_global_name(payload)}" in message
    assert repr(str(path)) in message and "\n" not in message


def test_malicious_batch_in_a_real_folder_is_refused_by_load_dataset(tmp_path: Path) -> None:
    make_cifar_folder(tmp_path, n=2)
    marker = tmp_path / "pwned"
    evil = tmp_path / "cifar-10-batches-py" / "data_batch_4"
    payload = _payloads(marker)["os.system"]
    evil.write_bytes(pickle.dumps({b"data": payload, b"labels": [0]}))
    with pytest.raises(DataError, match=f"data_batch_4': refused to unpickle global {_global_name(payload)}"):
        load_dataset("cifar10", root=tmp_path)
    assert not marker.exists()


def test_extension_registry_opcodes_are_refused(tmp_path: Path) -> None:
    """EXT1/EXT2/EXT4 name a global by a number registered with copyreg, and the unpickler may answer a
    number from its cache without asking find_class; no CIFAR batch uses them, so they are refused outright."""
    marker = tmp_path / "pwned"
    payload = _payloads(marker)["os.system"]
    module, name = payload.func.__module__, payload.func.__name__
    copyreg.add_extension(module, name, 0xBEEF)
    try:
        raw = pickle.dumps({b"data": payload, b"labels": [0]}, protocol=4)
        assert pickle.EXT2 in raw and b"system" not in raw  # the global is named only by its number
        pickle.loads(raw)  # control: live while the number is registered
        assert marker.exists()
        marker.unlink()
        path = tmp_path / "data_batch_1"
        path.write_bytes(raw)
        with pytest.raises(DataError, match="data_batch_1': refused pickle opcode EXT2 at byte"):
            read_cifar_batch(path)
    finally:
        copyreg.remove_extension(module, name, 0xBEEF)
    assert not marker.exists()


def test_persistent_ids_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.PROTO + b"\x02" + pickle.PERSID + b"42\n" + pickle.STOP)
    with pytest.raises(DataError, match="refused pickle opcode PERSID at byte 2"):
        read_cifar_batch(path)


def test_an_object_array_is_refused_by_its_dtype(tmp_path: Path) -> None:
    """ndarray, dtype and _reconstruct are the admitted globals, so a pickle can describe an object array;
    it is refused before any array is built, since only integer dtypes are rebuilt."""
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": np.ones((1, 3072), dtype=object), b"labels": [0]}))
    with pytest.raises(DataError, match="'data': dtype 'O8' is not an integer type pickled by numpy"):
        read_cifar_batch(path)


def test_a_malformed_dtype_state_never_reaches_numpy(tmp_path: Path) -> None:
    """numpy's dtype.__setstate__ reads uninitialised memory for a state tuple of unexpected length
    (numpy issue #30476); on numpy 2.4 a 6-tuple kills the interpreter. The batch below is a uint8 array
    pickled as numpy does, but with one entry of its dtype's state dropped. The standard unpickler, in a
    child process, does not survive it; the loader rebuilds arrays without numpy's unpickling code and
    reports the state instead."""
    # numpy itself writes (3, '|', None, None, None, -1, -1, 0): a 6-tuple state crashes numpy's setstate
    dtype = _Call(np.dtype, "u1", False, True, state=(3, "|", None, -1, -1, 0))
    array = _Call(np.zeros(1).__reduce__()[0], np.ndarray, (0,), b"b", state=(1, (1, 3072), dtype, False, bytes(3072)))
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": array, b"labels": [0]}))
    child = subprocess.run([sys.executable, "-c", "import pickle, sys; pickle.loads(open(sys.argv[1], 'rb').read())",
                            str(path)], check=False, capture_output=True)
    assert child.returncode != 0  # -11 (SIGSEGV) on numpy 2.4; a ValueError once numpy checks the length
    with pytest.raises(DataError, match=r"'data': malformed state for dtype u1: \(3, '\|', None, -1, -1, 0\)"):
        read_cifar_batch(path)
