"""How many samples an attack forwards at a time on the CPU, and the slices that cut a batch.

Why chunks, on the CPU: a pass over a large batch allocates big activation and gradient buffers afresh,
and glibc's malloc hands such blocks back to the kernel when they are freed, so the next pass pays a page
fault for every 4 KiB it touches again: on 1,000 MNIST digits, 62 MiB of faults per pass for cnn-small and
969 MiB for cnn, against 9 and 0 MiB in chunks of 256 and 164 (advgrad's choices), which run 1.35× and
1.58× faster (scripts/bench_chunk_size.py, results/bench_chunk_size.md). A linear model or an MLP keeps
little per sample, and there one piece is fastest.

Each chunk's loss carries the whole batch's weight (1/N), so a sample gets the same gradient in whichever
chunk it sits, up to rounding: a pass over fewer rows may get another matrix-multiply kernel.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import Tensor, nn

from advgrad import _validate
from advgrad._runtime import forward, frozen_eval
from advgrad.models.counting import PassCounter

CHUNK_MIN_BYTES = 16 * 1024  # activations kept per sample below which the batch stays in one piece
CHUNK_BUDGET = 64 * 2**20    # activations kept per chunk, at most
CHUNK_MIN, CHUNK_MAX = 16, 256

# Bytes autograd keeps per sample, by model and by sample shape and dtype: the probe is a forward pass
# (half a millisecond for cnn-small, 1 % of an FGSM over 1,000 digits), and a training loop attacks the same
# model on every batch. The answer only sets the chunk size, which never changes the mathematics.
_KEPT: weakref.WeakKeyDictionary[nn.Module, dict[tuple[Any, ...], float]] = weakref.WeakKeyDictionary()


def _kept_per_sample(model: nn.Module, x: Tensor) -> float:
    if isinstance(model, PassCounter):  # the probe is not the attack's work: ask the model, uncounted (and once,
        model = model.model             # not once per counter: under torchrun every process would pay it)
    key = (tuple(x.shape[1:]), x.dtype)
    memo = _KEPT.setdefault(model, {})
    if key not in memo:
        own = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
        kept = 0

        def pack(t: Tensor) -> Tensor:
            nonlocal kept
            if t.untyped_storage().data_ptr() not in own:
                kept += t.numel() * t.element_size()
            return t

        probe = x[:2].detach()
        with frozen_eval(model), torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            forward(model, probe.requires_grad_(True))  # what the attack's graph keeps: no parameters' gradients
        memo[key] = kept / len(probe)
    return memo[key]


def auto_chunk_size(model: nn.Module, x: Tensor) -> int:
    """How many samples of x an attack forwards at a time by default.

    Off the CPU: the whole batch (a GPU wants large batches). On the CPU: a probe forward of two samples
    (once per model and sample shape) counts the bytes autograd keeps per sample for ∂J/∂X (parameters
    excluded); below ``CHUNK_MIN_BYTES`` the whole batch, else min(256, 64 MiB / bytes per sample), at
    least 16."""
    n = len(x)
    if x.device.type != "cpu" or n <= CHUNK_MIN:
        return n
    per_sample = _kept_per_sample(model, x)
    if per_sample < CHUNK_MIN_BYTES:
        return n
    return min(n, max(CHUNK_MIN, min(CHUNK_MAX, int(CHUNK_BUDGET // per_sample))))


def chunk_for(chunk_size: int | None, model: nn.Module, x: Tensor) -> int:
    """Samples per forward pass: ``chunk_size`` if given, else ``auto_chunk_size``."""
    if chunk_size is None:
        return auto_chunk_size(model, x)
    return _validate.count("chunk_size", chunk_size)


def slices(n: int, chunk: int) -> list[slice]:
    """⌈n/chunk⌉ consecutive slices of near-equal length (they differ by at most one), never a tiny tail:
    257 samples in chunks of 256 are 129 + 128, not 256 + 1."""
    k = -(-n // chunk)
    edges = [i * n // k for i in range(k + 1)]
    return [slice(a, b) for a, b in zip(edges, edges[1:])]
