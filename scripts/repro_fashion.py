"""Fashion-MNIST at ε = 0.1: standard vs fgsm vs fgsm-rs vs pgd vs trades training, one table + one figure.

Needs Debian's full Fashion-MNIST (``apt-get install dataset-fashion-mnist`` → /usr/share/datasets/
fashion-mnist), not shipped with advgrad. Each method is trained by the real command line
(``python -m advgrad train ... --resume``, so a killed run continues where it stopped), then evaluated on
the 10,000 test images: clean, FGSM, PGD-20 and PGD-50 × 10 restarts (α = 2.5·ε/steps, random starts,
only the points still classified correctly are attacked further: early stop, as AutoAttack does), plus
accuracy against PGD-20 at several ε on the first ``--curve-n`` test images.

    python scripts/repro_fashion.py --stage train --methods pgd        # train one method
    python scripts/repro_fashion.py --stage eval --methods pgd         # evaluate it → OUT/pgd.json
    python scripts/repro_fashion.py --stage report                     # OUT/README.md + figure from the JSONs

Stages can run in separate processes (the table is assembled from whatever JSONs exist). Threads:
``--threads`` (default 1: on a loaded 2-core machine, 2 intra-op threads per process ran 6× slower).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EPS = 0.1
METHODS = ("standard", "fgsm", "fgsm-rs", "pgd", "trades", "pgd-10ep", "pgd5-14ep", "pgd3-20ep")
CURVE_EPS = (0.0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2)
# One recipe per method: cnn-small (Wong et al.'s MNIST net), Adam, one-cycle lr, batch 128.
COMMON = ["--dataset", "fashion-mnist", "--model", "cnn-small", "--batch-size", "128", "--lr", "3e-3",
          "--schedule", "one-cycle", "--seed", "0", "--device", "cpu", "--quiet"]
RECIPES: dict[str, list[str]] = {
    "standard": ["--epochs", "8"],
    "fgsm": ["--epochs", "8", "--adv", "fgsm", "--eps", str(EPS)],
    "fgsm-rs": ["--epochs", "8", "--adv", "fgsm-rs", "--eps", str(EPS)],
    "pgd": ["--epochs", "6", "--adv", "pgd", "--eps", str(EPS), "--adv-steps", "7"],
    "trades": ["--epochs", "6", "--adv", "trades", "--eps", str(EPS), "--adv-steps", "7", "--beta", "6"],
    "pgd-10ep": ["--epochs", "10", "--adv", "pgd", "--eps", str(EPS), "--adv-steps", "7"],
    "pgd5-14ep": ["--epochs", "14", "--adv", "pgd", "--eps", str(EPS), "--adv-steps", "5"],
    "pgd3-20ep": ["--epochs", "20", "--adv", "pgd", "--eps", str(EPS), "--adv-steps", "3"],
}


def train_command(method: str, runs: Path) -> list[str]:
    return [sys.executable, "-m", "advgrad", "train", *COMMON, *RECIPES[method], "--out", str(runs / f"{method}.pt"),
            "--resume"]


def train(method: str, runs: Path, threads: int) -> None:
    cmd = train_command(method, runs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    print("$", " ".join(cmd[1:]), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    print(f"{method}: trained in {time.perf_counter() - start:.0f} s", flush=True)


def robust_accuracy(model: Any, x: Any, y: Any, eps: float, *, steps: int, restarts: int = 1,
                    seed: int = 0) -> float:
    """Accuracy under L∞ FGSM (steps=0) or PGD (steps ≥ 1, random start, early stop) at ``eps``: one call of
    ``advgrad.robust_accuracy`` (only correctly classified points are attacked)."""
    import advgrad

    attack = "fgsm" if steps == 0 else "pgd"
    records = advgrad.robust_accuracy(model, x, y, eps=(eps,), attacks=(attack,), steps=max(steps, 1),
                                      restarts=restarts, seed=seed)
    return float(records[0]["accuracy"])


# PGD-50×10 costs ≈ 500 input gradients per robust image: on the shared 2-core machine it runs on all
# 10,000 test images for the target methods (pgd, trades, standard: cheap, all fooled at once) and on
# the first ``--restarts-n`` images for the others (stated in the table).
FULL_RESTARTS = ("standard", "pgd", "trades", "pgd-10ep", "pgd5-14ep", "pgd3-20ep")


def evaluate(method: str, runs: Path, out: Path, curve_n: int, restarts: int,
             restarts_n: int = 1000) -> dict[str, Any]:
    import torch

    from advgrad.data.builtin import load_dataset
    from advgrad.models.checkpoint import load_checkpoint
    from advgrad.records.write import write_json

    data = load_dataset("fashion-mnist")
    ckpt = load_checkpoint(runs / f"{method}.pt")
    model = ckpt.model.eval()
    x, y = data.x_test, data.y_test
    metrics = json.loads((runs / f"{method}.json").read_text())
    rec: dict[str, Any] = {"method": method, "eps": EPS, "n_test": len(y),
                           "train_command": "advgrad train " + " ".join(COMMON + RECIPES[method]),
                           "epochs": len(metrics["history"]),
                           "seconds_per_epoch": [r["seconds"] for r in metrics["history"]],
                           "train_seconds": sum(r["seconds"] for r in metrics["history"]),
                           "robust_accuracy_probe": [r.get("robust_accuracy") for r in metrics["history"]],
                           "test_accuracy_per_epoch": [r["test_accuracy"] for r in metrics["history"]]}
    timings = {}
    n_restarts = len(y) if method in FULL_RESTARTS else restarts_n
    rec[f"pgd50x{restarts}_n"] = n_restarts
    for name, kw in (("clean", {"eps": 0.0, "steps": 0}), ("fgsm", {"eps": EPS, "steps": 0}),
                     ("pgd20", {"eps": EPS, "steps": 20}),
                     (f"pgd50x{restarts}", {"eps": EPS, "steps": 50, "restarts": restarts})):
        t = time.perf_counter()
        n = n_restarts if name.startswith("pgd50") else len(y)
        rec[name] = robust_accuracy(model, x[:n], y[:n], **kw)  # type: ignore[arg-type]
        timings[name] = time.perf_counter() - t
        print(f"{method}: {name} {rec[name]:.2%} ({timings[name]:.0f} s)", flush=True)
    rec["eval_seconds"] = timings
    rec["curve"] = {str(e): robust_accuracy(model, x[:curve_n], y[:curve_n], e, steps=20) for e in CURVE_EPS}
    rec["curve_n"] = curve_n
    rec["machine"] = machine(torch.get_num_threads())
    write_json(out / f"{method}.json", rec)
    return rec


def machine(threads: int) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, torch threads {threads}, "
            f"load average {load:.1f} at the end")


AA_N = 1000  # test images for the AutoAttack comparison: its cost on the shared 2-core machine


def autoattack_command(method: str, runs: Path, out: Path) -> list[str]:
    """PGD-50×10 and the standard AutoAttack on the same first AA_N test images, one `advgrad eval` run."""
    return [sys.executable, "-m", "advgrad", "eval", "--model", str(runs / f"{method}.pt"), "--eps", str(EPS),
            "--attacks", "pgd,autoattack", "--steps", "50", "--restarts", "10", "--n", str(AA_N), "--no-sanity",
            "--seed", "0", "--out", str(out / "autoattack" / f"{method}.json")]


def autoattack_stage(method: str, runs: Path, out: Path, threads: int) -> None:
    cmd = autoattack_command(method, runs, out)
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)}, cwd=ROOT)


def autoattack_lines(out: Path) -> list[str]:
    """The table of PGD-50×10 against AutoAttack (and its cascade) from the eval records, if any."""
    rows = []
    for m in METHODS:
        path = out / "autoattack" / f"{m}.json"
        if not path.exists():
            continue
        rec = json.loads(path.read_text())
        by = {r["attack"]: r for r in rec["records"] if r["eps"] == EPS}
        aa, pgd = by["autoattack"], by["pgd"]
        cascade = " | ".join(f"{v:.2%}" for v in aa["cascade"].values())
        rows.append(f"| {m} | {rec['clean_accuracy']:.2%} | {pgd['accuracy']:.2%} | {cascade} | "
                    f"{100 * (pgd['accuracy'] - aa['accuracy']):+.2f} | {aa['seconds']:.0f} |")
    if not rows:
        return []
    return ["", f"## PGD-50×10 against AutoAttack (first {AA_N:,} test images)", "",
            "Each row is one `advgrad eval --eps 0.1 --attacks pgd,autoattack --steps 50 --restarts 10 "
            f"--n {AA_N} --no-sanity --seed 0` run (records in [autoattack/](autoattack/)): the standard "
            "AutoAttack's robust accuracy after each member of its cascade (the last is AutoAttack's), and how "
            "many points PGD-50×10 over-reports by. The checkpoints were trained again with the commands above "
            "for this table (out/ is not committed), so their clean accuracy on these images is given here; "
            "it differs from the table above by up to a few tenths of a point.", "",
            "| method | clean | PGD-50×10 | after APGD-CE | after APGD-T | after FAB-T | after Square = AutoAttack "
            "| PGD − AA (points) | AA seconds |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|", *rows, ""]


def report(out: Path, restarts: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from advgrad.records.write import write_figure, write_text

    recs = [json.loads((out / f"{m}.json").read_text()) for m in METHODS if (out / f"{m}.json").exists()]
    key = f"pgd50x{restarts}"
    lines = ["# Fashion-MNIST, ε = 0.1 (L∞): standard vs adversarial training", "",
             "cnn-small (Wong et al.'s MNIST net), Adam, one-cycle lr 3e-3, batch 128, seed 0, "
             "full 60,000 training / 10,000 test images.", "",
             f"| method | epochs | s / epoch | train min | clean | FGSM | PGD-20 | PGD-50×{restarts} |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in recs:
        spe = sum(r["seconds_per_epoch"]) / len(r["seconds_per_epoch"])
        lines.append(f"| {r['method']} | {r['epochs']} | {spe:.0f} | {r['train_seconds'] / 60:.1f} | "
                     f"{r['clean']:.2%} | {r['fgsm']:.2%} | {r['pgd20']:.2%} | {r[key]:.2%}"
                     + ("" if r.get(key + "_n", 10000) == r["n_test"] else f" (first {r[key + '_n']:,})") + " |")
    lines += ["", "Training commands (each also with `--out runs/METHOD.pt --resume`):", ""]
    lines += [f"- {r['method']}: `{r['train_command']}`" for r in recs]
    lines += ["", "Attacks: FGSM; PGD with α = 2.5·ε/steps and a uniform random start; PGD-50×10 keeps, per "
              "image, the first successful restart (restarts run only on images not yet misclassified). "
              "Accuracy is over all 10,000 test images, except where a PGD-50×10 figure says 'first 1,000' "
              "(its cost on the shared machine).", "",
              "![accuracy vs eps](accuracy_vs_eps.png)", "", "![probe](probe.png)", "",
              "Reproduce: `python scripts/repro_fashion.py --stage all` (see its docstring; needs Debian's "
              "dataset-fashion-mnist).", ""]
    lines += autoattack_lines(out)
    if recs:
        # Each run records the machine and the load when it ended: seconds compare only at similar load.
        lines += ["Machine and load per run (the 2 cores were shared with other jobs; seconds are wall time):", ""]
        lines += [f"- {r['method']}: {r['machine']}" for r in recs]
        lines.append("")
    write_text(out / "README.md", "\n".join(lines))
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in recs:
        eps = [float(e) for e in r["curve"]]
        ax.plot(eps, [100 * v for v in r["curve"].values()], marker="o", label=r["method"])
    ax.axvline(EPS, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("ε (L∞)")
    ax.set_ylabel(f"accuracy under PGD-20 (%), first {recs[0]['curve_n'] if recs else 0} test images")
    ax.set_title("Fashion-MNIST, cnn-small, trained at ε = 0.1")
    ax.legend()
    ax.grid(alpha=0.3)
    write_figure(out / "accuracy_vs_eps.png", fig)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for r in recs:
        probe = r["robust_accuracy_probe"]
        if any(v is not None for v in probe):
            ax.plot(range(1, len(probe) + 1), [100 * v for v in probe], marker="o", label=r["method"])
    ax.set_xlabel("epoch")
    ax.set_ylabel("PGD-10 accuracy, 512 training images (%)")
    ax.set_title("The catastrophic-overfitting guard's probe, ε = 0.1")
    ax.legend()
    ax.grid(alpha=0.3)
    write_figure(out / "probe.png", fig)
    plt.close(fig)
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", choices=("train", "eval", "autoattack", "report", "all"), default="all")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--runs", type=Path, default=ROOT / "out" / "repro_fashion")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "repro_fashion")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--restarts", type=int, default=10)
    p.add_argument("--curve-n", type=int, default=1000)
    p.add_argument("--restarts-n", type=int, default=1000,
                   help="Test images for PGD-50×10 for methods other than standard, pgd, trades.")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        p.error(f"unknown method {unknown[0]!r}: expected {', '.join(METHODS)}")
    for m in methods:
        if args.stage in ("train", "all"):
            train(m, args.runs, args.threads)
        if args.stage in ("eval", "all"):
            evaluate(m, args.runs, args.out, args.curve_n, args.restarts, args.restarts_n)
        if args.stage in ("autoattack", "all"):
            autoattack_stage(m, args.runs, args.out, args.threads)
    if args.stage in ("report", "all"):
        report(args.out, args.restarts)


if __name__ == "__main__":
    main()
