"""Peer tests may not vanish in CI: with ``ADVGRAD_REQUIRE_PEERS=1`` in the environment (``make test-all``,
what CI runs, sets it), a test skipped because ``pytest.importorskip`` could not import a peer (torchattacks,
Foolbox, pyautoattack, adv-lib, ART, onnx, ...) is reported as failed, naming the module. Without it the
skip stays a skip, so a machine without the test extras still runs everything else.

tests/conftest.py imports the hook below, which registers it for the whole suite."""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

REQUIRE = "ADVGRAD_REQUIRE_PEERS"
IMPORT_SKIP = "could not import"  # how pytest.importorskip words its skip


def required() -> bool:
    return os.environ.get(REQUIRE, "") not in ("", "0")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None, Any, Any]:
    report = yield
    if report.skipped and required() and call.excinfo is not None and call.excinfo.errisinstance(
            pytest.skip.Exception) and str(call.excinfo.value).startswith(IMPORT_SKIP):
        report.outcome = "failed"
        report.longrepr = (f"{REQUIRE}=1 but a test peer is missing, so this test would have been skipped: "
                           f"{call.excinfo.value} (install the test extras: make install)")
    return report
