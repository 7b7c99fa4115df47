"""The package's shape, read from its source with ``ast`` (nothing of advgrad is imported, so this is fast):
short modules and functions, and the layers of README's "Project layout" — names and configs (torch-free)
→ the geometry and losses → attacks and training → evaluation → workflows → the CLI — each module importing
only from its own layer or the ones before it.

Every module under advgrad/ must appear in ``LAYERS``: a new module fails here until it is placed.
Imports inside functions count as much as those at the top (a lazy import is still a dependency); names
resolved at run time from strings (``catalog``'s "module:attribute" entries, the lazy facade's table, the
CLI's command table) are the documented seams that let the lower layers stay torch-free, and are not
imports in this sense.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "advgrad"
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60  # def line to last line, docstring included (decorators not counted)

# The layer of every module; a module may import from its own layer and the ones with smaller numbers.
LAYERS: dict[int, tuple[str, ...]] = {
    # names and configs: torch-free, so the CLI validates options and answers --help before torch loads
    0: ("advgrad.catalog", "advgrad.configs", "advgrad._train_configs", "advgrad._validate", "advgrad._version"),
    # the geometry and losses, and what everything above shares: the runtime helpers (devices, eval mode,
    # batches) and the record files (results writes them, records reads them; both torch-free)
    1: ("advgrad.norms", "advgrad.losses", "advgrad._runtime", "advgrad.records", "advgrad.records.write", "advgrad.records.read"),
    # attacks and training, with the models, data and checkpoints they work on
    2: ("advgrad.attacks", "advgrad.attacks._apgd_run", "advgrad.attacks._cascade", "advgrad.attacks._checks", "advgrad.attacks._chunks",
        "advgrad.attacks._fab_projections", "advgrad.attacks._fab_closest", "advgrad.attacks._square_steps", "advgrad.attacks.apgd",
        "advgrad.attacks.autoattack", "advgrad.attacks.fab", "advgrad.attacks.gradient", "advgrad.attacks.noise",
        "advgrad.attacks.pgd", "advgrad.attacks.result", "advgrad.attacks.square",
        "advgrad.models", "advgrad.models.zoo", "advgrad.data", "advgrad.data.builtin", "advgrad.data.sources",
        "advgrad.data.files", "advgrad.data._cifar_pickle", "advgrad.data._imagefolder", "advgrad.data.training",
        "advgrad.models.checkpoint", "advgrad.models.loading", "advgrad.models._files", "advgrad.models._weights",
        "advgrad.records.examples", "advgrad.training", "advgrad.training.train", "advgrad.training.loop",
        "advgrad.distributed", "advgrad.training._ddp", "advgrad.training.objectives", "advgrad.backprop",
        "advgrad.gradcheck"),
    # evaluation, and the figures drawn from it; the package's lazy public facade (advgrad/__init__.py)
    # re-exports the library up to here (its imports are for type checkers; at run time it imports by name)
    3: ("advgrad", "advgrad.evaluate", "advgrad.evaluate.landscape", "advgrad.evaluate.min_eps",
        "advgrad.evaluate.progress", "advgrad.evaluate.report", "advgrad.evaluate.robust",
        "advgrad.evaluate.sanity", "advgrad.evaluate.transfer", "advgrad.plots"),
    # workflows: one per command
    4: ("advgrad.runs", "advgrad.runs._inputs", "advgrad.runs._resume", "advgrad.runs._sources",
        "advgrad.runs.attack", "advgrad.runs.evaluation", "advgrad.runs.figures", "advgrad.runs.gradients",
        "advgrad.runs.training", "advgrad.runs.transfer"),
    # the CLI: the only printing layer
    5: ("advgrad.cli", "advgrad.cli._common", "advgrad.cli._errors", "advgrad.cli._types", "advgrad.cli.attack",
        "advgrad.cli.eval", "advgrad.cli.grad", "advgrad.cli.info", "advgrad.cli.plot", "advgrad.cli.train",
        "advgrad.cli.transfer", "advgrad.__main__"),
}
# Packages whose every module sits in the package's own layer, without being listed one by one: a new
# attack module (advgrad/attacks/minimal/fmn.py, say) is placed by its package.
FAMILIES = ("advgrad.attacks",)
LAYER = {module: layer for layer, modules in LAYERS.items() for module in modules}
_LISTED = dict(LAYER)

TORCH_FREE = ("advgrad.catalog", "advgrad.configs", "advgrad._train_configs", "advgrad._validate", "advgrad._version")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text(encoding="utf-8"), str(path)) for name, path in MODULES.items()}
LAYER.update({m: LAYER[f] for m in MODULES for f in FAMILIES if m.startswith(f + ".") and m not in LAYER})


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules an import statement in ``module`` loads: ``import a.b`` → a.b; ``from a import b`` → a.b
    when b is a module of advgrad, else a (relative imports resolved against ``module``'s package)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if _is_package(module) else module.split(".")[:-1]
        package = package[:len(package) - (node.level - 1)]
        base = ".".join([*package, *([base] if base else [])])
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]


def _imports(module: str, top_level_only: bool = False) -> list[tuple[int, str]]:
    """(line, imported module) for every import in ``module``: anywhere in it, or only those that run when
    it is imported (outside functions and ``if TYPE_CHECKING:`` blocks)."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if top_level_only and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if top_level_only and isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit_all(child.orelse)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.extend((child.lineno, name) for name in _imported(module, child))
            visit(child)

    def visit_all(nodes: list[ast.stmt]) -> None:
        for stmt in nodes:
            visit(ast.Module(body=[stmt], type_ignores=[]))

    visit(TREES[module])
    return found


def test_every_module_is_placed_in_a_layer() -> None:
    unplaced = sorted(set(MODULES) - set(LAYER))
    assert not unplaced, f"place these modules in a layer of LAYERS: {unplaced}"
    gone = sorted(set(_LISTED) - set(MODULES))
    assert not gone, f"LAYERS names modules that no longer exist: {gone}"
    assert len(_LISTED) == sum(len(m) for m in LAYERS.values()), "a module is placed in two layers"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_from_a_higher_layer(module: str) -> None:
    if module not in LAYER:
        pytest.fail(f"{module} is in no layer: place it in LAYERS")
    layer = LAYER[module]
    higher = [f"line {line}: {name} (layer {LAYER[name]})" for line, name in _imports(module)
              if name in LAYER and LAYER[name] > layer]
    assert not higher, f"{module} (layer {layer}) imports from a higher layer: {higher}"


@pytest.mark.parametrize("module", TORCH_FREE)
def test_names_and_configs_import_only_the_standard_library_and_each_other(module: str) -> None:
    """What these modules import when they are imported: the standard library and the other torch-free
    modules, so ``import advgrad.configs`` loads neither torch nor numpy."""
    allowed = set(sys.stdlib_module_names) | {"__future__"}
    bad = [f"line {line}: {name}" for line, name in _imports(module, top_level_only=True)
           if name not in TORCH_FREE and name.split(".")[0] not in allowed]
    assert not bad, f"{module} must stay torch-free but imports {bad}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_and_functions_are_short(module: str) -> None:
    text = MODULES[module].read_text(encoding="utf-8")
    lines = len(text.splitlines())
    assert lines <= MAX_MODULE_LINES, f"{module} has {lines} lines (at most {MAX_MODULE_LINES}): split it"
    long = [f"{node.name} (line {node.lineno}): {node.end_lineno - node.lineno + 1} lines"
            for node in ast.walk(TREES[module]) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno is not None and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{module}: functions over {MAX_FUNCTION_LINES} lines: {long}"
