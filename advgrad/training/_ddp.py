"""What ``fit`` does differently under DistributedDataParallel, bf16 autocast or torch.compile: the model
as the objective sees it (``TrainView``), each process's share of a global batch (``shards``), the
per-process random-start streams, and the epoch's sums and counts added up over the processes. In one
process without those options ``fit`` gives the model itself to the objective and these sums are its own:
it runs the code and computes the bits it did before they existed."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from advgrad import distributed


class TrainView(nn.Module):
    """The model as an objective sees it during training.

    A forward pass that trains — train mode, gradients on — goes through ``train_forward``: DDP's (whose
    backward averages ∂J/∂W over the processes), compiled, and under bf16 autocast with ``amp`` (logits
    returned in float32, so the loss is computed in float32). Every other pass goes straight to the module,
    eagerly, in float32: the attacks', which run in eval mode with the parameters frozen (``frozen_eval``),
    so an attack on the local shard synchronises nothing, makes no collective call and writes no
    parameter ``.grad``."""

    def __init__(self, module: nn.Module, train_forward: nn.Module, amp: bool) -> None:
        super().__init__()
        self.module = module
        self.train_forward = train_forward  # DDP or compiled wrapper around module (same parameters)
        self.amp = amp
        self.output_activation = getattr(module, "output_activation", "softmax")  # what the losses read

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and torch.is_grad_enabled()):
            return self.module(x)
        if not self.amp:
            return self.train_forward(x)
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
            z = self.train_forward(x)  # (B, K) bf16
        return z.float()


def trainee(model: nn.Module, device: torch.device, *, amp: bool, compile: bool) -> nn.Module:
    """``model`` itself in one process without amp or compile; else a ``TrainView`` around DDP(model)
    (under torch.distributed) and/or torch.compile."""
    if distributed.world_size() == 1 and not amp and not compile:
        return model
    forward: nn.Module = model
    if distributed.world_size() > 1:
        forward = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                          **_bucket_options())
    if compile:
        forward = torch.compile(forward)  # type: ignore[assignment]
    return TrainView(model, forward, amp)


def _bucket_options() -> dict[str, Any]:
    """One gradient bucket per parameter tensor with 3 or more processes.

    The all-reduce adds the processes' gradients in an order that depends on an element's place in its
    bucket. DDP puts all parameters in one bucket for its first step and regroups them afterwards, so a
    resumed run (a new DDP) would add step 1's gradients in another order than the uninterrupted run did:
    weights equal to rounding only. With a bucket per tensor the order is the same in every DDP instance,
    and a resumed run is bit-identical (measured: 3 processes, gloo). Two processes' sum is one
    commutative addition: DDP's default buckets (fewer collectives) are kept. Older torch without
    ``bucket_cap_mb_list``: the defaults."""
    supported = "bucket_cap_mb_list" in inspect.signature(DistributedDataParallel).parameters
    if distributed.world_size() < 3 or not supported:
        return {}
    return {"bucket_cap_mb_list": [0]}  # a cap of 0 MiB: every tensor fills a bucket on its own


def process_device(device: torch.device) -> torch.device:
    """This process's GPU (cuda:LOCAL_RANK, set by ``distributed.setup``) for "cuda" under DDP."""
    if device.type == "cuda" and distributed.world_size() > 1:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def shards(x: Tensor, y: Tensor, batch_size: int, generator: torch.Generator
           ) -> Iterator[tuple[Tensor, Tensor, float]]:
    """This process's share of each global batch of one epoch: (x_b, y_b, weight).

    Every process draws the same order, ``torch.randperm(N, generator)`` (as ``data.batches`` does, so the
    generator's state after an epoch is the one-process state), cuts it into global batches of
    ``batch_size`` and takes rows [⌈r·n/W⌉, ⌈(r+1)·n/W⌉) of a batch of n: the whole batch, disjointly, with
    process 0 never empty. ``weight`` = n_r·W/n makes DDP's average of the processes' mean losses the mean
    over the global batch (1.0 whenever W divides n). A process whose share of a short last batch is empty
    gets the batch's first sample with weight 0: it must still join DDP's gradient average."""
    n, world, r = len(y), distributed.world_size(), distributed.rank()
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        batch = order[start:start + batch_size]
        m = len(batch)
        mine = batch[-(-r * m // world):-(-(r + 1) * m // world)]
        if len(mine) == 0:
            yield x[batch[:1]], y[batch[:1]], 0.0
        else:
            yield x[mine], y[mine], len(mine) * world / m


def own_stream(objective: Any) -> None:
    """Process r > 0 re-seeds an objective's random-start generator (its ``generator`` attribute, as
    ``AdversarialObjective``'s) by (initial seed, r), so that the processes draw independent starts;
    process 0 keeps the one-process stream."""
    generator = getattr(objective, "generator", None)
    if isinstance(generator, torch.Generator) and distributed.rank() > 0:
        generator.manual_seed(distributed.stream_seed(generator.initial_seed(), distributed.rank()))


def sync_buffers(model: nn.Module) -> None:
    """Process 0's buffers (BatchNorm's running statistics, which each process updated from its own share)
    on every process: the model every process evaluates is the one process 0 saves."""
    for buffer in model.buffers():
        distributed.broadcast_(buffer)


def shared_count(parts: list[slice], count: Callable[[list[slice]], int]) -> int:
    """Σ over the processes of ``count`` of their own ``parts`` (part i to process i mod W): an integer,
    exact, the same on every process."""
    mine = count([parts[i] for i in distributed.owned(len(parts))])
    return int(distributed.all_sum(torch.tensor([mine], dtype=torch.int64))[0])


def own_partial(resume: dict[str, Any]) -> dict[str, Any]:
    """This process's running sums of the epoch a resume point is inside: in one process the saved ones;
    under DDP its own (saved by every process), or, if the checkpoint came from another number of
    processes, the total on process 0 and nothing on the others."""
    saved, ranks, world = resume["partial"], resume.get("partial_ranks"), distributed.world_size()
    if world > 1 and ranks is not None and len(ranks) == world:
        return {**ranks[distributed.rank()], "seconds": saved["seconds"]}
    if distributed.is_main():
        return dict(saved)
    return {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": saved["seconds"]}


def epoch_sums(loss_sum: float, correct: Any, seen: Any) -> dict[str, Any]:
    """The epoch's running sums, added up over the processes (as they are in one process)."""
    if distributed.world_size() == 1:
        return {"loss_sum": loss_sum, "correct": correct, "seen": seen}
    counts = distributed.all_sum(torch.tensor([correct, seen], dtype=torch.int64))
    total = distributed.all_sum(torch.tensor([loss_sum], dtype=torch.float64))
    return {"loss_sum": float(total[0]), "correct": int(counts[0]), "seen": int(counts[1])}
