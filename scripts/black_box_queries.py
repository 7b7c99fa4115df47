"""Black-box attacks against their peers at 1k / 5k / 10k queries per sample: advgrad's HopSkipJump (L2, L∞),
RayS (L∞), Boundary (L2), SPSA (L∞) and Square (L∞) beside ART 1.20's HopSkipJump and BoundaryAttack,
Foolbox 3's HopSkipJumpAttack and BoundaryAttack and torchattacks 3.5's SPSA and Square, in one process, on
the same points (the first n test digits of mnist-5k the model classifies correctly), offline, one CPU thread.

    python scripts/black_box_queries.py [--n 50] [--budgets 1000,5000,10000] [--models mnist5k-small,mnist5k-pgd]

Every implementation queries the model through a counter (``advgrad.models.counting.PassCounter``: a forward
of n rows is n queries), so its budget is checked, not assumed. Queries per point are known exactly where
the points are attacked one at a time (ART, which loops over points itself, and Foolbox's HopSkipJump in L2,
whose batched step is scaled by the whole batch's norm), from advgrad's own tally (checked: it sums to the
counter's total), as total / n where the peer queries every point in every call (Foolbox's HopSkipJump L∞
and BoundaryAttack, torchattacks' SPSA) and, for torchattacks' Square, which drops fooled points, by
assigning each queried row to the one original within ε of it. advgrad's attacks take the budget as their
``queries`` option; the peers that take an iteration count instead (Foolbox's and ART's ``steps`` /
``max_iter``, torchattacks' ``nb_iter``) get one from a first guess, lowered and rerun until the largest
count over the points is at most the budget (``fit``). Each library runs with its own defaults otherwise,
except where the two implementations of one algorithm must agree to be compared: SPSA with 32 direction
pairs per step on both sides, Square as AutoAttack runs it (margin loss, p_init = 0.8, no schedule rescale).

Reported per implementation and budget: the queries counted per point (median, max), the median ‖δ‖ over
the points (∞ where unbroken; minimal-norm attacks only: the fixed-ε ones stop at ε), the share broken within
ε = 0.1 (L∞) or 1.5 (L2) and the seconds. Writes queries.md, queries.json and success_vs_queries.png.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shlex
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
EPS = {"inf": 0.1, "2": 1.5}
SYMBOL = {"inf": "L∞", "2": "L2"}
SPSA_PAIRS = 32
DESCRIBED = {"mnist5k-small": "standard cnn-small", "mnist5k-cnn": "standard cnn", "mnist5k-pgd": "PGD-trained"}


class Attributed(nn.Module):
    """A model whose forward rows are counted per original point: each row goes to the original nearest in
    L∞ (rows farther than ``radius`` from every original are counted in ``stray``)."""

    def __init__(self, model: nn.Module, x: Tensor, radius: float) -> None:
        super().__init__()
        self.model, self.x, self.radius = model, x.flatten(1), radius
        self.counts = torch.zeros(len(x), dtype=torch.int64)
        self.stray = 0
        if len(x) > 1:  # no row can be within the radius of two originals
            gap = (self.x[:, None, :] - self.x[None]).abs().amax(-1) + torch.eye(len(x)) * 1e9
            if float(gap.min()) <= 2 * radius:
                raise RuntimeError(f"two points lie within {2 * radius} of each other in L∞: cannot attribute")

    def forward(self, rows: Tensor) -> Tensor:
        with torch.no_grad():
            gap = (rows.detach().flatten(1)[:, None, :] - self.x[None]).abs().amax(-1)  # (B, N)
            near, idx = gap.min(1)
        ok = near <= self.radius + 1e-5
        self.counts += torch.bincount(idx[ok], minlength=len(self.x))
        self.stray += int((~ok).sum())
        return self.model(rows)


class Float32(nn.Module):
    """The model on float32 rows (ART's HopSkipJump hands it float64 arrays)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, rows: Tensor) -> Tensor:
        return self.model(rows.float())


class Impl(NamedTuple):
    label: str
    norm: str
    fixed: bool                                   # a fixed-ε attack (success at ε by construction)
    guess: Callable[[int], int]                   # budget -> the option first tried
    run: Callable[[nn.Module, Tensor, Tensor, int], tuple[Tensor, Tensor | None]]  # -> (x_adv, queries (N,))
    option: str                                   # the option's name in the library


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _advgrad(name: str, norm: str) -> Callable[[nn.Module, Tensor, Tensor, int], tuple[Tensor, Tensor | None]]:
    from advgrad.attacks.blackbox.boundary import boundary
    from advgrad.attacks.blackbox.hopskipjump import hopskipjump
    from advgrad.attacks.blackbox.rays import rays
    from advgrad.attacks.blackbox.spsa import spsa
    from advgrad.attacks.square import square

    def run(model: nn.Module, x: Tensor, y: Tensor, q: int) -> tuple[Tensor, Tensor | None]:
        if name == "hopskipjump":
            res = hopskipjump(model, x, y, norm=norm, queries=q, generator=_gen())
        elif name == "rays":
            res = rays(model, x, y, queries=q)
        elif name == "boundary":
            res = boundary(model, x, y, queries=q, generator=_gen())
        elif name == "spsa":
            res = spsa(model, x, y, EPS[norm], queries=q, samples=SPSA_PAIRS, generator=_gen())
        else:
            res = square(model, x, y, EPS[norm], norm=norm, queries=q, seed=0, chunk_size=len(x))
        assert res.queries is not None
        return res.x_adv, res.queries
    return run


def _foolbox(name: str, norm: str) -> Callable[[nn.Module, Tensor, Tensor, int], tuple[Tensor, Tensor | None]]:
    def run(model: nn.Module, x: Tensor, y: Tensor, steps: int) -> tuple[Tensor, Tensor | None]:
        import foolbox as fb

        fmodel = fb.PyTorchModel(model, bounds=(0, 1))
        if name == "hopskipjump":
            attack: Any = fb.attacks.HopSkipJumpAttack(steps=steps, constraint="l2" if norm == "2" else "linf")
        else:
            attack = fb.attacks.BoundaryAttack(steps=steps)
        # Foolbox's L2 HopSkipJump divides the batch's gradient estimates by one norm (the whole batch's):
        # one point at a time there, as tests/attacks/blackbox/test_hopskipjump.py explains
        parts = [slice(i, i + 1) for i in range(len(x))] if name == "hopskipjump" and norm == "2" else [slice(None)]
        advs, counts = [], []
        for part in parts:
            xs, ys = x[part], y[part]
            before = model.passes.forward
            # both attacks' own start (their default init_attack), run here so that a point it leaves
            # unbroken stays unbroken instead of Foolbox's ValueError for the whole batch
            init = fb.attacks.LinearSearchBlendedUniformNoiseAttack(steps=50)
            starts = init.run(fmodel, xs, fb.criteria.Misclassification(ys))
            with torch.no_grad():
                ok = model(starts).argmax(1) != ys
            adv, spent = xs.clone(), torch.full((len(xs),), (model.passes.forward - before) // len(xs))
            if bool(ok.any()):
                before = model.passes.forward
                adv[ok] = attack.run(fmodel, xs[ok], fb.criteria.Misclassification(ys[ok]), starting_points=starts[ok])
                spent[ok] += (model.passes.forward - before) // int(ok.sum())  # the batch in lockstep
            advs.append(adv)
            counts.append(spent)
        return torch.cat(advs), torch.cat(counts)
    return run


def _art(name: str, norm: str) -> Callable[[nn.Module, Tensor, Tensor, int], tuple[Tensor, Tensor | None]]:
    def run(model: nn.Module, x: Tensor, y: Tensor, steps: int) -> tuple[Tensor, Tensor | None]:
        from art.attacks import evasion
        from art.estimators.classification import PyTorchClassifier

        with torch.no_grad():
            k = int(model(x[:1]).shape[1])
        clf = PyTorchClassifier(Float32(model), loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                                nb_classes=k, clip_values=(0.0, 1.0))
        if name == "hopskipjump":
            attack: Any = evasion.HopSkipJump(clf, norm=2 if norm == "2" else np.inf, max_iter=steps,
                                              verbose=False)
        else:
            attack = evasion.BoundaryAttack(clf, targeted=False, max_iter=steps, verbose=False)
        advs, counts = [], []
        for i in range(len(x)):  # ART loops over points itself; here each point's queries are counted
            before = model.passes.forward
            advs.append(torch.from_numpy(np.asarray(attack.generate(x[i:i + 1].numpy(), y=y[i:i + 1].numpy()))))
            counts.append(model.passes.forward - before)
        return torch.cat(advs).to(x.dtype), torch.tensor(counts)
    return run


def _torchattacks(name: str) -> Callable[[nn.Module, Tensor, Tensor, int], tuple[Tensor, Tensor | None]]:
    def run(model: nn.Module, x: Tensor, y: Tensor, option: int) -> tuple[Tensor, Tensor | None]:
        import torchattacks

        if name == "spsa":
            attack: Any = torchattacks.SPSA(model, eps=EPS["inf"], delta=0.01, lr=0.01, nb_iter=option,
                                            nb_sample=SPSA_PAIRS, max_batch_size=SPSA_PAIRS)
        else:
            attack = torchattacks.Square(model, norm="Linf", eps=EPS["inf"], n_queries=option, p_init=0.8,
                                         loss="margin", resc_schedule=False, seed=0)
        return attack(x, y), None  # counted per point by Attributed
    return run


def implementations() -> list[Impl]:
    """Every implementation, with its first guess of the option that keeps it within a budget b."""
    per_step = 2 * SPSA_PAIRS
    return [
        Impl("advgrad HopSkipJump", "inf", False, lambda b: b, _advgrad("hopskipjump", "inf"), "queries"),
        Impl("advgrad RayS", "inf", False, lambda b: b, _advgrad("rays", "inf"), "queries"),
        Impl("Foolbox HopSkipJumpAttack", "inf", False, lambda b: _hsj_steps(b, 1.0), _foolbox("hopskipjump", "inf"),
             "steps"),
        Impl("ART HopSkipJump", "inf", False, lambda b: _hsj_steps(b, 1.0), _art("hopskipjump", "inf"), "max_iter"),
        Impl("advgrad SPSA", "inf", True, lambda b: b, _advgrad("spsa", "inf"), "queries"),
        Impl("torchattacks SPSA", "inf", True, lambda b: max(1, b // per_step), _torchattacks("spsa"),
             "nb_iter"),
        Impl("advgrad Square", "inf", True, lambda b: b - 3, _advgrad("square", "inf"), "queries"),
        Impl("torchattacks Square", "inf", True, lambda b: b - 3, _torchattacks("square"), "n_queries"),
        Impl("advgrad HopSkipJump", "2", False, lambda b: b, _advgrad("hopskipjump", "2"), "queries"),
        Impl("Foolbox HopSkipJumpAttack", "2", False, lambda b: _hsj_steps(b, 1.0), _foolbox("hopskipjump", "2"),
             "steps"),
        Impl("ART HopSkipJump", "2", False, lambda b: _hsj_steps(b, 1.0), _art("hopskipjump", "2"), "max_iter"),
        Impl("advgrad Boundary", "2", False, lambda b: b, _advgrad("boundary", "2"), "queries"),
        Impl("Foolbox BoundaryAttack", "2", False, lambda b: max(1, int(b / 1.2)), _foolbox("boundary", "2"), "steps"),
        Impl("ART BoundaryAttack", "2", False, lambda b: max(1, b // 40), _art("boundary", "2"), "max_iter"),
    ]


def _hsj_steps(budget: int, extra: float) -> int:
    """Iterations of HopSkipJump whose estimates (100·√t queries at iteration t) and about 40 more queries
    per iteration (bisection, step search, the start) fit the budget."""
    spent, t = 0.0, 0
    while True:
        cost = 100 * math.sqrt(t + 1) * extra + 40
        if spent + cost > budget or t >= 10_000:
            return max(1, t)
        spent, t = spent + cost, t + 1


def _measure(impl: Impl, model: nn.Module, x: Tensor, y: Tensor, option: int) -> dict[str, Any]:
    """One run: x_adv, the queries per point as counted (see the module docstring), ‖δ‖, seconds."""
    from advgrad.models.counting import PassCounter

    model.eval()  # (a peer may have left it in training mode)
    counter = PassCounter(model).eval()
    # fixed-ε attacks query only within ε (+ SPSA's δ = 0.01) of their points: each row is counted for its own
    queried: nn.Module = Attributed(counter, x, EPS[impl.norm] + 0.02) if impl.fixed else counter
    torch.manual_seed(0)
    np.random.seed(0)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adv, queries = impl.run(queried, x, y, option)
    seconds = time.perf_counter() - start
    total, tally = counter.passes.forward, None
    if isinstance(queried, Attributed):
        if queried.stray or int(queried.counts.sum()) != total:
            raise RuntimeError(f"{impl.label}: {queried.stray} queried rows beyond ε of every point")
        tally, queries = queries, queried.counts
    elif impl.label.startswith("advgrad") and queries is not None and int(queries.sum()) != total:
        raise RuntimeError(f"{impl.label}: its tally {int(queries.sum())} ≠ the counter's {total}")
    assert queries is not None
    with torch.no_grad():
        fooled = model(adv.to(x.dtype)).argmax(1) != y
    delta = (adv.to(x.dtype) - x).flatten(1)
    dist = delta.abs().amax(1) if impl.norm == "inf" else delta.norm(dim=1)
    dist = torch.where(fooled, dist, torch.full_like(dist, math.inf))
    return {"option": option, "queries": [int(q) for q in queries], "total": total, "seconds": seconds,
            "distance": [float(d) for d in dist], "own_tally": None if tally is None else [int(q) for q in tally]}


def _fit_option(impl: Impl, model: nn.Module, x: Tensor, y: Tensor, budget: int, option: int,
                tries: list[tuple[int, int, int]], up: bool = True) -> tuple[int, dict[str, Any] | None]:
    """The largest option tried on (x, y) whose most queries per point are within the budget: up to four runs,
    each moving the option in proportion to the gap (down when over the budget; up, for the peers'
    iteration counts, while more than 7 % of it is left)."""
    best: tuple[int, dict[str, Any]] | None = None
    over = math.inf
    for _ in range(4):
        out = _measure(impl, model, x, y, option)
        most = max(out["queries"])
        tries.append((option, most, len(x)))
        if most <= budget:
            best = (option, out) if best is None or option > best[0] else best
            if impl.option == "queries" or most >= 0.93 * budget or not up:
                break
            nxt = max(option + 1, int(option * budget / max(most, 1) * 0.98))
        else:
            over = min(over, option)
            nxt = max(1, min(option - 1, int(option * budget / most * 0.98)))
        nxt = min(nxt, int(over) - 1) if math.isfinite(over) else nxt
        if nxt in {t[0] for t in tries if t[2] == len(x)} or nxt < 1:
            break
        option = nxt
    return (best[0], best[1]) if best is not None else (option, None)


def fit(impl: Impl, model: nn.Module, x: Tensor, y: Tensor, budget: int, probe: int = 5) -> dict[str, Any]:
    """The implementation's run on all the points with an option fitted to the budget on the first ``probe``
    points (then lowered on all of them, at most twice more, should some point there spend more)."""
    tries: list[tuple[int, int, int]] = []
    option, out = impl.guess(budget), None
    if impl.option != "queries":  # advgrad's attacks take the budget itself: no probe
        option, out = _fit_option(impl, model, x[:probe], y[:probe], budget, option, tries)
    if len(x) > probe or out is None:
        option, out = _fit_option(impl, model, x, y, budget, option, tries, up=False)
        if out is None:  # no option kept it within the budget: the last run, flagged in the table
            out = _measure(impl, model, x, y, option)
    out["tries"] = tries
    return out


def summary(impl: Impl, budget: int, out: dict[str, Any]) -> dict[str, Any]:
    dist = torch.tensor(out["distance"])
    q = torch.tensor(out["queries"], dtype=torch.float64)
    return {"implementation": impl.label, "norm": impl.norm, "budget": budget,
            "option": f"{impl.option}={out['option']}",
            "queries_median": float(q.median()), "queries_max": int(q.max()), "within_budget": int(q.max()) <= budget,
            "median_distance": None if impl.fixed else float(dist.median()),
            "success": float((dist <= EPS[impl.norm] + 1e-6).float().mean()), "seconds": out["seconds"],
            "tries": out["tries"],
            "own_tally_median": None if out["own_tally"] is None else float(torch.tensor(out["own_tally"]).median())}


def points(model: nn.Module, n: int) -> tuple[Tensor, Tensor]:
    """The first n mnist-5k test digits the model classifies correctly."""
    from advgrad.data import load_dataset

    data = load_dataset("mnist-5k")
    with torch.no_grad():
        ok = model(data.x_test).argmax(1) == data.y_test
    idx = ok.nonzero().flatten()[:n]
    return data.x_test[idx], data.y_test[idx]


def _cell(v: float | None, fmt: str) -> str:
    return "–" if v is None else ("∞" if math.isinf(v) else format(v, fmt))


def table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| implementation | budget | option | queries counted (median, max) | median ‖δ‖ | success within ε | "
             "seconds |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        flag = "" if r["within_budget"] else " **over**"
        lines.append(f"| {r['implementation']} | {r['budget']} | {r['option']} | {r['queries_median']:.0f}, "
                     f"{r['queries_max']}{flag} | {_cell(r['median_distance'], '.3f')} | {r['success']:.0%} | "
                     f"{r['seconds']:.1f} |")
    return lines


def figure(record: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(m, norm) for m in record["models"] for norm in ("inf", "2")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (m, norm) in zip(axes[0], panels):
        rows = [r for r in record["rows"] if r["model"] == m and r["norm"] == norm]
        for label in dict.fromkeys(r["implementation"] for r in rows):
            mine = sorted((r for r in rows if r["implementation"] == label), key=lambda r: r["budget"])
            ax.plot([r["budget"] for r in mine], [100 * r["success"] for r in mine], marker="o",
                    linestyle="-" if label.startswith("advgrad") else "--", label=label)
        ax.set_xscale("log")
        ax.set_title(f"{m}, {SYMBOL[norm]} (ε = {EPS[norm]})", fontsize=9)
        ax.set_xlabel("queries per sample (budget)")
        ax.set_ylabel("success within ε (%)")
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(record: dict[str, Any], out: Path, command: str) -> None:
    lines = ["# Black-box attacks against their peers, by queries (mnist-5k)", "",
             f"The first {record['n']} mnist-5k test digits each model classifies correctly; every implementation "
             "run in one process on the same points, its queries counted by a wrapper on the model "
             "(scripts/black_box_queries.py explains how per point). ε = 0.1 (L∞), 1.5 (L2); success within ε = "
             "share of the points with an adversarial example at ‖δ‖ ≤ ε; median ‖δ‖ over all the points (∞ where "
             "most stay unbroken; – for the fixed-ε attacks, which stop at ε). The option column is what bounds "
             "each implementation's queries (the peers' iteration counts fitted so that the most queries spent "
             f"on a point stay within the budget). Seed 0, one CPU thread ({platform.machine()}), "
             f"{record['minutes']:.1f} minutes in all.", "", "```", command, "```", "",
             "![success within ε against queries](success_vs_queries.png)", ""]
    for m in record["models"]:
        for norm in ("inf", "2"):
            rows = [r for r in record["rows"] if r["model"] == m and r["norm"] == norm]
            if rows:
                lines += [f"## {m} ({DESCRIBED.get(m, m)}), {SYMBOL[norm]}, ε = {EPS[norm]}", "", f"`{command}`", ""]
                lines += table(rows) + [""]
    lines += record.get("notes", [])
    (out / "queries.md").write_text("\n".join(lines).rstrip() + "\n")
    (out / "queries.json").write_text(json.dumps(record, indent=1) + "\n")
    figure(record, out / "success_vs_queries.png")


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--budgets", default="1000,5000,10000")
    ap.add_argument("--models", default="mnist5k-small,mnist5k-pgd",
                    help="checkpoint names in --model-dir, or paths to checkpoints")
    ap.add_argument("--model-dir", default="/work/models")
    ap.add_argument("--only", default="", help="comma-separated implementation labels (default: all)")
    ap.add_argument("--quick", action="store_true", help="3 digits, budgets 400,800 (a smoke test)")
    ap.add_argument("--out", default=str(ROOT / "results" / "black_box"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from advgrad.models.checkpoint import load_checkpoint

    n, budgets = (3, [400, 800]) if args.quick else (args.n, [int(b) for b in args.budgets.split(",")])
    wanted = {s.strip() for s in args.only.split(",") if s.strip()}
    impls = [i for i in implementations() if not wanted or i.label in wanted]
    command = "python scripts/black_box_queries.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    start, rows, models = time.perf_counter(), [], []
    for spec in args.models.split(","):
        path = Path(spec) if spec.endswith(".pt") else Path(args.model_dir) / f"{spec}.pt"
        name = path.stem
        models.append(name)
        model = load_checkpoint(path).model.eval()
        x, y = points(model, n)
        for impl in impls:
            for budget in budgets:
                row = {"model": name, **summary(impl, budget, fit(impl, model, x, y, budget))}
                rows.append(row)
                print(f"{name} {SYMBOL[impl.norm]} {impl.label} @{budget}: {row['option']} "
                      f"q={row['queries_median']:.0f}/{row['queries_max']} d={row['median_distance']} "
                      f"s={row['success']:.2f} "
                      f"{row['seconds']:.1f}s tries={row['tries']}", flush=True)
    record = {"n": n, "budgets": budgets, "models": models, "rows": rows,
              "minutes": (time.perf_counter() - start) / 60, "torch": torch.__version__}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write(record, out, command)
    return rows


if __name__ == "__main__":
    main()
