"""Pictures: pure functions from numbers to a matplotlib ``Figure``.

Nothing here touches pyplot's global state or writes a file: every function builds its own ``Figure``
(``matplotlib.figure.Figure``, no GUI backend needed) and returns it; ``advgrad.records.write.write_figure``
saves it (PNG, SVG or PDF by suffix). Every figure has a title, axis labels and, where several things
are drawn, a legend, and is sized to read at README width.

- ``example_grid``: clean | perturbation (scaled to be visible) | adversarial, with labels and confidences.
- ``accuracy_curves``: accuracy vs ε, several attacks and several models overlaid.
- ``training_curves``: loss and train/test (and robust, when recorded) accuracy per epoch.
- ``epoch_curves``: one value per epoch for several runs overlaid (the robust-accuracy probe).
- ``min_eps_figure``: histogram and CDF of the per-sample minimal ε.
- ``landscape_figure``: loss along sign(∂J/∂X) against random sign directions (Goodfellow's linearity).
- ``input_gradient_figure``: x, ∂J/∂X, sign(∂J/∂X) and x + ε·sign(∂J/∂X) per sample (``advgrad grad``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

# Attack → line style, so the same attack looks the same across models; models get the colours.
_STYLES = {"fgsm": "--", "pgd": "-", "worst": ":", "min-eps": "-."}
_MARKERS = {"fgsm": "s", "pgd": "o", "worst": "x"}


def _image(a: np.ndarray) -> tuple[np.ndarray, str | None]:
    """(C, H, W) or (H, W) → something imshow draws: (H, W) with a grey map, or (H, W, C)."""
    a = np.asarray(a, dtype=np.float32)
    if a.ndim == 3 and a.shape[0] == 1:
        return a[0], "gray"
    if a.ndim == 3:
        return np.transpose(a, (1, 2, 0)), None
    if a.ndim == 2:
        return a, "gray"
    side = int(math.isqrt(a.size))  # a flat vector: square it up if it is a square image
    if side * side == a.size:
        return a.reshape(side, side), "gray"
    return a.reshape(1, -1), "gray"


def example_grid(x: np.ndarray, x_adv: np.ndarray, y: np.ndarray, pred_clean: np.ndarray, pred_adv: np.ndarray,
                 conf_clean: np.ndarray, conf_adv: np.ndarray, *, class_names: Sequence[str] | None = None,
                 n: int = 8, title: str | None = None, bounds: tuple[float, float] = (0.0, 1.0)) -> Figure:
    """Three rows for the first ``n`` samples: the clean image (true label, prediction, confidence), the
    perturbation δ = x′ − x scaled to fill the colour range (its L∞ size printed), and the adversarial image
    (prediction and confidence, red when it differs from the true label)."""
    n = min(int(n), len(x))
    if n < 1:
        raise ValueError("example_grid needs at least one example")
    names = list(class_names) if class_names is not None else None

    def name(k: Any) -> str:
        k = int(k)
        return names[k] if names is not None and 0 <= k < len(names) else str(k)

    lo, hi = bounds
    fig = Figure(figsize=(1.6 * n + 0.6, 5.6), layout="constrained")
    axes = fig.subplots(3, n, squeeze=False)
    for i in range(n):
        clean, cmap = _image(x[i])
        adv, _ = _image(x_adv[i])
        delta = adv - clean
        scale = float(np.abs(delta).max())
        panels: tuple[tuple[np.ndarray, dict[str, Any]], ...] = (
                (clean, {"cmap": cmap, "vmin": lo, "vmax": hi}),
                (delta / (2 * scale) + 0.5 if scale > 0 else delta + 0.5, {"cmap": "RdBu_r" if cmap else None,
                                                                           "vmin": 0, "vmax": 1}),
                (adv, {"cmap": cmap, "vmin": lo, "vmax": hi}))
        for row, (img, kw) in enumerate(panels):
            ax = axes[row, i]
            ax.imshow(np.clip(img, 0, 1) if row == 1 else img, **kw)
            ax.set_xticks([])
            ax.set_yticks([])
        fooled = int(pred_adv[i]) != int(y[i])
        axes[0, i].set_title(f"true {name(y[i])}\npred {name(pred_clean[i])} ({float(conf_clean[i]):.0%})",
                             fontsize=9)
        axes[1, i].set_title(f"‖δ‖∞ = {scale:.3g}", fontsize=9)
        axes[2, i].set_title(f"pred {name(pred_adv[i])} ({float(conf_adv[i]):.0%})", fontsize=9,
                             color="tab:red" if fooled else "black")
    for row, label in enumerate(("clean", "perturbation\n(scaled)", "adversarial")):
        axes[row, 0].set_ylabel(label, fontsize=10)
    fig.suptitle(title or "Adversarial examples: clean | perturbation | adversarial")
    return fig


def accuracy_curves(series: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], *,
                    title: str | None = None, percent: bool = True, ylabel: str | None = None,
                    mark: float | None = None) -> Figure:
    """Accuracy against ε: one line per (model, attack). ``series`` holds (model label, records), each
    record a mapping with ``attack``, ``eps`` and ``accuracy`` (as ``advgrad eval`` writes them). Attacks
    keep their line style across models; models keep their colour across attacks. ``mark``: an ε to draw
    as a vertical line (e.g. the training radius)."""
    if not series:
        raise ValueError("accuracy_curves needs at least one series of records")
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    colours = [f"C{i}" for i in range(10)]
    several = len(series) > 1
    scale = 100.0 if percent else 1.0
    for m, (label, records) in enumerate(series):
        attacks = list(dict.fromkeys(str(r["attack"]) for r in records))
        if not attacks:
            raise ValueError(f"{label}: no accuracy records to plot")
        for attack in attacks:
            rows = sorted((float(r["eps"]), float(r["accuracy"])) for r in records if str(r["attack"]) == attack)
            eps, acc = zip(*rows)
            ax.plot(eps, [a * scale for a in acc], linestyle=_STYLES.get(attack, "-"),
                    marker=_MARKERS.get(attack) if len(rows) < 30 else None, color=colours[m % 10],
                    label=f"{label}: {attack}" if several else attack)
    if mark is not None:
        ax.axvline(mark, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("ε (L∞ radius, pixel scale)")
    ax.set_ylabel(ylabel or ("accuracy (%)" if percent else "accuracy"))
    ax.set_ylim(-0.03 * scale, 1.03 * scale)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    ax.set_title(title or "Robust accuracy against ε")
    return fig


def training_curves(history: Sequence[Mapping[str, Any]], *, title: str | None = None) -> Figure:
    """Two panels from a training history (one mapping per epoch): the training loss, and train / test
    accuracy per epoch, plus ``robust_accuracy`` wherever an epoch records it."""
    if not history:
        raise ValueError("training_curves needs at least one epoch")
    epochs = [int(h["epoch"]) for h in history]
    fig = Figure(figsize=(9.6, 3.8), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(epochs, [float(h["train_loss"]) for h in history], marker="o", label="train loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("Training loss")
    ax_loss.legend(fontsize=9)
    for key, label in (("train_accuracy", "train"), ("test_accuracy", "test"), ("robust_accuracy", "robust")):
        pts = [(e, float(h[key])) for e, h in zip(epochs, history) if h.get(key) is not None]
        if pts:
            xs, ys = zip(*pts)
            ax_acc.plot(xs, [100 * v for v in ys], marker="o", label=label)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.set_title("Accuracy")
    ax_acc.legend(fontsize=9)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title or "Training curves")
    return fig


def epoch_curves(series: Sequence[tuple[str, Sequence[float | None]]], *, ylabel: str,
                 title: str | None = None) -> Figure:
    """One line per label through a fraction per epoch 1, 2, … (drawn in %), e.g. the robust-accuracy probe of
    several training runs; epochs without a value (None) are left out, a series without any is not drawn."""
    fig = Figure(figsize=(6.0, 3.5), layout="constrained")
    ax = fig.add_subplot()
    for label, values in series:
        pts = [(e, 100.0 * float(v)) for e, v in enumerate(values, start=1) if v is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=9)
    ax.set_title(title or "Accuracy per epoch")
    return fig


def min_eps_figure(series: Sequence[tuple[str, Sequence[float | None]]], *, eps_max: float | None = None,
                   title: str | None = None, bins: int = 30) -> Figure:
    """Per-sample minimal ε (from bisection): a histogram of the finite values and the CDF read as a
    robustness curve, accuracy(ε) = fraction of samples whose minimal ε exceeds ε. ``None`` or inf means
    "no adversarial example within ``eps_max``"; 0 means already misclassified."""
    if not series:
        raise ValueError("min_eps_figure needs at least one series")
    fig = Figure(figsize=(9.6, 3.8), layout="constrained")
    ax_hist, ax_cdf = fig.subplots(1, 2)
    arrays = [(label, np.array([np.inf if v is None else float(v) for v in values], dtype=np.float64))
              for label, values in series]
    finite_max = max((float(a[np.isfinite(a)].max()) for _, a in arrays if np.isfinite(a).any()), default=1.0)
    top = float(eps_max) if eps_max is not None else finite_max
    edges = np.linspace(0.0, top if top > 0 else 1.0, bins + 1)
    for label, a in arrays:
        if len(a) == 0:
            raise ValueError(f"{label}: no minimal-ε values")
        ax_hist.hist(a[np.isfinite(a) & (a > 0)], bins=edges, alpha=0.6, label=label)
        grid = np.linspace(0.0, edges[-1], 200)
        ax_cdf.plot(grid, [100.0 * float((a > e).mean()) for e in grid], label=label)
    ax_hist.set_xlabel("minimal ‖δ‖")
    ax_hist.set_ylabel("samples")
    ax_hist.set_title("Minimal ‖δ‖ per sample")
    ax_cdf.set_xlabel("ε")
    ax_cdf.set_ylabel("accuracy (%) = share with minimal ‖δ‖ > ε")
    ax_cdf.set_ylim(-3, 103)
    ax_cdf.set_title("Robust accuracy from the minimal ‖δ‖")
    for ax in (ax_hist, ax_cdf):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    fig.suptitle(title or "Minimal adversarial perturbation per point")
    return fig


def landscape_figure(eps: Sequence[float], loss_gradient: np.ndarray, loss_random: np.ndarray, *,
                     labels: Sequence[str] | None = None, title: str | None = None) -> Figure:
    """Loss J(x + t·d) for t ∈ ``eps``: d = sign(∂J/∂X) (solid, one line per sample) against d a random
    sign vector (dashed, same colour; ``loss_random`` (samples, R, points) draws one line per direction).
    Goodfellow et al.'s linearity argument: the loss climbs almost linearly along the gradient's sign and
    barely moves along random directions of the same L∞ size."""
    t = np.asarray(eps, dtype=np.float64)
    loss_gradient = np.asarray(loss_gradient, dtype=np.float64)
    loss_random = np.asarray(loss_random, dtype=np.float64)
    if loss_random.ndim == 2:
        loss_random = loss_random[:, None, :]
    if loss_gradient.ndim != 2 or loss_gradient.shape[1] != len(t) or loss_random.shape[0] != len(loss_gradient) \
            or loss_random.shape[2] != len(t):
        raise ValueError(f"shapes disagree: eps {t.shape}, gradient {loss_gradient.shape}, "
                         f"random {loss_random.shape}")
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    for i in range(len(loss_gradient)):
        tag = labels[i] if labels is not None else f"sample {i}"
        ax.plot(t, loss_gradient[i], color=f"C{i % 10}", label=f"{tag}: sign(∂J/∂X)")
        for r in range(loss_random.shape[1]):
            ax.plot(t, loss_random[i, r], color=f"C{i % 10}", linestyle="--", alpha=0.7,
                    label=f"{tag}: random sign" if r == 0 else None)
    ax.set_xlabel("ε (step along the direction, L∞ size)")
    ax.set_ylabel("loss J (cross-entropy)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    ax.set_title(title or "Loss along the gradient's sign vs a random sign direction")
    return fig


def input_gradient_figure(x: Any, grad: Any, x_adv: Any, *, eps: float, before: Sequence[tuple[str, float]],
                        after: Sequence[tuple[str, float]], labels: Sequence[str] | None = None,
                        title: str | None = None) -> Figure:
    """One row per sample: the input, ∂J/∂X as a diverging heat map, sign(∂J/∂X), and x + ε·sign(∂J/∂X).

    ``x``, ``grad``, ``x_adv``: (N, C, H, W) arrays or CPU tensors; ``before``/``after``: per sample the
    predicted class name and its confidence; ``labels``: the true class names (a prediction after the
    step that differs from it is drawn in red). Channels are summed for the heat map of colour images.
    """
    x, grad, x_adv = (np.asarray(a, dtype=np.float64) for a in (x, grad, x_adv))
    n = len(x)
    fig = Figure(figsize=(10.5, 2.7 * n + 0.5), layout="constrained")
    axes = fig.subplots(n, 4, squeeze=False)
    for i in range(n):
        g = grad[i].sum(axis=0)  # (H, W)
        vmax = float(np.abs(g).max()) or 1.0
        img, cmap = _image(x[i])
        adv, _ = _image(x_adv[i])
        truth = f" (label {labels[i]})" if labels is not None else ""
        fooled = labels is not None and after[i][0] != labels[i]
        ax = axes[i]
        ax[0].imshow(img, cmap=cmap, vmin=0, vmax=1)
        ax[0].set_title(f"x{truth}\npredicted {before[i][0]} ({before[i][1]:.0%})", fontsize=9)
        heat = ax[1].imshow(g, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        fig.colorbar(heat, ax=ax[1], shrink=0.8)
        ax[1].set_title("∂J/∂X (red raises the loss)", fontsize=9)
        ax[2].imshow(np.sign(g), cmap="RdBu_r", vmin=-1, vmax=1)
        ax[2].set_title("sign(∂J/∂X)", fontsize=9)
        ax[3].imshow(adv, cmap=cmap, vmin=0, vmax=1)
        ax[3].set_title(f"x + {eps:g}·sign(∂J/∂X)\npredicted {after[i][0]} ({after[i][1]:.0%})", fontsize=9,
                        color="tab:red" if fooled else "black")
        for a in ax:
            a.set_xticks([])
            a.set_yticks([])
    fig.suptitle(title or "One step along sign(∂J/∂X) (FGSM): the input gradient an attacker needs")
    return fig


def rank_curves(series: Sequence[tuple[str, Sequence[float | None]]], *, max_distance: float, norm: str = "",
                title: str | None = None) -> Figure:
    """Robust accuracy against ε read off per-sample minimal distances (None or inf: not broken), one step
    curve per attack (``advgrad rank``: the attacks and their per-sample best), up to ``max_distance``."""
    if not series:
        raise ValueError("rank_curves needs at least one series")
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    grid = np.linspace(0.0, max_distance if max_distance > 0 else 1.0, 400)
    for label, values in series:
        d = np.sort(np.array([np.inf if v is None else float(v) for v in values], dtype=np.float64))
        ax.step(grid, 100.0 * (len(d) - np.searchsorted(d, grid, side="right")) / max(len(d), 1), where="post",
                label=label, linestyle="--" if label == "ensemble" else "-")
    ax.set(xlabel=f"ε ({norm})" if norm else "ε", ylabel="robust accuracy (%)", ylim=(-3, 103),
           title=title or "Robust accuracy from each attack's minimal ‖δ‖")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig
