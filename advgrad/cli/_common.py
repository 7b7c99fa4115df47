"""What every command shares: one-line usage errors (exit 2), the --device and --model options, warnings,
the checks every output path passes before any work starts, the progress report (``cli._progress``).

Nothing heavy is imported at module level (torch, numpy, the library): a command imports what it needs
when it runs, so that ``advgrad --help`` and ``advgrad CMD --help`` answer at once. The choices come from
``advgrad.catalog``, which imports neither."""

from __future__ import annotations

import itertools
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from advgrad.catalog import DEVICES
from advgrad.cli._progress import Reporter as Reporter  # re-exported: the commands import them from here
from advgrad.cli._progress import progress_bar as progress_bar
from advgrad.runs.output import check_writable

if TYPE_CHECKING:
    import torch

    from advgrad.runs.info import Checkpoint

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_MODEL = Path("out/model.pt")
FIGURE_FORMATS = (".png", ".svg", ".pdf")


class UsageFail(click.ClickException):
    """A bad value from the user: printed as one line ``Error: ...``, exit status 2."""

    exit_code = 2


def device_option(f: F) -> F:
    return click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
                        help="Where to compute.")(f)


# What --model takes (``advgrad.model_loading.open_model``, the kinds of ``_model_files.model_kind``).
MODEL_FORMS = ("an advgrad checkpoint (`advgrad train` writes out/model.pt), a TorchScript file (torch.jit.save) or a "
               "torch.export program (.pt2); or code that builds the model: path/file.py:factory, "
               "package.module:factory or torchvision:NAME, with its state dict in --weights")


def not_a_directory(what: str, path: Path) -> Path:
    """``path``, or a usage error (exit 2) if it is a folder: what a model path must be, and the model files
    the folder holds, if any."""
    if not path.is_dir():
        return path
    found = sorted((p.name for p in path.iterdir() if p.suffix in (".pt", ".pt2", ".pth") and p.is_file()),
                   key=lambda name: (len(name), name))  # model.pt before model.best.pt
    hint = f"; it holds {', '.join(found[:4])}{', ...' if len(found) > 4 else ''}: e.g. {what} " \
           f"{(path / found[0]).as_posix()}" if found else ""
    raise UsageFail(f"{what} {str(path)!r} is a directory; expected a file: {MODEL_FORMS}{hint}")


def _model_path(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    return not_a_directory("--model", value)


def model_option(f: F) -> F:
    return click.option("--model", "model_path", type=click.Path(path_type=Path), default=DEFAULT_MODEL,
                        callback=_model_path, show_default=True,
                        help="Checkpoint written by `advgrad train`; with the options of "
                        "`your model` also path/file.py:factory (the .py file RUNS), package.module:factory, "
                        "torchvision:NAME, a TorchScript file or a torch.export .pt2.")(f)


def model_source_options(f: F) -> F:
    """--model-args, --weights, --weights-key, --mean, --std: how ``advgrad.models.loading.open_model`` builds a
    model that is not an advgrad checkpoint."""
    options = [
        click.option("--model-args", "model_args", default=None, metavar="JSON",
                     help='Keyword arguments of the factory / torchvision model, e.g. \'{"num_classes": 10}\'.'),
        click.option("--weights", type=click.Path(path_type=Path), default=None,
                     help="State dict for a factory or torchvision model (read with weights_only=True; a "
                          "module./model. prefix is stripped)."),
        click.option("--weights-key", "weights_key", default=None, metavar="KEY",
                     help="The entry of --weights holding the state dict, e.g. state_dict."),
        click.option("--mean", default=None, metavar="M1,M2,..", help="Per-channel mean: Normalize in front."),
        click.option("--std", default=None, metavar="S1,S2,..",
                     help="Per-channel std. Inputs stay in [0, 1]; the model sees (x − mean)/std."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


FOLDER_OPTIONS = (
    click.option("--image-size", "image_size", default=None, metavar="H[,W]",
                 help="Folder images: resize to cover, then centre crop."),
    click.option("--grayscale", is_flag=True, help="Folder images: one channel."),
)


def folder_options(f: F) -> F:
    """--image-size, --grayscale: how a folder of images is read (``data_option`` includes them)."""
    for option in reversed(FOLDER_OPTIONS):
        f = option(f)
    return f


def data_option(f: F) -> F:
    """--data, --image-size, --grayscale, --workers, --classes: the data ``advgrad.data.sources.load_data`` reads."""
    options = [
        click.option("--data", default=None, metavar="NAME|FOLDER|FILE",
                     help="A built-in data set, a folder of images (one sub-folder per class) or an .npz/.pt "
                          "file with x and y [default: the checkpoint's own test split]."),
        *FOLDER_OPTIONS,
        click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Folder images: reader processes."),
        click.option("--classes", default=None, metavar="0,3,5|0-4", help="Only these class indices."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def open_checkpoint(path: Path, device: torch.device | str = "cpu") -> Checkpoint:
    """The checkpoint at ``path`` (a missing or foreign file is a one-line usage error, as every ValueError)."""
    from advgrad.runs.info import read_checkpoint

    return read_checkpoint(not_a_directory("--model", path), device)


def warn(text: str) -> None:
    """A difference that changes numbers but stops nothing: one ``warning:`` line on stderr."""
    click.echo(f"warning: {text}", err=True)


def suffix(option: str, path: Path | None, wanted: str) -> None:
    """Exit 2 unless ``path`` (if given) ends in ``wanted``."""
    if path is not None and path.suffix.lower() != wanted:
        raise UsageFail(f"{option} {str(path)!r}: expected a {wanted} file")


def figure_path(option: str, path: Path) -> None:
    """Exit 2 unless the suffix of ``path`` names a figure format."""
    if path.suffix.lower() not in FIGURE_FORMATS:
        raise UsageFail(f"{option} {str(path)!r}: the suffix picks the format, one of {', '.join(FIGURE_FORMATS)}")


def refuse_directory(path: Path) -> None:
    """Exit 2 if an output path is a folder (the message ``records.write.check_writable`` gives)."""
    if path.is_dir():
        raise UsageFail(f"output path {str(path)!r} is a directory, expected a file path")


def _entry(path: Path) -> str:
    """The folder entry a write to ``path`` replaces: results' writers ``os.replace`` a new file onto the
    name, so a symlink there is replaced, never followed; the folders above are resolved."""
    return os.path.join(os.path.realpath(path.parent), path.name)


def check_outputs(outputs: Sequence[tuple[str, Path]], inputs: Sequence[tuple[str, Path]] = ()) -> None:
    """Before any work: no two outputs are one file, no output is one of the inputs, and each output's
    folder provably takes a new file (``records.write.check_writable``). Each pair is (what the user calls it,
    path). Called after a command's own suffix rules; one-line usage error (exit 2) otherwise.

    Two outputs collide when they name one folder entry (``out/../m.json`` and ``m.json``). An output
    destroys an input when it names the input's entry or, for an input given through a symlink, the file
    the link points to."""
    try:
        entries = [_entry(path) for _, path in outputs]
        sources = [{_entry(path), os.path.realpath(path)} for _, path in inputs]
    except (OSError, ValueError) as exc:  # a NUL byte, a symlink loop
        raise UsageFail(f"unusable path: {exc}") from None
    for (i, (name_a, a)), (j, (name_b, b)) in itertools.combinations(enumerate(outputs), 2):
        if entries[i] == entries[j]:
            raise UsageFail(f"{name_a} {str(a)!r} and {name_b} {str(b)!r} are the same file: one would "
                            "overwrite the other; choose another path")
    for (name_out, out), entry in zip(outputs, entries):
        for (name_in, _), source in zip(inputs, sources):
            if entry in source:
                raise UsageFail(f"{name_out} {str(out)!r} is the input {name_in}: writing it would destroy "
                                "the input; choose another path")
    if not writes():  # under torchrun, process 0 alone writes, and alone proves the folders take a file
        return
    for _, out in outputs:
        check_writable(out)  # ValueError: one line, exit 2


def writes() -> bool:
    """False in a process torchrun started as rank ≠ 0 of several (RANK, WORLD_SIZE in the environment; read
    here, before the process group is up and without importing torch): it writes nothing, and probing a
    missing output folder from every process would race (one creates and removes the folder while another
    creates or probes it: "File exists", or a folder gone). Malformed values are left to
    ``distributed.setup``, which reports them."""
    env = os.environ
    try:
        return int(env.get("WORLD_SIZE", "1")) <= 1 or int(env.get("RANK", "0")) == 0
    except ValueError:
        return True


def follow(bar: Reporter) -> Reporter:
    """The library's progress callback ``progress(done, total)`` for ``bar``: the bar itself (kept for the
    call sites written ``progress=follow(bar)``; ``on_status=bar.status`` passes a run's status text)."""
    return bar


@contextmanager
def resumable(state: Path) -> Iterator[None]:
    """A command that keeps its finished blocks in ``state``: on Ctrl-C, say how to continue and exit 130; on
    an error before any block was finished, leave no state behind (there is nothing to resume)."""
    try:
        yield
    except KeyboardInterrupt:
        if _has_blocks(state):
            click.echo(f"interrupted: the finished blocks are kept in {state}; run the same command with --resume "
                       "to continue", err=True)
        else:  # nothing finished: nothing to resume, nothing left behind (click's own word for it)
            shutil.rmtree(state, ignore_errors=True)
            click.echo("Aborted.", err=True)
        sys.exit(130)
    except Exception:
        if not _has_blocks(state):
            shutil.rmtree(state, ignore_errors=True)
        raise


def _has_blocks(state: Path) -> bool:
    """Whether the journal folder ``state`` holds a finished block."""
    return state.is_dir() and any(state.glob("*.pt"))
