"""The input gradient ∂J/∂X, the heart of every gradient attack, computed chunk by chunk.

Training differentiates the loss J(f(x; W), y) with respect to the parameters W; an attacker holds W fixed
and differentiates the same loss with respect to the input x. Inside ``frozen_eval`` the parameters'
``requires_grad`` is off, so autograd records nothing for the weights: ∂J/∂X is the only gradient
computed, by ``torch.autograd.grad`` on the input, and parameter ``.grad`` is never touched.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from advgrad._runtime import frozen_eval
from advgrad.attacks._checks import check_batch, check_dtype, check_labels, forward
from advgrad.attacks._chunks import chunk_for, slices
from advgrad.losses import LossFn, LossSpec, resolve_loss


def gradient(model: nn.Module, x: Tensor, y: Tensor, loss_fn: LossFn, weight: float, chunk: int,
             out: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """∂/∂x of Σᵢ weight·J(f(xᵢ), yᵢ), and the logits at x, computed ``chunk`` samples at a time.

    weight = 1/N is the backward of the batch mean (every sample's loss receives exactly 1/N, as in
    torchattacks' ``CrossEntropyLoss()``); weight = 1 gives each row its own ∂J/∂xᵢ. The weight is sent
    as the loss's incoming gradient, so a sample gets the same gradient in whichever chunk it sits.
    With several chunks the gradient is written into ``out`` (a free buffer shaped like x) if given.
    Call inside ``frozen_eval(model)``.
    """
    parts = slices(len(x), chunk)
    grad: Tensor | None = None  # (N, ...) filled chunk by chunk
    if len(parts) > 1:
        grad = out if out is not None else torch.empty_like(x)
    logits: Tensor | None = None  # (N, K) on first use
    with torch.enable_grad():  # also when the caller runs under torch.no_grad()
        for part in parts:
            xc, yc = x[part].detach().requires_grad_(True), y[part]
            zc = forward(model, xc)
            check_labels(zc, yc)  # before the loss indexes the logits with yc
            losses = loss_fn(zc, yc)  # (n_c,)
            (gc,) = torch.autograd.grad(losses, xc, grad_outputs=torch.full_like(losses, weight))
            if grad is None:
                return gc, zc.detach()
            if logits is None:
                logits = zc.new_empty((len(x), *zc.shape[1:]))
            grad[part], logits[part] = gc, zc.detach()
    assert grad is not None and logits is not None
    return grad, logits


def input_gradient(model: nn.Module, x: Tensor, y: Tensor, *, loss: LossSpec = "ce",
                   chunk_size: int | None = None) -> Tensor:
    """∂J/∂X: the gradient of the per-sample loss with respect to the input, same shape as x.

    The per-sample losses are summed before differentiating, so row i is exactly ∂J(f(xᵢ), yᵢ)/∂xᵢ
    (not divided by the batch size). Computed in eval mode with the parameters' gradients off, in chunks
    of ``chunk_size`` samples (default: ``auto_chunk_size``; the chunks change the speed, not the maths).

    Parameters
    ----------
    model : nn.Module
        Returns logits (N, K); run in eval mode with its parameters' gradients off (both restored).
    x, y : Tensor
        (N, ...) inputs and (N,) int64 labels.
    loss : str or callable
        A name in ``advgrad.catalog.LOSSES`` or (logits, y) → per-sample loss.
    chunk_size : int, optional
        Samples per forward pass (speed and memory only).

    Returns
    -------
    Tensor
        (N, ...) ∂J/∂X, detached.

    Examples
    --------
    >>> import torch
    >>> from advgrad import input_gradient
    >>> _ = torch.manual_seed(0)  # the model's initial weights
    >>> model = torch.nn.Linear(3, 2)
    >>> x, y = torch.rand(4, 3, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 0, 1])
    >>> g = input_gradient(model, x, y)
    >>> g.shape, bool(g[0].allclose((model(x[:1]).softmax(1) - torch.eye(2)[:1]) @ model.weight))
    (torch.Size([4, 3]), True)
    """
    check_batch(x, y)
    check_dtype(model, x)
    loss_fn = resolve_loss(loss, model)
    chunk = chunk_for(chunk_size, model, x)
    with frozen_eval(model):
        grad, _ = gradient(model, x.detach(), y, loss_fn, 1.0, chunk)
    return grad
