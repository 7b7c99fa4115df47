"""The ``advgrad`` command: a thin click group. Each sub-command lives in its own module and does
parse options → one library call → write results → echo. Only this package prints."""

from __future__ import annotations

import sys
from typing import Any

import click

from advgrad import __version__
from advgrad.results import current_command


class _Group(click.Group):
    """Click group whose errors are one line on stderr (``Error: ...``) with exit status 2 for bad
    usage, never a traceback for a bad value: library ValueErrors are user mistakes by contract."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        argv = ["advgrad", *(sys.argv[1:] if args is None else args)]
        token = current_command.set(argv)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            click.echo(f"Error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except (ValueError, FileNotFoundError) as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(130)
        finally:
            current_command.reset(token)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="advgrad")
def main() -> None:
    """advgrad: adversarial examples from the input gradient ∂J/∂X.

    Training differentiates the loss with respect to the parameters (∂J/∂W); an attacker holds the
    parameters fixed and differentiates the same loss with respect to the input (∂J/∂X).
    """


# Each command registers itself here (one line per command module).
from advgrad.cli.grad import grad  # noqa: E402
from advgrad.cli.info import info  # noqa: E402
from advgrad.cli.train import train  # noqa: E402
from advgrad.cli.attack import attack  # noqa: E402
from advgrad.cli.eval import eval_cmd  # noqa: E402
from advgrad.cli.plot import plot  # noqa: E402

main.add_command(train)
main.add_command(attack)
main.add_command(grad)
main.add_command(info)
main.add_command(eval_cmd)
main.add_command(plot)
