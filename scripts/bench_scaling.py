"""Speed of one process against two (torchrun, gloo) on the CPU: a training epoch and an evaluation.

    python scripts/bench_scaling.py [--configs 1x1,2x1,1x2] [--n-train 2048] [--n-eval 512]
                                    [--model cnn-small] [--steps 10] [--out results/bench_scaling.md]

A configuration PxT is P processes of T threads each: 1x1 runs one plain process (no torchrun), 2x1 runs
``torchrun --standalone --nproc_per_node 2``; 1x2 is one process given the same two cores as threads.
Every configuration runs the same program (this file with ``--worker``): one epoch of ``fit`` (cnn-small
on the first ``--n-train`` mnist-5k images, global batch 128, Adam, its test-accuracy pass on 500 images
included) and ``robust_accuracy`` with PGD-``--steps`` at ε = 0.1 on ``--n-eval`` test images (blocks of
256 shared out). Each phase is timed between barriers on process 0; the minimum of ``--repeats`` runs
counts. On two cores, two processes cannot be more than 2× faster than one: the speedup column says how
close they come (the gradient all-reduce, the shuffling and the test pass done by every process, and
evaluation blocks that do not split evenly are what is lost).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def worker(args: argparse.Namespace) -> None:
    """One run of the timed program, in every process of a configuration."""
    import torch

    torch.set_num_threads(args.threads)
    from advgrad import distributed
    from advgrad.configs import TrainConfig
    from advgrad.data.builtin import Dataset, load_dataset
    from advgrad.evaluate import robust_accuracy
    from advgrad.models.zoo import build_for
    from advgrad.training.train import fit

    with distributed.session("cpu"):
        full = load_dataset("mnist-5k")
        data = Dataset(full.name, full.x_train[:args.n_train], full.y_train[:args.n_train], full.x_test[:500],
                       full.y_test[:500], full.class_names, full.mean, full.std)
        config = TrainConfig(epochs=1, batch_size=128, lr=1e-3, device="cpu")
        x, y = full.x_test[:args.n_eval], full.y_test[:args.n_eval]
        warm, _ = build_for(args.model, data, seed=0)  # first calls: imports, allocator, the chunk-size probe
        fit(warm, Dataset(data.name, data.x_train[:128], data.y_train[:128], data.x_test[:10], data.y_test[:10],
                          data.class_names, data.mean, data.std), config)
        robust_accuracy(warm, x[:16], y[:16], eps=(0.1,), attacks=("pgd",), steps=1)
        model, _ = build_for(args.model, data, seed=0)
        distributed.barrier()
        start = time.perf_counter()
        fit(model, data, config)
        distributed.barrier()
        train = time.perf_counter() - start
        distributed.barrier()
        start = time.perf_counter()
        records = robust_accuracy(model, x, y, eps=(0.1,), attacks=("pgd",), steps=args.steps)
        distributed.barrier()
        evaluation = time.perf_counter() - start
        if distributed.is_main():
            Path(args.worker).write_text(json.dumps({"train": train, "eval": evaluation,
                                                     "accuracy": records[0]["accuracy"]}))


def run(config: str, args: argparse.Namespace) -> dict[str, float]:
    processes, threads = (int(v) for v in config.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "times.json"
        env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
        launcher = [sys.executable] if processes == 1 else \
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
        options = ["--worker", str(out), "--threads", str(threads), "--n-train", str(args.n_train),
                   "--n-eval", str(args.n_eval), "--model", args.model, "--steps", str(args.steps)]
        proc = subprocess.run([*launcher, str(Path(__file__).resolve()), *options], env=env, capture_output=True,
                              text=True, timeout=3600)
        if proc.returncode != 0:  # say why: the launcher's and the workers' last words
            raise SystemExit(f"{config} failed with exit status {proc.returncode}:\n{proc.stderr[-3000:]}")
        return json.loads(out.read_text())


def machine() -> str:
    import torch

    load = " ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
            f"Python {platform.python_version()}; load average {load}")


def table(best: dict[str, dict[str, float]], args: argparse.Namespace, command: str) -> str:
    base = best[args.configs.split(",")[0]]
    lines = ["# One process against two (CPU, torchrun + gloo)", "", f"    {command}", "", f"Machine: {machine()}.",
             "", f"{args.model}: one training epoch on {args.n_train} mnist-5k images (batch 128, test pass on "
             f"500), PGD-{args.steps} at ε = 0.1 on {args.n_eval} test images; minimum of {args.repeats} runs. "
             f"Speedup: relative to {args.configs.split(',')[0]} (processes x threads per process).", "",
             "| processes x threads | train epoch s | speedup | evaluation s | speedup | PGD accuracy |",
             "|---|---:|---:|---:|---:|---:|"]
    for config, t in best.items():
        lines.append(f"| {config} | {t['train']:.2f} | {base['train'] / t['train']:.2f}× | {t['eval']:.2f} | "
                     f"{base['eval'] / t['eval']:.2f}× | {t['accuracy']:.2%} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default="1x1,2x1,1x2", help="comma-separated PROCESSESxTHREADS")
    p.add_argument("--n-train", type=int, default=2048)
    p.add_argument("--n-eval", type=int, default=512)
    p.add_argument("--model", default="cnn-small")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "bench_scaling.md")
    args = p.parse_args(argv)
    if args.worker is not None:
        worker(args)
        return 0
    best: dict[str, dict[str, float]] = {}
    for _ in range(args.repeats):
        for config in args.configs.split(","):
            t = run(config, args)
            old = best.get(config)
            best[config] = t if old is None else {k: min(old[k], t[k]) if k != "accuracy" else t[k] for k in t}
    command = "python scripts/bench_scaling.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = table(best, args, command.strip())
    from advgrad.records.write import write_text

    write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
