"""How many samples per forward/backward pass: the sweep behind advgrad's default chunk of 256 on the CPU.

For each model, ``advgrad.input_gradient`` (one forward and one ∂J/∂X) over the same batch is timed with
the batch cut into chunks of 16 … 1,000 samples and in one piece; the contenders run interleaved,
``--repeats`` times after a warm-up, and the median counts. Each chunk size's gradient is also compared
with the one-piece gradient: bit for bit, or its largest difference relative to the largest gradient entry
(chunks of fewer rows may get another matrix-multiply kernel, which rounds the last bit differently).

    python scripts/bench_chunk_size.py                 # writes results/bench_chunk_size.md
    python scripts/bench_chunk_size.py --models cnn-small --repeats 3 --no-write
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from advgrad.attacks import auto_chunk_size, input_gradient  # noqa: E402
from advgrad.data.builtin import load_dataset  # noqa: E402
from advgrad.models.zoo import build_model  # noqa: E402
from advgrad.records.write import write_text  # noqa: E402

CHUNKS = (16, 32, 64, 128, 256, 512)
# model name → input shape; MNIST-shaped models run on mnist-5k digits, the rest on uniform noise
# (the speed depends on the shapes, not on the values).
SHAPES = {"logreg": (1, 28, 28), "mlp": (1, 28, 28), "cnn-small": (1, 28, 28), "cnn": (1, 28, 28),
          "preact-resnet18": (3, 32, 32)}


def sweep(name: str, n: int, repeats: int) -> tuple[dict[int, float], dict[int, float], dict[int, float], int]:
    """Median seconds per chunk size (n = one piece), MiB of page faults per pass, each gradient's largest
    difference from the one-piece one relative to the largest entry (0.0: bit for bit the same), and the
    size advgrad picks by default."""
    shape = SHAPES[name]
    if shape == (1, 28, 28):
        data = load_dataset("mnist-5k")
        x, y = data.x_test[:n].contiguous(), data.y_test[:n].contiguous()
        mean, std = data.mean, data.std
    else:
        g = torch.Generator().manual_seed(0)
        x, y = torch.rand(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g)
        mean, std = [0.5] * shape[0], [0.25] * shape[0]
    torch.manual_seed(0)
    model = build_model(name, input_shape=shape, num_classes=10, mean=mean, std=std).eval()
    auto = auto_chunk_size(model, x)
    sizes = sorted({c for c in CHUNKS if c < n} | {auto, n})
    whole = input_gradient(model, x, y, chunk_size=n)
    scale = float(whole.abs().max()) or 1.0
    same = {c: float((input_gradient(model, x, y, chunk_size=c) - whole).abs().max()) / scale
            for c in sizes}  # also warms up
    times: dict[int, list[float]] = {c: [] for c in sizes}
    faults = dict.fromkeys(sizes, 0)
    for _ in range(repeats):
        for c in sizes:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.perf_counter()
            input_gradient(model, x, y, chunk_size=c)
            times[c].append(time.perf_counter() - start)
            faults[c] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    page_mib = resource.getpagesize() / 2**20
    return ({c: statistics.median(t) for c, t in times.items()},
            {c: faults[c] * page_mib / repeats for c in sizes}, same, auto)


def _mark(rel: float) -> str:
    return "" if rel == 0.0 else f" ≠ {rel:.1e}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="logreg,mlp,cnn-small,cnn,preact-resnet18")
    ap.add_argument("--n", type=int, default=1000, help="samples in the batch (preact-resnet18: a quarter)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench_chunk_size.md")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args(argv)
    names = args.models.split(",")
    unknown = [m for m in names if m not in SHAPES]
    if unknown:
        ap.error(f"unknown model {unknown[0]!r}: expected one of {', '.join(SHAPES)}")

    rows = []
    for name in names:
        n = max(args.n // 4, 1) if name == "preact-resnet18" else args.n  # ~60× the work per image
        repeats = max(2, args.repeats // 3) if name == "preact-resnet18" else args.repeats
        seconds, faulted, same, auto = sweep(name, n, repeats)
        best = min(seconds, key=seconds.__getitem__)
        cells = [f"{seconds[c] * 1e3:.1f}" + _mark(same[c]) for c in seconds]
        rows.append((name, n, seconds, faulted, same, best, auto))
        print(f"{name:>16} n={n:<5}" + "  ".join(f"{c}:{v}" for c, v in zip(seconds, cells))
              + f"   best {best}; advgrad's choice {auto}: {seconds[auto] / seconds[best]:.2f}× the best,"
              f" one piece {seconds[n] / seconds[best]:.2f}×; page faults MiB/pass "
              + " ".join(f"{c}:{v:.0f}" for c, v in faulted.items()), flush=True)

    if not args.no_write:
        cmd = " ".join(["python scripts/bench_chunk_size.py", *(sys.argv[1:] if argv is None else argv)])
        load = " ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
        lines = [
            "# Samples per pass: forward + ∂J/∂X time against the chunk size",
            "",
            f"Command: `{cmd}` (median of interleaved runs after a warm-up).",
            "",
            f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} with "
            f"{torch.get_num_threads()} threads, Python {platform.python_version()}; load average {load}.",
            "",
            "`advgrad.input_gradient(model, x, y, chunk_size=c)` on one batch: the first row is the median time; "
            "the last column "
            "is the batch in one piece; * marks the size advgrad picks by default (`auto_chunk_size`). "
            "≠ d marks a gradient that differs from the one-piece one (largest difference d relative to the "
            "largest entry; none means bit for bit the same). The second row is the memory "
            "the pass touched afresh (minor page faults × page size, MiB per pass, from `getrusage`).",
            "",
        ]
        for name, n, seconds, faulted, same, best, auto in rows:
            head = " | ".join(("one piece" if c == n else str(c)) + (" *" if c == auto else "") for c in seconds)
            lines += [f"**{name}**, {n} samples (fastest: {'one piece' if best == n else best}; advgrad's "
                      f"choice {seconds[auto] / seconds[best]:.2f}× the fastest, one piece "
                      f"{seconds[n] / seconds[best]:.2f}×)", "",
                      f"| {head} |", "|" + "---:|" * len(seconds),
                      "| " + " | ".join(f"{seconds[c] * 1e3:.1f} ms" + _mark(same[c]) for c in seconds)
                      + " |",
                      "| " + " | ".join(f"{faulted[c]:.1f} MiB" for c in seconds) + " |", ""]
        write_text(args.out, "\n".join(lines))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
