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


def test_type_checkers_see_every_public_name_from_its_module() -> None:
    """The facade's ``if TYPE_CHECKING:`` imports (what mypy, IDEs and the API reference's griffe read) name
    exactly ``__all__``, each from the module the lazy table says, so no public name is invisible to them."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(advgrad))
    seen: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for imp in ast.walk(node):
                if isinstance(imp, ast.ImportFrom) and imp.module is not None:
                    seen.update({alias.name: imp.module for alias in imp.names})
    assert set(seen) == set(advgrad.__all__) - {"__version__"}
    for name, module in seen.items():
        assert getattr(advgrad, name) is getattr(__import__(module, fromlist=[name]), name), name


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
