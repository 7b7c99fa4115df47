"""Black-box attacks on ONNX graphs: the mnist-5k standard and PGD-trained models exported to ONNX and attacked
through ONNX Runtime (queries only), beside the white-box reference on the torch model, offline, a few
minutes on one CPU thread.

    python scripts/black_box_record.py [--models /work/models] [--n 200] [--queries 1000] [--out results/black_box]

Each checkpoint (``mnist5k-small.pt``: cnn-small, standard training; ``mnist5k-pgd.pt``: PGD-trained) is
exported with ``torch.onnx.export(..., dynamo=False)`` (a dynamic batch axis) and checked: on the n test
digits the graph's logits equal the torch model's to float32 rounding and its labels exactly. Then every
attack runs as ``advgrad attack`` runs it (``advgrad.runs.attack.attack_report``: blocks of 250, seed 0) on
the first n test digits: RayS (L∞), HopSkipJump (L2 and L∞), Boundary (L2) on the graph's top-1 labels, Square
(L∞ and L2) and SPSA (L∞; 16 pairs of queries per step) on its scores, each with ``--queries`` per point;
the white-box reference, FMN (100 steps; minimal ‖δ‖) and APGD-CE (100 steps, at ε), on the torch checkpoint.
Reported per attack: the median ‖δ‖ of the minimal-norm attacks over the digits classified correctly (∞ when
most stay unbroken), the robust accuracy at ε = 0.1 (L∞) or 1.5 (L2) (a minimal-norm attack breaks a digit
within ε when its ‖δ‖ ≤ ε), the queries per point (mean, median) and the seconds.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"mnist5k-small": "standard cnn-small", "mnist5k-pgd": "PGD-trained"}
EPS = {"inf": 0.1, "2": 1.5}
SYMBOL = {"inf": "L∞", "2": "L2"}
# (label, method, norm, on the ONNX graph (else the torch checkpoint), takes ε)
RUNS: list[tuple[str, str, str, bool, bool]] = [
    ("FMN (white box)", "fmn", "inf", False, False), ("APGD-CE (white box)", "apgd-ce", "inf", False, True),
    ("RayS", "rays", "inf", True, False), ("HopSkipJump", "hopskipjump", "inf", True, False),
    ("Square", "square", "inf", True, True), ("SPSA", "spsa", "inf", True, True),
    ("FMN (white box)", "fmn", "2", False, False), ("APGD-CE (white box)", "apgd-ce", "2", False, True),
    ("HopSkipJump", "hopskipjump", "2", True, False), ("Boundary", "boundary", "2", True, False),
    ("Square", "square", "2", True, True),
]


def export(checkpoint: Path, path: Path) -> Path:
    """The checkpoint's model as an ONNX graph with a dynamic batch axis."""
    import torch

    from advgrad.models.checkpoint import load_checkpoint

    model = load_checkpoint(checkpoint).model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation notice
        torch.onnx.export(model, (torch.rand(2, 1, 28, 28),), str(path), input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}}, dynamo=False)
    return path


def agreement(checkpoint: Path, graph: Path, n: int) -> dict[str, Any]:
    """The graph against the torch model on the first n test digits: max |Δ logits|, labels equal."""
    import torch

    from advgrad.data.builtin import load_dataset
    from advgrad.models.checkpoint import load_checkpoint
    from advgrad.models.onnx import load_onnx

    x = load_dataset("mnist-5k").x_test[:n]
    with torch.no_grad():
        z = load_checkpoint(checkpoint).model.eval()(x)
    scores = load_onnx(graph).scores(x)
    return {"max_abs_logit_gap": float((scores - z).abs().max()), "labels_equal": bool(torch.equal(
        scores.argmax(1), z.argmax(1)))}


def summary(report: Any, norm: str) -> dict[str, Any]:
    """Median ‖δ‖ (minimal-norm attacks), robust accuracy at ε, queries per point, seconds."""
    import torch

    r, ex = report.record, report.examples
    x, x_adv = torch.from_numpy(ex["x"]).flatten(1), torch.from_numpy(ex["x_adv"]).flatten(1)
    y, clean, adv = (torch.from_numpy(ex[k]) for k in ("y", "pred_clean", "pred_adv"))
    delta = (x_adv - x).double()
    size = delta.abs().amax(1) if norm == "inf" else delta.norm(dim=1)
    broken = (adv != y) & (size <= EPS[norm] * (1 + 1e-6))
    queries = r.get("queries") or {}
    median = r["min_norm"]["median"] if "min_norm" in r else "–"  # a budget attack finds no minimal ‖δ‖
    return {"clean_accuracy": r["clean_accuracy"], "median": median,
            "robust_accuracy": float(((clean == y) & ~broken).double().mean()), "queries_mean": queries.get("mean"),
            "queries_median": queries.get("median"), "seconds": r["seconds"]}


def command(model: str, method: str, norm: str, takes_eps: bool, queries: int | None, n: int) -> str:
    eps = f" --eps {EPS[norm]:g}" if takes_eps else ""
    budget = f" --queries {queries}" if queries is not None else ""
    return f"advgrad attack --model {model} --data mnist-5k --n {n} --method {method} --norm {norm}{eps}{budget}"


def run_model(name: str, checkpoint: Path, graph: Path, n: int, queries: int) -> list[dict[str, Any]]:
    from advgrad.configs import AttackConfig
    from advgrad.runs.attack import attack_report

    rows = []
    for label, method, norm, on_graph, takes_eps in RUNS:
        # SPSA: 16 pairs per step (32 queries) instead of 128, so that the budget buys ~30 steps, not 3
        options = ({"queries": queries} if on_graph else {}) | ({"samples": 16} if method == "spsa" else {})
        config = AttackConfig.of(method, norm=norm, **options)
        report = attack_report(graph if on_graph else checkpoint, EPS[norm] if takes_eps else None, config,
                               data="mnist-5k", n=n, device="cpu", seed=0)
        model = f"{name}.onnx" if on_graph else f"{name}.pt"
        cli = command(model, method, norm, takes_eps, queries if on_graph else None, n)
        rows.append({"model": name, "attack": label, "method": method, "norm": norm, "on": model,
                     **summary(report, norm), "command": cli + (" (samples=16: library option)"
                                                                if method == "spsa" else "")})
        print(f"{name} {label} {SYMBOL[norm]}: {rows[-1]}", flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> list[str]:
    def num(v: Any, fmt: str) -> str:
        return "∞" if v is None else (v if isinstance(v, str) else format(v, fmt))

    lines = ["| attack | norm | model answers | median ‖δ‖ | robust acc. at ε | queries / point (mean, median) | "
             "seconds | command |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        answers = "gradients (torch)" if r["on"].endswith(".pt") else (
            "scores (ONNX)" if r["method"] in ("square", "spsa") else "top-1 labels (ONNX)")
        q = "–" if r["queries_mean"] is None else f"{r['queries_mean']:.0f}, {r['queries_median']:.0f}"
        lines.append(f"| {r['attack']} | {SYMBOL[r['norm']]} | {answers} | {num(r['median'], '.3f')} | "
                     f"{r['robust_accuracy']:.1%} (ε = {EPS[r['norm']]:g}) | {q} | {r['seconds']:.1f} | "
                     f"`{r['command']}` |")
    return lines


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, default=Path("/work/models"), help="Folder with the checkpoints.")
    p.add_argument("--names", default=",".join(MODELS), help="Checkpoints (stems) to attack.")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "black_box")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from advgrad.records.write import write_json, write_text

    start, rows, checks = time.perf_counter(), [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.names.split(","):
            checkpoint = args.models / f"{name}.pt"
            graph = export(checkpoint, Path(tmp) / f"{name}.onnx")
            checks[name] = agreement(checkpoint, graph, args.n)
            rows += run_model(name, checkpoint, graph, args.n, args.queries)
    seconds = time.perf_counter() - start
    cmd = (f"python scripts/black_box_record.py --models {args.models} --names {args.names} --n {args.n} "
           f"--queries {args.queries} --threads {args.threads}")
    lines = ["# Black-box attacks on ONNX graphs (mnist-5k)", "",
             f"The first {args.n} test digits of mnist-5k; each model exported to ONNX and attacked through ONNX "
             f"Runtime with {args.queries} queries per point (decision-based attacks on its top-1 labels, Square "
             "and SPSA on its scores), beside the white-box reference (FMN, APGD-CE; 100 steps) on the torch "
             "checkpoint. Median ‖δ‖ over the digits classified correctly (∞: most stay unbroken); a "
             "minimal-norm attack breaks a digit within ε when its ‖δ‖ ≤ ε. Seed 0, one CPU thread "
             f"({platform.processor() or platform.machine()}), {seconds / 60:.1f} minutes in all.", "",
             "```", cmd, "```", ""]
    for name in args.names.split(","):
        c = checks[name]
        lines += [f"## {name} ({MODELS.get(name, name)})", "",
                  f"The graph against the torch model on these digits: max |Δ logits| = "
                  f"{c['max_abs_logit_gap']:.2g}, labels {'equal' if c['labels_equal'] else 'DIFFERENT'}.", "",
                  *table([r for r in rows if r["model"] == name]), ""]
    lines += ["Each row's command is the CLI equivalent (the checkpoint exported to NAME.onnx first; the "
              "white-box rows attack the .pt checkpoint).", ""]
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "README.md", "\n".join(lines))
    write_json(args.out / "black_box.json", {"command": cmd, "n": args.n, "queries": args.queries, "eps": EPS,
                                             "agreement": checks, "rows": rows, "seconds": seconds})
    return rows


if __name__ == "__main__":
    main()
