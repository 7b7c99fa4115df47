"""Minimal perturbations, advgrad against its peers: for each model and each norm (L0, L1, L2, L∞), every
advgrad minimal-norm attack that implements the norm and each peer's implementation (adv-lib 0.2.8,
Foolbox 3.3.4, torchattacks 3.5.1), run in one process on the same points, then per attack the median
‖δ‖, the success rate within the usual ε, the seconds, AttackBench's optimality against the ensemble
(the per-point smallest ‖δ‖ over every attack run), and the robust-accuracy-vs-ε curves as a figure.

    python scripts/min_norm_record.py                           # the record (results/min_norm/), ~11 min
    python scripts/min_norm_record.py --quick --out /tmp/mn     # a few points, a few steps (the test)
    python scripts/min_norm_record.py --models cnn=/work/models/mnist5k-cnn.pt --norms 2 --n 50

Each example an attack returns is judged the same way, whoever made it: adversarial when the model's
argmax differs from the label, at ‖x_adv − x‖ measured by ``advgrad.get_norm(norm).measure`` (L0: pixels,
the same as coordinates on one-channel digits); a point the model misclassifies at x has distance 0 for
every attack, one an attack did not break ``inf``. "= twin" is the share of points on which a peer's
distance equals advgrad's counterpart's exactly (bit-identical implementations give 100 %).
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import advgrad  # noqa: E402
from advgrad.evaluate.optimality import ensemble, optimality  # noqa: E402
from advgrad.records.write import write_json, write_text  # noqa: E402

NORMS = ("0", "1", "2", "inf")
P = {"0": 0.0, "1": 1.0, "2": 2.0, "inf": math.inf}
LABEL = {"0": "L0 (pixels)", "1": "L1", "2": "L2", "inf": "L∞"}
EPS = {"0": (10.0, 20.0), "1": (5.0, 10.0), "2": (1.0, 1.5), "inf": (0.1, 0.3)}  # success within these
MODELS = "cnn=/work/models/mnist5k-cnn.pt,pgd=/work/models/mnist5k-pgd.pt"
ALL, OURS = "ensemble (all)", "ensemble (advgrad)"


class Sizes(NamedTuple):
    """Points per model and each attack's steps (the same for advgrad and the peers wherever their options
    match): FMN, DDN, ALMA, σ-zero, DeepFool, FAB steps; CW and EAD: searches over c × steps, from c₀;
    PGD-L0: steps per pass of the bisection (to 1 pixel, up to 64)."""

    n: int = 50
    fmn: int = 100
    ddn: int = 100
    alma: int = 100
    sigma_zero: int = 200
    deepfool: int = 50
    fab: int = 20
    cw_searches: int = 5
    cw_steps: int = 50
    cw_lr: float = 0.1  # not CW's 0.01: at 0.01 a black pixel (tanh⁻¹ ≈ −7.3) barely moves in 50 steps
    ead_searches: int = 5
    ead_steps: int = 50
    c0: float = 0.1
    pgd_l0: int = 20


QUICK = Sizes(n=6, fmn=8, ddn=8, alma=8, sigma_zero=8, deepfool=4, fab=3, cw_searches=2, cw_steps=10,
              ead_searches=2, ead_steps=10, pgd_l0=3)  # CW, EAD: ≥ 10 steps (the peers abort-test every steps // 10)


Run = Callable[[nn.Module, Tensor, Tensor], Tensor]


class Contender(NamedTuple):
    """One row: ``run(model, x, y)`` returns adversarial candidates x_adv (N, ...), or, for the bisection
    (``direct``), the distances (N,) themselves; ``twin``: the advgrad row a peer is compared with."""

    name: str
    who: str
    settings: str
    run: Run
    twin: str | None = None
    direct: bool = False


def _big(norm: str, x: Tensor) -> float:
    """A radius no point of the box [0, 1] exceeds: FAB then searches the smallest ‖δ‖ unconstrained."""
    d = x[0].numel()
    return {"inf": 1.0, "2": math.sqrt(d), "1": float(d)}[norm]


def _pgd_l0(steps: int) -> Run:
    def run(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        config = advgrad.EvalConfig(eps=(64.0,), attacks=("pgd",), norm="0", steps=steps, precision=1.0,
                                    block=len(x))
        return advgrad.minimal_eps(model, x, y, config, eps_max=64.0).floor()  # ⌊ε⌋ pixels (L0's radius)
    return run


def ours(norm: str, s: Sizes) -> list[Contender]:
    """advgrad's attacks implementing ``norm``, each on the whole batch in one chunk (as the peers run)."""
    c = {"chunk_size": s.n}
    paper = advgrad.FMNOptions(skip_saturated=False)
    rows = [Contender("FMN", "advgrad", f"{s.fmn} steps, skip_saturated (default)",
                      lambda m, x, y: advgrad.fmn(m, x, y, norm=norm, steps=s.fmn, **c).x_adv),
            Contender("FMN (paper)", "advgrad", f"{s.fmn} steps, skip_saturated=False",
                      lambda m, x, y: advgrad.fmn(m, x, y, norm=norm, steps=s.fmn, options=paper, **c).x_adv)]
    cw = advgrad.CWOptions(binary_search_steps=s.cw_searches, initial_const=s.c0, lr=s.cw_lr)
    ead = advgrad.EADOptions(binary_search_steps=s.ead_searches, initial_const=s.c0)
    more: dict[str, list[Contender]] = {
        "0": [Contender("σ-zero", "advgrad", f"{s.sigma_zero} steps",
                        lambda m, x, y: advgrad.sigma_zero(m, x, y, steps=s.sigma_zero, **c).x_adv),
              Contender("PGD-L0 (bisection)", "advgrad", f"{s.pgd_l0} steps per pass, 1 pixel, ≤ 64",
                        _pgd_l0(s.pgd_l0), direct=True)],
        "1": [Contender("ALMA", "advgrad", f"{s.alma} steps",
                        lambda m, x, y: advgrad.alma(m, x, y, norm=1, steps=s.alma, **c).x_adv),
              Contender("EAD", "advgrad", f"{s.ead_searches}×{s.ead_steps}, c₀ {s.c0}, β 0.01, EN rule",
                        lambda m, x, y: advgrad.ead(m, x, y, steps=s.ead_steps, options=ead, **c).x_adv)],
        "2": [Contender("DDN", "advgrad", f"{s.ddn} steps",
                        lambda m, x, y: advgrad.ddn(m, x, y, steps=s.ddn, **c).x_adv),
              Contender("CW", "advgrad", f"{s.cw_searches}×{s.cw_steps}, c₀ {s.c0}, lr {s.cw_lr}",
                        lambda m, x, y: advgrad.cw(m, x, y, steps=s.cw_steps, options=cw, **c).x_adv),
              Contender("ALMA", "advgrad", f"{s.alma} steps",
                        lambda m, x, y: advgrad.alma(m, x, y, norm=2, steps=s.alma, **c).x_adv)],
        "inf": []}
    rows += more[norm]
    if norm in ("2", "inf"):
        rows.append(Contender("DeepFool", "advgrad", f"{s.deepfool} steps, overshoot 0.02",
                              lambda m, x, y: advgrad.deepfool(m, x, y, norm=norm, steps=s.deepfool, **c).x_adv))
    if norm != "0":
        rows.append(Contender("FAB", "advgrad", f"{s.fab} steps, 1 run, ε = the box",
                              lambda m, x, y: advgrad.fab(m, x, y, _big(norm, x), norm=norm, steps=s.fab,
                                                          **c).x_adv))
    return rows


def _foolbox(attack: Any) -> Run:
    def run(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        import foolbox as fb

        _, x_adv, found = attack(fb.PyTorchModel(model, bounds=(0, 1)), x.clone(), y.clone(), epsilons=None)
        return torch.where(found.view(-1, *[1] * (x.ndim - 1)), x_adv, x)  # its failures: zeros for CW, EAD
    return run


def adv_lib(norm: str, s: Sizes) -> list[Contender]:
    """adv-lib 0.2.8's implementations (its fmn L2 projects onto the sphere: no twin there, see README)."""
    import adv_lib.attacks as al

    rows = [Contender("adv-lib fmn", "adv-lib", f"{s.fmn} steps",
                      lambda m, x, y: al.fmn(m, x.clone(), y.clone(), norm=P[norm], steps=s.fmn),
                      twin=None if norm == "2" else "FMN (paper)")]
    if norm == "0":
        rows.append(Contender("adv-lib sigma_zero", "adv-lib", f"{s.sigma_zero} steps",
                              lambda m, x, y: al.sigma_zero(m, x.clone(), y.clone(), num_steps=s.sigma_zero),
                              twin="σ-zero"))
    if norm == "2":
        rows += [Contender("adv-lib ddn", "adv-lib", f"{s.ddn} steps, levels=None",
                           lambda m, x, y: al.ddn(m, x.clone(), y.clone(), steps=s.ddn, levels=None), twin="DDN"),
                 Contender("adv-lib carlini_wagner_l2", "adv-lib",
                           f"{s.cw_searches}×{s.cw_steps}, c₀ {s.c0}, lr {s.cw_lr}",
                           lambda m, x, y: al.carlini_wagner_l2(
                               m, x.clone(), y.clone(), initial_const=s.c0, binary_search_steps=s.cw_searches,
                               max_iterations=s.cw_steps, learning_rate=s.cw_lr), twin="CW")]
    if norm in ("1", "2"):
        rows.append(Contender("adv-lib alma", "adv-lib", f"{s.alma} steps",
                              lambda m, x, y: al.alma(m, x.clone(), y.clone(), num_steps=s.alma,
                                                      distance=f"l{norm}"), twin="ALMA"))
    if norm in ("2", "inf"):  # adv-lib never tests its last iterate: k + 1 steps are advgrad's k (tests)
        rows.append(Contender("adv-lib df", "adv-lib", f"{s.deepfool + 1} steps (= advgrad's {s.deepfool})",
                              lambda m, x, y: al.df(m, x.clone(), y.clone(), norm=P[norm], steps=s.deepfool + 1),
                              twin="DeepFool"))
    if norm != "0":
        rows.append(Contender("adv-lib fab", "adv-lib", f"{s.fab} steps, 1 run",
                              lambda m, x, y: al.fab(m, x.clone(), y.clone(), norm=P[norm], n_iter=s.fab),
                              twin="FAB"))
    return rows


def foolbox(norm: str, s: Sizes) -> list[Contender]:
    """Foolbox 3.3.4's implementations, its defaults but the steps (and CW's/EAD's search)."""
    import foolbox as fb

    fmn = {"0": fb.attacks.L0FMNAttack, "1": fb.attacks.L1FMNAttack, "2": fb.attacks.L2FMNAttack,
           "inf": fb.attacks.LInfFMNAttack}[norm]
    rows = [Contender(f"Foolbox {fmn.__name__}", "Foolbox", f"{s.fmn} steps", _foolbox(fmn(steps=s.fmn)),
                      twin="FMN (paper)")]
    if norm == "1":
        rows.append(Contender("Foolbox EADAttack", "Foolbox", f"{s.ead_searches}×{s.ead_steps}, c₀ {s.c0}",
                              _foolbox(fb.attacks.EADAttack(binary_search_steps=s.ead_searches, steps=s.ead_steps,
                                                            initial_const=s.c0)), twin="EAD"))
    if norm == "2":
        rows += [Contender("Foolbox DDNAttack", "Foolbox", f"{s.ddn} steps",
                           _foolbox(fb.attacks.DDNAttack(steps=s.ddn)), twin="DDN"),
                 Contender("Foolbox L2CarliniWagnerAttack", "Foolbox",
                           f"{s.cw_searches}×{s.cw_steps}, c₀ {s.c0}, lr {s.cw_lr}",
                           _foolbox(fb.attacks.L2CarliniWagnerAttack(binary_search_steps=s.cw_searches,
                                                                     steps=s.cw_steps, initial_const=s.c0,
                                                                     stepsize=s.cw_lr)),
                           twin="CW")]
    if norm in ("2", "inf"):
        df = fb.attacks.L2DeepFoolAttack if norm == "2" else fb.attacks.LinfDeepFoolAttack
        rows.append(Contender(f"Foolbox {df.__name__}", "Foolbox", f"{s.deepfool} steps",
                              _foolbox(df(steps=s.deepfool)), twin="DeepFool"))
    return rows


def torchattacks_rows(norm: str, s: Sizes) -> list[Contender]:
    """torchattacks 3.5.1 as shipped: DeepFool (L2, one sample at a time); CW is one run at a fixed c
    (no search; here with the other CWs' total steps) and EADL1 its own search; both as it ships them, on
    the raw digits (its tanh⁻¹ has no 1 − 10⁻⁶ factor: a pixel at exactly 0 or 1 cannot move)."""
    import torchattacks as ta

    if norm == "2":
        return [Contender("torchattacks DeepFool", "torchattacks", f"{s.deepfool} steps",
                          lambda m, x, y: ta.DeepFool(m, steps=s.deepfool, overshoot=0.02)(x, y), twin="DeepFool"),
                Contender("torchattacks CW", "torchattacks",
                          f"c = 10 fixed, {s.cw_searches * s.cw_steps} steps, lr {s.cw_lr}",
                          lambda m, x, y: ta.CW(m, c=10.0, steps=s.cw_searches * s.cw_steps, lr=s.cw_lr)(x, y),
                          twin="CW")]
    if norm == "1":
        return [Contender("torchattacks EADL1", "torchattacks",
                          f"{s.ead_searches}×{s.ead_steps}, c₀ {s.c0}, its β 0.001, L1 rule",
                          lambda m, x, y: ta.EADL1(m, binary_search_steps=s.ead_searches, max_iterations=s.ead_steps,
                                                   initial_const=s.c0)(x, y), twin="EAD")]
    return []


def contenders(norm: str, s: Sizes) -> list[Contender]:
    return ours(norm, s) + adv_lib(norm, s) + foolbox(norm, s) + torchattacks_rows(norm, s)


@torch.no_grad()
def judged(model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor, norm: str, wrong: Tensor) -> Tensor:
    """Distances (N,) float64: ‖x_adv − x‖ where the model misclassifies x_adv, inf elsewhere, 0 where it
    misclassifies x."""
    adv = model(x_adv).argmax(1) != y
    d = advgrad.get_norm(norm).measure(x_adv - x).to(torch.float64)
    return torch.where(wrong, 0.0, torch.where(adv, d, math.inf))


def attack_all(model: nn.Module, x: Tensor, y: Tensor, norm: str, s: Sizes) -> dict[str, dict[str, Any]]:
    """Every contender on (x, y): name → its row (who, twin, settings, seconds, distances)."""
    with torch.no_grad():
        wrong = model(x).argmax(1) != y
    rows: dict[str, dict[str, Any]] = {}
    for c in contenders(norm, s):
        start, cpu = time.perf_counter(), time.process_time()
        out = c.run(model, x, y)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        d = torch.where(wrong, 0.0, out.to(torch.float64)) if c.direct else judged(model, x, y, out, norm, wrong)
        rows[c.name] = {"who": c.who, "twin": c.twin, "settings": c.settings, "seconds": seconds, "cpu": cpu,
                        "distances": d}
        print(f"  L{norm} {c.name}: {seconds:.1f} s ({cpu:.1f} s CPU), median {float(d.median()):.4g}",
              file=sys.stderr, flush=True)
    return rows


def scored(rows: dict[str, dict[str, Any]], norm: str) -> dict[str, dict[str, Any]]:
    """Adds the two ensembles, and per row the median, the success within each ε, the optimality and the
    best-on count against the ensemble of every attack, and the share of points equal to its twin's."""
    attacks = {name: r["distances"] for name, r in rows.items()}
    mine = ensemble({k: v for k, v in attacks.items() if rows[k]["who"] == "advgrad"})
    def total(key: str, who: str | None) -> float:
        return sum(r[key] for r in rows.values() if who is None or r["who"] == who)

    rows = {**rows, OURS: {"who": "advgrad", "twin": None, "settings": "per-point best of advgrad's rows",
                           "seconds": total("seconds", "advgrad"), "cpu": total("cpu", "advgrad"), "distances": mine},
            ALL: {"who": "all", "twin": None, "settings": "per-point best of every row",
                  "seconds": total("seconds", None), "cpu": total("cpu", None), "distances": ensemble(attacks)}}
    scores = optimality({name: r["distances"] for name, r in rows.items()})
    for name, r in rows.items():
        d = r["distances"]
        r["median"] = float(d.median())
        r["success"] = {str(e): float((d <= e).double().mean()) for e in EPS[norm]}
        r["optimality"], r["best_on"] = scores.optimality[name], scores.best_on[name]
        twin = rows[r["twin"]]["distances"] if r["twin"] else None
        r["same_as_twin"] = None if twin is None else float((d == twin).double().mean())
    return rows


def _fmt(v: float) -> str:
    return "∞" if math.isinf(v) else f"{v:.0f}" if v >= 100 else f"{v:.4g}"


def table(rows: dict[str, dict[str, Any]], norm: str) -> str:
    eps = EPS[norm]
    head = ["attack", "code", "median ‖δ‖", *[f"≤ {e:g}" for e in eps], "optimality", "best on", "= twin",
            "CPU s", "settings"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in rows.items():
        twin = "" if r["same_as_twin"] is None else f"{100 * r['same_as_twin']:.1f} % ({r['twin']})"
        cells = [name, r["who"], _fmt(r["median"]), *[f"{100 * r['success'][str(e)]:.1f} %" for e in eps],
                 f"{r['optimality']:.3f}", str(r["best_on"]), twin, f"{r['cpu']:.1f}", r["settings"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(label: str, per_norm: dict[str, dict[str, dict[str, Any]]], path: Path) -> None:
    """Robust accuracy against ε, one panel per norm: advgrad's attacks solid, the peers dashed, the
    ensemble of every attack black."""
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0 * min(2, len(per_norm)), 4.2 * math.ceil(len(per_norm) / 2)), layout="constrained")
    axes = fig.subplots(math.ceil(len(per_norm) / 2), min(2, len(per_norm)), squeeze=False).ravel()
    for ax, (norm, rows) in zip(axes, per_norm.items()):
        best = rows[ALL]["distances"].numpy()
        finite = best[np.isfinite(best)]
        top = 2.0 * float(np.quantile(finite, 0.9)) if len(finite) else 1.0
        grid = np.linspace(0.0, top, 400)
        for i, (name, r) in enumerate(rows.items()):
            if name == OURS:
                continue
            d = r["distances"].numpy()
            style = {"color": "black", "lw": 2.2} if name == ALL else {"ls": "-" if r["who"] == "advgrad" else "--",
                                                                       "lw": 1.1, "color": f"C{i % 10}"}
            ax.plot(grid, [100.0 * float((d > e).mean()) for e in grid], label=name, **style)
        for e in EPS[norm]:
            ax.axvline(e, color="grey", lw=0.6, ls=":")
        ax.set(xlabel=f"ε ({LABEL[norm]})", ylabel="robust accuracy (%)", ylim=(-2, 102), title=LABEL[norm])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    fig.suptitle(f"{label}: robust accuracy from the minimal ‖δ‖ per point (advgrad solid, peers dashed)")
    fig.savefig(path, dpi=110)


def run_model(label: str, path: str, norms: list[str], s: Sizes) -> dict[str, Any]:
    ckpt = advgrad.load_checkpoint(path)
    model = ckpt.model.eval()
    for p in model.parameters():  # no attack needs the parameters' gradients (Foolbox's backward fills them)
        p.requires_grad_(False)
    data = advgrad.load_dataset(ckpt.meta["dataset"]["name"])
    x, y = data.x_test[: s.n], data.y_test[: s.n]
    with torch.no_grad():
        clean = float((model(x).argmax(1) == y).double().mean())
    print(f"{label} ({path}): clean accuracy {100 * clean:.1f} % on {len(y)} points", file=sys.stderr, flush=True)
    per_norm = {norm: scored(attack_all(model, x, y, norm, s), norm) for norm in norms}
    return {"path": path, "model": ckpt.meta["model"]["name"], "dataset": data.name, "n": len(y),
            "clean_accuracy": clean, "norms": per_norm}


def report(command: str, s: Sizes, models: dict[str, dict[str, Any]], seconds: float) -> str:
    out = [f"Command: `{command}`", "",
           f"Machine: {platform.machine()} {platform.system()}, torch {torch.__version__} with "
           f"{torch.get_num_threads()} thread(s); {seconds / 60:.1f} min in all.", "",
           "Sizes: " + ", ".join(f"{k} {v}" for k, v in s._asdict().items()), ""]
    for label, m in models.items():
        for norm, rows in m["norms"].items():
            out += [f"### {label} ({m['model']}, `{m['path']}`), {LABEL[norm]}: {m['n']} points, clean accuracy "
                    f"{100 * m['clean_accuracy']:.1f} %", "", table(rows, norm), ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=MODELS, help="label=checkpoint,... (default: %(default)s)")
    p.add_argument("--norms", default=",".join(NORMS))
    p.add_argument("--n", type=int, default=None, help="points per model (default 50; --quick 6)")
    p.add_argument("--quick", action="store_true", help="a few points and steps: checks the script runs")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "min_norm")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    s = QUICK if args.quick else Sizes()
    s = s if args.n is None else s._replace(n=args.n)
    norms = [n.strip() for n in args.norms.split(",")]
    if any(n not in NORMS for n in norms):
        p.error(f"--norms takes {', '.join(NORMS)}, got {args.norms!r}")
    start = time.perf_counter()
    models = {label: run_model(label, path, norms, s)
              for label, path in (item.split("=", 1) for item in args.models.split(","))}
    seconds = time.perf_counter() - start
    command = " ".join(["python scripts/min_norm_record.py", *argv])
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "tables.md", report(command, s, models, seconds) + "\n")
    for label, m in models.items():
        figure(label, m["norms"], args.out / f"curves-{label}.png")
        for rows in m["norms"].values():
            for r in rows.values():
                r["distances"] = r["distances"].tolist()
    write_json(args.out / "record.json", {"command": command, "sizes": s._asdict(), "eps": EPS, "seconds": seconds,
                                          "torch_threads": torch.get_num_threads(), "models": models})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
