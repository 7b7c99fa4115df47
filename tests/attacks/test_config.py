"""AttackConfig and the ATTACKS registry: one list of names, method defaults, validation on construction."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from advgrad.attacks import ATTACKS, AttackConfig, fgsm, get_attack, mifgsm, pgd, run_attack


def test_registry_names_and_entries() -> None:
    assert {"fgsm", "pgd", "mifgsm"} <= set(ATTACKS)
    for entry in ATTACKS.values():
        assert entry.summary and callable(entry.impl)  # the lazy target resolves to a function
        assert set(entry.norms) <= {"inf", "2", "1"}
    with pytest.raises(ValueError, match="unknown attack 'cw': expected one of fgsm, pgd"):
        get_attack("cw")


def test_method_defaults_and_overrides() -> None:
    assert AttackConfig.of("fgsm").steps == 1 and AttackConfig.of("fgsm").random_start is False
    assert AttackConfig.of("mifgsm").momentum == 1.0 and not AttackConfig.of("mifgsm").random_start
    assert AttackConfig.of("pgd", steps=7).steps == 7
    assert AttackConfig.of("fgsm", steps=3).steps == 3  # an explicit option wins over the method's default


def test_step_size_defaults_follow_the_papers() -> None:
    assert AttackConfig.of("pgd", steps=20).step_size(0.1) == pytest.approx(2.5 * 0.1 / 20)  # Madry et al.
    assert AttackConfig.of("fgsm").step_size(0.3) == pytest.approx(0.3)                     # Goodfellow et al.
    assert AttackConfig.of("mifgsm", steps=10).step_size(0.3) == pytest.approx(0.03)         # Dong et al.
    assert AttackConfig.of("pgd", alpha=0.01).step_size(0.3) == 0.01
    per_sample = AttackConfig.of("pgd", steps=5).step_size(torch.tensor([0.0, 0.2]))
    assert torch.allclose(per_sample, torch.tensor([0.0, 0.1]))


def test_norms_are_normalised() -> None:
    assert AttackConfig(norm=math.inf).norm == "inf" and AttackConfig(norm=2).norm == "2"
    assert AttackConfig(norm="L1").norm == "1"


@pytest.mark.parametrize("kwargs,match", [
    ({"method": "cw"}, "unknown attack 'cw'"),
    ({"norm": "3"}, "unknown norm '3'"),
    ({"steps": 0}, "steps must be an integer ≥ 1, got 0"),
    ({"restarts": 1.5}, "restarts must be an integer ≥ 1, got 1.5"),
    ({"alpha": -0.1}, "alpha must be finite and > 0, got -0.1"),
    ({"random_start": 1}, "random_start must be True or False, got 1"),
    ({"loss": "hinge"}, "unknown loss 'hinge'"),
    ({"bounds": (1, 0)}, r"bounds must be finite with lo < hi, got \(1, 0\)"),
    ({"chunk_size": 0}, "chunk_size must be an integer ≥ 1, got 0"),
    ({"momentum": float("nan")}, "momentum must be finite and ≥ 0, got nan"),
], ids=lambda v: str(v)[:25])
def test_an_invalid_config_cannot_exist(kwargs: dict, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=match):
        AttackConfig(**kwargs)


def test_one_config_runs_every_entry_point(tiny_mlp: nn.Module) -> None:
    """The sugar and the config route are the same function: same examples bit for bit."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(6, 1, 4, 4, generator=g), torch.randint(0, 3, (6,), generator=g)
    cfg = AttackConfig.of("pgd", steps=4, restarts=2)
    via_config = run_attack(tiny_mlp, x, y, 0.2, config=cfg, generator=torch.Generator().manual_seed(3))
    via_kwargs = run_attack(tiny_mlp, x, y, 0.2, steps=4, restarts=2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(via_config.x_adv, via_kwargs.x_adv)
    assert torch.equal(pgd(tiny_mlp, x, y, 0.2, steps=4, restarts=2, generator=torch.Generator().manual_seed(3)),
                       via_config.x_adv)
    assert torch.equal(run_attack(tiny_mlp, x, y, 0.2, method="fgsm").x_adv, fgsm(tiny_mlp, x, y, 0.2))
    assert torch.equal(run_attack(tiny_mlp, x, y, 0.2, method="mifgsm").x_adv, mifgsm(tiny_mlp, x, y, 0.2))


def test_fgsm_is_the_loop_with_one_step_from_x(tiny_mlp: nn.Module) -> None:
    """FGSM is not a second route: PGD with one step of α = ε from x is FGSM bit for bit (unprojected: a
    step of size ε from x cannot leave the ball)."""
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(8, 1, 4, 4, generator=g), torch.randint(0, 3, (8,), generator=g)
    for norm in ("inf", "2", "1"):
        assert torch.equal(pgd(tiny_mlp, x, y, 0.3, steps=1, alpha=0.3, random_start=False, norm=norm),
                           fgsm(tiny_mlp, x, y, 0.3, norm=norm))


def test_mifgsm_momentum_follows_its_definition(tiny_mlp: nn.Module) -> None:
    """v ← μ·v + g/mean|g|, x′ ← clip(Π(x′ + α·sign v)), written out plainly (float64)."""
    model = tiny_mlp.double()
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(5, 1, 4, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (5,), generator=g)
    eps, steps, mu = 0.2, 4, 0.7
    xa, v = x.clone(), torch.zeros_like(x)
    for _ in range(steps):
        xi = xa.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(nn.functional.cross_entropy(model(xi), y), xi)
        v = mu * v + grad / grad.abs().flatten(1).mean(1).view(-1, 1, 1, 1)
        xa = (x + (xa + eps / steps * v.sign() - x).clamp(-eps, eps)).clamp(0, 1)
    torch.testing.assert_close(mifgsm(model, x, y, eps, steps=steps, momentum=mu), xa, rtol=0, atol=1e-12)
