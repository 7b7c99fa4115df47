"""The figures render under Agg with the artists they promise: lines, images, titles, labels, legends."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from advgrad import plots

matplotlib.use("Agg")


def _render(fig: Figure, fmt: str = "png") -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt)
    return buf.getvalue()


def _legend_texts(ax) -> list[str]:  # type: ignore[no-untyped-def]
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend is not None else []


def _examples(n: int = 5, c: int = 1):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (n, c, 8, 8)).astype(np.float32)
    x_adv = np.clip(x + rng.choice([-0.1, 0.1], x.shape), 0, 1).astype(np.float32)
    y = np.arange(n) % 10
    return dict(x=x, x_adv=x_adv, y=y, pred_clean=y, pred_adv=(y + 1) % 10,
                conf_clean=np.full(n, 0.99), conf_adv=np.full(n, 0.8))


@pytest.mark.slow
@pytest.mark.parametrize("channels", [1, 3], ids=["grey", "rgb"])
def test_example_grid_has_three_images_per_sample(channels: int) -> None:
    fig = plots.example_grid(**_examples(5, channels), n=4, class_names=[str(k) for k in range(10)])
    axes = fig.get_axes()
    assert len(axes) == 3 * 4
    assert sum(len(ax.get_images()) for ax in axes) == 12
    assert axes[0].get_title().startswith("true 0")
    assert axes[2 * 4 + 1].get_title().startswith("pred 2 (80%)")  # row 3, column 2: the adversarial
    assert axes[2 * 4 + 1].title.get_color() == "tab:red"
    assert [axes[r * 4].get_ylabel() for r in range(3)] == ["clean", "perturbation\n(scaled)", "adversarial"]
    assert fig.get_suptitle()
    assert _render(fig)[:4] == b"\x89PNG"


def test_example_grid_rejects_empty() -> None:
    ex = _examples(2)
    with pytest.raises(ValueError):
        plots.example_grid(**ex, n=0)


def test_accuracy_curves_one_line_per_model_and_attack() -> None:
    recs = [{"attack": a, "eps": e, "accuracy": acc} for a, f in (("fgsm", 0.5), ("pgd", 0.9))
            for e, acc in ((0.0, 0.98), (0.1, 0.98 * (1 - f)), (0.2, 0.1 * (1 - f)))]
    fig = plots.accuracy_curves([("cnn", recs), ("mlp", recs)], title="two models")
    (ax,) = fig.get_axes()
    assert len(ax.get_lines()) == 4
    assert _legend_texts(ax) == ["cnn: fgsm", "cnn: pgd", "mlp: fgsm", "mlp: pgd"]
    assert ax.get_xlabel().startswith("ε") and ax.get_ylabel() == "accuracy (%)"
    assert ax.get_title() == "two models"
    xs, ys = ax.get_lines()[1].get_data()
    assert list(xs) == [0.0, 0.1, 0.2] and ys[0] == pytest.approx(98.0)
    _render(fig, "svg")


def test_accuracy_curves_single_model_labels_attacks_only() -> None:
    fig = plots.accuracy_curves([("m", [{"attack": "pgd", "eps": 0.1, "accuracy": 0.5}])])
    assert _legend_texts(fig.get_axes()[0]) == ["pgd"]
    with pytest.raises(ValueError):
        plots.accuracy_curves([])


@pytest.mark.slow
@pytest.mark.parametrize("robust", [False, True], ids=["clean", "with-robust"])
def test_training_curves_draws_robust_accuracy_when_present(robust: bool) -> None:
    history = [{"epoch": e, "train_loss": 1.0 / e, "train_accuracy": 0.9, "test_accuracy": 0.88, "lr": 1e-3,
                "seconds": 1.0, **({"robust_accuracy": 0.1 * e} if robust else {})} for e in (1, 2, 3)]
    fig = plots.training_curves(history)
    ax_loss, ax_acc = fig.get_axes()
    assert len(ax_loss.get_lines()) == 1
    assert len(ax_acc.get_lines()) == (3 if robust else 2)
    assert _legend_texts(ax_acc) == ["train", "test"] + (["robust"] if robust else [])
    assert ax_loss.get_xlabel() == "epoch" and ax_acc.get_ylabel() == "accuracy (%)"
    _render(fig)


@pytest.mark.slow
def test_min_eps_figure_histogram_and_cdf() -> None:
    values = [0.0, 0.05, 0.08, None, 0.12, float("inf")]
    fig = plots.min_eps_figure([("cnn", values), ("mlp", [0.02, 0.03])], eps_max=0.3)
    ax_hist, ax_cdf = fig.get_axes()
    assert len(ax_cdf.get_lines()) == 2
    assert len(ax_hist.patches) == 2 * 30
    xs, ys = ax_cdf.get_lines()[0].get_data()
    assert ys[0] == pytest.approx(100 * 5 / 6)  # the clean misclassification counts at ε = 0
    assert ys[-1] == pytest.approx(100 * 2 / 6)  # None and inf survive the whole range
    assert _legend_texts(ax_cdf) == ["cnn", "mlp"]
    _render(fig, "pdf")


def test_landscape_figure_gradient_and_random_lines() -> None:
    eps = np.linspace(0, 0.3, 7)
    grad = np.stack([eps * 10, eps * 8, eps * 5])
    rand = np.zeros((3, 2, 7))
    fig = plots.landscape_figure(eps, grad, rand)
    (ax,) = fig.get_axes()
    assert len(ax.get_lines()) == 3 * (1 + 2)
    assert len(_legend_texts(ax)) == 6
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    with pytest.raises(ValueError, match="shapes"):
        plots.landscape_figure(eps[:3], grad, rand)
    _render(fig)


@pytest.mark.slow
def test_input_gradient_figure_shows_x_gradient_sign_and_step() -> None:
    g = np.random.default_rng(0)
    x = g.random((2, 1, 5, 5))
    grad = g.standard_normal((2, 1, 5, 5))
    x_adv = np.clip(x + 0.1 * np.sign(grad), 0, 1)
    fig = plots.input_gradient_figure(x, grad, x_adv, eps=0.1, before=[("3", 0.9), ("1", 0.5)],
                                      after=[("5", 0.7), ("1", 0.4)], labels=["3", "1"])
    image_axes = [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]
    assert len(image_axes) == 8
    assert "predicted 5 (70%)" in image_axes[3].get_title() and image_axes[3].title.get_color() == "tab:red"
    assert image_axes[7].title.get_color() == "black"  # the 1 kept its label
    assert np.array_equal(image_axes[2].images[0].get_array(), np.sign(grad[0, 0]))
    assert _render(fig)[:4] == b"\x89PNG"
