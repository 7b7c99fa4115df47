"""The rule that keeps peer tests from vanishing in CI (tests/helpers/peers.py): under ADVGRAD_REQUIRE_PEERS=1
a test skipped by ``pytest.importorskip`` fails, naming the module; other skips, and every skip without the
variable, stay skips. Run on a two-test file in a pytest of its own (a subprocess: its own plugins, no
advgrad), with the hook loaded as tests/conftest.py loads it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HELPERS = Path(__file__).resolve().parent
CASES = '''
import pytest

def test_needs_a_missing_peer():
    pytest.importorskip("advgrad_no_such_peer")

def test_skipped_for_another_reason():
    pytest.skip("not on this platform")

def test_needs_a_peer_in_a_fixture(peer):
    pass

@pytest.fixture
def peer():
    return pytest.importorskip("advgrad_no_such_peer_either")
'''


def _run(tmp_path: Path, require: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_cases.py").write_text(CASES)
    (tmp_path / "conftest.py").write_text("from helpers.peers import pytest_runtest_makereport  # noqa: F401\n")
    env = {k: v for k, v in os.environ.items() if k != "ADVGRAD_REQUIRE_PEERS"}
    env["PYTHONPATH"] = os.pathsep.join([str(HELPERS), env.get("PYTHONPATH", "")])
    if require is not None:
        env["ADVGRAD_REQUIRE_PEERS"] = require
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("require", [None, "0"])
def test_without_the_variable_a_missing_peer_is_a_skip(tmp_path: Path, require: str | None) -> None:
    proc = _run(tmp_path, require)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 skipped" in proc.stdout and "failed" not in proc.stdout


def test_with_it_a_missing_peer_fails_and_names_the_module(tmp_path: Path) -> None:
    proc = _run(tmp_path, "1")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed, 1 skipped, 1 error" in proc.stdout  # a fixture's failure is the test's setup error
    assert "FAILED test_cases.py::test_needs_a_missing_peer" in proc.stdout
    assert "ERROR test_cases.py::test_needs_a_peer_in_a_fixture" in proc.stdout
    assert "SKIPPED" in proc.stdout and "not on this platform" in proc.stdout
    assert "advgrad_no_such_peer" in proc.stdout and "ADVGRAD_REQUIRE_PEERS=1" in proc.stdout
