"""``advgrad attack``: the options → an ``AttackConfig`` → ``advgrad.runs.attack.attack_report`` → the JSON
record (and the examples file) → a table.

--out (.json) and --save-examples (.npz) are checked before the checkpoint is read: neither may be the
other or the --model file, and both folders must take a new file. Under torchrun every process attacks its
blocks of images and process 0 alone prints and writes (``advgrad.runs.attack``). torch and the library are imported
when the command runs (``advgrad attack --help`` answers at once)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import click

from advgrad.catalog import ATTACKS, LOSSES, NORMS
from advgrad.cli._attack_options import FLAGS, flags_of
from advgrad.cli._common import (
    UsageFail,
    check_outputs,
    data_option,
    device_option,
    follow,
    labels_only_option,
    model_option,
    model_source_options,
    progress_bar,
    resumable,
    suffix,
    warn,
)
from advgrad.cli._types import FloatIn, IntIn
from advgrad.configs import AttackConfig

# Every attack of catalog.ATTACKS; each takes the options its function takes (``AttackEntry.options``).
METHODS = tuple(ATTACKS)
TUNABLE = tuple(FLAGS)
POSITIVE = IntIn(min=1, rule="a positive integer")


@click.command()
@model_option
@model_source_options
@labels_only_option
@data_option
@click.option("--eps", type=FloatIn(0.0, rule="a finite number ≥ 0"), default=None,
              help="Budget ε: the largest ‖x′ − x‖ allowed. Required, but for the minimal-norm attacks (fmn, "
                   "sigma-zero, hopskipjump, rays, boundary), which find each image's smallest ‖δ‖ (with --eps: "
                   "the success rate within ε).")
@click.option("--method", type=click.Choice(METHODS), default="fgsm", show_default=True,
              help=f"One of {', '.join(METHODS)} (autoattack: the standard version). `advgrad info --attacks` "
                   "describes each.")
@click.option("--norm", type=click.Choice(tuple(NORMS)), default="inf", show_default=True, help="Lp norm of ε.")
@click.option("--steps", type=POSITIVE, default=None,
              help="Iterations [default: 10 for pgd and mifgsm, 100 for the AutoAttack members].")
@click.option("--alpha", type=FloatIn(0.0, min_open=True, rule="a finite number > 0"), default=None,
              help="Step size of pgd/mifgsm [default: 2.5·ε/steps for pgd, ε/steps for mifgsm].")
@click.option("--restarts", type=POSITIVE, default=1, show_default=True,
              help="Random restarts (the worst example per sample is kept).")
@click.option("--random-start/--no-random-start", "random_start", default=True, show_default=True,
              help="PGD: start from a uniform point of the ε-ball.")
@click.option("--targeted", is_flag=True, help="Push towards a target class (--target-class or --target).")
@click.option("--target-class", "target_class", type=int, default=None, metavar="K", help="Target class K.")
@click.option("--target", "target_mode", type=click.Choice(["random"]), default=None,
              help="random: a random class other than the label, per sample (seeded).")
@click.option("--loss", type=click.Choice(tuple(LOSSES)), default="ce", show_default=True)
@click.option("--queries", type=POSITIVE, default=5000, show_default=True, help="Square's query budget.")
@click.option("--n-targets", "targets", type=IntIn(min=1, rule="a positive integer"), default=9, show_default=True,
              help="Target classes tried by apgd-t and fab-t.")
@click.option("--n", "--n-test", "n", type=POSITIVE, default=None,
              help="Attack the first N test images (default: all); --n-test under torchrun, whose own options "
                   "--n... would take --n.")
@click.option("--block", type=POSITIVE, default=250, show_default=True,
              help="Points per attack call: the unit of random seeds and of the work shared between processes "
                   "(250, AutoAttack's reference batch).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random starts and random targets.")
@click.option("--resume", is_flag=True,
              help="Continue a killed run of this same command from its state (OUT.state/, beside --out), "
                   "attacking only the blocks it had not finished; the same record and examples as an "
                   "uninterrupted run.")
@device_option
@click.option("--data-root", type=click.Path(path_type=Path), default=None,
              help="Folder with the checkpoint's data set files (torchvision's layout).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("out/attack.json"), show_default=True,
              help="JSON record of the attack (a .json file, not the --model file).")
@click.option("--save-examples", "save_examples", type=click.Path(path_type=Path), default=None,
              help="Also write x, x_adv, y, predictions and confidences (a .npz file).")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON record to stdout instead of the table.")
@click.pass_context
def attack(ctx: click.Context, /, model_path: Path, eps: float | None, method: str, norm: str, steps: int | None,
           alpha: float | None, restarts: int, random_start: bool, targeted: bool, target_class: int | None,
           target_mode: str | None, loss: str, queries: int, targets: int, n: int | None, block: int,
           seed: int, resume: bool, device: str, data_root: Path | None, out: Path, save_examples: Path | None,
           as_json: bool, **sources: Any) -> None:
    """Attack the model's test images (FGSM, PGD, MI-FGSM, AutoAttack or one of its members) and report
    what survives.

    FGSM: x′ = clip(x + ε·sign ∂J/∂X) (L∞); PGD: many projected steps, optionally restarted. The attack
    success rate counts only the images the model classified correctly (for targeted attacks: those
    whose label is not the target, now classified as the target).
    """
    config = _config(ctx, method, norm=norm, steps=steps, alpha=alpha, restarts=restarts, random_start=random_start,
                     targeted=targeted, loss=loss, queries=queries, targets=targets)
    target = _target(targeted, target_class, target_mode)
    if eps is None and ATTACKS[method].kind != "minimal":
        minimal = ", ".join(name for name, entry in ATTACKS.items() if entry.kind == "minimal")
        raise UsageFail(f"--method {method} needs --eps (the minimal-norm attacks run without: {minimal})")
    suffix("--out", out, ".json")
    suffix("--save-examples", save_examples, ".npz")
    check_outputs([("--out", out)] + ([("--save-examples", save_examples)] if save_examples is not None else []),
                  inputs=[("--model", model_path)])
    from advgrad.runs.attack import attack_report, write_examples
    from advgrad.runs.output import is_main, to_json, write_json

    state = out.with_suffix(".state")
    with progress_bar("attack", "image") as bar, resumable(state):
        report = attack_report(model_path, eps, config, target=target, n=n, block=block, seed=seed,
                               device=device, data_root=data_root, on_warning=warn, progress=follow(bar),
                               on_status=bar.status, state=state, resume=resume, **sources)
    if is_main():  # under torchrun: process 0 alone prints and writes
        write_json(out, report.record)
        if save_examples is not None:
            write_examples(save_examples, report)
    report.finish()
    if not is_main():
        return
    if as_json:
        click.echo(to_json(report.record), nl=False)
        return
    _print_table(report.record, model_path)
    click.echo(f"wrote {out}" + (f" and {save_examples}" if save_examples is not None else ""))


def _config(ctx: click.Context, method: str, **options: Any) -> AttackConfig:
    """The ``AttackConfig`` of the options: the ones given on the command line must be ones the method's
    function takes (``AttackEntry.options``, from its signature); its own defaults fill the rest."""
    takes = ATTACKS[method].options
    given = [p for p in TUNABLE if ctx.get_parameter_source(p) is not click.core.ParameterSource.DEFAULT
             and options.get(p) is not None]
    wrong = [p for p in given if p not in takes]
    if wrong:
        raise UsageFail(f"{FLAGS[wrong[0]]} does not apply to --method {method} (it takes: {flags_of(method)})")
    return AttackConfig.of(method, norm=options["norm"], **{p: options[p] for p in given})


def _target(targeted: bool, target_class: int | None, target_mode: str | None) -> int | Literal["random"] | None:
    """What a targeted attack aims at: a class K or "random"; None for an untargeted one."""
    if targeted and (target_class is None) == (target_mode is None):
        raise UsageFail("--targeted needs exactly one of --target-class K or --target random")
    if not targeted and (target_class is not None or target_mode is not None):
        raise UsageFail("--target-class/--target need --targeted")
    return target_class if target_class is not None else ("random" if target_mode is not None else None)


def _print_table(record: dict[str, Any], model_path: Path) -> None:
    method, steps, restarts = record["method"], record["steps"], record["restarts"]
    name = (ATTACKS[method].title or method) + (f"-{steps}" if "steps" in ATTACKS[method].options else "") \
        + (f"×{restarts}" if restarts > 1 else "")
    goal = "" if not record["targeted"] else f", targeted ({record['target']})"
    click.echo(f"model {model_path} ({record['model']['name']}), {record['dataset']}, n = {record['n']}; "
               f"{name} {NORMS[record['norm']].symbol}" + (f" ε = {record['eps']:g}" if record['eps'] is not None
                                                            else " (minimal ‖δ‖)")
               + (f", α = {record['alpha']:g}" if "alpha" in ATTACKS[method].options else "")
               + (f", loss {record['loss']}" if "loss" in ATTACKS[method].options else "")
               + f"{goal}, seed {record['provenance']['seed']}")
    rate = record["attack_success_rate"]
    rows = [("clean accuracy", f"{record['clean_accuracy']:.2%}"),
            ("adversarial accuracy", f"{record['adversarial_accuracy']:.2%}"),
            ("attack success rate", "n/a" if rate is None else f"{rate:.2%} of {record['attacked']} attacked"),
            ("mean confidence (adv)", "n/a (labels only)" if record["mean_confidence_adv"] is None
             else f"{record['mean_confidence_adv']:.3f}"),
            ("max ‖x′ − x‖∞ / mean ‖x′ − x‖₂", f"{record['max_linf']:.4g} / {record['mean_l2']:.4g}"),
            ("time", f"{record['seconds']:.2f} s ({record['images_per_second'] or 0:.0f} images/s)"),
            ("passes per image", _passes(record, record["n"]))]
    spent = record.get("passes_per_attack", {})
    rows += [(f"  accuracy after {member}", f"{acc:.2%}" + (f" ({_passes(spent[member], record['n'])})"
                                                           if member in spent else ""))
             for member, acc in record.get("cascade", {}).items()]
    if "min_norm" in record:
        m, symbol = record["min_norm"], NORMS[record["norm"]].symbol
        sizes = " / ".join("∞" if m[k] is None else f"{m[k]:.4g}" for k in ("median", "mean", "max"))
        rows += [(f"median / mean / max ‖x′ − x‖ ({symbol})", sizes),
                 ("found an example", "n/a" if m["broken"] is None else f"{m['broken']:.2%} of the attacked")]
    if record.get("queries", {}).get("mean") is not None:
        q = record["queries"]
        rows.append(("queries per point (mean / median / max)", f"{q['mean']:.0f} / {q['median']:.0f} / {q['max']}"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"  {key:<{width}}  {value}")


def _passes(spent: dict[str, Any], n: int) -> str:
    """Forward and backward sample-passes per image, e.g. "2 forward + 1 backward"."""
    return f"{spent['forward'] / max(n, 1):.4g} forward + {spent['backward'] / max(n, 1):.4g} backward"
