"""advgrad's attacks and the peers' (adv-lib, Foolbox, torchattacks, the reference AutoAttack's FAB) ranked in one run,
as AttackBench ranks them (Cinà et al., AAAI 2025, arXiv 2404.19460): every attack's per-point minimal ‖δ‖ under the
same budget of forward + backward sample-passes per point, scored by optimality against the per-point best of all of
them.

advgrad's attacks run as ``advgrad rank`` runs them (``advgrad.runs.ranking``: steps from a probe's linear fit,
fixed-ε attacks through the bisection); a peer's attack is called on the points the model classifies
correctly with the model wrapped in the same ``PassCounter``, its steps set by the same kind of probe (two
step counts on 8 points, a linear fit, 99 % of the budget). A peer's distance is ‖x′ − x‖ in the norm
(``advgrad.norms``) where the model misclassifies x′, ∞ elsewhere, 0 on the points misclassified already.
All the distances go to ``evaluate.min_norm.scored`` and ``runs.ranking.ranked``: one table per model and norm.
The peers' attacks are their minimal-norm ones (FMN, DDN, ALMA, FAB, DeepFool, CW-L2); the fixed-ε members
of the reference AutoAttack (APGD, Square) have no minimal-norm mode to rank without a bisection of their
own, so its FAB (``pyautoattack.fab_pt.FABAttack_PT``, ε = the ranking's largest distance) stands for it.

    python scripts/attackbench.py --n 100 --budget 300 --out results/attackbench
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from advgrad.catalog import NORMS  # noqa: E402
from advgrad.configs import EvalConfig  # noqa: E402
from advgrad.data import load_dataset  # noqa: E402
from advgrad.evaluate.min_norm import minimal_norms, scored  # noqa: E402
from advgrad.models import load_checkpoint  # noqa: E402
from advgrad.models.counting import PassCounter, Passes  # noqa: E402
from advgrad.norms import get_norm  # noqa: E402
from advgrad.records.write import write_csv, write_figure, write_json, write_text  # noqa: E402
from advgrad.runs.ranking import (  # noqa: E402  # noqa: E402
    CSV_FIELDS,
    EPS_MAX,
    PROBE,
    SLACK,
    csv_rows,
    iteration_option,
    iterations_for,
    rank_figure,
    ranked,
)

Peer = Callable[[nn.Module, Tensor, Tensor, int], Tensor]  # (model, x, y, steps) → x_adv
MODELS = {"mnist5k-small": ("/work/models/mnist5k-small.pt", "mnist-5k"),
          "mnist5k-pgd": ("/work/models/mnist5k-pgd.pt", "mnist-5k"),
          "fashion-small": ("/work/models/fashion-small.pt", "fashion-mnist")}
OURS = {"inf": ("fmn", "apgd-ce", "pgd"), "2": ("fmn", "ddn", "deepfool", "apgd-ce"), "1": ("fmn", "alma", "apgd-ce"),
        "0": ("fmn", "sigma-zero")}


def _adv_lib(name: str, norm: str) -> Peer:
    def run(model: nn.Module, x: Tensor, y: Tensor, steps: int) -> Tensor:
        from adv_lib.attacks import alma, ddn, fmn

        if name == "fmn":
            return fmn(model, x, y, norm=float(norm), steps=steps)
        if name == "ddn":
            return ddn(model, x, y, steps=steps)
        return alma(model, x, y, num_steps=steps, distance="l1" if norm == "1" else "l2")
    return run


def _foolbox(name: str, norm: str) -> Peer:
    def run(model: nn.Module, x: Tensor, y: Tensor, steps: int) -> Tensor:
        import foolbox as fb

        kinds = {"inf": fb.attacks.LInfFMNAttack, "2": fb.attacks.L2FMNAttack, "1": fb.attacks.L1FMNAttack,
                 "0": fb.attacks.L0FMNAttack}
        attack = fb.attacks.DDNAttack(steps=steps) if name == "ddn" else kinds[norm](steps=steps)
        _, clipped, _ = attack(fb.PyTorchModel(model, bounds=(0.0, 1.0)), x, y, epsilons=None)
        out: Tensor = clipped
        return out
    return run


_FAB_NORMS = {"inf": "Linf", "2": "L2", "1": "L1"}


def _torchattacks(name: str, norm: str) -> Peer:
    def run(model: nn.Module, x: Tensor, y: Tensor, steps: int) -> Tensor:
        import torchattacks

        if name == "deepfool":
            out = torchattacks.DeepFool(model, steps=steps)(x, y)
        elif name == "cw":
            out = torchattacks.CW(model, c=1.0, kappa=0.0, steps=steps, lr=0.01)(x, y)
        else:  # FAB keeps an example only within eps: the ranking's largest distance
            out = torchattacks.FAB(model, norm=_FAB_NORMS[norm], eps=EPS_MAX[norm], steps=steps,
                                   n_classes=int(model(x[:1]).shape[1]))(x, y)
        return out[0] if isinstance(out, tuple) else out
    return run


def _reference_fab(norm: str) -> Peer:
    def run(model: nn.Module, x: Tensor, y: Tensor, steps: int) -> Tensor:
        from pyautoattack.fab_pt import FABAttack_PT

        attack = FABAttack_PT(model, norm=_FAB_NORMS[norm], n_restarts=1, n_iter=steps, eps=EPS_MAX[norm], seed=0,
                              device=x.device)
        out: Tensor = attack.perturb(x, y)
        return out
    return run


PEERS: dict[str, dict[str, Peer]] = {
    "inf": {"adv-lib fmn": _adv_lib("fmn", "inf"), "foolbox fmn": _foolbox("fmn", "inf"),
            "torchattacks fab": _torchattacks("fab", "inf"), "autoattack fab": _reference_fab("inf")},
    "2": {"adv-lib fmn": _adv_lib("fmn", "2"), "adv-lib ddn": _adv_lib("ddn", "2"),
          "foolbox fmn": _foolbox("fmn", "2"), "foolbox ddn": _foolbox("ddn", "2"),
          "torchattacks fab": _torchattacks("fab", "2"), "torchattacks deepfool": _torchattacks("deepfool", "2"),
          "torchattacks cw": _torchattacks("cw", "2"), "autoattack fab": _reference_fab("2")},
    "1": {"adv-lib fmn": _adv_lib("fmn", "1"), "adv-lib alma": _adv_lib("alma", "1"),
          "foolbox fmn": _foolbox("fmn", "1"), "autoattack fab": _reference_fab("1")},  # torchattacks' FAB: no L1
    "0": {"adv-lib fmn": _adv_lib("fmn", "0"), "foolbox fmn": _foolbox("fmn", "0")},
}


def _passes_of(peer: Peer, model: nn.Module, x: Tensor, y: Tensor, steps: int) -> float:
    counter = PassCounter(model)
    peer(counter, x, y, steps)
    return counter.passes.total / len(y)


def peer_steps(peer: Peer, model: nn.Module, x: Tensor, y: Tensor, budget: int) -> int:
    """The largest step count whose passes per point, by a linear fit of two probes, fit 99 % of the budget."""
    p10, p20 = _passes_of(peer, model, x, y, 10), _passes_of(peer, model, x, y, 20)
    slope = (p20 - p10) / 10
    return max(1, math.floor((SLACK * budget - (p10 - 10 * slope)) / slope)) if slope > 0 else 100


def peer_distances(peer: Peer, model: nn.Module, x: Tensor, y: Tensor, correct: Tensor, steps: int,
                   norm: str) -> tuple[Tensor, Passes, float]:
    counter = PassCounter(model)
    d = torch.zeros(len(y), dtype=torch.float64)
    start = time.perf_counter()
    x_adv = peer(counter, x[correct], y[correct], steps).detach()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        fooled = model(x_adv).argmax(1) != y[correct]
    dist = get_norm(norm).measure(x_adv - x[correct]).double()
    d[correct] = torch.where(fooled, dist, torch.full_like(dist, math.inf))
    return d, counter.passes, seconds


def bench(model_path: str, dataset: str, norm: str, n: int, budget: int) -> dict[str, object]:
    model = load_checkpoint(model_path).model.eval()
    data = load_dataset(dataset)
    x, y = data.x_test[:n], data.y_test[:n]
    ours = OURS[norm]
    config = EvalConfig(eps=(EPS_MAX[norm],), norm=norm, attacks=ours, min_norm=ours, precision=EPS_MAX[norm] / 64)
    steps: dict[str, int | None] = {a: iterations_for(model, x[:PROBE], y[:PROBE], a, config, budget=budget,
                                                      eps_max=EPS_MAX[norm]) for a in ours}
    norms = minimal_norms(model, x, y, config, eps_max=EPS_MAX[norm],
                          options={a: {iteration_option(a): s} for a, s in steps.items() if s is not None})
    distances = {f"advgrad {a}": norms.distances[a] for a in ours}
    seconds = {f"advgrad {a}": norms.seconds[a] for a in ours}
    passes = {f"advgrad {a}": norms.passes[a] for a in ours}
    steps = {f"advgrad {a}": s for a, s in steps.items()}
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    for name, peer in PEERS[norm].items():
        steps[name] = peer_steps(peer, model, x[:PROBE], y[:PROBE], budget)
        distances[name], passes[name], seconds[name] = peer_distances(peer, model, x, y, correct, steps[name], norm)
    table = ranked(scored(norm, distances, seconds, passes), budget=budget, iterations=steps)
    return {"model": {"name": Path(model_path).stem}, "dataset": dataset, "n": n, "norm": norm, "budget": budget,
            "eps_max": EPS_MAX[norm], "clean_accuracy": float(correct.double().mean()), "attacks": table}


def markdown(record: dict[str, object], command: str) -> str:
    attacks: dict[str, dict[str, object]] = record["attacks"]  # type: ignore[assignment]
    lines = [f"### {record['model']['name']} ({record['dataset']}), {NORMS[str(record['norm'])].symbol}"  # type: ignore[index]
             f" — clean accuracy {record['clean_accuracy']:.0%}", "",
             "| attack | optimality | median ‖δ‖ | broken | best on | passes/point | steps | seconds |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, a in attacks.items():
        opt = "" if a["optimality"] is None else f"{a['optimality']:.3f}"
        median = "∞" if a["median"] is None else f"{a['median']:.4g}"
        lines.append(f"| {name} | {opt} | {median} | {a['broken']:.0%} | {a['best_on'] or ''} | "
                     f"{a['passes_per_point']:.0f} | {a['iterations'] or ''} | {a['seconds']:.1f} |")
    return "\n".join(lines) + f"\n\n`{command}`\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--norms", default="inf,2,1,0")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "attackbench")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    sections, start = [], time.perf_counter()
    for key in args.models.split(","):
        for norm in args.norms.split(","):
            path, dataset = MODELS[key]
            record = bench(path, dataset, norm, args.n, args.budget)
            stem = args.out / f"{key}-L{norm}"
            write_json(stem.with_suffix(".json"), record)
            write_csv(stem.with_suffix(".csv"), csv_rows(record["attacks"]), CSV_FIELDS)  # type: ignore[arg-type]
            write_figure(stem.with_suffix(".png"), rank_figure(record), dpi=80)
            command = (f"python scripts/attackbench.py --n {args.n} --budget {args.budget} --models {key} "
                       f"--norms {norm} --out {args.out.name}")
            sections.append(markdown(record, command))
            print(sections[-1], flush=True)
    head = (f"# AttackBench-style ranking: advgrad and its peers under {args.budget} passes per point\n\n"
            f"{args.n} test points per model; `scripts/attackbench.py` (its docstring says how the budget is kept and "
            f"what is counted); {time.perf_counter() - start:.0f} s on one thread.\n\n"
            "Passes/point are over all the points, the misclassified ones (distance 0, never attacked) included: "
            "per attacked point each attack spent at most the budget. The reference AutoAttack stands here by its "
            "FAB (its APGD and Square take a fixed ε, with no minimal-norm mode to rank); torchattacks by FAB "
            "(L∞, L2: it has no L1), DeepFool and CW-L2 (one c, no search over it).\n\n"
            f"    python scripts/attackbench.py --n {args.n} --budget {args.budget} --models {args.models} "
            f"--norms {args.norms} --out {args.out}\n\n")
    write_text(args.out / "README.md", head + "\n".join(sections))
    print(json.dumps({"seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main()
