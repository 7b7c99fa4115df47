"""What counting passes costs: attacks timed with and without ``advgrad.models.counting.PassCounter``, in one process.

Two measurements, because a difference of 1 % is below the noise of a shared machine:

1. A/B: each attack runs ``--repeats`` times on the plain model and on the wrapped one, interleaved (plain,
   counted, counted, plain, ...), so that load drifts hit both alike; the ratio of the medians (and of the
   minima) is reported, with the results checked to be bit-identical.
2. The wrapper's own cost per call, measured where nothing else is: a forward + backward through a model that
   does nothing (a view), plain and wrapped, many times; that cost times the attack's number of calls, over
   the attack's time, bounds the overhead from above without the noise of (1).

    python scripts/bench_counting.py --n 250 --repeats 5
    python scripts/bench_counting.py --model /work/models/mnist5k-pgd.pt --eps 0.1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from advgrad.attacks import apgd, square  # noqa: E402
from advgrad.configs import TrainConfig  # noqa: E402
from advgrad.data import load_dataset  # noqa: E402
from advgrad.models import build_for, load_checkpoint  # noqa: E402
from advgrad.models.counting import PassCounter, Passes  # noqa: E402
from advgrad.records.write import write_text  # noqa: E402
from advgrad.training import fit  # noqa: E402

Attack = Callable[[nn.Module], Tensor]


class _View(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.view(len(x), -1)  # a new tensor (flatten would return x itself)


def per_call_overhead(calls: int = 5000) -> float:
    """Seconds the wrapper adds to one forward + backward (the minimum of 5 rounds of ``calls`` each)."""
    plain, counted = _View(), PassCounter(_View())
    x = torch.zeros(4, 3, requires_grad=True)

    def rounds(model: nn.Module) -> float:
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(calls):
                torch.autograd.grad(model(x).sum(), x)
            best = min(best, (time.perf_counter() - start) / calls)
        return best

    return rounds(counted) - rounds(plain)


def calls_of(attack: Attack, model: nn.Module) -> int:
    """How many times the attack calls the model (a forward hook on it, in a separate run)."""
    count = [0]
    handle = model.register_forward_hook(lambda *_: count.__setitem__(0, count[0] + 1))
    try:
        attack(model)
    finally:
        handle.remove()
    return count[0]


def ab(attack: Attack, model: nn.Module, repeats: int) -> tuple[list[float], list[float], Passes, bool]:
    """Interleaved timings (plain, counted), the passes of one counted run, and whether the outputs match."""
    counter = PassCounter(model)
    times: dict[str, list[float]] = {"plain": [], "counted": []}
    outputs: dict[str, Tensor] = {}
    passes = Passes()
    for r in range(repeats):
        for who in (("plain", "counted") if r % 2 == 0 else ("counted", "plain")):
            counter.reset()
            start = time.perf_counter()
            outputs[who] = attack(counter if who == "counted" else model)
            times[who].append(time.perf_counter() - start)
            if who == "counted":
                passes = counter.passes
    return times["plain"], times["counted"], passes, torch.equal(outputs["plain"], outputs["counted"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="an advgrad checkpoint (default: cnn-small trained here)")
    ap.add_argument("--n", type=int, default=250)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--steps", type=int, default=50, help="APGD iterations (exact mode: the same work every run)")
    ap.add_argument("--queries", type=int, default=200, help="Square's queries")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench_counting.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_dataset("mnist-5k")
    if args.model:
        ckpt = load_checkpoint(args.model)
        model, data, desc = ckpt.model.eval(), load_dataset(ckpt.meta["dataset"]["name"]), str(args.model)
    else:  # trained, so that the attacks have points to work on (an untrained model gets most wrong)
        model, _ = build_for("cnn-small", data, seed=0)
        fit(model, data, TrainConfig(epochs=2, batch_size=64, lr=2e-3, schedule="one-cycle", seed=0, device="cpu"))
        model, desc = model.eval(), "cnn-small trained 2 epochs on mnist-5k, seed 0"
    x, y = data.x_test[:args.n].float().contiguous(), data.y_test[:args.n].long().contiguous()
    attacks: dict[str, Attack] = {
        f"APGD-CE, {args.steps} steps, exact mode": lambda m: apgd(m, x, y, args.eps, steps=args.steps).x_adv,
        f"Square, {args.queries} queries": lambda m: square(m, x, y, args.eps, queries=args.queries).x_adv,
    }
    overhead = per_call_overhead()
    cmd = " ".join(["python scripts/bench_counting.py", *(sys.argv[1:] if argv is None else argv)])
    lines = ["# The pass counter's cost", "", f"Command: `{cmd}`", "",
             f"Model: {desc}; the first {args.n} test images of {data.name}, L∞ ε = {args.eps}; "
             f"{args.threads} torch thread(s); {args.repeats} interleaved runs each.", "",
             f"The wrapper's own cost per forward + backward call: {overhead * 1e6:.1f} µs.", "",
             "| attack | plain s (median) | counted s (median) | ratio of medians | ratio of minima | calls | "
             "bound from the per-call cost | forward, backward sample-passes | bits equal |",
             "|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for name, attack in attacks.items():
        plain, counted, passes, same = ab(attack, model, args.repeats)
        calls = calls_of(attack, model)
        med_p, med_c = statistics.median(plain), statistics.median(counted)
        bound = overhead * calls / med_p
        lines.append(f"| {name} | {med_p:.2f} | {med_c:.2f} | {med_c / med_p:.4f} | {min(counted) / min(plain):.4f} "
                     f"| {calls} | {bound:.4%} | {passes.forward:,}, {passes.backward:,} | {same} |")
        print(lines[-1], flush=True)
    text = "\n".join([*lines, ""])
    print(text)
    write_text(args.out, text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
