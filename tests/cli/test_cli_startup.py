"""Start-up: the group imports a command's module only when it runs or shows its help, and help imports
nothing heavy. Checked on sys.modules of a real ``python -m advgrad ...`` process (not on timing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from helpers.cli import ENV, assert_usage_error, invoke

from advgrad.cli import COMMANDS, main

HEAVY = ("torch", "matplotlib", "numpy", "tqdm")


# Python imports ``sitecustomize`` at start-up if it is on the path: this one writes sys.modules at exit.
SITECUSTOMIZE = """import atexit, json, os, sys
atexit.register(lambda: open(os.environ["MODULES_FILE"], "w").write(json.dumps(sorted(sys.modules))))
"""


@pytest.fixture(scope="module")
def spy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("spy")
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return folder


def imported(spy: Path, *args: str) -> set[str]:
    """sys.modules at the end of a real ``python -m advgrad ARGS``."""
    out = spy / "modules.json"
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(spy), ENV["PYTHONPATH"]]), "MODULES_FILE": str(out)}
    proc = subprocess.run([sys.executable, "-m", "advgrad", *args], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Usage:" in proc.stdout
    modules = set(json.loads(out.read_text()))
    assert "advgrad.cli" in modules and "sitecustomize" in modules
    return modules


def top(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


@pytest.mark.slow
def test_help_imports_no_other_command_and_no_plotting(spy: Path) -> None:
    """What holds with advgrad/__init__.py as it is: `--help` imports no command module, `CMD --help`
    only that command's, and neither imports matplotlib or the plotting module (tqdm comes with torch)."""
    group = imported(spy, "--help")
    assert not {m for m in group if m.startswith("advgrad.cli.") and m[12:] in COMMANDS}
    assert "matplotlib" not in top(group) and "advgrad.plots" not in group
    for name in ("train", "eval", "plot"):
        modules = imported(spy, name, "--help")
        commands = {m[12:] for m in modules if m.startswith("advgrad.cli.") and m[12:] in COMMANDS}
        assert commands == {name}
        assert "matplotlib" not in top(modules) and "advgrad.plots" not in modules


@pytest.mark.slow
def test_help_does_not_import_torch(spy: Path) -> None:
    for args in (["--help"], ["train", "--help"], ["attack", "--help"], ["eval", "--help"], ["grad", "--help"],
                 ["plot", "--help"], ["info", "--help"]):
        modules = imported(spy, *args)
        assert not set(HEAVY) & top(modules), (args, set(HEAVY) & top(modules))


def test_group_help_shows_each_command_s_own_summary() -> None:
    """The summaries written in COMMANDS are the commands' own first paragraphs: cut to any width they
    read as click would cut the command's help, and the whole --help equals an eagerly built group's."""
    commands: dict[str, click.Command] = {}
    for name in COMMANDS:
        cmd = main.get_command(click.Context(main), name)
        assert cmd is not None and cmd.name == name
        commands[name] = cmd
        for limit in (20, 45, 58, 74, 120, 400):
            summary = click.Command(name, help=COMMANDS[name][2]).get_short_help_str(limit)
            assert summary == cmd.get_short_help_str(limit)
    eager = click.Group("advgrad", commands=commands, help=main.help, params=main.params,
                        context_settings=main.context_settings)
    for width in (60, 80, 120):
        lazy_help = CliRunner().invoke(main, ["--help"], prog_name="advgrad", terminal_width=width).output
        assert lazy_help == CliRunner().invoke(eager, ["--help"], prog_name="advgrad", terminal_width=width).output
    assert "  train     Train a model" in invoke("--help").output  # column width: the longest name, transfer


def _options(*path: str) -> dict[str, click.Parameter]:
    """The parameters of ``advgrad PATH...`` (a command, or a plot kind) by name."""
    command: click.Command | None = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.get_command(click.Context(command), name)
    assert command is not None
    return {p.name: p for p in command.params if p.name}


def _choices(param: click.Parameter) -> list[str]:
    assert isinstance(param.type, click.Choice)
    return list(param.type.choices)


def test_choices_and_defaults_are_the_catalog_s_and_the_configs_own() -> None:
    """The commands hold no copies of names or defaults: their choices are advgrad.catalog's entries and
    their defaults the configs' (both torch-free, so --help still imports no torch: see above)."""
    from advgrad import catalog
    from advgrad.cli._types import Names
    from advgrad.configs import EvalConfig, TrainConfig

    train, attack, eval_, grad = (_options(name) for name in ("train", "attack", "eval", "grad"))
    # --data takes a built-in name or a file/folder: no Choice, the help lists the catalog's names
    assert f"({', '.join(catalog.DATASETS)})" in (train["dataset"].help or "")
    assert _choices(train["model_name"]) == list(catalog.MODELS)
    assert _choices(train["head"]) == list(catalog.HEADS) and _choices(train["device"]) == list(catalog.DEVICES)
    assert (_choices(train["optimizer"]), _choices(train["schedule"])) == (list(catalog.OPTIMIZERS),
                                                                          list(catalog.LR_SCHEDULES))
    assert _choices(train["adv_method"]) == ["none", *catalog.OBJECTIVES]
    assert _choices(train["loss"]) == list(catalog.TRAIN_LOSSES) and _choices(grad["loss"]) == list(catalog.HAND_LOSSES)
    assert _choices(attack["loss"]) == list(catalog.LOSSES) and _choices(attack["norm"]) == list(catalog.NORMS)
    assert _choices(attack["method"]) == list(catalog.ATTACKS) and _choices(eval_["norm"]) == list(catalog.NORMS)
    assert isinstance(eval_["attacks"].type, Names) and eval_["attacks"].type.choices == tuple(catalog.ATTACKS)
    assert _choices(eval_["min_eps_attack"]) == list(catalog.MIN_EPS_ATTACKS)
    compared = []
    for params, config in ((train, TrainConfig()), (eval_, EvalConfig())):
        for name, param in params.items():  # flags default to off; eps, attacks and min_norm are comma lists
            if hasattr(config, name) and not getattr(param, "is_flag", False) and name not in ("eps", "attacks", "min_norm"):
                assert param.default == getattr(config, name), name
                compared.append(name)
    assert len(compared) == 19, compared  # train: 10 TrainConfig fields; eval: 9 EvalConfig fields
    assert eval_["eps"].type.convert(eval_["eps"].default, None, None) == EvalConfig().eps
    assert eval_["attacks"].type.convert(eval_["attacks"].default, None, None) == EvalConfig().attacks


def test_unknown_command_bare_group_and_version() -> None:
    result = invoke("nope")
    assert_usage_error(result.exit_code, result.stderr, "No such command 'nope'.")
    bare = invoke()
    assert bare.exit_code == 2 and bare.stdout == "" and bare.stderr.startswith("Usage: main [OPTIONS] COMMAND")
    assert "Error" not in bare.stderr and "  train     Train a model" in bare.stderr
    assert invoke("--version").output == "advgrad, version 0.1.0\n"
