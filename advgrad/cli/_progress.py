"""How a command reports progress: a tqdm bar while stderr is a terminal; elsewhere (CI, nohup, a job
scheduler's log) one plain line per completed unit, at most one every ``ADVGRAD_PROGRESS_INTERVAL`` seconds
(default 10) plus the final one; nothing at all after ``advgrad --quiet``.

The library reports through callbacks and never prints: ``progress(done, total)`` (in samples for eval and
attack) and, where a run knows more than a count, ``on_status(text)`` with a short description of where it
stands ("apgd-t, robust 71.3 %"). A ``Reporter`` is both: pass ``progress=bar`` and ``on_status=bar.status``.
The text is shown after the count from then on (the bar's postfix, or a part of each line) until the next
``status`` replaces it ("" clears it); a run calls ``on_status`` for a unit before that unit's ``progress``.

Off a terminal a line reads ``eval: 400/1000 images (40%) | apgd-t, robust 71.3 % | 1 min 12 s elapsed,
~1 min 48 s left`` (the estimate assumes the rest goes at the pace so far). The first line comes no sooner
than one interval after the start, so a run shorter than that leaves the log as it was; once a line has
been written, the final count (done = total) is always written too."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, Literal

import click

INTERVAL_ENV = "ADVGRAD_PROGRESS_INTERVAL"  # seconds between two lines off a terminal
DEFAULT_INTERVAL = 10.0
QUIET = "advgrad.quiet"  # the key in click's Context.meta under which `advgrad --quiet` is kept

Mode = Literal["bar", "lines", "off"]


def quiet() -> bool:
    """True when the running command was started as ``advgrad --quiet CMD``."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get(QUIET, False))


def on_terminal() -> bool:
    """Whether stderr is a terminal (False for a replaced or closed stderr)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def interval() -> float:
    """``ADVGRAD_PROGRESS_INTERVAL`` in seconds (default 10); a bad value is a one-line usage error."""
    text = os.environ.get(INTERVAL_ENV, "").strip()
    if not text:
        return DEFAULT_INTERVAL
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise click.UsageError(f"{INTERVAL_ENV}={text!r}: expected a number of seconds ≥ 0")
    return value


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Reporter:
    """The CLI's progress report: ``bar(done, total)`` is the library's ``progress`` callback and
    ``bar.status(text)`` its ``on_status``; a context manager (the bar is erased, or nothing more is
    written, on leaving). ``mode``: "bar" (tqdm on stderr), "lines" (see the module docstring) or "off"."""

    def __init__(self, desc: str, unit: str, mode: Mode, *, every: float = DEFAULT_INTERVAL, initial: int = 0) -> None:
        self.desc, self.unit, self.mode, self.every = desc, unit, mode, every
        self.text = ""
        self.done, self.total, self.initial = initial, 0, initial  # initial: done before this process began
        self.start = self.last = time.monotonic()
        self.written = 0  # lines written
        self._shown: tuple[int, int, str] | None = None  # (done, total, text) of the last line
        self._lock = threading.Lock()  # a callback may come from a worker thread
        self._bar: Any = None
        if mode == "bar":
            from tqdm import tqdm

            # delay: nothing flashes up for a run shorter than 0.3 s, unless tqdm's own TQDM_DELAY says otherwise
            # (tqdm reads TQDM_* only for arguments not passed); leave=False: the finished bar is erased.
            delay = {} if "TQDM_DELAY" in os.environ else {"delay": 0.3}
            self._bar = tqdm(total=0, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True,
                             initial=initial, **delay)

    def __call__(self, done: int, total: int) -> None:
        with self._lock:
            self.done, self.total = done, total
            if self._bar is not None:
                if self._bar.total != total:
                    self._bar.total = total
                self._bar.update(done - self._bar.n)
            elif self.mode == "lines":
                self._maybe_write(final=total > 0 and done >= total)

    def status(self, text: str) -> None:
        """Where the run stands, beyond the count (e.g. "apgd-t, robust 71.3 %"); "" clears it. It writes no
        line itself: report a unit's status first, then its count (the line that count writes shows both)."""
        with self._lock:
            self.text = text
            if self._bar is not None:
                self._bar.set_postfix_str(text, refresh=False)

    def _maybe_write(self, final: bool) -> None:
        now, state = time.monotonic(), (self.done, self.total, self.text)
        if state == self._shown:  # a call that counted nothing new (an empty batch, ε = 0's pass)
            return
        if now - self.last >= self.every or (final and self.written):
            self.last, self.written, self._shown = now, self.written + 1, state
            click.echo(self.line(now), err=True)

    def line(self, now: float | None = None) -> str:
        """The line written off a terminal for the state now."""
        elapsed = (time.monotonic() if now is None else now) - self.start
        share = f" ({100 * self.done // self.total}%)" if self.total > 0 else ""  # floor: 100% only when done
        parts = [f"{self.desc}: {self.done}/{self.total} {self.unit}s{share}"]
        if self.text:
            parts.append(self.text)
        timing = f"{duration(elapsed)} elapsed"
        ran = self.done - self.initial
        if ran > 0 and self.done < self.total:
            timing += f", ~{duration(elapsed / ran * (self.total - self.done))} left"
        return " | ".join([*parts, timing])

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(desc: str, unit: str, *, bar: bool = True, initial: int = 0) -> Reporter:
    """The report of a command now: a bar on a terminal (``bar=False``: none there, where the library draws
    its own), lines elsewhere, nothing after ``advgrad --quiet``. ``initial``: units done before this run
    started (a resumed run), left out of the time estimate."""
    if quiet():
        mode: Mode = "off"
    elif on_terminal():
        mode = "bar" if bar else "off"
    else:
        mode = "lines"
    return Reporter(desc, unit, mode, every=interval() if mode == "lines" else DEFAULT_INTERVAL, initial=initial)
