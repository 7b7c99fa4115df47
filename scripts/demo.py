"""The README's demo: the whole loop on the embedded mnist-5k data, offline, through the real CLI.

    make demo            # = .venv/bin/python scripts/demo.py --out out/demo
    make demo-record     # = .venv/bin/python scripts/demo.py --out results/demo   (the committed record)

train → attack (FGSM and PGD-20 at ε = 0.1, saving examples) → eval (ε sweep, minimal ε, sanity report)
→ figures. Each step runs ``python -m advgrad`` exactly as a user would type it, and the commands are
written to ``<out>/COMMANDS.md`` so every file there says how it was made. The steps run in a staging
folder beside ``<out>``, which replaces ``<out>`` only once every step has succeeded: a failed demo leaves
the previous folder as it was, never a half-updated one. ``--quick`` is a tiny version of the same loop
(the same commands on cnn-small and a few dozen images, a few seconds of work per step; the tests run it).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EPS = "0.1"  # the attacks' radius (L∞, pixels in [0, 1])
EVAL_EPS = "0,0.05,0.1,0.2,0.3"


def steps(quick: bool = False) -> list[list[str]]:
    """The demo's commands (arguments after ``advgrad``), in order, run inside the demo's folder."""
    model = "model.pt"
    # --quick trains cnn-small (Wong et al.'s net, 1/20 of cnn's weights): the AutoAttack step below runs
    # every member of the cascade on the points that survive, and on cnn those few points cost minutes
    train = ["train", "--out", model] + (["--epochs", "1", "--n-train", "500", "--model", "cnn-small"] if quick else [])
    n = ["--n", "40"] if quick else []
    attack = ["attack", "--model", model, "--eps", EPS, *n]
    evaluate = ["eval", "--model", model, "--eps", "0,0.1" if quick else EVAL_EPS, "--min-eps", "--out", "eval.json"]
    evaluate += ["--n", "40", "--steps", "3", "--queries", "10", "--precision", "0.05"] if quick else \
        ["--n", "500", "--steps", "20", "--queries", "100", "--precision", "0.02"]
    # AutoAttack on fewer points: on this standard model its Square and FAB-T members spend thousands of
    # passes on every point that PGD leaves standing at small ε
    autoattack = ["eval", "--model", model, "--eps", "0,0.1" if quick else EVAL_EPS, "--attacks", "autoattack",
                  "--no-sanity", "--n", "20" if quick else "200", "--out", "eval_autoattack.json"]
    return [
        train,
        [*attack, "--method", "fgsm", "--out", "attack_fgsm.json", "--save-examples", "examples_fgsm.npz"],
        [*attack, "--method", "pgd", "--steps", "20", "--out", "attack_pgd.json",
         "--save-examples", "examples_pgd.npz"],
        evaluate,
        autoattack,
        ["plot", "training", "model.json", "--out", "training.png"],
        ["plot", "examples", "examples_fgsm.npz", "--out", "examples_fgsm.png",
         "--title", f"FGSM at ε = {EPS}: clean | perturbation | adversarial"],
        ["plot", "examples", "examples_pgd.npz", "--out", "examples_pgd.png",
         "--title", f"PGD-20 at ε = {EPS}: clean | perturbation | adversarial"],
        ["plot", "curve", "eval.json", "eval_autoattack.json", "--out", "accuracy_vs_eps.png",
         "--title", "Accuracy against ε (cnn, mnist-5k test; AutoAttack on the first 200)"],
        ["plot", "min-eps", "eval.json", "--out", "min_eps.png"],
        ["plot", "landscape", model, "--n", "3", "--out", "landscape.png"],
    ]


def run(out: Path, quick: bool = False) -> list[tuple[str, float]]:
    """Run every step inside a staging folder beside ``out``, then move it to ``out`` (replacing what was
    there). The commands use paths relative to the folder, so COMMANDS.md and the provenance inside every
    record read the same wherever the folder ends up."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        done = []
        for args in steps(quick):
            cmd = shlex.join(["advgrad", *args])
            print(f"$ (cd {out.as_posix()} && {cmd})", flush=True)
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "advgrad", *args], check=True, cwd=stage)
            done.append((cmd, time.perf_counter() - start))
        how = "scripts/demo.py --quick" if quick else f"scripts/demo.py --out {out.as_posix()}"
        lines = ["# How the files in this folder were made", "",
                 f"`{how}` ran these commands in order, inside this folder (wall-clock seconds on the machine "
                 "that made them):", ""]
        lines += [f"    {cmd}    # {sec:.0f} s" for cmd, sec in done]
        lines += ["", f"Total: {sum(s for _, s in done):.0f} s. `model.pt` is not committed: the demo rebuilds it.",
                  "Another CPU gives other numbers: training is bit for bit repeatable on one machine, not across "
                  "instruction sets (AVX-512 and AVX2 kernels round differently)."]
        (stage / "COMMANDS.md").write_text("\n".join(lines) + "\n")
        _replace_folder(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return done


def _replace_folder(new: Path, target: Path) -> None:
    """Put ``new`` where ``target`` is: two renames, so ``target`` is at every moment either the old
    folder or the new one (the old one is removed afterwards)."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run advgrad's demo loop.")
    parser.add_argument("--out", type=Path, default=Path("out/demo"),
                        help="where the files go (default out/demo; `make demo-record` writes results/demo)")
    parser.add_argument("--quick", action="store_true", help="A tiny run (tests use it).")
    args = parser.parse_args(argv)
    try:
        run(args.out, quick=args.quick)
    except subprocess.CalledProcessError as exc:
        sys.exit(f"demo step failed: {shlex.join(map(str, exc.cmd))} exited {exc.returncode}; "
                 f"{args.out} was left as it was")


if __name__ == "__main__":
    main()
