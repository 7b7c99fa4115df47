"""The README's demo: the whole loop on the embedded mnist-5k data, offline, through the real CLI.

    make demo            # = .venv/bin/python scripts/demo.py --out results/demo

train → attack (FGSM and PGD-20 at ε = 0.1, saving examples) → eval (ε sweep, minimal ε, sanity report)
→ figures. Each step runs the installed ``advgrad`` command exactly as a user would type it, and the
commands are written to ``<out>/COMMANDS.md`` so every file there says how it was made. ``--quick`` is a
tiny version of the same loop (a few seconds of work per step; the tests run it).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

EPS = "0.1"  # the attacks' radius (L∞, pixels in [0, 1])
EVAL_EPS = "0,0.05,0.1,0.2,0.3"


def steps(out: Path, quick: bool = False) -> list[list[str]]:
    """The demo's commands (arguments after ``advgrad``), in order."""
    o = out.as_posix()
    model = f"{o}/model.pt"
    train = ["train", "--out", model] + (["--epochs", "1", "--n-train", "500"] if quick else [])
    n = ["--n", "40"] if quick else []
    attack = ["attack", "--model", model, "--eps", EPS, *n]
    evaluate = ["eval", "--model", model, "--eps", "0,0.1" if quick else EVAL_EPS, "--min-eps",
                "--out", f"{o}/eval.json"]
    evaluate += ["--n", "40", "--steps", "3", "--queries", "10", "--precision", "0.05"] if quick else \
        ["--n", "500", "--steps", "20", "--queries", "100", "--precision", "0.02"]
    return [
        train,
        [*attack, "--method", "fgsm", "--out", f"{o}/attack_fgsm.json", "--save-examples", f"{o}/examples_fgsm.npz"],
        [*attack, "--method", "pgd", "--steps", "20", "--out", f"{o}/attack_pgd.json",
         "--save-examples", f"{o}/examples_pgd.npz"],
        evaluate,
        ["plot", "training", f"{o}/model.json", "--out", f"{o}/training.png"],
        ["plot", "examples", f"{o}/examples_fgsm.npz", "--out", f"{o}/examples_fgsm.png",
         "--title", f"FGSM at ε = {EPS}: clean | perturbation | adversarial"],
        ["plot", "examples", f"{o}/examples_pgd.npz", "--out", f"{o}/examples_pgd.png",
         "--title", f"PGD-20 at ε = {EPS}: clean | perturbation | adversarial"],
        ["plot", "curve", f"{o}/eval.json", "--out", f"{o}/accuracy_vs_eps.png",
         "--title", "Accuracy against ε (cnn, mnist-5k test)"],
        ["plot", "min-eps", f"{o}/eval.json", "--out", f"{o}/min_eps.png"],
        ["plot", "landscape", model, "--n", "3", "--out", f"{o}/landscape.png"],
    ]


def run(out: Path, quick: bool = False) -> list[tuple[str, float]]:
    out.mkdir(parents=True, exist_ok=True)
    done = []
    for args in steps(out, quick):
        cmd = ["advgrad", *args]
        print(f"$ {shlex.join(cmd)}", flush=True)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "advgrad", *args], check=True)
        done.append((shlex.join(cmd), time.perf_counter() - start))
    lines = ["# How the files in this folder were made", "",
             f"`{'scripts/demo.py --quick' if quick else 'make demo'}` ran these commands in order "
             "(wall-clock seconds on the machine that made them):", ""]
    lines += [f"    {cmd}    # {sec:.0f} s" for cmd, sec in done]
    lines += ["", f"Total: {sum(s for _, s in done):.0f} s. `model.pt` is not committed: `make demo` rebuilds it."]
    (out / "COMMANDS.md").write_text("\n".join(lines) + "\n")
    return done


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run advgrad's demo loop.")
    parser.add_argument("--out", type=Path, default=Path("results/demo"))
    parser.add_argument("--quick", action="store_true", help="A tiny run (tests use it).")
    args = parser.parse_args(argv)
    try:
        run(args.out, quick=args.quick)
    except subprocess.CalledProcessError as exc:
        sys.exit(f"demo step failed: {shlex.join(map(str, exc.cmd))} exited {exc.returncode}")


if __name__ == "__main__":
    main()
