"""The README's demo: the whole loop on the embedded mnist-5k data, offline, through the real CLI.

    make demo            # = .venv/bin/python scripts/demo.py --out results/demo

Each step runs the installed ``advgrad`` command exactly as a user would type it, and the commands are
written to ``<out>/COMMANDS.md`` so every file there says how it was made.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path


def steps(out: Path) -> list[list[str]]:
    model = str(out / "model.pt")
    return [
        ["train", "--out", model],
    ]


def run(out: Path, quick: bool = False) -> list[tuple[str, float]]:
    out.mkdir(parents=True, exist_ok=True)
    done = []
    for args in steps(out):
        if quick and args[0] == "train":
            args = [*args, "--epochs", "1", "--n-train", "500"]
        cmd = ["advgrad", *args]
        print(f"$ {shlex.join(cmd)}", flush=True)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "advgrad", *args], check=True)
        done.append((shlex.join(cmd), time.perf_counter() - start))
    lines = ["# How the files in this folder were made", "",
             "`make demo` ran these commands in order (wall-clock seconds on the machine that made them):", ""]
    lines += [f"    {cmd}    # {sec:.0f} s" for cmd, sec in done]
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
