"""For the L1 parity tests: watch the reference's box ∩ L1-ball projection while the reference runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
import torch
from torch import Tensor

from advgrad.norms import l1_box_correction


@contextmanager
def first_segment_calls() -> Iterator[list[int]]:
    """A list that gets one entry per call of the reference's ``L1_projection`` (APGD's and Square's) whose
    answer is not advgrad's: its first-segment case, where the reference's answer is not the projection
    (tests/test_norms_l1box.py). A run with none is bit-identical by construction; one with some is not."""
    base = pytest.importorskip("pyautoattack.autopgd_base")
    square = pytest.importorskip("pyautoattack.square")
    original = base.L1_projection
    seen: list[int] = []

    def watched(x2: Tensor, y2: Tensor, eps1: Any) -> Tensor:
        out: Tensor = original(x2, y2, eps1)
        if not torch.equal(out, l1_box_correction(x2, y2, eps1)):
            seen.append(len(x2))
        return out

    with mock.patch.object(base, "L1_projection", watched), mock.patch.object(square, "L1_projection", watched):
        yield seen
