"""Cross-checks against the peers (torchattacks 3.5.1, Foolbox 3.3.4; installed by the test extras):
L∞ FGSM and PGD bit for bit, L2 PGD to 1e-5, and robust accuracy with random starts within a point."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from advgrad.attacks import fgsm, pgd, run_attack

torchattacks = pytest.importorskip("torchattacks")
fb = pytest.importorskip("foolbox")

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def batch(mnist5k) -> tuple[Tensor, Tensor]:
    """200 test digits of every class."""
    idx = torch.randperm(len(mnist5k.y_test), generator=torch.Generator().manual_seed(1))[:200]
    return mnist5k.x_test[idx], mnist5k.y_test[idx]


@pytest.mark.parametrize("eps", [0.05, 0.1, 0.3, 8 / 255])
def test_linf_fgsm_is_bit_identical_to_torchattacks_and_foolbox(trained_small, batch, eps: float) -> None:
    model, _ = trained_small
    x, y = batch
    ours = fgsm(model, x, y, eps)
    assert torch.equal(ours, torchattacks.FGSM(model, eps=eps)(x, y))
    _, theirs, _ = fb.attacks.FGSM()(fb.PyTorchModel(model, bounds=(0, 1)), x, y, epsilons=eps)
    assert torch.equal(ours, theirs)


def test_targeted_linf_fgsm_is_bit_identical_to_torchattacks(trained_small, batch) -> None:
    model, _ = trained_small
    x, y = batch
    target = (y + 3) % 10
    atk = torchattacks.FGSM(model, eps=0.1)
    atk.set_mode_targeted_by_label(quiet=True)
    assert torch.equal(fgsm(model, x, target, 0.1, targeted=True), atk(x, target))


@pytest.mark.parametrize("eps,alpha,steps", [(0.1, 0.01, 10), (0.3, 0.02, 20), (8 / 255, 2 / 255, 7),
                                             (0.2, 0.05, 5)])
def test_linf_pgd_is_bit_identical_to_torchattacks(trained_small, batch, eps: float, alpha: float,
                                                   steps: int) -> None:
    model, _ = trained_small
    x, y = batch
    ours = pgd(model, x, y, eps, alpha=alpha, steps=steps, random_start=False)
    theirs = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False)(x, y)
    assert torch.equal(ours, theirs)


def test_linf_pgd_is_bit_identical_to_foolbox(trained_small, batch) -> None:
    """Foolbox differentiates the summed loss, advgrad (like torchattacks) the mean: a gradient coordinate
    within rounding of zero can take opposite signs (one pixel of 200 digits × 10 steps did, summed vs
    averaged, on the fixture model), though not in this batch."""
    model, _ = trained_small
    x, y = batch
    ours = pgd(model, x, y, 0.1, alpha=0.01, steps=10, random_start=False)
    attack = fb.attacks.LinfPGD(abs_stepsize=0.01, steps=10, random_start=False)
    _, theirs, _ = attack(fb.PyTorchModel(model, bounds=(0, 1)), x, y, epsilons=0.1)
    assert torch.equal(ours, theirs)


def test_targeted_linf_pgd_is_bit_identical_to_torchattacks(trained_small, batch) -> None:
    model, _ = trained_small
    x, y = batch
    target = (y + 1) % 10
    atk = torchattacks.PGD(model, eps=0.2, alpha=0.02, steps=10, random_start=False)
    atk.set_mode_targeted_by_label(quiet=True)
    assert torch.equal(pgd(model, x, target, 0.2, alpha=0.02, steps=10, random_start=False, targeted=True),
                       atk(x, target))


@pytest.mark.parametrize("eps,alpha,steps", [(1.0, 0.2, 10), (2.0, 0.1, 20)])
def test_l2_pgd_agrees_with_torchattacks_and_foolbox(trained_small, batch, eps: float, alpha: float,
                                                     steps: int) -> None:
    """Both normalise the gradient by its L2 norm. torchattacks divides by ‖g‖ + eps_for_division
    (1e-10 by default), which shortens the steps of confident samples whose gradient norm is tiny
    (1e-6…1e-4 here); with a negligible eps_for_division it agrees, and Foolbox agrees on every sample."""
    model, _ = trained_small
    x, y = batch
    ours = pgd(model, x, y, eps, alpha=alpha, steps=steps, norm="2", random_start=False)
    attack = fb.attacks.L2PGD(abs_stepsize=alpha, steps=steps, random_start=False)
    _, foolbox_adv, _ = attack(fb.PyTorchModel(model, bounds=(0, 1)), x, y, epsilons=eps)
    torch.testing.assert_close(ours, foolbox_adv, rtol=0, atol=1e-5)
    theirs = torchattacks.PGDL2(model, eps=eps, alpha=alpha, steps=steps, random_start=False,
                                eps_for_division=1e-30)(x, y)
    # torchattacks differentiates the batch-mean loss (advgrad and Foolbox the sum): g/N differs from g
    # in its last bits, and over many steps a ReLU kink can amplify that on the odd sample.
    agree = (ours - theirs).flatten(1).abs().amax(dim=1) <= 1e-5
    assert float(agree.double().mean()) >= (1.0 if steps <= 10 else 0.99), (~agree).nonzero().tolist()


def test_l2_fgm_agrees_with_foolbox(trained_small, batch) -> None:
    model, _ = trained_small
    x, y = batch
    _, theirs, _ = fb.attacks.L2FastGradientAttack()(fb.PyTorchModel(model, bounds=(0, 1)), x, y, epsilons=1.5)
    torch.testing.assert_close(fgsm(model, x, y, 1.5, norm="2"), theirs, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_robust_accuracy_with_random_starts_matches_torchattacks(trained_small, mnist5k) -> None:
    """1,000 mnist-5k test images, PGD-10 L∞ with random starts at a budget where the model keeps
    part of its accuracy: advgrad's robust accuracy is within ±1 point of torchattacks'."""
    model, _ = trained_small
    x, y = mnist5k.x_test, mnist5k.y_test
    assert len(x) == 1000
    eps, alpha, steps = 0.1, 0.025, 10
    torch.manual_seed(0)
    theirs = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)(x, y)
    ours = run_attack(model, x, y, eps, alpha=alpha, steps=steps, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        acc_theirs = float((model(theirs).argmax(1) == y).double().mean())
        acc_clean = float((model(x).argmax(1) == y).double().mean())
    acc_ours = 1.0 - float(ours.success.double().mean())
    assert 0.1 < acc_ours < acc_clean - 0.05, (acc_ours, acc_clean)  # a budget that discriminates
    assert abs(acc_ours - acc_theirs) <= 0.01, (acc_ours, acc_theirs)


@pytest.mark.slow
def test_pgd_with_random_start_is_bit_identical_to_torchattacks_under_one_seed(trained_small, mnist5k) -> None:
    """Without a generator, advgrad draws the L∞ start from the global RNG with the call torchattacks makes,
    so the same ``torch.manual_seed`` gives the same examples: 1,000 images, in advgrad's default chunks
    of 256 (torchattacks takes the batch in one piece)."""
    model, _ = trained_small
    x, y = mnist5k.x_test, mnist5k.y_test
    torch.manual_seed(7)
    theirs = torchattacks.PGD(model, eps=0.1, alpha=0.025, steps=10, random_start=True)(x, y)
    torch.manual_seed(7)
    ours = pgd(model, x, y, 0.1, alpha=0.025, steps=10)
    assert not torch.equal(ours, pgd(model, x, y, 0.1, alpha=0.025, steps=10))  # the start is random...
    assert torch.equal(ours, theirs)  # ...and the same draw as torchattacks'


def test_bench_script_runs_and_writes_its_table(tmp_path, script) -> None:
    bench = script("bench_attacks")
    out = tmp_path / "bench.md"
    assert bench.main(["--models", "logreg", "--n", "20", "--steps", "2", "--repeats", "1", "--out", str(out)]) == 0
    text = out.read_text()
    assert "python scripts/bench_attacks.py --models logreg" in text
    assert all(who in text for who in ("| advgrad |", "| torchattacks |", "| foolbox |", "| floor |"))


def test_chunk_size_bench_script_runs_and_writes_its_table(tmp_path, script) -> None:
    bench = script("bench_chunk_size")
    out = tmp_path / "chunks.md"
    assert bench.main(["--models", "logreg,cnn-small", "--n", "40", "--repeats", "1", "--out", str(out)]) == 0
    text = out.read_text()
    assert "python scripts/bench_chunk_size.py --models logreg,cnn-small" in text
    assert "**cnn-small**, 40 samples" in text and "| 16 | 32 | one piece * |" in text
    assert text.count("≠") == 1  # in the legend only: every chunk size gave the one-piece gradient
