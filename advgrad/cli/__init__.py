"""The ``advgrad`` command: a thin click group. Each sub-command lives in its own module and does
parse options → one library call → write results → echo. Only this package prints.

Start-up is lazy: a sub-command's module is imported only when that command runs or shows its help, and
the group's own help is built from the one-line summaries below, so ``advgrad --help`` imports neither
torch nor matplotlib nor the library.

How a command ends: exit 0; a usage error (a bad value, a missing file: click's errors, ValueError,
FileNotFoundError) is one line ``Error: ...`` and exit 2 — a library ``ParameterError`` names the parameter
as the command's option (target_class → --target-class); Ctrl-C is ``Aborted.`` and exit 130; anything
else is a bug: one line ``Error: internal error: ...`` naming a file with the traceback, exit 1."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from advgrad._validate import ParameterError
from advgrad._version import __version__
from advgrad.cli._errors import internal_error_line, one_line
from advgrad.cli._progress import DEFAULT_INTERVAL, INTERVAL_ENV, QUIET
from advgrad.runs.output import current_command

# name → (module, attribute, the first paragraph of the command's docstring: its summary in `--help`).
# tests/cli/test_cli_startup.py checks each summary against the command's own help.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "attack": ("advgrad.cli.attack", "attack",
               "Attack the model's test images (FGSM, PGD, MI-FGSM, AutoAttack or one of its members) and "
               "report what survives."),
    "eval": ("advgrad.cli.eval", "eval_cmd",
             "How robust is the model, and can the number be trusted? Accuracy under FGSM/PGD at every ε "
             "(only correctly classified points are attacked; \"worst\" = survives every attack), optionally "
             "the per-sample minimal ε, and a sanity report that flags gradient masking."),
    "grad": ("advgrad.cli.grad", "grad",
             "Show ∂J/∂Wᵢ, ∂J/∂bᵢ and ∂J/∂X for test samples, by hand vs autograd vs finite differences."),
    "info": ("advgrad.cli.info", "info", "Describe the model at --model (default out/model.pt)."),
    "rank": ("advgrad.cli.rank", "rank",
             "Rank attacks as AttackBench does: each attack's per-point minimal ‖δ‖ under the same budget of "
             "forward + backward passes per point, scored by its optimality against the per-point best of all."),
    "plot": ("advgrad.cli.plot", "plot",
             "Draw a figure (examples, curve, training, min-eps, landscape) from the files the other commands "
             "write."),
    "transfer": ("advgrad.cli.transfer", "transfer",
                 "Evaluate adversarial examples made on one model on another: its accuracy on the clean and the "
                 "adversarial inputs and the transfer success rate (of the points it classifies correctly when "
                 "clean, the share the examples fool)."),
    "train": ("advgrad.cli.train", "train",
              "Train a model (∂J/∂W by autograd) and write OUT (a .pt file, default out/model.pt) plus the "
              "metrics OUT.json beside it."),
}


class _Escaped(Exception):
    """Carries an EOFError past click, which would report it as "Aborted." (as if Ctrl-D were typed at a
    prompt): outside a prompt an EOFError is a bug."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


class _Group(click.Group):
    """Lazy click group whose every ending is one line on stderr and an exit status: 0, 2 (usage), 130
    (Ctrl-C) or 1 (internal error, traceback saved to a file)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        command: click.Command = getattr(importlib.import_module(entry[0]), entry[1])
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's own layout, from the summaries above instead of the (imported) commands."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        # A bare Command with the same help shortens it exactly as the real command would.
        rows = [(name, click.Command(name, help=COMMANDS[name][2]).get_short_help_str(limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EOFError as exc:  # click.prompt turns its own EOFError into Abort before this point
            raise _Escaped(exc) from exc

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        argv = ["advgrad", *(sys.argv[1:] if args is None else args)]
        token = current_command.set(argv)
        try:
            code = self._run(args, prog_name, complete_var, argv, **extra)
        except KeyboardInterrupt:  # Ctrl-C again while an ending was being reported
            click.echo("Aborted.", err=True)
            code = 130
        finally:
            current_command.reset(token)
        sys.exit(code)

    def _run(self, args: Any, prog_name: str | None, complete_var: str | None, argv: list[str],
             **extra: Any) -> int:
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:  # bare `advgrad`: the help, as click prints it
            exc.show()
            return exc.exit_code
        except click.ClickException as exc:
            click.echo(f"Error: {exc.format_message()}", err=True)
            return exc.exit_code
        except (ValueError, FileNotFoundError) as exc:
            click.echo(f"Error: {one_line(_as_option(exc), sys.maxsize)}", err=True)
            return 2
        except (click.Abort, KeyboardInterrupt):  # click turns Ctrl-C into Abort after a newline
            click.echo("Aborted.", err=True)
            return 130
        except _Escaped as exc:
            click.echo(internal_error_line(exc.original, argv), err=True)
            return 1
        except Exception as exc:
            click.echo(internal_error_line(exc, argv), err=True)
            return 1
        return rv if isinstance(rv, int) else 0


def _as_option(exc: BaseException) -> str:
    """The message, with the parameter a ``ParameterError`` names spelt as an option: "a/b_c" → "--a/--b-c"."""
    if isinstance(exc, ParameterError):
        return "/".join("--" + name.replace("_", "-") for name in exc.parameter.split("/")) + exc.text
    return str(exc)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="advgrad")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress report: neither the bar drawn on a terminal nor the lines written to a pipe or "
                   f"a log (one per finished step, at most one every {DEFAULT_INTERVAL:g} s, or "
                   f"{INTERVAL_ENV} seconds). Results, warnings and errors still print.")
@click.pass_context
def main(ctx: click.Context, /, quiet: bool) -> None:
    """advgrad: adversarial examples from the input gradient ∂J/∂X.

    Training differentiates the loss with respect to the parameters (∂J/∂W); an attacker holds the
    parameters fixed and differentiates the same loss with respect to the input (∂J/∂X).
    """
    ctx.meta[QUIET] = quiet  # shared with the command's context: cli._progress reads it
