"""Option types: click's ranges and comma-separated lists, whose refusals read as the CLI's one-line messages
("--n must be a positive integer, got 0", "--eps '0,abc': expected comma-separated numbers, ...") instead of
click's "Invalid value for ..." wording. A refusal is a ``click.UsageError``: one line, exit status 2."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # recent click types ParamType by its values; older releases cannot subscript it at run time
    _ListType = click.ParamType[tuple[Any, ...], Any]
else:
    _ListType = click.ParamType


def _option(param: click.Parameter | None) -> str:
    """The option as the user typed it (its first spelling)."""
    if param is None:
        return "value"
    opts = getattr(param, "opts", None)
    return str(opts[0]) if opts else str(param.name)


class IntIn(click.IntRange):
    """click's IntRange; out of range: "OPTION must be RULE, got VALUE"."""

    def __init__(self, min: int | None = None, max: int | None = None, *, rule: str) -> None:
        super().__init__(min=min, max=max)
        self.rule = rule

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.INT.convert(value, param, ctx)  # not a number: click's own message
        try:
            return super().convert(number, param, ctx)
        except click.BadParameter:
            raise click.UsageError(f"{_option(param)} must be {self.rule}, got {number!r}", ctx) from None


class FloatIn(click.FloatRange):
    """click's FloatRange for finite numbers (it lets NaN through); otherwise "OPTION must be RULE, got VALUE"."""

    def __init__(self, min: float | None = None, *, min_open: bool = False, rule: str) -> None:
        super().__init__(min=min, min_open=min_open)
        self.rule = rule

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        try:
            if not math.isfinite(number):
                raise click.BadParameter("not finite")
            return super().convert(number, param, ctx)
        except click.BadParameter:
            raise click.UsageError(f"{_option(param)} must be {self.rule}, got {number!r}", ctx) from None


class _CommaList(_ListType):
    """Comma-separated values (blank items ignored) as a tuple. ``parse`` returns the values, or what was
    expected instead: the refusal is then "OPTION 'VALUE': EXPECTED"."""

    def parse(self, items: list[str]) -> tuple[Any, ...] | str:
        raise NotImplementedError

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):  # converted already
            return value
        parsed = self.parse([item.strip() for item in str(value).split(",") if item.strip()])
        if isinstance(parsed, str):
            raise click.UsageError(f"{_option(param)} {str(value)!r}: {parsed}", ctx)
        return parsed


class Floats(_CommaList):
    """Finite numbers ≥ 0, e.g. the radii 0,0.05,0.1."""

    name = "floats"

    def parse(self, items: list[str]) -> tuple[Any, ...] | str:
        try:
            values = tuple(float(v) for v in items)
        except ValueError:
            return "expected comma-separated numbers, e.g. 0,0.05,0.1"
        if not values or not all(math.isfinite(v) and v >= 0 for v in values):
            return "expected comma-separated finite numbers ≥ 0, e.g. 0,0.05,0.1"
        return values


class Names(_CommaList):
    """Names out of ``choices`` (any case; repeats dropped), e.g. the attacks fgsm,pgd."""

    name = "names"

    def __init__(self, choices: Sequence[str]) -> None:
        self.choices = tuple(choices)

    def parse(self, items: list[str]) -> tuple[Any, ...] | str:
        names = [v.lower() for v in items]
        if not names or not set(names) <= set(self.choices):
            return f"expected a comma-separated list of {', '.join(self.choices)}"
        return tuple(dict.fromkeys(names))


class Widths(_CommaList):
    """Positive integers (layer widths), at least ``least`` of them (``too_few`` says what fewer lack)."""

    name = "widths"

    def __init__(self, example: str, least: int = 1, too_few: str = "") -> None:
        self.example, self.least, self.too_few = example, least, too_few

    def parse(self, items: list[str]) -> tuple[Any, ...] | str:
        try:
            widths = tuple(int(v) for v in items)
        except ValueError:
            widths = ()
        if not widths or any(w < 1 for w in widths):
            return f"expected comma-separated positive integers such as {self.example}"
        return widths if len(widths) >= self.least else f"{self.too_few}, e.g. {self.example}"
