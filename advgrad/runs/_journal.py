"""The state of a long evaluation on disk, so that a killed run resumes where it stopped (``--resume``).

A journal is a folder beside the run's output (``OUT.state/``): a manifest naming the run (a SHA-256 of its
options, the model file and the data, ``key_of``) and one file per finished block of the attack runner
(``advgrad.attacks.runner``), each written to a temporary name and moved into place with ``os.replace``, so a
file is either whole or absent: ``kill -9`` at any moment loses at most the blocks in progress. A resumed
run reads each saved block instead of attacking it again; what a block computes depends only on its points,
so the outcome is the uninterrupted run's, bit for bit. The files hold tensors only and are read with
``torch.load(weights_only=True)``: a state file never runs code. The run deletes its journal once its output
is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from advgrad import distributed
from advgrad.attacks.result import AttackResult

FORMAT = 1
_FIELDS = ("x_adv", "success", "loss", "logits", "distance", "queries")


def key_of(**parts: Any) -> str:
    """The SHA-256 naming a run: of its parts as canonical JSON (options, the model file's hash, the data's)
    and advgrad's version (a block saved by another version is not this run's)."""
    from advgrad._version import __version__

    text = json.dumps({**parts, "advgrad": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def data_hash(x: Tensor, y: Tensor) -> str:
    """SHA-256 of the points and labels, as stored (dtype and shape included)."""
    h = hashlib.sha256()
    for t in (x, y):
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _write(path: Path, write: Any) -> None:
    """``write(temporary path)`` then ``os.replace`` onto ``path``: the file is whole or absent."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class Journal:
    """The folder of one run's finished blocks; ``store(name)`` is the runner's ``Store`` for one pass."""

    def __init__(self, folder: Path, key: str) -> None:
        self.folder, self.key = folder, key

    @classmethod
    def open(cls, folder: str | os.PathLike[str], key: str, *, resume: bool) -> Journal:
        """The journal at ``folder`` for the run named ``key``: continued with ``resume`` (it must be this
        run's), else started (a leftover one is refused: it may be a killed run's). ValueError, one line,
        nothing touched, for a journal of another run or a folder that is not one."""
        path = Path(folder)
        manifest = path / "manifest.json"
        existed = path.exists()
        distributed.barrier()  # every process has looked before process 0 creates it: they all decide alike
        if existed:
            if not resume:
                raise ValueError(f"{str(path)!r} holds the state of an unfinished run: add --resume to continue "
                                 "it, or delete the folder to start over")
            try:
                saved = json.loads(manifest.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                raise ValueError(f"{str(path)!r} is not an advgrad run state (no readable manifest.json)") from None
            if not isinstance(saved, dict) or saved.get("format") != FORMAT or saved.get("key") != key:
                raise ValueError(f"the state in {str(path)!r} was written by another run (other options, model or "
                                 "data): run it as it was, or delete the folder to start over")
            return cls(path, key)
        if distributed.is_main():
            path.mkdir(parents=True)
            _write(manifest, lambda tmp: tmp.write_text(json.dumps({"format": FORMAT, "key": key}), encoding="utf-8"))
        distributed.barrier()
        return cls(path, key)

    def store(self, name: str) -> BlockStore:
        return BlockStore(self.folder, hashlib.sha256(name.encode()).hexdigest()[:16])

    def close(self) -> None:
        """Delete the journal (the run's output is written)."""
        distributed.barrier()
        if distributed.is_main():
            shutil.rmtree(self.folder, ignore_errors=True)


class BlockStore:
    """One pass's blocks: a file per (stage, block)."""

    def __init__(self, folder: Path, prefix: str) -> None:
        self.folder, self.prefix = folder, prefix

    def _path(self, key: tuple[int, int]) -> Path:
        return self.folder / f"{self.prefix}-{key[0]}-{key[1]}.pt"

    def get(self, key: tuple[int, int], points: Tensor) -> AttackResult | None:
        path = self._path(key)
        if not path.exists():
            return None
        try:
            saved: Mapping[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
            same = torch.equal(saved["points"], points.cpu())
        except Exception as exc:  # a damaged file: one line, not a traceback
            raise ValueError(f"{str(path)!r} is not a readable block of this run ({type(exc).__name__})") from None
        if not same:
            raise ValueError(f"{str(path)!r} holds other points than this run's block {key}: the state is not "
                             "this run's; delete its folder to start over")
        return AttackResult(**{name: saved[name] for name in _FIELDS})

    def put(self, key: tuple[int, int], points: Tensor, result: AttackResult) -> None:
        if not distributed.is_main():  # every process holds every block's result: one writes it
            return
        payload: dict[str, Tensor | None] = {"points": points.cpu()}
        for name in _FIELDS:
            value = getattr(result, name)
            payload[name] = value.detach().cpu() if isinstance(value, Tensor) else None
        _write(self._path(key), lambda tmp: torch.save(payload, tmp))
