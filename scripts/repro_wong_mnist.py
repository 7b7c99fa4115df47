"""Wong, Rice & Kolter (2020) "fast" adversarial training (fgsm-rs) with cnn-small at ε = 0.3, on mnist-5k.

    python scripts/repro_wong_mnist.py [--out results/repro_wong_mnist] [--threads 1]

Paper (full MNIST, 60,000 digits): conv4×4-16/s2 → conv4×4-32/s2 → fc100 → fc10, 10 epochs, Adam with
a cyclic lr peaking at 5e-3, batch 100, FGSM with a uniform random start and α = 1.25·ε = 0.375:
98.5 % clean, 88.8 % PGD-50×10. Here the same recipe on the 4,000 mnist-5k training digits (15× less
data), evaluated on the 1,000 test digits: clean, FGSM, PGD-20, PGD-50×10 (α = 2.5·ε/steps, random
starts, restarts only on digits not yet fooled). Also a standard-trained baseline and fgsm-rs with a
2-epoch ε warm-up. Each epoch the guard's PGD-10 probe (512 fixed training digits) is recorded; the
table reports the last epoch and the guard's best epoch.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
EPS = 0.3
RUNS = (("standard", None, 0), ("fgsm-rs", "fgsm-rs", 0), ("fgsm-rs, ε warm-up 2 epochs", "fgsm-rs", 2))


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "repro_wong_mnist")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--restarts", type=int, default=10)
    args = p.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    torch.set_num_threads(args.threads)
    from repro_fashion import robust_accuracy

    from advgrad.data.builtin import load_dataset
    from advgrad.models.zoo import build_for
    from advgrad.records.write import write_figure, write_json, write_text
    from advgrad.training.objectives import AdvConfig, RobustProbe, make_objective
    from advgrad.training.train import TrainConfig, fit

    data = load_dataset("mnist-5k")
    config = TrainConfig(epochs=args.epochs, batch_size=100, optimizer="adam", lr=5e-3, schedule="one-cycle",
                         seed=0, device="cpu")
    g = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(data.y_train), generator=g)[:512]
    rows, curves = [], {}
    for label, method, warmup in RUNS:
        model, _ = build_for("cnn-small", data, seed=0)
        objective = None if method is None else make_objective(
            AdvConfig(method, EPS, eps_warmup=warmup), epochs=args.epochs, seed=0)
        probe = RobustProbe(data.x_train[pick], data.y_train[pick], EPS, steps=10, seed=0)
        best = {"state": None}

        def on_epoch_end(epoch: int, rec: dict, probe=probe, model=model, best=best) -> None:
            if probe.update(epoch, rec, model):
                best["state"] = copy.deepcopy(model.state_dict())

        start = time.perf_counter()
        history = fit(model, data, config, objective=objective, on_epoch_end=on_epoch_end)
        train_s = time.perf_counter() - start
        curves[label] = [r["robust_accuracy"] for r in history.epochs]
        for which in ("last", "best"):
            if which == "best":
                if probe.best_epoch == args.epochs:
                    continue
                model.load_state_dict(best["state"])
            model.eval()
            x, y = data.x_test, data.y_test
            t = time.perf_counter()
            row = {"training": label, "checkpoint": which if which == "last" else f"best (epoch {probe.best_epoch})",
                   "clean": robust_accuracy(model, x, y, 0.0, steps=0),
                   "fgsm": robust_accuracy(model, x, y, EPS, steps=0),
                   "pgd20": robust_accuracy(model, x, y, EPS, steps=20),
                   "pgd50x10": robust_accuracy(model, x, y, EPS, steps=50, restarts=args.restarts),
                   "train_seconds": train_s, "eval_seconds": time.perf_counter() - t,
                   "probe": curves[label]}
            rows.append(row)
            print(row, flush=True)
    lines = ["# Wong et al. (2020) fast adversarial training on mnist-5k, ε = 0.3", "",
             f"`python scripts/repro_wong_mnist.py --epochs {args.epochs} --restarts {args.restarts}`", "",
             f"cnn-small, {args.epochs} epochs, Adam one-cycle lr peak 5e-3, batch 100, seed 0, 4,000 training / "
             "1,000 test digits. fgsm-rs: uniform start in the ε-ball, one step α = 1.25·ε = 0.375.", "",
             "| training | checkpoint | train s | clean | FGSM | PGD-20 | PGD-50×10 |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['training']} | {r['checkpoint']} | {r['train_seconds']:.0f} | {r['clean']:.1%} | "
                     f"{r['fgsm']:.1%} | {r['pgd20']:.1%} | {r['pgd50x10']:.1%} |")
    lines += ["", "Paper (full MNIST, 60,000 digits): 98.5 % clean, 88.8 % PGD-50×10.", "",
              "![probe](probe.png)", "",
              f"Machine: {platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, torch threads "
              f"{torch.get_num_threads()}, 1-min load average {os.getloadavg()[0]:.1f} at the end (shared with "
              "other jobs, so seconds are inflated).", ""]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, c in curves.items():
        ax.plot(range(1, len(c) + 1), [100 * v for v in c], marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("PGD-10 accuracy on 512 training digits (%)")
    ax.set_title("The catastrophic-overfitting guard's probe, ε = 0.3")
    ax.legend()
    ax.grid(alpha=0.3)
    write_figure(args.out / "probe.png", fig)
    write_text(args.out / "README.md", "\n".join(lines))
    write_json(args.out / "results.json", {"rows": rows, "epochs": args.epochs})
    print("\n".join(lines))
    return rows


if __name__ == "__main__":
    main()
