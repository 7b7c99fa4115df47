"""AutoAttack parity: advgrad's AutoAttack (``--version`` standard or plus) and the reference (pyautoattack
0.2.0, Croce & Hein 2020) on the same model, points, ε and seed, in one process; writes the robust accuracy
of each, how many points the two disagree on, the per-member breakdown of advgrad's cascade and both wall
times.

    python scripts/parity_autoattack.py --model runs/repro_fashion/pgd3-20ep.pt --n 1000 --eps 0.1 \\
        --out results/autoattack_parity/fashion-pgd3-20ep.json
    python scripts/parity_autoattack.py --model /work/models/mnist5k-small.pt --n 600 --eps 8 --norm 1 \\
        --out results/autoattack_parity/mnist5k-small-l1.json

The model is a checkpoint of ``advgrad train`` and the points are the first N test images of the data set
it was trained on. The reference reseeds torch's global RNG and draws its starts there; advgrad draws the
same numbers from a private generator, so on one block of points the two agree bit for bit (the library's
tests check that); the ensemble here runs both in blocks of 250 points.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def reference_flags(model: Any, x: Any, y: Any, eps: float, norm: str, seed: int,
                    version: str = "standard") -> tuple[Any, float]:
    """Per-sample robust flags (N,) of the reference's AutoAttack ``version`` and its wall time."""
    import torch
    from pyautoattack import AutoAttack

    logging.disable(logging.CRITICAL)  # the reference logs from library code
    ref = AutoAttack(model, norm={"inf": "Linf", "2": "L2", "1": "L1"}[norm], eps=eps, version=version, seed=seed,
                     device="cpu")
    start = time.perf_counter()
    with torch.random.fork_rng():  # it reseeds the global RNG: keep the caller's
        x_adv = ref.run_standard_evaluation(x.clone(), y.clone(), batch_size=250)
    seconds = time.perf_counter() - start
    x_adv = x_adv[0] if isinstance(x_adv, tuple) else x_adv
    with torch.no_grad():
        return model(x_adv).argmax(1) == y, seconds


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--eps", type=float, required=True)
    p.add_argument("--norm", choices=("inf", "2", "1"), default="inf")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--version", choices=("standard", "plus"), default="standard")
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    import torch

    import advgrad
    from advgrad.models.checkpoint import load_checkpoint
    from advgrad.records.write import write_json

    ckpt = load_checkpoint(args.model)
    model = ckpt.model.eval()
    data = advgrad.load_dataset(ckpt.meta["dataset"]["name"], root=args.data_root)
    x, y = data.x_test[: args.n], data.y_test[: args.n]
    start = time.perf_counter()
    ours = advgrad.autoattack(model, x, y, args.eps, norm=args.norm, seed=args.seed, version=args.version)
    ours_seconds = time.perf_counter() - start
    ref_robust, ref_seconds = reference_flags(model, x, y, args.eps, args.norm, args.seed, args.version)
    ours_robust = ~ours.success
    record = {
        "model": str(args.model), "dataset": data.name, "n": len(y), "eps": args.eps, "norm": args.norm,
        "seed": args.seed, "version": args.version,
        "robust_accuracy": {"advgrad": float(ours_robust.double().mean()),
                            "reference": float(ref_robust.double().mean())},
        "disagreements": int((ours_robust != ref_robust).sum()),
        "advgrad_cascade": ours.accuracy, "advgrad_seconds_per_member": ours.seconds,
        "seconds": {"advgrad": ours_seconds, "reference": ref_seconds},
        "command": "python scripts/parity_autoattack.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, torch threads "
                   f"{torch.get_num_threads()}, torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}",
    }
    write_json(args.out, record)
    acc = record["robust_accuracy"]
    print(f"{args.model}: advgrad {acc['advgrad']:.2%} ({ours_seconds:.0f} s), reference {acc['reference']:.2%} "
          f"({ref_seconds:.0f} s), {record['disagreements']} of {len(y)} points disagree; wrote {args.out}")
    return record


if __name__ == "__main__":
    main()
