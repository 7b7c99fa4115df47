"""The progress count every evaluation function reports through: ``progress(done, total)``, in samples,
where every pass of an attack over N samples counts N (the library never prints; the CLI draws a bar)."""

from __future__ import annotations

# progress(samples done, samples in all): one type, the runner's
from advgrad.attacks.runner import Progress as Progress


class Tally:
    """Counts samples done against a planned total for a ``progress`` callback (a no-op without one)."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0

    def __call__(self, k: int) -> None:
        self.done += k
        if self.progress is not None:
            self.progress(self.done, self.total)


def parts(progress: Progress | None, sizes: list[int]) -> list[Progress | None]:
    """One ``progress`` over consecutive parts of a run: part i's own (done, total) becomes a point of the
    whole (the parts before it done, out of their sum)."""
    total = sum(sizes)

    def part(i: int) -> Progress | None:
        before = sum(sizes[:i])
        return None if progress is None else (lambda done, _total: progress(before + done, total))

    return [part(i) for i in range(len(sizes))]
