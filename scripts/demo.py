"""The README's demo: the whole loop on the embedded mnist-5k data, offline, through the real CLI.

    make demo            # = .venv/bin/python scripts/demo.py --out out/demo                (a few minutes)
    make demo-record     # = .venv/bin/python scripts/demo.py --out results/demo --full    (the committed record)

train → attack (FGSM and PGD-20 at ε = 0.1, saving examples) → eval (ε sweep, minimal ε, sanity report)
→ eval with AutoAttack → figures. Each step runs ``python -m advgrad`` exactly as a user would type it, and
the commands are written to ``<out>/COMMANDS.md`` so every file there says how it was made. The steps run
in a staging folder beside ``<out>``, which replaces ``<out>`` only once every step has succeeded: a failed
demo leaves the previous folder as it was, never a half-updated one.

Three sizes of the same loop (the same commands in the same order, writing the same files; ``SIZES``):
the default trains cnn-small and evaluates 200 points, AutoAttack the first 100 at four radii; ``--full``
(the committed record) trains cnn and evaluates 500 points, AutoAttack the first 200 at five radii;
``--quick`` is a few seconds of work per step (the tests run it). Progress: each command's own (a bar on a
terminal, a line at most every 10 s in a log)."""

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
from typing import NamedTuple

EPS = "0.1"  # the attacks' radius (L∞, pixels in [0, 1])


class Size(NamedTuple):
    """How big each step of the loop is: the loop itself (the commands, in order, and the files) is the same."""

    model: str  # the architecture trained (cnn-small: Wong et al.'s net, 1/20 of cnn's weights)
    train: tuple[str, ...]  # train's options beyond --model and --out
    attack: tuple[str, ...]  # attack's options beyond the method
    eval_eps: str
    eval: tuple[str, ...]  # eval's options beyond --eps and --min-eps
    aa_eps: str  # AutoAttack's radii and points: its cost sits in the points that survive (below)
    aa_n: int


SIZES = {
    # `make demo`: the whole loop in a few minutes on a 2-core machine. AutoAttack's FAB-T and Square spend
    # thousands of passes on every point that PGD leaves standing, so its step takes the first 100 points
    # and leaves out ε = 0.05, where four in five of them survive PGD (ε = 0.1's half costs most of what is left).
    "demo": Size("cnn-small", (), (), "0,0.05,0.1,0.2,0.3",
                 ("--n", "200", "--steps", "20", "--queries", "100", "--precision", "0.02"), "0,0.1,0.2,0.3", 100),
    # `make demo-record`: the committed record results/demo/ (42 minutes there, 34 of them AutoAttack).
    "full": Size("cnn", (), (), "0,0.05,0.1,0.2,0.3",
                 ("--n", "500", "--steps", "20", "--queries", "100", "--precision", "0.02"),
                 "0,0.05,0.1,0.2,0.3", 200),
    # --quick: seconds per step; the tests run it.
    "quick": Size("cnn-small", ("--epochs", "1", "--n-train", "500"), ("--n", "40"), "0,0.1",
                  ("--n", "40", "--steps", "3", "--queries", "10", "--precision", "0.05"), "0,0.1", 20),
}


def steps(size: str = "demo") -> list[list[str]]:
    """The demo's commands (arguments after ``advgrad``), in order, run inside the demo's folder, at
    ``size`` ("demo", "full" or "quick")."""
    z = SIZES[size]
    model = "model.pt"
    train = ["train", "--out", model, *([] if z.model == "cnn" else ["--model", z.model]), *z.train]
    attack = ["attack", "--model", model, "--eps", EPS, *z.attack]
    evaluate = ["eval", "--model", model, "--eps", z.eval_eps, "--min-eps", "--out", "eval.json", *z.eval]
    autoattack = ["eval", "--model", model, "--eps", z.aa_eps, "--attacks", "autoattack", "--no-sanity",
                  "--n", str(z.aa_n), "--out", "eval_autoattack.json"]
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
         "--title", f"Accuracy against ε ({z.model}, mnist-5k test; AutoAttack on the first {z.aa_n})"],
        ["plot", "min-eps", "eval.json", "--out", "min_eps.png"],
        ["plot", "landscape", model, "--n", "3", "--out", "landscape.png"],
    ]


def run(out: Path, size: str = "demo") -> list[tuple[str, float]]:
    """Run every step inside a staging folder beside ``out``, then move it to ``out`` (replacing what was
    there). The commands use paths relative to the folder, so COMMANDS.md and the provenance inside every
    record read the same wherever the folder ends up."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        done = []
        for args in steps(size):
            cmd = shlex.join(["advgrad", *args])
            print(f"$ (cd {out.as_posix()} && {cmd})", flush=True)
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "advgrad", *args], check=True, cwd=stage)
            done.append((cmd, time.perf_counter() - start))
        how = {"quick": "scripts/demo.py --quick", "full": f"scripts/demo.py --out {out.as_posix()} --full"}.get(
            size, f"scripts/demo.py --out {out.as_posix()}")
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
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--full", action="store_const", dest="size", const="full", default="demo",
                       help="The committed record's sizes: cnn, 500 points, AutoAttack on 200 at five radii (~42 min).")
    sizes.add_argument("--quick", action="store_const", dest="size", const="quick", help="A tiny run (tests use it).")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        done = run(args.out, size=args.size)
    except subprocess.CalledProcessError as exc:
        sys.exit(f"demo step failed: {shlex.join(map(str, exc.cmd))} exited {exc.returncode}; "
                 f"{args.out} was left as it was")
    # The demo's own time: the install that `make demo` may have run before it is not in it.
    print(f"demo done: {len(done)} steps in {_minutes(time.perf_counter() - start)} (the install not counted); "
          f"files and COMMANDS.md in {args.out.as_posix()}/", flush=True)


def _minutes(seconds: float) -> str:
    s = round(seconds)
    return f"{s} s" if s < 60 else f"{s // 60} min {s % 60:02d} s"


if __name__ == "__main__":
    main()
