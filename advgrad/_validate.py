"""Small checks shared by every config and public function: each returns the value (normalised) or raises
a ValueError that names the value and says what is allowed. Nothing here imports torch."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")


class ParameterError(ValueError):
    """A bad value of one named parameter: the message is the parameter's name followed by ``text``
    ("target_class 12 is out of range: ..."). The CLI spells ``parameter`` as its option (--target-class)
    and names "a/b" as "--a/--b"; Python callers read the name they passed."""

    def __init__(self, parameter: str, text: str) -> None:
        super().__init__(parameter + text)
        self.parameter = parameter
        self.text = text


def flag(name: str, value: object) -> None:
    """A bool (True or False; 0 and 1 are not flags here)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def count(name: str, value: object, minimum: int = 1, *, phrase: str | None = None) -> int:
    """An integer ≥ ``minimum`` (bools are not integers here). ``phrase`` replaces "an integer ≥ minimum"
    in the message."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be {phrase or f'an integer ≥ {minimum}'}, got {value!r}")
    return value


def optional_count(name: str, value: object, minimum: int = 1) -> int | None:
    return None if value is None else count(name, value, minimum)


def number(name: str, value: object, *, minimum: float | None = None, strict: bool = False,
           below: float | None = None, phrase: str | None = None) -> float:
    """A finite real number, ≥ ``minimum`` (> with ``strict``) and < ``below`` when given. ``phrase``
    replaces "finite and ≥ minimum" in the message."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be {phrase or 'a number'}, got {value!r}")
    v = float(value)
    rule = []
    if minimum is not None:
        rule.append(f"{'>' if strict else '≥'} {minimum:g}")
    if below is not None:
        rule.append(f"< {below:g}")
    ok = math.isfinite(v) and (minimum is None or (v > minimum if strict else v >= minimum)) \
        and (below is None or v < below)
    if not ok:
        what = phrase or "finite" + (" and " + " and ".join(rule) if rule else "")
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return v


def fraction(name: str, value: object) -> float:
    """A real number in [0, 1]."""
    v = number(name, value, phrase="a number in [0, 1]")
    if not 0 <= v <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return v


def one_of(name: str, value: T, allowed: Iterable[T]) -> T:
    """``value`` if it is one of ``allowed``; the message lists them."""
    options = list(allowed)
    if value not in options:
        raise ValueError(f"unknown {name} {value!r}: expected one of {', '.join(map(str, options))}")
    return value


def bounds(value: object) -> tuple[float, float]:
    """A pair (lo, hi) of finite floats with lo < hi."""
    try:
        lo, hi = (float(b) for b in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise ValueError(f"bounds must be a pair (lo, hi), got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise ValueError(f"bounds must be finite with lo < hi, got {value!r}")
    return lo, hi


def numbers(name: str, values: object, *, minimum: float = 0.0) -> tuple[float, ...]:
    """A non-empty sequence of finite numbers ≥ ``minimum``, as a tuple of floats."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r}")
    out = tuple(number(name, v, minimum=minimum) for v in values)
    if not out:
        raise ValueError(f"{name}: give at least one value")
    return out


def names(name: str, values: object, allowed: Iterable[str]) -> tuple[str, ...]:
    """A non-empty sequence of distinct names, each one of ``allowed``."""
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise ValueError(f"{name} must be a sequence of names, got {values!r}")
    out = tuple(values)
    options = list(allowed)
    if not out:
        raise ValueError(f"{name}: give at least one of {', '.join(options)}")
    for v in out:
        one_of(name.rstrip("s"), v, options)
    if len(set(out)) != len(out):
        raise ValueError(f"{name} repeat: {', '.join(out)}")
    return out


def parse_image_size(value: int | Sequence[int] | str | None) -> tuple[int, int] | None:
    """``--image-size``: "224" or "224,192" (H,W), an int or a pair → (H, W); None stays None."""
    if value is None:
        return None
    parts: Sequence[object]
    if isinstance(value, str):
        parts = [int(p) if p.strip().isdigit() else p for p in value.split(",")]
    else:
        parts = [value] if isinstance(value, int) else list(value)
    if len(parts) not in (1, 2):
        raise ValueError(f"image_size must be H or H,W (positive integers), got {value!r}")
    sizes = [count("image_size", p, phrase="H or H,W (positive integers)") for p in parts]
    return (sizes[0], sizes[-1])
