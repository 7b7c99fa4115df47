"""Random sign noise: x + ε·s with s uniform in {−1, +1} per coordinate, clipped to the bounds."""

from __future__ import annotations

import pytest
import torch

from advgrad.attacks.noise import sign_noise


def test_sign_noise_is_a_corner_of_the_ball_clipped_to_the_bounds() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(50, 1, 8, 8, generator=g)
    out = sign_noise(x, 0.1, generator=torch.Generator().manual_seed(1))
    step = out - x
    inside = (x + 0.1 <= 1) & (x - 0.1 >= 0)  # coordinates the bounds do not clip
    assert torch.allclose(step[inside].abs(), torch.full_like(step[inside], 0.1), atol=1e-6)
    assert float(out.min()) >= 0 and float(out.max()) <= 1 and float(step.abs().max()) <= 0.1 + 1e-6
    assert torch.equal(out, sign_noise(x, 0.1, generator=torch.Generator().manual_seed(1)))  # seeded
    plus = float((step[inside] > 0).float().mean())
    assert plus == pytest.approx(0.5, abs=0.03)  # 3,000+ fair signs: 0.5 ± 3 standard deviations
