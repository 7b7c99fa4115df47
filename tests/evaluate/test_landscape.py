"""The loss along sign(∂J/∂X) against random sign directions."""

from __future__ import annotations

import pytest
import torch

from advgrad import evaluate as ev


def test_loss_landscape_gradient_sign_climbs_faster(trained_small, batch) -> None:  # type: ignore[no-untyped-def]
    model, _ = trained_small
    t, along, rand = ev.loss_landscape(model, batch[0][:4], batch[1][:4], eps_max=0.2, points=5, n_random=2,
                                       generator=torch.Generator().manual_seed(0))
    assert t.shape == (5,) and along.shape == (4, 5) and rand.shape == (4, 2, 5)
    assert torch.equal(along[:, 0], rand[:, 0, 0]) and float(t[0]) == 0.0
    assert bool((along[:, -1] > rand[:, :, -1].amax(1)).all())
    with pytest.raises(ValueError, match="points must be ≥ 2 and n_random ≥ 1, got 1 and 2"):
        ev.loss_landscape(model, batch[0][:2], batch[1][:2], points=1)
