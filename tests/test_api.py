"""The public surface: everything in advgrad.__all__ exists, the entry points run, and importing advgrad
stays light (no matplotlib until a figure is drawn)."""

from __future__ import annotations

import subprocess
import sys

import advgrad


def test_all_names_exist() -> None:
    missing = [name for name in advgrad.__all__ if not hasattr(advgrad, name)]
    assert missing == []
    assert {"input_gradient", "fgsm", "pgd", "load_model", "fit"} <= set(advgrad.__all__)


def test_import_does_not_pull_in_matplotlib() -> None:
    code = "import sys, advgrad; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_console_script_and_module_agree() -> None:
    from pathlib import Path

    script = Path(sys.executable).with_name("advgrad")
    versions = [subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
                for cmd in ([str(script), "--version"], [sys.executable, "-m", "advgrad", "--version"])]
    assert versions[0] == versions[1] == f"advgrad, version {advgrad.__version__}"
