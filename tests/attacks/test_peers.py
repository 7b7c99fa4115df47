"""Cross-checks against the peers (torchattacks 3.5.1, Foolbox 3.3.4; installed by the test extras).

What is bit-identical, and why (these tests also run under other instruction sets in ``make test-all``):

- torchattacks differentiates the batch-mean cross-entropy, as advgrad's attacks do, and takes the same
  steps with the same float operations; run on the same batch in one piece, every kernel sees the same
  shapes in both, so L∞ FGSM, L∞ PGD (targeted too, and with a random start under one seed) and L2 PGD
  are bit-identical *by construction*, on any CPU.
- Foolbox differentiates the summed loss: ``advgrad.input_gradient`` (also a sum) gives its gradient bit
  for bit, but the attacks (a mean) do not: scaling the seed of the backward pass by 1/N rounds partial
  sums differently, so a gradient coordinate within rounding of zero — on a sample the model is all but
  certain of, whose whole gradient is rounding noise — can take the other sign on some CPUs. Against
  Foolbox the tests check what is stable: almost every coordinate and every well-conditioned sample.
- advgrad's default chunks cut a large batch into pieces; a matrix multiply over fewer rows may pick
  another kernel and round the last bit differently, so there the check is on robust accuracy and the
  share of identical examples (see tests/attacks/test_chunks.py for chunks against one piece).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from helpers.batches import well_conditioned
from torch import Tensor

from advgrad.attacks import fgsm, input_gradient, mifgsm, pgd


@pytest.fixture
def torchattacks() -> Any:
    """The peer, imported by each test that compares with it (a test without it still runs)."""
    return pytest.importorskip("torchattacks")


@pytest.fixture
def fb() -> Any:
    return pytest.importorskip("foolbox")


@pytest.fixture
def ep(fb: Any) -> Any:
    """eagerpy, Foolbox's tensor layer (installed with it)."""
    return pytest.importorskip("eagerpy")

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.isa]


@pytest.fixture(scope="module")
def batch(mnist5k) -> tuple[Tensor, Tensor]:
    """200 test digits of every class."""
    idx = torch.randperm(len(mnist5k.y_test), generator=torch.Generator().manual_seed(1))[:200]
    return mnist5k.x_test[idx], mnist5k.y_test[idx]


@pytest.mark.parametrize("eps", [0.05, 0.1, 0.3, 8 / 255])
def test_linf_fgsm_is_bit_identical_to_torchattacks(trained_small, batch, eps: float, torchattacks: Any) -> None:
    model, _ = trained_small
    x, y = batch
    assert torch.equal(fgsm(model, x, y, eps).x_adv, torchattacks.FGSM(model, eps=eps)(x, y))


def test_input_gradient_is_bit_identical_to_foolbox(trained_small, batch, fb: Any, ep: Any) -> None:
    """Both differentiate the summed cross-entropy of the batch in one piece: the same kernels, the same bits."""
    model, _ = trained_small
    x, y = batch
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    _, theirs = ep.value_and_grad(lambda t: ep.crossentropy(fmodel(t), ep.astensor(y)).sum(), ep.astensor(x))
    assert torch.equal(input_gradient(model, x, y), theirs.raw)


@pytest.mark.parametrize("eps", [0.05, 0.1, 0.3])
def test_linf_fgsm_agrees_with_foolbox(trained_small, batch, eps: float, fb: Any) -> None:
    """Foolbox steps along the sign of the summed loss's gradient, advgrad along the mean's (as
    torchattacks): identical on every well-conditioned sample but for coordinates within rounding of zero
    (at most 1 in 10,000 of them), and FGSM from advgrad's summed gradient is Foolbox's bit for bit."""
    model, _ = trained_small
    x, y = batch
    _, theirs, _ = fb.attacks.FGSM()(fb.PyTorchModel(model, bounds=(0, 1)), x, y, epsilons=eps)
    from_sum = (x + eps * input_gradient(model, x, y).sign()).clamp(0, 1)
    assert torch.equal(from_sum, theirs)
    ours = fgsm(model, x, y, eps).x_adv
    differ = (ours != theirs).flatten(1)
    assert float(differ.double().mean()) <= 1e-4
    good = well_conditioned(model, x, y)
    assert int(good.sum()) >= 150 and float(differ[good].double().mean()) <= 1e-4


def test_targeted_linf_fgsm_is_bit_identical_to_torchattacks(trained_small, batch, torchattacks: Any) -> None:
    model, _ = trained_small
    x, y = batch
    target = (y + 3) % 10
    atk = torchattacks.FGSM(model, eps=0.1)
    atk.set_mode_targeted_by_label(quiet=True)
    assert torch.equal(fgsm(model, x, target, 0.1, targeted=True).x_adv, atk(x, target))


@pytest.mark.slow
@pytest.mark.parametrize("eps,alpha,steps", [(0.1, 0.01, 10), (0.3, 0.02, 20), (8 / 255, 2 / 255, 7),
                                             (0.2, 0.05, 5)])
def test_linf_pgd_is_bit_identical_to_torchattacks(trained_small, batch, eps: float, alpha: float,
                                                   steps: int, torchattacks: Any) -> None:
    model, _ = trained_small
    x, y = batch
    ours = pgd(model, x, y, eps, alpha=alpha, steps=steps, random_start=False).x_adv
    theirs = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False)(x, y)
    assert torch.equal(ours, theirs)


@pytest.mark.slow
def test_linf_pgd_agrees_with_foolbox(trained_small, batch, fb: Any) -> None:
    """Foolbox differentiates the summed loss, advgrad (like torchattacks) the mean: a gradient coordinate
    within rounding of zero can take opposite signs, and from there that sample's path differs. The
    robust flags agree on every well-conditioned sample and the examples on nearly all of them."""
    model, _ = trained_small
    x, y = batch
    ours = pgd(model, x, y, 0.1, alpha=0.01, steps=10, random_start=False)
    attack = fb.attacks.LinfPGD(abs_stepsize=0.01, steps=10, random_start=False)
    _, theirs, success = attack(fb.PyTorchModel(model, bounds=(0, 1)), x, y, epsilons=0.1)
    good = well_conditioned(model, x, y)
    assert torch.equal(ours.success[good], success[good])
    same = (ours.x_adv == theirs).flatten(1).all(1)
    assert float(same[good].double().mean()) >= 0.97


def test_targeted_linf_pgd_is_bit_identical_to_torchattacks(trained_small, batch, torchattacks: Any) -> None:
    model, _ = trained_small
    x, y = batch
    target = (y + 1) % 10
    atk = torchattacks.PGD(model, eps=0.2, alpha=0.02, steps=10, random_start=False)
    atk.set_mode_targeted_by_label(quiet=True)
    assert torch.equal(pgd(model, x, target, 0.2, alpha=0.02, steps=10, random_start=False, targeted=True).x_adv,
                       atk(x, target))


@pytest.mark.slow
@pytest.mark.parametrize("eps,steps", [(0.1, 10), (0.3, 5), (8 / 255, 10)])
def test_mifgsm_is_bit_identical_to_torchattacks(trained_small, batch, eps: float, steps: int, torchattacks: Any) -> None:
    """Both divide ∇J by mean|∇J| per sample, add μ·v (μ = 1), step α·sign(v), project and clip: the same
    operations in the same order, one piece."""
    model, _ = trained_small
    x, y = batch
    ours = mifgsm(model, x, y, eps, steps=steps).x_adv  # α = ε/steps by default (Dong et al.)
    theirs = torchattacks.MIFGSM(model, eps=eps, alpha=eps / steps, steps=steps, decay=1.0)(x, y)
    assert torch.equal(ours, theirs)


@pytest.mark.slow
@pytest.mark.parametrize("eps,alpha,steps", [(1.0, 0.2, 10), (2.0, 0.1, 20)])
def test_l2_pgd_is_bit_identical_to_torchattacks(trained_small, batch, eps: float, alpha: float,
                                                 steps: int, torchattacks: Any) -> None:
    """Both normalise the mean-loss gradient by its L2 norm, step, project, clip: the same operations.
    torchattacks divides by ‖g‖ + eps_for_division (1e-10 by default), which shortens the steps of
    confident samples whose gradient norm is tiny; with 1e-30 (below float32's resolution at any norm
    ≥ 1e-22) the two are the same function."""
    model, _ = trained_small
    x, y = batch
    ours = pgd(model, x, y, eps, alpha=alpha, steps=steps, norm="2", random_start=False).x_adv
    theirs = torchattacks.PGDL2(model, eps=eps, alpha=alpha, steps=steps, random_start=False,
                                eps_for_division=1e-30)(x, y)
    assert torch.equal(ours, theirs)


@pytest.mark.slow
@pytest.mark.parametrize("eps,alpha,steps", [(1.0, 0.2, 10), (2.0, 0.1, 20)])
def test_l2_pgd_agrees_with_foolbox(trained_small, batch, eps: float, alpha: float, steps: int, fb: Any) -> None:
    """Foolbox differentiates the sum: its direction g/‖g‖ equals advgrad's to rounding, except on samples
    whose gradient is rounding noise (clean loss ≪ 1e-3: a near-certain prediction) or whose path meets
    a ReLU kink where a last-bit difference sends it another way. Robust flags agree on every
    well-conditioned sample, and nearly all examples agree to 1e-5."""
    model, _ = trained_small
    x, y = batch
    ours = pgd(model, x, y, eps, alpha=alpha, steps=steps, norm="2", random_start=False)
    attack = fb.attacks.L2PGD(abs_stepsize=alpha, steps=steps, random_start=False)
    _, theirs, success = attack(fb.PyTorchModel(model, bounds=(0, 1)), x, y, epsilons=eps)
    good = well_conditioned(model, x, y)
    assert torch.equal(ours.success[good], success[good])
    close = (ours.x_adv - theirs).flatten(1).abs().amax(dim=1) <= 1e-5
    assert float(close[good].double().mean()) >= 0.97, (~close).nonzero().tolist()


def test_l2_fgm_agrees_with_foolbox(trained_small, batch, fb: Any) -> None:
    """One L2 step from x: g/‖g‖ of the sum and of the mean agree to rounding on well-conditioned samples."""
    model, _ = trained_small
    x, y = batch
    _, theirs, _ = fb.attacks.L2FastGradientAttack()(fb.PyTorchModel(model, bounds=(0, 1)), x, y, epsilons=1.5)
    good = well_conditioned(model, x, y)
    torch.testing.assert_close(fgsm(model, x, y, 1.5, norm="2").x_adv[good], theirs[good], rtol=0, atol=1e-5)


@pytest.mark.slow
def test_robust_accuracy_with_random_starts_matches_torchattacks(trained_small, mnist5k, torchattacks: Any) -> None:
    """1,000 mnist-5k test images, PGD-10 L∞ with random starts at a budget where the model keeps
    part of its accuracy: advgrad's robust accuracy is within ±1 point of torchattacks'."""
    model, _ = trained_small
    x, y = mnist5k.x_test, mnist5k.y_test
    assert len(x) == 1000
    eps, alpha, steps = 0.1, 0.025, 10
    torch.manual_seed(0)
    theirs = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)(x, y)
    ours = pgd(model, x, y, eps, alpha=alpha, steps=steps, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        acc_theirs = float((model(theirs).argmax(1) == y).double().mean())
        acc_clean = float((model(x).argmax(1) == y).double().mean())
    acc_ours = 1.0 - float(ours.success.double().mean())
    assert 0.1 < acc_ours < acc_clean - 0.05, (acc_ours, acc_clean)  # a budget that discriminates
    assert abs(acc_ours - acc_theirs) <= 0.01, (acc_ours, acc_theirs)


@pytest.mark.slow
def test_pgd_with_random_start_is_bit_identical_to_torchattacks_under_one_seed(trained_small, mnist5k, torchattacks: Any) -> None:
    """Without a generator, advgrad draws the L∞ start from the global RNG with the call torchattacks makes,
    so the same ``torch.manual_seed`` gives the same examples: 1,000 images in one piece, bit for bit. In
    advgrad's default chunks of 256 (torchattacks takes the batch in one piece) the kernels see other
    shapes: the robust accuracy is the same to a tenth of a point and nearly every example is identical."""
    model, _ = trained_small
    x, y = mnist5k.x_test, mnist5k.y_test
    torch.manual_seed(7)
    theirs = torchattacks.PGD(model, eps=0.1, alpha=0.025, steps=10, random_start=True)(x, y)
    torch.manual_seed(7)
    ours = pgd(model, x, y, 0.1, alpha=0.025, steps=10, chunk_size=len(x)).x_adv
    assert not torch.equal(ours, pgd(model, x, y, 0.1, alpha=0.025, steps=10).x_adv)  # the start is random...
    assert torch.equal(ours, theirs)  # ...and the same draw as torchattacks'
    torch.manual_seed(7)
    chunked = pgd(model, x, y, 0.1, alpha=0.025, steps=10).x_adv
    with torch.no_grad():
        acc_chunked = float((model(chunked).argmax(1) == y).double().mean())
        acc_theirs = float((model(theirs).argmax(1) == y).double().mean())
    assert abs(acc_chunked - acc_theirs) <= 0.001
    assert float((chunked == theirs).flatten(1).all(1).double().mean()) >= 0.99
