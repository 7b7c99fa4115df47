"""APGD-CE and APGD-T under L1 (L1-APGD, with and without ``use_largereps``) against pyautoattack 0.2.0's
APGDAttack / APGDAttack_targeted with norm 'L1', run in the same test, and the invariants.

Bits are compared where they are equal by construction: one batch in one piece, exact mode, float32 in
[0, 1], the same operations in the same order on the same shapes in one process. One place where they
cannot be: the reference does not clip after its L1 projection, so x + δ + r may leave [0, 1] by one ulp
on a few coordinates; advgrad returns its points clipped to the bounds (with their logits recomputed),
so its x_adv is the reference's clipped to [0, 1], bit for bit (the tests compare with exactly that).
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from advgrad.attacks import AttackResult
from advgrad.attacks._apgd_l1 import phases
from advgrad.attacks.apgd import apgd, apgd_targeted
from tests.attacks._l1ref import first_segment_calls

EPS = 8.0  # about half of the fixture model's digits fall within 12 steps at this L1 radius


def reference(model: nn.Module, x: Tensor, y: Tensor, eps: float, *, loss: str, steps: int, restarts: int = 1,
              targets: int = 9, seed: int = 0, largereps: bool = False, eot: int = 1) -> Tensor:
    """pyautoattack's L1-APGD (loss "ce"/"dlr", or "t" for APGD-T), silent, torch's global RNG restored."""
    base = pytest.importorskip("pyautoattack.autopgd_base")
    common = {"n_iter": steps, "norm": "L1", "n_restarts": restarts, "eps": eps, "seed": seed, "eot_iter": eot,
              "use_largereps": largereps, "verbose": False, "device": x.device}
    if loss == "t":
        attack = base.APGDAttack_targeted(model, n_target_classes=targets, **common)
    else:
        attack = base.APGDAttack(model, loss=loss, **common)
    with torch.random.fork_rng(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its zero-gradient check warns
        return attack.perturb(x.clone(), y.clone())


def ours(model: nn.Module, x: Tensor, y: Tensor, eps: float | Tensor, *, loss: str, **kw: Any) -> AttackResult:
    if loss == "t":
        return apgd_targeted(model, x, y, eps, norm="1", **kw)
    return apgd(model, x, y, eps, norm="1", loss=loss, **kw)


def _fooled(model: nn.Module, x_adv: Tensor, y: Tensor) -> Tensor:
    with torch.no_grad():
        return model(x_adv).argmax(1) != y


def _l1(v: Tensor) -> Tensor:
    return v.flatten(1).double().abs().sum(1)


# --- parity with the reference --------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("largereps", [False, True], ids=["plain", "largereps"])
@pytest.mark.parametrize("loss", ["ce", "t"])
def test_one_piece_is_the_reference_bit_for_bit(trained_small, digits, loss: str, largereps: bool) -> None:
    """40 digits in one piece, 12 steps (with use_largereps: 4 at 3ε, 4 at 2ε, 4 at ε), two restarts for
    APGD-CE and two targets for APGD-T: the sparse steps, their sparsity checks (every step here), the
    projection and, with use_largereps, the phases and their extra draws, against the reference's."""
    model, _ = trained_small
    x, y = digits[0][:40], digits[1][:40]
    many = {"targets": 2} if loss == "t" else {"restarts": 2}
    theirs = reference(model, x, y, EPS, loss=loss, steps=12, seed=5, largereps=largereps, **many)
    mine = ours(model, x, y, EPS, loss=loss, steps=12, seed=5, use_largereps=largereps, chunk_size=len(x), **many)
    assert torch.equal(mine.x_adv.view(torch.int32), theirs.clamp(0.0, 1.0).view(torch.int32))
    assert torch.equal(mine.success, _fooled(model, theirs, y))
    assert 0.2 < float(mine.success.float().mean()) < 0.9  # flags and bits can differ
    assert bool((_l1(mine.x_adv - x) <= EPS * (1 + 1e-6)).all())


def _five_classes() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Dropout(0.3), nn.Linear(12, 5))


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 24), loss=st.sampled_from(["ce", "dlr", "t"]), largereps=st.booleans(),
       eps=st.floats(0.05, 6.0), seed=st.integers(0, 2**31 - 1), steps=st.integers(2, 60),
       restarts=st.integers(1, 2), targets=st.integers(1, 3), eot=st.integers(1, 2))
def test_the_reference_bit_for_bit_over_the_state_space(n: int, loss: str, largereps: bool, eps: float, seed: int,
                                                        steps: int, restarts: int, targets: int, eot: int) -> None:
    """A small MLP (16 inputs, 5 classes): any batch size from one sample, 2 to 60 steps (sparsity checks
    every 1 or 2 steps; phases of 0 to 24 steps), tiny to box-filling radii, restarts, targets, EOT."""
    model = _five_classes().eval()
    g = torch.Generator().manual_seed(seed)
    x, y = torch.rand((n, 1, 4, 4), generator=g), torch.randint(0, 5, (n,), generator=g)
    kw: dict[str, Any] = {"steps": steps, "seed": seed, "restarts": restarts, "eot": eot,
                          **({"targets": targets} if loss == "t" else {})}
    with first_segment_calls() as odd:
        theirs = reference(model, x, y, eps, loss=loss, largereps=largereps, **kw)
    assume(not odd)  # (rare: one coordinate in the box, as with most of a 16-pixel start clipped)
    mine = ours(model, x, y, eps, loss=loss, use_largereps=largereps, chunk_size=n, **kw)
    assert torch.equal(mine.x_adv.view(torch.int32), theirs.clamp(0.0, 1.0).view(torch.int32))


@pytest.mark.parametrize("steps", [2, 3, 4, 7, 33])
def test_largereps_phases_are_the_references(steps: int, tiny_mlp: nn.Module, monkeypatch) -> None:
    """Spy on the reference's schedule (its ε multiples and iterations) during a real run."""
    base = pytest.importorskip("pyautoattack.autopgd_base")
    seen: list[tuple[list[float], list[int]]] = []
    run = base.APGDAttack.decr_eps_pgd

    def spy(self, x, y, epss, iters, use_rs=True):  # type: ignore[no-untyped-def]
        seen.append((list(epss), list(iters)))
        return run(self, x, y, epss, iters, use_rs)

    monkeypatch.setattr(base.APGDAttack, "decr_eps_pgd", spy)
    x = torch.rand((3, 1, 4, 4), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = tiny_mlp(x).argmax(1)
    attack = base.APGDAttack(tiny_mlp, n_iter=steps, norm="L1", eps=0.5, use_largereps=True, device="cpu")
    with torch.random.fork_rng():
        attack.perturb(x, y)
    assert seen == [([t * 0.5 for t, _ in phases(steps)], [k for _, k in phases(steps)])]


# --- the fast mode and what the schedule does ----------------------------------------------------------

@pytest.mark.slow
def test_early_stop_in_chunks_gives_the_exact_modes_flags(trained_small, digits) -> None:
    """Flags, not bits: early stop drops fooled samples (in the last phase only: at 3ε and 2ε a
    misclassified point is not an answer), so the rows that share a matrix multiply change."""
    model, _ = trained_small
    x, y = digits[0][100:180], digits[1][100:180]
    kw: dict[str, Any] = {"steps": 8, "restarts": 2, "seed": 1, "use_largereps": True}
    exact = apgd(model, x, y, EPS, norm="1", chunk_size=len(x), **kw)
    fast = apgd(model, x, y, EPS, norm="1", chunk_size=32, early_stop=True, **kw)
    assert torch.equal(fast.success, exact.success)
    assert torch.equal(fast.x_adv[~fast.success], x[~fast.success])
    assert bool(_fooled(model, fast.x_adv, y)[fast.success].all())
    plain = apgd(model, x, y, EPS, norm="1", chunk_size=len(x), **{**kw, "use_largereps": False})
    assert not torch.equal(plain.x_adv, exact.x_adv)  # the schedule changes the run


# --- invariants -----------------------------------------------------------------------------------

@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 30), loss=st.sampled_from(["ce", "dlr", "t"]), largereps=st.booleans(),
       eps_frac=st.floats(0.01, 1.0), lo=st.floats(-1.0, 0.0), width=st.floats(0.5, 2.0), seed=st.integers(0, 2**32),
       chunk=st.one_of(st.none(), st.integers(1, 30)), steps=st.integers(2, 9), early_stop=st.booleans())
def test_invariants(n: int, loss: str, largereps: bool, eps_frac: float, lo: float, width: float, seed: int,
                    chunk: int | None, steps: int, early_stop: bool) -> None:
    """Within the L1 ball (slack: ‖δ‖₁ is a sum of 16 rounded coordinates, a few ulp of ε each) and the
    bounds, whatever they are; x, y, the model's mode and .grad untouched; x_adv = x where not successful;
    the logits are the model's at x_adv."""
    model = _five_classes().train()
    model[1].weight.requires_grad_(False)
    hi = lo + width
    g = torch.Generator().manual_seed(seed)
    x = lo + width * (0.01 + 0.98 * torch.rand((n, 1, 4, 4), generator=g))
    y = torch.randint(0, 5, (n,), generator=g)
    x0, y0 = x.clone(), y.clone()
    eps = eps_frac * 8 * width
    r = ours(model, x, y, eps, loss=loss, steps=steps, bounds=(lo, hi), seed=seed, chunk_size=chunk,
             early_stop=early_stop, use_largereps=largereps, **({"targets": 2} if loss == "t" else {}))
    assert torch.equal(x, x0) and torch.equal(y, y0)
    assert model.training and not model[1].weight.requires_grad and model[1].bias.requires_grad
    assert all(p.grad is None for p in model.parameters())
    assert float(_l1(r.x_adv - x).max()) <= eps * (1 + 1e-6) + 1e-6
    assert float(r.x_adv.min()) >= lo and float(r.x_adv.max()) <= hi
    assert torch.equal(r.x_adv[~r.success], x[~r.success])
    assert torch.equal(r.logits.argmax(1) != y, r.success)
    with torch.no_grad():
        torch.testing.assert_close(r.logits, model.eval()(r.x_adv), rtol=1e-5, atol=1e-5)


def test_a_per_sample_eps_bounds_each_sample_by_its_own() -> None:
    model = _five_classes().eval()
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand((30, 1, 4, 4), generator=g), torch.randint(0, 5, (30,), generator=g)
    eps = torch.linspace(0.05, 4.0, 30)
    r = apgd(model, x, y, eps, norm="1", steps=6, use_largereps=True)
    assert bool((_l1(r.x_adv - x) <= eps.double() * (1 + 1e-6)).all())
    assert int(r.success.sum()) > 0
    same = apgd(model, x, y, torch.full((30,), 0.7), norm="1", steps=6, chunk_size=30)
    assert torch.equal(same.x_adv, apgd(model, x, y, 0.7, norm="1", steps=6, chunk_size=30).x_adv)


@pytest.mark.parametrize(("kw", "match"), [
    ({"use_largereps": True, "norm": "inf"}, "use_largereps applies to norm '1' only .* got norm 'inf'"),
    ({"use_largereps": True, "norm": 2}, "use_largereps applies to norm '1' only .* got norm 2"),
    ({"use_largereps": True, "steps": 1}, "steps must be ≥ 2, got 1"),
    ({"use_largereps": "yes"}, "use_largereps must be True or False, got 'yes'"),
    ({"steps": 0}, "steps must be an integer ≥ 1, got 0"),
    ({"eps": 0.0}, "eps must be finite and > 0, got 0.0"),
])
def test_bad_arguments_raise_one_line_value_errors(kw: dict[str, Any], match: str) -> None:
    model = _five_classes().eval()
    args = {"norm": "1", "eps": 1.0, **kw}
    x, y = torch.full((2, 1, 4, 4), 0.25), torch.tensor([0, 1])
    for fn in (apgd, apgd_targeted):
        with pytest.raises(ValueError, match=match) as info:
            fn(model, x, y, **({"targets": 1} if fn is apgd_targeted else {}), **args)
        assert "\n" not in str(info.value)


def test_schedule_splits_the_steps_like_the_paper() -> None:
    assert phases(100) == [(3.0, 30), (2.0, 30), (1.0, 40)]
    assert all(sum(k for _, k in phases(s)) == s and phases(s)[-1][1] >= 0 for s in range(2, 300))


def test_fooled_points_outside_the_box_are_clipped_and_evaluated_again() -> None:
    """The reference's L1 iterate x + δ + r can leave the box by one ulp (rare: see ``_into_box``); the run
    returns fooled points clipped, with the logits and flag at the clipped point, and leaves every other row
    as it was."""
    from advgrad.attacks._apgd_l1 import _into_box
    from advgrad.attacks._apgd_run import Setup

    model = _five_classes().eval()
    setup = Setup(model, "1", 5, 0.75, 0.0, 1.0, 1, 64, False, lambda z, y, t: z[:, 0])
    g = torch.Generator().manual_seed(0)
    x = torch.rand((4, 1, 4, 4), generator=g)
    x[0, 0, 0, 0] = x[2, 0, 0, 0] = torch.nextafter(torch.tensor(1.0), torch.tensor(2.0))
    with torch.no_grad():
        z = model(x)
    y = (z.argmax(1) + 1) % 5  # every row misclassified
    fooled = torch.tensor([True, True, False, True])
    z_in = z + 1.0  # stale logits: only the moved row may be recomputed
    ok, x_out, z_out = _into_box(setup, y, fooled.clone(), x.clone(), z_in.clone())
    assert float(x_out[0].max()) <= 1.0 and x_out[0, 0, 0, 0] == 1.0
    assert torch.equal(x_out[1:], x[1:])  # row 2 is not fooled: untouched (its x_adv is x anyway)
    with torch.no_grad():
        torch.testing.assert_close(z_out[0], model(x_out[:1])[0])
    assert torch.equal(z_out[1:], z_in[1:])
    assert torch.equal(ok, fooled & (torch.cat([model(x_out[:1]).argmax(1), z.argmax(1)[1:]]) != y))


@pytest.mark.parametrize("eps", [0.3, 0.7, 1.1])
def test_the_step_floor_and_radii_are_rounded_like_the_references(eps: float) -> None:
    """A linear model: the gradient never changes, the best point's sparsity never falls, so η shrinks at
    every check down to its floor ε/10 and stays there. The reference computes ε/10 (and 3ε, 2ε) in Python
    and torch rounds them to float32; for these ε that is not float32(ε)/10, and the bits show it."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 5)).eval()
    g = torch.Generator().manual_seed(2)
    x = 0.2 + 0.6 * torch.rand((16, 1, 4, 4), generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)
    for largereps in (False, True):
        theirs = reference(model, x, y, eps, loss="ce", steps=40, largereps=largereps)
        mine = apgd(model, x, y, eps, norm="1", steps=40, use_largereps=largereps, chunk_size=len(x))
        assert torch.equal(mine.x_adv.view(torch.int32), theirs.clamp(0.0, 1.0).view(torch.int32))
