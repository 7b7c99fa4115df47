"""Speed of advgrad's attacks against torchattacks, Foolbox, ART (if installed) and the floor.

One model, one batch, one process. The floor for PGD-k is k × (forward + input gradient) with the
parameters' gradients off, the least any PGD implementation must compute; FGSM's floor is one of them.
Every contender runs once to warm up, then all run in turn ``--repeats`` times and the median counts.

    python scripts/bench_attacks.py                      # cnn-small and cnn, 1,000 mnist-5k test images
    python scripts/bench_attacks.py --models cnn-small --repeats 3 --no-write
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from advgrad.attacks import auto_chunk_size, fgsm, gradient_steps, pgd  # noqa: E402
from advgrad.attacks._chunks import slices as _slices  # noqa: E402
from advgrad.data.builtin import load_dataset  # noqa: E402
from advgrad.models.zoo import build_model  # noqa: E402
from advgrad.records.write import write_text  # noqa: E402

Runner = Callable[[], object]


def floor(model: nn.Module, x: Tensor, y: Tensor, steps: int, chunk: int | None = None) -> Runner:
    """k × (forward + ∂J/∂X), parameters' gradients off, no step arithmetic at all; the batch in one
    piece, or (``chunk``) in advgrad's chunks, to show how much of advgrad's speed the chunking is."""
    pieces = [slice(0, len(x))] if chunk is None else _slices(len(x), chunk)

    def run() -> None:
        flags = [p.requires_grad_(False) for p in model.parameters()]
        for _ in range(steps):
            for part in pieces:
                xg = x[part].detach().requires_grad_(True)
                torch.autograd.grad(F.cross_entropy(model(xg), y[part], reduction="sum"), xg)
        for p in flags:
            p.requires_grad_(True)

    return run


def contenders(model: nn.Module, x: Tensor, y: Tensor, eps: float, alpha: float, steps: int,
               attack: str) -> dict[str, Runner]:
    """name → a zero-argument call running the attack on (x, y)."""
    runs: dict[str, Runner] = {}
    # "advgrad": the public attack, which also returns each point's verdict at x′ (one more forward of the
    # N points, which torchattacks leaves to its caller); "advgrad x′ only": the same loop without that
    # forward (``gradient_steps``, what adversarial training calls), the work torchattacks does.
    if attack == "pgd":
        runs["advgrad"] = lambda: pgd(model, x, y, eps, alpha=alpha, steps=steps).x_adv
        runs["advgrad x′ only"] = lambda: gradient_steps(model, x, y, eps, alpha=alpha, steps=steps)
    else:
        runs["advgrad"] = lambda: fgsm(model, x, y, eps).x_adv
        runs["advgrad x′ only"] = lambda: gradient_steps(model, x, y, eps, alpha=eps, steps=1, random_start=False)
    try:
        import torchattacks

        atk = (torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)
               if attack == "pgd" else torchattacks.FGSM(model, eps=eps))
        runs["torchattacks"] = lambda: atk(x, y)
    except ImportError:
        pass
    try:
        import foolbox as fb

        fmodel = fb.PyTorchModel(model, bounds=(0, 1))
        fatk = (fb.attacks.LinfPGD(abs_stepsize=alpha, steps=steps, random_start=True)
                if attack == "pgd" else fb.attacks.FGSM())
        runs["foolbox"] = lambda: fatk(fmodel, x, y, epsilons=eps)
    except ImportError:
        pass
    try:
        from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent
        from art.estimators.classification import PyTorchClassifier

        clf = PyTorchClassifier(model, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                                nb_classes=10, clip_values=(0.0, 1.0))
        art_atk = (ProjectedGradientDescent(clf, eps=eps, eps_step=alpha, max_iter=steps, batch_size=len(x),
                                            num_random_init=1, verbose=False)
                   if attack == "pgd" else FastGradientMethod(clf, eps=eps, batch_size=len(x)))
        xn, yn = x.numpy(), y.numpy()
        runs["art"] = lambda: art_atk.generate(xn, yn)
    except ImportError:
        pass
    k = steps if attack == "pgd" else 1
    runs["floor"] = floor(model, x, y, k)
    chunk = auto_chunk_size(model, x)
    if chunk < len(x):  # the same k passes in advgrad's chunks
        runs["floor, chunked"] = floor(model, x, y, k, chunk)
    return runs


def measure(runs: dict[str, Runner], repeats: int) -> dict[str, tuple[float, float]]:
    """(median, min) seconds per contender; contenders interleaved so that load drifts hit all alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():
        run()  # warm-up: allocator, kernels, lazy imports
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(t), min(t)) for name, t in times.items()}


def machine() -> str:
    load = " ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
            f"with {torch.get_num_threads()} threads, Python {platform.python_version()}; load average {load}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="cnn-small,cnn", help="comma-separated advgrad model names")
    ap.add_argument("--n", type=int, default=1000, help="images (mnist-5k test split)")
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench_attacks.md")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")

    data = load_dataset("mnist-5k")
    x, y = data.x_test[:args.n].contiguous(), data.y_test[:args.n].contiguous()
    alpha = args.eps / 4
    rows: list[tuple[str, str, str, float, float, float, float | None]] = []
    for name in args.models.split(","):
        torch.manual_seed(0)
        model = build_model(name, input_shape=data.input_shape, num_classes=data.num_classes,
                            mean=data.mean, std=data.std).eval()
        for attack in ("pgd", "fgsm"):
            times = measure(contenders(model, x, y, args.eps, alpha, args.steps, attack), args.repeats)
            label = f"PGD-{args.steps}" if attack == "pgd" else "FGSM"
            base, ta = times["floor"][0], times.get("torchattacks", (None,))[0]
            for who, (seconds, fastest) in times.items():
                vs_ta = seconds / ta if ta else None
                rows.append((name, label, who, seconds, fastest, seconds / base, vs_ta))
                print(f"{name:>10} {label:>7} {who:>15} {seconds:8.3f} s (min {fastest:7.3f})  "
                      f"{seconds / base:5.2f}× floor" + (f"  {vs_ta:5.2f}× torchattacks" if vs_ta else ""),
                      flush=True)

    if not args.no_write:
        cmd = " ".join(["python scripts/bench_attacks.py", *(sys.argv[1:] if argv is None else argv)])
        lines = [
            "# Attack speed: advgrad vs torchattacks vs Foolbox vs the floor",
            "",
            f"Command: `{cmd}` (median of {args.repeats} interleaved runs after one warm-up each).",
            "",
            f"Machine: {machine()}.",
            "",
            f"{args.n} mnist-5k test images in one batch, L∞ ε = {args.eps}, PGD α = ε/4 with a random start; "
            "untrained models (the speed does not depend on the weights). The floor is k × (forward + ∂J/∂X) "
            "with the parameters' gradients off and no step arithmetic. Ratios are of medians. ART is measured "
            "only where installed.",
            "",
            "| model | attack | implementation | median s | min s | × floor | × torchattacks |",
            "|---|---|---|---:|---:|---:|---:|",
        ]
        for name, label, who, seconds, fastest, vs_floor, vs_ta in rows:
            lines.append(f"| {name} | {label} | {who} | {seconds:.3f} | {fastest:.3f} | {vs_floor:.2f} | "
                         + (f"{vs_ta:.2f} |" if vs_ta is not None else "– |"))
        write_text(args.out, "\n".join(lines) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
