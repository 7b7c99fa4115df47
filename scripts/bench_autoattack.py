"""Speed of advgrad's AutoAttack against the reference (pyautoattack 0.2.0), with the verdicts compared.

One model, one set of points, one process: the reference's ``AutoAttack(version="standard")`` and
``advgrad.autoattack`` (same ε, norm, seed, blocks of 250) run in turn ``--repeats`` times (interleaved, so
that load drifts hit both alike); the median counts. Per-member seconds of the reference are read from its
own log ("robust accuracy after … (total time … s)"), advgrad's from ``AutoAttackResult.seconds``. The
per-sample robust flags of the two must agree; the table says how many disagree.

    python scripts/bench_autoattack.py --n 200 --repeats 1                # cnn-small trained here, 2 epochs
    python scripts/bench_autoattack.py --model runs/x/model.pt --eps 0.1 --n 500
    python scripts/bench_autoattack.py --model runs/x/model.pt --eps 0.1 --n 600 --cli

``--cli`` times the command as well, in this process: ``advgrad attack --method autoattack`` on the same
points (its first ``--n`` test images, same ε, norm and seed; reading the checkpoint included), its
per-sample flags from the examples it saves; the table then has its ratio beside the library's.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import re
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from advgrad.attacks import autoattack  # noqa: E402
from advgrad.data.builtin import Dataset, load_dataset  # noqa: E402
from advgrad.models.checkpoint import load_checkpoint  # noqa: E402
from advgrad.models.zoo import build_for  # noqa: E402
from advgrad.records.write import write_text  # noqa: E402
from advgrad.training.train import TrainConfig, fit  # noqa: E402

MEMBERS = ("apgd-ce", "apgd-t", "fab-t", "square")
_LOGGED = re.compile(r"robust accuracy after (\S+): .*\(total time ([0-9.]+) s\)")


class _Times(logging.Handler):
    """Collects the reference's cumulative time after each member from its log records."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.total: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        found = _LOGGED.search(record.getMessage())
        if found:
            self.total[found.group(1).lower()] = float(found.group(2))


def reference(model: nn.Module, x: Tensor, y: Tensor, eps: float, norm: str,
              seed: int) -> tuple[Tensor, dict[str, float]]:
    """pyautoattack's standard AutoAttack: (robust flags (N,), seconds per member from its log)."""
    import pyautoattack

    attack = pyautoattack.AutoAttack(model, norm={"inf": "Linf", "2": "L2"}[norm], eps=eps, version="standard",
                                     seed=seed, device="cpu")
    times = _Times()
    log = logging.getLogger("auto-attack")
    log.addHandler(times)
    log.setLevel(logging.DEBUG)
    log.propagate = False  # silent: only our handler hears it
    try:
        with torch.random.fork_rng():  # it reseeds torch's global RNG
            out = attack.run_standard_evaluation(x.clone(), y.clone(), batch_size=250)
    finally:
        log.removeHandler(times)
    x_adv = out[0] if isinstance(out, tuple) else out
    with torch.no_grad():
        robust = model(x_adv).argmax(1) == y
    cumulative = [times.total.get(m, float("nan")) for m in MEMBERS]
    return robust, {m: t - (cumulative[i - 1] if i else 0.0) for i, (m, t) in enumerate(zip(MEMBERS, cumulative))}


def command(model_path: Path, n: int, eps: float, norm: str, seed: int) -> tuple[Tensor, dict[str, float]]:
    """``advgrad attack --method autoattack`` in this process: (robust flags (N,), {} — the command reports
    no per-member seconds in its examples)."""
    import tempfile

    import numpy as np

    from advgrad.cli import main as cli

    with tempfile.TemporaryDirectory() as tmp:
        examples = Path(tmp) / "aa.npz"
        cli(["attack", "--model", str(model_path), "--n", str(n), "--eps", str(eps), "--norm", norm, "--method",
             "autoattack", "--seed", str(seed), "--device", "cpu", "--out", str(Path(tmp) / "aa.json"),
             "--save-examples", str(examples)], standalone_mode=False)
        arrays = np.load(examples)
        return torch.from_numpy(arrays["pred_adv"] == arrays["y"]), {}


def train_model(data: Dataset, epochs: int, seed: int = 0) -> nn.Module:
    """cnn-small trained ``epochs`` epochs on mnist-5k, seeded (as the tests' ``trained_small``)."""
    config = TrainConfig(epochs=epochs, batch_size=64, lr=2e-3, schedule="one-cycle", seed=seed, device="cpu")
    model, _ = build_for("cnn-small", data, seed=seed)
    fit(model, data, config)
    return model.eval()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    load = " ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (f"{cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} "
            f"threads, Python {platform.python_version()}; load average before the runs {load}")


def timed(run: Callable[[], tuple[Tensor, dict[str, float]]]) -> tuple[float, Tensor, dict[str, float]]:
    start = time.perf_counter()
    flags, members = run()
    return time.perf_counter() - start, flags, members


def _cell(times: list[float]) -> str:
    """Median seconds of one member, "–" where it did not run (no robust point left)."""
    t = statistics.median(times)
    return "–" if t != t else f"{t:.1f}"


def table(args: argparse.Namespace, cmd: str, load: str, seconds: dict[str, list[float]],
          members: dict[str, dict[str, list[float]]], flags: dict[str, Tensor], model_desc: str) -> str:
    med = {who: statistics.median(t) for who, t in seconds.items()}
    ratio = med["advgrad"] / med["reference"]
    disagree = int((flags["advgrad"] != flags["reference"]).sum())
    also = [who for who in seconds if who not in ("reference", "advgrad")]
    lines = [
        "# AutoAttack speed: advgrad vs the reference (pyautoattack 0.2.0)",
        "",
        f"Command: `{cmd}` (median of {args.repeats} interleaved runs each).",
        "",
        f"Machine: {load}.",
        "",
        f"Model: {model_desc}. Points: its first {args.n} test images; standard version, "
        f"{'L∞' if args.norm == 'inf' else 'L2'} ε = {args.eps}, seed {args.seed}, blocks of 250; advgrad with "
        f"{args.workers or 'the default'} workers.",
        "",
        "| implementation | median s | runs (s) | apgd-ce | apgd-t | fab-t | square | robust accuracy |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for who in ("reference", "advgrad", *also):
        per = " | ".join(_cell(members[who][m]) for m in MEMBERS)
        runs = ", ".join(f"{t:.1f}" for t in seconds[who])
        lines.append(f"| {who} | {med[who]:.1f} | {runs} | {per} | {float(flags[who].float().mean()):.2%} |")
    lines += ["", "Per-member seconds: the reference's from its log (rounded there to 0.1 s), advgrad's from "
              "`AutoAttackResult.seconds`.", "", f"Ratio advgrad / reference (medians): **{ratio:.2f}**.", "",
              f"Robust flags agree: {disagree} disagreements out of {args.n} points.", ""]
    for who in also:
        lines += [f"`advgrad attack --method autoattack` (the command, in this process, reading the checkpoint): "
                  f"ratio to the reference **{med[who] / med['reference']:.2f}** (the library's: {ratio:.2f}); "
                  f"{int((flags[who] != flags['reference']).sum())} of {args.n} flags differ from the reference's.",
                  ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="points: the first n test images of the model's data set")
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--norm", choices=("inf", "2"), default="inf")
    ap.add_argument("--model", type=Path, default=None, help="an advgrad checkpoint (default: train cnn-small)")
    ap.add_argument("--epochs", type=int, default=2, help="epochs of the cnn-small trained without --model")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=None, help="advgrad's workers (default: its default)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads for both")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--cli", action="store_true", help="also time `advgrad attack --method autoattack` (needs --model)")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench_autoattack.md")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)  # both sides alike, whatever OMP_NUM_THREADS the shell set

    if args.model:  # the test images of the data set the checkpoint was trained on
        ckpt = load_checkpoint(args.model)
        model, data = ckpt.model, load_dataset(ckpt.meta["dataset"]["name"])
        desc = f"checkpoint {args.model}, trained on {data.name}"
    else:
        data = load_dataset("mnist-5k")
        model = train_model(data, args.epochs)
        desc = f"cnn-small trained {args.epochs} epochs on mnist-5k, seed 0"
    x, y = data.x_test[:args.n].float().contiguous(), data.y_test[:args.n].long().contiguous()
    load = machine()

    def ours() -> tuple[Tensor, dict[str, float]]:
        res = autoattack(model, x, y, args.eps, norm=args.norm, seed=args.seed, workers=args.workers)
        return ~res.success, res.seconds

    runs = {"reference": lambda: reference(model, x, y, args.eps, args.norm, args.seed), "advgrad": ours}
    if args.cli:
        if not args.model:
            ap.error("--cli needs --model (the command reads a checkpoint)")
        runs["advgrad attack"] = lambda: command(args.model, args.n, args.eps, args.norm, args.seed)
    seconds: dict[str, list[float]] = {who: [] for who in runs}
    members: dict[str, dict[str, list[float]]] = {who: {m: [] for m in MEMBERS} for who in runs}
    flags: dict[str, Tensor] = {}
    for r in range(args.repeats):
        for who in (runs if r % 2 == 0 else reversed(list(runs))):  # alternate who goes first
            took, flags[who], per = timed(runs[who])
            seconds[who].append(took)
            for m in MEMBERS:
                members[who][m].append(per.get(m, float("nan")))
            print(f"run {r + 1}/{args.repeats} {who:>9}: {took:7.1f} s  robust {float(flags[who].float().mean()):.2%}",
                  flush=True)
    cmd = " ".join(["python scripts/bench_autoattack.py", *(sys.argv[1:] if argv is None else argv)])
    text = table(args, cmd, load, seconds, members, flags, desc)
    print(text)
    write_text(args.out, text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
