"""AttackConfig and the ATTACKS registry: one list of names, options read from each function's signature,
validation on construction, and the one generic step from a config to a call."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from torch import nn

from advgrad.attacks import ATTACKS, AttackConfig, fgsm, get_attack, keyword_arguments, mifgsm, pgd, run_attack


def test_registry_names_and_entries() -> None:
    assert {"fgsm", "pgd", "mifgsm"} <= set(ATTACKS)
    for entry in ATTACKS.values():
        assert entry.summary and callable(entry.impl)  # the lazy target resolves to a function
        assert set(entry.norms) <= {"0", "inf", "2", "1"}
    with pytest.raises(ValueError, match="unknown attack 'nope': expected one of fgsm, pgd"):
        get_attack("nope")


def test_options_are_the_functions_keyword_parameters() -> None:
    """One list of options per attack: its function's signature, less what the runner supplies and what the
    name fixes (apgd-dlr is apgd with loss "dlr")."""
    assert ATTACKS["pgd"].options == ("steps", "alpha", "random_start", "restarts", "targeted", "loss", "early_stop",
                                      "chunk_size")
    assert ATTACKS["fgsm"].options == ("targeted", "loss", "chunk_size")
    assert "loss" not in ATTACKS["apgd-dlr"].options and ATTACKS["apgd-dlr"].fixed == {"loss": "dlr"}
    assert AttackConfig.of("pgd", steps=7).get("steps") == 7
    assert AttackConfig.of("pgd").get("steps") == 10 and AttackConfig.of("apgd-ce").get("steps") == 100
    assert AttackConfig.of("apgd-dlr").get("loss") == "dlr" and AttackConfig.of("fgsm").get("steps") is None


def test_an_option_the_attack_does_not_take_is_refused_with_its_list() -> None:
    with pytest.raises(ValueError, match=r"fgsm takes no option 'steps' \(its options: targeted, loss, chunk_size\)"):
        AttackConfig.of("fgsm", steps=3)
    with pytest.raises(ValueError, match="apgd-dlr takes no option 'loss'"):
        AttackConfig.of("apgd-dlr", loss="ce")


def test_norms_are_normalised() -> None:
    assert AttackConfig(norm=math.inf).norm == "inf" and AttackConfig(norm=2).norm == "2"
    assert AttackConfig(norm="L1").norm == "1"


@pytest.mark.parametrize("kwargs,match", [
    ({"method": "nope"}, "unknown attack 'nope'"),
    ({"norm": "3"}, "unknown norm '3'"),
    ({"options": {"steps": 0}}, "steps must be an integer ≥ 1, got 0"),
    ({"options": {"restarts": 1.5}}, "restarts must be an integer ≥ 1, got 1.5"),
    ({"options": {"alpha": -0.1}}, "alpha must be finite and > 0, got -0.1"),
    ({"options": {"random_start": 1}}, "random_start must be True or False, got 1"),
    ({"options": {"loss": "hinge"}}, "unknown loss 'hinge'"),
    ({"options": {"chunk_size": 0}}, "chunk_size must be an integer ≥ 1, got 0"),
    ({"options": {"bounds": (0, 1)}}, "pgd takes no option 'bounds'"),
    ({"method": "mifgsm", "options": {"momentum": float("nan")}}, "momentum must be finite and ≥ 0, got nan"),
    ({"options": [("steps", 3)]}, "options must be a mapping"),
], ids=lambda v: str(v)[:25])
def test_an_invalid_config_cannot_exist(kwargs: dict, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=match):
        AttackConfig(**kwargs)


def test_one_config_runs_every_entry_point(tiny_mlp: nn.Module) -> None:
    """The config route and the function are the same call: same examples bit for bit."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(6, 1, 4, 4, generator=g), torch.randint(0, 3, (6,), generator=g)
    cfg = AttackConfig.of("pgd", steps=4, restarts=2)
    via_config = run_attack(tiny_mlp, x, y, 0.2, cfg, generator=torch.Generator().manual_seed(3))
    direct = pgd(tiny_mlp, x, y, 0.2, steps=4, restarts=2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(via_config.x_adv, direct.x_adv) and torch.equal(via_config.success, direct.success)
    assert torch.equal(run_attack(tiny_mlp, x, y, 0.2, AttackConfig.of("fgsm")).x_adv, fgsm(tiny_mlp, x, y, 0.2).x_adv)
    assert torch.equal(run_attack(tiny_mlp, x, y, 0.2, AttackConfig.of("mifgsm")).x_adv,
                       mifgsm(tiny_mlp, x, y, 0.2).x_adv)


def test_the_runner_settings_fill_only_what_the_function_takes() -> None:
    kw = keyword_arguments(AttackConfig.of("fgsm", norm="2"), bounds=(0.0, 2.0), early_stop=True, chunk_size=None,
                           generator=torch.Generator(), seed=5)
    assert kw == {"norm": "2", "bounds": (0.0, 2.0)}  # fgsm takes no early stop, no randomness; None is skipped
    kw = keyword_arguments(AttackConfig.of("apgd-dlr", steps=3), bounds=(0.0, 1.0), early_stop=True, seed=5)
    assert kw == {"loss": "dlr", "steps": 3, "norm": "inf", "bounds": (0.0, 1.0), "early_stop": True, "seed": 5}
    kw = keyword_arguments(AttackConfig.of("pgd", early_stop=False), early_stop=True)
    assert kw["early_stop"] is False  # the config's own option wins over the runner's setting


def test_fgsm_is_the_loop_with_one_step_from_x(tiny_mlp: nn.Module) -> None:
    """FGSM is not a second route: PGD with one step of α = ε from x is FGSM bit for bit (unprojected: a
    step of size ε from x cannot leave the ball)."""
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(8, 1, 4, 4, generator=g), torch.randint(0, 3, (8,), generator=g)
    for norm in ("inf", "2", "1"):
        assert torch.equal(pgd(tiny_mlp, x, y, 0.3, steps=1, alpha=0.3, random_start=False, norm=norm).x_adv,
                           fgsm(tiny_mlp, x, y, 0.3, norm=norm).x_adv)


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
    torch.testing.assert_close(mifgsm(model, x, y, eps, steps=steps, momentum=mu).x_adv, xa, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_entry_names_a_public_function_on_the_one_contract(name: str) -> None:
    """The catalog's target is a public function ``f(model, x, y, eps, *, options) -> AttackResult`` with every
    parameter annotated and every option keyword-only with a default, so that the generic step can call it
    from any config: no adapter in between."""
    entry = ATTACKS[name]
    fn = entry.impl
    assert inspect.isfunction(fn) and not fn.__name__.startswith("_") and fn.__doc__
    assert not entry.target.partition(":")[2].startswith("_")
    params = list(inspect.signature(fn).parameters.values())
    assert [p.name for p in params[:4]] == ["model", "x", "y", "eps"]
    assert all(p.kind is p.KEYWORD_ONLY and p.default is not p.empty for p in params[4:]), params
    assert all(p.annotation is not p.empty for p in params) and "Result" in str(inspect.signature(fn).return_annotation)
    for norm in entry.norms:
        config = AttackConfig(name, norm)
        kwargs = keyword_arguments(config, bounds=(0.0, 1.0), early_stop=True, seed=0)
        assert set(kwargs) <= {p.name for p in params[4:]}
