"""``advgrad eval --min-norm``: per point, each attack's minimal ‖δ‖ (minimal-norm attacks as they are, the
others by bisection), their ensemble, the curve read off them, best-on counts — against the affine
model's closed form, and the command's record against the library's."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from advgrad.cli import main
from advgrad.configs import EvalConfig
from advgrad.evaluate.min_norm import ENSEMBLE, minimal_norms

DUAL = {"2": 2.0, "inf": 1.0, "1": math.inf}


def _affine(seed: int = 0, n: int = 40) -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    w, b = torch.randn(3, 16, generator=g, dtype=torch.float64), 0.1 * torch.randn(3, generator=g, dtype=torch.float64)
    x = 0.25 + 0.5 * torch.rand(n, 1, 4, 4, generator=g, dtype=torch.float64)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).double().eval()
    with torch.no_grad():
        model[1].weight.copy_(w)
        model[1].bias.copy_(b)
        y = model(x).argmax(1)
    return model, w, b, x, y


def _closed_form(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor, norm: str) -> torch.Tensor:
    """min over j ≠ y of (z_y − z_j)/‖w_y − w_j‖_q, q the dual exponent (the box does not bind: see _affine)."""
    z = x.flatten(1) @ w.T + b
    rows = torch.arange(len(x))
    gap = z[rows, y].unsqueeze(1) - z
    dist = gap / torch.linalg.vector_norm(w[y].unsqueeze(1) - w.unsqueeze(0), ord=DUAL[norm], dim=2)
    dist[rows, y] = math.inf
    return dist.min(1).values


@pytest.mark.parametrize("norm", ["2", "inf"])
def test_distances_meet_the_closed_form_and_the_ensemble_is_their_minimum(norm: str) -> None:
    """Wide bounds (the box never binds at these distances): every distance is ≥ the true minimum (an
    adversarial point cannot be nearer), FMN lands within 1 % of it on most points and the bisection
    within its precision; the ensemble is the per-point minimum, the curve is read off it, and best-on
    counts each attack's points at the ensemble's distance."""
    model, w, b, x, y = _affine()
    exact = _closed_form(w, b, x, y, norm)
    config = EvalConfig(eps=(0.1, 0.3), norm=norm, attacks=("pgd",), bounds=(-10.0, 10.0), min_norm=("fmn", "pgd"),
                        steps=40, precision=1e-3)
    norms = minimal_norms(model, x, y, config, eps_max=2.0)
    fmn, pgd, best = norms.distances["fmn"], norms.distances["pgd"], norms.distances[ENSEMBLE]
    assert bool((fmn >= exact * (1 - 1e-6)).all()) and bool((pgd >= exact * (1 - 1e-6)).all())
    assert float(((fmn - exact).abs() <= 0.01 * exact).double().mean()) >= 0.9
    found = torch.isfinite(pgd)
    assert bool((pgd[found] <= exact[found] * 1.5 + 1e-3).all())  # PGD-40 at the bisection's radii
    assert torch.equal(best, torch.minimum(fmn, pgd))
    assert norms.best_on["fmn"] == int((fmn == best).sum()) and norms.best_on["pgd"] == int((pgd == best).sum())
    curve = {(r["attack"], r["eps"]): r["accuracy"] for r in norms.curve([0.1, 0.3])}
    assert curve[("ensemble (min-norm)", 0.1)] == pytest.approx(float((best > 0.1).double().mean()))
    assert all(0.0 <= norms.optimality[k] <= 1.0 for k in ("fmn", "pgd"))


def test_a_point_misclassified_at_x_is_at_distance_zero() -> None:
    model, w, b, x, y = _affine(1)
    y = y.clone()
    y[:5] = (y[:5] + 1) % 3  # these five are wrong at x
    config = EvalConfig(eps=(0.2,), norm="2", attacks=("pgd",), bounds=(-10.0, 10.0), min_norm=("fmn",))
    d = minimal_norms(model, x, y, config).distances["fmn"]
    assert bool((d[:5] == 0).all()) and bool((d[5:] > 0).all())


def test_the_command_writes_the_librarys_distances(trained_small, trained_small_path: Path, mnist5k,
                                                   tmp_path: Path) -> None:
    out = tmp_path / "e.json"
    result = CliRunner().invoke(main, ["eval", "--model", str(trained_small_path), "--n", "40", "--norm", "2",
                                       "--eps", "1,2", "--attacks", "pgd", "--steps", "5", "--min-norm", "fmn,pgd",
                                       "--no-sanity", "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    config = EvalConfig(eps=(1.0, 2.0), norm="2", attacks=("pgd",), steps=5, min_norm=("fmn", "pgd"))
    torch.manual_seed(config.seed)
    lib = minimal_norms(trained_small[0], mnist5k.x_test[:40], mnist5k.y_test[:40], config)
    for name, d in lib.distances.items():
        assert record["min_norm"]["attacks"][name]["values"] == [None if math.isinf(v) else v for v in d.tolist()]
    assert "minimal L2 ‖δ‖ per point" in result.output and "ensemble (min-norm)" in result.output
    rows = (tmp_path / "e.csv").read_text()
    assert "fmn (min-norm)" in rows


def test_an_attack_the_norm_does_not_fit_is_one_usage_line(trained_small_path: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["eval", "--model", str(trained_small_path), "--norm", "0", "--eps", "5",
                                       "--attacks", "pgd", "--min-norm", "sigma-zero,fab", "--out",
                                       str(tmp_path / "e.json")])
    assert result.exit_code == 2, result.output
    assert "fab implements the norms inf, 2, 1, not '0'" in result.output and result.output.count("\n") == 1
    assert not (tmp_path / "e.json").exists()


def test_attack_fmn_in_l0_records_the_sizes_of_its_examples(trained_small_path: Path, tmp_path: Path) -> None:
    """`advgrad attack --method fmn --norm 0` without --eps: the record's median / mean / max count the
    changed pixels of the saved examples (inf, None in JSON, for a point not broken); with --eps the success
    rate is within ε."""
    import numpy as np

    out, examples = tmp_path / "a.json", tmp_path / "a.npz"
    result = CliRunner().invoke(main, ["attack", "--model", str(trained_small_path), "--method", "fmn", "--norm",
                                       "0", "--steps", "30", "--n", "30", "--out", str(out),
                                       "--save-examples", str(examples)])
    assert result.exit_code == 0, result.output
    record, arrays = json.loads(out.read_text()), np.load(examples)
    eligible = arrays["pred_clean"] == arrays["y"]
    fooled = arrays["pred_adv"] != arrays["y"]
    pixels = (arrays["x_adv"] != arrays["x"]).reshape(len(eligible), -1).sum(1).astype(float)
    sizes = np.where(fooled, pixels, np.inf)[eligible]
    m = record["min_norm"]
    assert m["norm"] == "0" and m["median"] == pytest.approx(float(np.median(sizes)))
    assert m["max"] == pytest.approx(float(sizes[np.isfinite(sizes)].max()))
    assert m["broken"] == pytest.approx(float(np.isfinite(sizes).mean()))
    assert "median / mean / max ‖x′ − x‖ (L0)" in result.output
    capped = CliRunner().invoke(main, ["attack", "--model", str(trained_small_path), "--method", "fmn", "--norm",
                                       "0", "--steps", "30", "--n", "30", "--eps", "5", "--out",
                                       str(tmp_path / "b.json")])
    assert capped.exit_code == 0, capped.output
    within = json.loads((tmp_path / "b.json").read_text())["attack_success_rate"]
    assert within == pytest.approx(float((sizes <= 5).mean()))


def test_min_norm_steps_sets_the_minimal_attacks_steps_only() -> None:
    """``min_norm_steps`` runs each minimal-norm attack that takes steps with that many (its backward passes
    grow with them: one per step per point still attacked), and leaves a bisected attack's steps alone (its
    passes are the same); the journal key sees it, being a config field."""
    model, _, _, x, y = _affine(seed=3, n=12)
    config = EvalConfig(eps=(0.5,), norm="2", attacks=("pgd",), min_norm=("fmn", "ddn", "pgd"), steps=3)
    few, many = (minimal_norms(model, x, y, config.but(min_norm_steps=k)) for k in (2, 8))
    for name in ("fmn", "ddn"):
        assert 0 < few.passes[name].backward < many.passes[name].backward, name
    assert few.passes["pgd"] == many.passes["pgd"]
    assert EvalConfig().min_norm_steps is None and config.but(min_norm_steps=4).to_dict()["min_norm_steps"] == 4
    with pytest.raises(ValueError, match="min_norm_steps"):
        EvalConfig(min_norm_steps=0)
