"""Cost of one adversarial-training epoch relative to a clean one (a benchmark, not a test).

    python scripts/bench_adv_train.py [--n 2560] [--repeats 3] [--threads 1] [--out results/bench_adv_train.md]

One process, one model (cnn-small on mnist-5k, batch 128, Adam), one epoch of ``fit`` per method on the
first ``--n`` training images (the epoch's test-accuracy pass included, as in a real run). The methods
are run interleaved ``--repeats`` times and the minimum is kept (the least-disturbed run: this machine
is shared). Targets (issue 6): fgsm-rs ≤ 2.2× clean; pgd with K steps ≤ (K + 1.2)× clean.
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = (("clean", None, None), ("fgsm", "fgsm", None), ("fgsm-rs", "fgsm-rs", None),
           ("pgd-3", "pgd", 3), ("pgd-7", "pgd", 7), ("trades-7", "trades", 7))


def bound(name: str) -> float | None:
    if name == "fgsm-rs":
        return 2.2
    if name.startswith("pgd-"):
        return int(name.split("-")[1]) + 1.2
    return None


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2560)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="Write the markdown table here.")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from advgrad.data.builtin import Dataset, load_dataset
    from advgrad.models.zoo import build_for
    from advgrad.records.write import write_text
    from advgrad.training.objectives import AdvConfig, make_objective
    from advgrad.training.train import TrainConfig, fit

    full = load_dataset("mnist-5k")
    data = Dataset(full.name, full.x_train[:args.n], full.y_train[:args.n], full.x_test[:500], full.y_test[:500],
                   full.class_names, full.mean, full.std)
    config = TrainConfig(epochs=1, batch_size=128, lr=1e-3, device="cpu")
    best: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, method, steps in METHODS:
            model, _ = build_for("cnn-small", data, seed=0)
            objective = None if method is None else make_objective(AdvConfig(method, 0.3, steps=steps), epochs=1)
            seconds = fit(model, data, config, objective=objective).final["seconds"]
            best[name] = min(best.get(name, float("inf")), seconds)
    clean = best["clean"]
    load = os.getloadavg()[0]
    lines = ["# Cost of an adversarial-training epoch", "",
             f"`python scripts/bench_adv_train.py --n {args.n} --repeats {args.repeats} --threads {args.threads}`", "",
             f"cnn-small, mnist-5k (first {args.n} training images, 500 test images for the epoch's accuracy), "
             f"batch 128, ε = 0.3; minimum over {args.repeats} interleaved runs.", "",
             "| method | seconds / epoch | × clean | target |", "|---|---:|---:|---:|"]
    for name, _, _ in METHODS:
        b = bound(name)
        target = f"≤ {b:.1f}× ({'met' if best[name] / clean <= b else 'MISSED'})" if b else ""
        lines.append(f"| {name} | {best[name]:.2f} | {best[name] / clean:.2f} | {target} |")
    lines += ["", f"Machine: {platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, torch threads "
              f"{torch.get_num_threads()}, torch {torch.__version__}; 1-min load average {load:.1f} at the end "
              "(shared with other jobs).", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        write_text(args.out, text)
    return best


if __name__ == "__main__":
    main()
