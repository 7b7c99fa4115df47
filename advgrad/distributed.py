"""Past one process: PyTorch's own ``torch.distributed``, launched by torchrun.

``torchrun --standalone --nproc_per_node N -m advgrad ...`` starts N copies of the program and puts RANK,
LOCAL_RANK, WORLD_SIZE and the rendezvous address in each one's environment. ``setup(device)`` joins them
into one process group — gloo on the CPU, NCCL on CUDA with one GPU per process (cuda:LOCAL_RANK) — and
returns the device this process computes on. Without torchrun (WORLD_SIZE unset or 1) it only resolves the
device, nothing is initialised, and every helper below answers for a world of one process: the library
then runs exactly as it does without this module.

Who uses it: ``advgrad.training.train.fit`` wraps the model in DistributedDataParallel once a group is up, and
``advgrad.attacks.runner`` (under ``advgrad eval`` and ``advgrad attack``) shares blocks of test
points out (block k to process k mod N).
Only process 0 (``is_main()``) writes files and prints.

Results and control messages (epoch metrics, the Ctrl-C flag, per-sample masks, adversarial examples)
travel over gloo on the CPU even when the gradients go over NCCL: they are small or rare, and a CPU group
needs no GPU stream synchronisation.
"""

from __future__ import annotations

import atexit
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from advgrad._runtime import resolve_device

_state: dict[str, Any] = {"cpu_group": None, "device": None}


def launched() -> bool:
    """True when torchrun started this process as one of several (WORLD_SIZE > 1 in the environment)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def active() -> bool:
    """True when this process belongs to an initialised group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """The number of processes (1 without a group)."""
    return dist.get_world_size() if active() else 1


def rank() -> int:
    """This process's rank, 0 … world_size() − 1 (0 without a group)."""
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    """True on the one process that writes files and prints: rank 0 (and a lone process)."""
    return rank() == 0


def _env_int(name: str) -> int:
    value = os.environ.get(name)
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} in the environment: torchrun sets it to an integer; launch the "
                         "program with torchrun (python -m torch.distributed.run)") from None


def setup(device: str = "auto") -> torch.device:
    """Join torchrun's process group if this process was launched as one of several, and return the device
    to compute on; without torchrun, only ``resolve_device(device)``. Idempotent; the group is left at exit.

    On CUDA each process takes GPU LOCAL_RANK and the group talks NCCL (plus a gloo group on the CPU for
    results); on the CPU it talks gloo. More processes per node than GPUs is a ValueError."""
    resolved = resolve_device(device)
    if not launched():
        return resolved
    if active():
        return _state["device"] or resolved
    world, local = _env_int("WORLD_SIZE"), _env_int("LOCAL_RANK")
    _env_int("RANK")
    if resolved.type == "cuda":
        count = torch.cuda.device_count()
        if local >= count:
            raise ValueError(f"process {local} of this node needs GPU {local}, but only {count} CUDA devices "
                             f"are visible: start at most {count} processes per node")
        torch.cuda.set_device(local)
        resolved = torch.device("cuda", local)
        dist.init_process_group("nccl")
        _state["cpu_group"] = dist.new_group(backend="gloo")
    else:
        dist.init_process_group("gloo")
    _state["device"] = resolved
    atexit.register(shutdown)
    # Everyone connected before anyone goes on: a process that stops at an error every process raises could
    # otherwise leave while a peer is still making its connections, which then fail ("closed by peer").
    dist.barrier(group=_state["cpu_group"])
    if dist.get_world_size() != world:  # pragma: no cover - torchrun keeps these in step
        raise RuntimeError(f"the process group has {dist.get_world_size()} processes, WORLD_SIZE says {world}")
    return resolved


def shutdown() -> None:
    """Leave the process group (a no-op without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _state["cpu_group"], _state["device"] = None, None


@contextmanager
def session(device: str = "auto") -> Iterator[torch.device]:
    """``setup(device)`` for the body, ``shutdown()`` after it (also on errors)."""
    try:
        yield setup(device)
    finally:
        shutdown()


def _cpu_group() -> Any:
    return _state["cpu_group"]  # None: the default group (gloo already)


def barrier() -> None:
    """Wait until every process gets here (a no-op in one process)."""
    if active():
        dist.barrier(group=_cpu_group())


def all_sum(values: Tensor) -> Tensor:
    """Σ over the processes of a CPU tensor (each holds its own), the same on every process. Integers add
    exactly; floats in an order fixed by the backend, not the one-process order."""
    if not active():
        return values
    out = values.detach().cpu().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM, group=_cpu_group())
    return out


def any_process(flag: bool) -> bool:
    """True on every process if ``flag`` is True on any of them."""
    if not active():
        return flag
    return bool(all_sum(torch.tensor([int(flag)], dtype=torch.int64))[0] > 0)


def gather_objects(obj: Any) -> list[Any]:
    """Every process's ``obj`` in rank order, on every process (``[obj]`` in one process). Only between our
    own processes: never for data read from files."""
    if not active():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj, group=_cpu_group())
    return out


def broadcast_(tensor: Tensor) -> Tensor:
    """Overwrite ``tensor`` on every process with process 0's, in place, on its own device."""
    if active():
        dist.broadcast(tensor, src=0)
    return tensor


def launched_world_size() -> int:
    """The number of processes torchrun started (WORLD_SIZE; 1 without torchrun), known before ``setup``."""
    return _env_int("WORLD_SIZE") if launched() else 1


def check_batch_size(batch_size: int, world: int | None = None) -> int:
    """The per-process batch of a training run: the global ``batch_size`` over the ``world`` processes, which
    must divide it (else a one-line ValueError, the same on every process). ``world=None``: the process
    group's size, and started by torchrun as one of several processes without a group (no ``setup``), each
    would train alone: an error too. Pass ``launched_world_size()`` to check before joining the group."""
    if world is None:
        if launched() and not active():
            raise ValueError(f"this process is one of {os.environ.get('WORLD_SIZE')} started by torchrun, but no "
                             "process group is up: call advgrad.distributed.setup(device) before fit")
        world = world_size()
    if batch_size % world:
        raise ValueError(f"batch size {batch_size} is not divisible by {world} processes: use a multiple of {world} "
                         "(the batch size is the global one, shared out between the processes)")
    return batch_size // world


def owned(count: int) -> range:
    """The items 0 … count − 1 this process takes: k ≡ rank (mod world size), so the work of any list of
    blocks is spread evenly whatever its length."""
    return range(rank(), count, world_size())


def stream_seed(seed: int, *key: int) -> int:
    """A 64-bit seed for the stream named by (seed, *key): BLAKE2b of the numbers, so that neighbouring
    seeds and keys give unrelated generators (manual_seed(seed + k) streams would only be offset)."""
    text = ":".join(str(int(v)) for v in (seed, *key)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def share(values: Tensor, block: int) -> Tensor:
    """``values`` (N, ...) assembled from every process's own blocks: rows [k·block, (k+1)·block) come from
    process k mod N (``owned``), which holds them; the other rows of its copy are ignored. The same tensor,
    bit for bit, on every process, on ``values``' device (identity in one process)."""
    if not active():
        return values
    n, world = len(values), world_size()
    owner = (torch.arange(n) // block) % world  # (N,) the process that computed each row
    counts = [int((owner == k).sum()) for k in range(world)]
    mine = values[(owner == rank()).to(values.device)].detach().cpu().contiguous()
    # Rows travel as raw bytes: any dtype (bool masks included), exactly.
    rows = mine.reshape(len(mine), -1).view(torch.uint8) if mine.numel() else \
        torch.empty((0, _row_bytes(values)), dtype=torch.uint8)
    padded = torch.zeros((max(counts), rows.shape[1]), dtype=torch.uint8)
    padded[:len(rows)] = rows
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded, group=_cpu_group())
    out = values.detach().cpu().clone().reshape(n, -1).view(torch.uint8)
    for k, part in enumerate(parts):
        out[owner == k] = part[:counts[k]]
    return out.view(values.dtype).reshape(values.shape).to(values.device)


def _row_bytes(values: Tensor) -> int:
    per_row = values[0].numel() if len(values) else 1
    return per_row * values.element_size()
