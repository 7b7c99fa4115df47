"""Every public function and class of ``advgrad.__all__`` carries a numpydoc docstring — Parameters,
Returns (functions) and Examples — and its Examples run as doctests (tiny seeded models built inline, no
files but temporary folders, no network), so the API reference never shows an example that fails."""

from __future__ import annotations

import doctest
import inspect

import pytest
import torch

import advgrad

PUBLIC = [name for name in advgrad.__all__
          if inspect.isfunction(getattr(advgrad, name)) or inspect.isclass(getattr(advgrad, name))]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _missing_sections(name: str) -> list[str]:
    obj = getattr(advgrad, name)
    doc = inspect.getdoc(obj) or ""
    # A typing.Protocol is never constructed: it documents its fields as Attributes (griffe rejects Parameters
    # that are not in a signature).
    fields = "Attributes" if getattr(obj, "_is_protocol", False) else "Parameters"
    takes = not inspect.isfunction(obj) or bool(inspect.signature(obj).parameters)  # nothing to list otherwise
    need = [fields] * takes + ["Examples"] + (["Returns"] if inspect.isfunction(obj) else [])
    return [section for section in need if section not in doc]


def test_every_public_name_has_the_numpydoc_sections() -> None:
    offenders = {name: lack for name in PUBLIC if (lack := _missing_sections(name))}
    assert offenders == {}


@pytest.mark.parametrize("name", PUBLIC)
def test_examples_run(name: str) -> None:
    obj = getattr(advgrad, name)
    # The object's own docstring only (recurse=False): a class's methods are not the public name's Examples.
    tests = doctest.DocTestFinder(recurse=False).find(obj, name, globs={})
    assert sum(len(test.examples) for test in tests) > 0, f"{name}: no Examples to run"
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng():  # examples seed the global RNG; the other tests' draws stay as they were
            for test in tests:
                runner.run(test)
    finally:
        torch.set_num_threads(threads)
    assert runner.failures == 0, f"{name}: {runner.failures} failing example(s), shown in the captured stdout"
