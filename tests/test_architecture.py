"""The package's shape, read from its source with ``ast`` (nothing of advgrad is imported, so this is fast):
a package per family of ideas in README's "Project layout", each in a layer — names and configs
(torch-free) → geometry, losses, runtime, process groups and record files → data → models → attacks →
training and the seed maths → evaluation and figures → the public facade → workflows → the CLI — each
module importing only from its own layer or the ones below it; no import circle; no module reaching into
another package's private (``_``) modules or names; the CLI going to the library only through the workflows
of ``advgrad.runs``; short modules and functions.

Every module under advgrad/ must be placed: by its own name in ``LAYERS``, or by the package it belongs to
(``FAMILIES``), so that a new module in a family (advgrad/attacks/minimal/fmn.py, say) is placed at once and
a new loose module fails here until it is placed. Imports inside functions and under ``if TYPE_CHECKING:``
count as much as those at the top (a lazy import is still a dependency); names resolved at run time from
strings (``catalog``'s "module:attribute" entries, the lazy facade's table, the CLI's command table) are the
documented seams that let the lower layers stay torch-free, and are not imports in this sense.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "advgrad"
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60  # def line to last line, without the docstring (numpydoc: Parameters, Examples, ...)
# A named algorithm file that truly needs more lines than MAX_MODULE_LINES, with the reason: one algorithm
# read in one place, with the numpydoc docstrings (Parameters, Returns, Examples, References) it defines.
MODULE_LINE_CAPS: dict[str, tuple[int, str]] = {
    "advgrad.attacks.pgd": (390, "the one gradient loop: PGD, FGSM, MI-FGSM and the training steps"),
    "advgrad.attacks.fab": (340, "FAB's iteration, untargeted and targeted"),
    "advgrad.norms": (395, "the Lp geometry in one place: four norms, the minimal-norm duals, box ∩ L1 ball"),
    "advgrad.catalog": (340, "one home for every list of names: twenty-odd attacks, one table"),
}

# The layer of every package and top-level module; a module may import from its own layer and the ones
# with smaller numbers. A package's entry places all of its modules (see FAMILIES); a module's own entry
# wins over its package's.
LAYERS: dict[int, tuple[str, ...]] = {
    # names and configs: torch-free, so the CLI validates options and answers --help before torch loads
    0: ("advgrad.catalog", "advgrad.configs", "advgrad._train_configs", "advgrad._validate", "advgrad._version"),
    # what everything above shares: the Lp geometry, the losses, the runtime helpers (devices, eval mode,
    # batches), the process group under torchrun (training and the attacks' runner both use it), and the
    # record files (write, read: torch-free, the CLI starts up on them)
    1: ("advgrad.norms", "advgrad.losses", "advgrad._runtime", "advgrad.distributed", "advgrad.records"),
    # data: built-in sets, sources, the untrusted-file readers; the examples files are read as such
    2: ("advgrad.data", "advgrad.records.examples"),
    # models: the zoo, checkpoints, loading any classifier
    3: ("advgrad.models",),
    # attacks: ∂J/∂X; they never import training (training imports them)
    4: ("advgrad.attacks",),
    # training (∂J/∂W, adversarial objectives) and the seed network's hand backward pass and its checks
    5: ("advgrad.training", "advgrad.backprop", "advgrad._forward_pass", "advgrad.gradcheck"),
    # evaluation, and the figures drawn from it
    6: ("advgrad.evaluate", "advgrad.plots"),
    # the package's lazy public facade (advgrad/__init__.py) re-exports the library up to here (its imports
    # are for type checkers; at run time it imports by name)
    7: ("advgrad",),
    # workflows: one per command
    8: ("advgrad.runs",),
    # the CLI: the only printing layer
    9: ("advgrad.cli", "advgrad.__main__"),
}
# Packages whose every module sits in the package's own layer, without being listed one by one.
FAMILIES = ("advgrad.attacks", "advgrad.data", "advgrad.models", "advgrad.training", "advgrad.records",
            "advgrad.evaluate", "advgrad.runs", "advgrad.cli")
_LISTED = {name: layer for layer, names in LAYERS.items() for name in names}

TORCH_FREE = ("advgrad.catalog", "advgrad.configs", "advgrad._train_configs", "advgrad._validate", "advgrad._version")
# What the CLI may import besides its own modules and the public modules of advgrad.runs.
CLI_MAY_IMPORT = ("advgrad.catalog", "advgrad.configs", "advgrad._validate", "advgrad._version")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text(encoding="utf-8"), str(path)) for name, path in MODULES.items()}


def _family(module: str) -> str | None:
    """The innermost family ``module`` belongs to (a family's own ``__init__`` included)."""
    inside = [f for f in FAMILIES if module == f or module.startswith(f + ".")]
    return max(inside, key=len) if inside else None


def _place(module: str) -> int | None:
    if module in _LISTED:
        return _LISTED[module]
    family = _family(module)
    return None if family is None else _LISTED.get(family)


LAYER = {module: layer for module in MODULES if (layer := _place(module)) is not None}


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def _package_of(module: str) -> str:
    """The package a module belongs to: itself for a package's ``__init__``, else its parent."""
    return module if _is_package(module) else module.rpartition(".")[0]


def _base(module: str, node: ast.ImportFrom) -> str:
    base = node.module or ""
    if node.level:
        package = module.split(".") if _is_package(module) else module.split(".")[:-1]
        package = package[:len(package) - (node.level - 1)]
        base = ".".join([*package, *([base] if base else [])])
    return base


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[tuple[str, str | None]]:
    """(module, name) per name an import statement in ``module`` loads: ``import a.b`` → (a.b, None);
    ``from a import b`` → (a.b, None) when b is a module of advgrad, else (a, b) (relative imports resolved
    against ``module``'s package)."""
    if isinstance(node, ast.Import):
        return [(alias.name, None) for alias in node.names]
    base = _base(module, node)
    return [(f"{base}.{a.name}", None) if f"{base}.{a.name}" in MODULES else (base, a.name) for a in node.names]


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules an import statement in ``module`` loads."""
    return [target for target, _ in _targets(module, node)]


def _statements(module: str, top_level_only: bool = False) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement in ``module``: anywhere in it, or only those that run when it is imported
    (outside functions and ``if TYPE_CHECKING:`` blocks)."""

    def visit(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
        for child in ast.iter_child_nodes(node):
            if top_level_only and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if top_level_only and isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for stmt in child.orelse:
                    yield from visit(ast.Module(body=[stmt], type_ignores=[]))
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child
            yield from visit(child)

    yield from visit(TREES[module])


def _imports(module: str, top_level_only: bool = False) -> list[tuple[int, str]]:
    """(line, imported module) for every import in ``module`` (see ``_statements``)."""
    return [(node.lineno, name) for node in _statements(module, top_level_only) for name in _imported(module, node)]


def _graph() -> dict[str, set[str]]:
    """module → the advgrad modules importing it loads. Importing ``a.b.c`` from outside package ``a.b``
    runs ``a.b``'s ``__init__`` first, so such an import also depends on that package (``advgrad`` itself
    excepted: the facade imports nothing at run time)."""
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for module in MODULES:
        for _, target in _imports(module):
            parts = target.split(".")
            for k in range(2, len(parts) + 1):
                dep = ".".join(parts[:k])
                inside = module == dep or module.startswith(dep + ".")
                if dep in MODULES and dep != module and (k == len(parts) or not inside):
                    graph[module].add(dep)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One import circle per strongly connected component of more than one module (Tarjan), as a path
    a → b → … → a."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[set[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(_circle(graph, component) for component in components)


def _circle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A path from the component's first module back to itself, within the component (breadth first)."""
    start = min(component)
    before: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:  # v closes the circle: walk back from v to the start
                    path = [v]
                    while path[-1] != start:
                        path.append(before[path[-1]])
                    return [*reversed(path), start]
                if w not in before:
                    before[w] = v
                    nxt.append(w)
        frontier = nxt
    return sorted(component)


def _private(module: str, name: str | None) -> str | None:
    """The package that owns a private (``_``) module or name, None if neither is private: a private
    module or package belongs to the package above it, a private name to its module's package."""
    parts = module.split(".")
    for k, part in enumerate(parts[1:], start=1):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:k])
    if name is not None and name.startswith("_") and not name.startswith("__") and module in MODULES:
        return _package_of(module)
    return None


def test_every_module_is_placed_in_a_layer() -> None:
    unplaced = sorted(set(MODULES) - set(LAYER))
    assert not unplaced, f"place these modules in a layer of LAYERS (or in a package of FAMILIES): {unplaced}"
    gone = sorted(set(_LISTED) - set(MODULES))
    assert not gone, f"LAYERS names modules or packages that no longer exist: {gone}"
    assert len(_LISTED) == sum(len(m) for m in LAYERS.values()), "a name is placed in two layers"
    assert all(f in _LISTED for f in FAMILIES), "every family needs its layer in LAYERS"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_from_a_higher_layer(module: str) -> None:
    if module not in LAYER:
        pytest.fail(f"{module} is in no layer: place it in LAYERS")
    layer = LAYER[module]
    higher = [f"line {line}: {name} (layer {LAYER[name]})" for line, name in _imports(module)
              if name in LAYER and LAYER[name] > layer]
    assert not higher, f"{module} (layer {layer}) imports from a higher layer: {higher}"


def test_no_import_circle() -> None:
    circles = [" → ".join(c) for c in _cycles(_graph())]
    assert not circles, f"import circles: {circles}"


def test_the_circle_finder_finds_circles() -> None:
    """The check above on graphs with known answers (a circle through a package's __init__ among them)."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}}) == [["a", "b", "a"], ["c", "d", "c"]]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_another_packages_private_modules_or_names(module: str) -> None:
    """``advgrad.data._files`` and a ``_name`` of ``advgrad.data.builtin`` are for advgrad.data's modules;
    advgrad's own (``advgrad._runtime``, ``advgrad._validate``) are for all of advgrad."""
    here = _package_of(module)
    bad = [f"line {node.lineno}: {target}{'' if name is None else ':' + name}"
           for node in _statements(module) for target, name in _targets(module, node)
           if (owner := _private(target, name)) is not None and target.startswith("advgrad")
           and not (here == owner or here.startswith(owner + "."))]
    assert not bad, f"{module} imports private modules or names of another package: {bad}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if LAYER.get(m) == LAYER["advgrad.cli"]))
def test_the_cli_reaches_the_library_only_through_the_workflows(module: str) -> None:
    """The CLI translates: options → config → one ``advgrad.runs`` call → write → echo. It imports its own
    modules, the public modules of ``advgrad.runs`` and the torch-free names and checks, nothing else."""
    def allowed(target: str) -> bool:
        inside_cli = target == "advgrad.cli" or target.startswith("advgrad.cli.")
        public_run = target == "advgrad.runs" or (target.startswith("advgrad.runs.") and _private(target, None) is None)
        return inside_cli or public_run or target in CLI_MAY_IMPORT or not target.startswith("advgrad")

    bad = [f"line {line}: {name}" for line, name in _imports(module) if not allowed(name)]
    assert not bad, f"{module} imports the library around advgrad.runs: {bad}"


def test_no_command_module_imports_another() -> None:
    """Two commands share code through a cli-internal (``_``) module, never one command through another."""
    commands = {m for m in MODULES if m.startswith("advgrad.cli.") and _private(m, None) is None}
    sideways = [f"{m} → {name}" for m in sorted(commands) for _, name in _imports(m) if name in commands - {m}]
    assert not sideways, f"command modules import each other: {sideways}"


@pytest.mark.parametrize("module", TORCH_FREE)
def test_names_and_configs_import_only_the_standard_library_and_each_other(module: str) -> None:
    """What these modules import when they are imported: the standard library and the other torch-free
    modules, so ``import advgrad.configs`` loads neither torch nor numpy."""
    allowed = set(sys.stdlib_module_names) | {"__future__"}
    bad = [f"line {line}: {name}" for line, name in _imports(module, top_level_only=True)
           if name not in TORCH_FREE and name.split(".")[0] not in allowed]
    assert not bad, f"{module} must stay torch-free but imports {bad}"


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the def to the end of the function, less its docstring's."""
    total = (node.end_lineno or node.lineno) - node.lineno + 1
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        total -= (first.end_lineno or first.lineno) - first.lineno + 1
    return total


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_and_functions_are_short(module: str) -> None:
    text = MODULES[module].read_text(encoding="utf-8")
    lines = len(text.splitlines())
    cap = MODULE_LINE_CAPS.get(module, (MAX_MODULE_LINES, ""))[0]
    assert lines <= cap, f"{module} has {lines} lines (at most {cap}): split it by concept"
    long = [f"{node.name} (line {node.lineno}): {_code_lines(node)} lines" for node in ast.walk(TREES[module])
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _code_lines(node) > MAX_FUNCTION_LINES]
    assert not long, f"{module}: functions over {MAX_FUNCTION_LINES} lines: {long}"
