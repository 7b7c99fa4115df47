"""``advgrad eval``: the options → an ``EvalConfig`` → ``advgrad.runs.evaluation.run_eval`` → the JSON record
and the CSV beside it → a table and the sanity report. ``eval --examples FILE`` evaluates saved adversarial
examples instead: exactly ``advgrad transfer`` (``cli._transfer.run_transfer``), no attack runs.

--out (.json) and the CSV beside it are checked before the checkpoint is read (neither may be the --model
file; both folders must take a new file). torch and the library are imported when the command runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from advgrad.catalog import ATTACKS, MIN_EPS_ATTACKS, MIN_NORM_ATTACKS, NORMS
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
    warn,
)
from advgrad.cli._types import Floats, IntIn, Names
from advgrad.configs import EvalConfig

if TYPE_CHECKING:
    from advgrad.runs.evaluation import EvalReport

DEFAULTS = EvalConfig()


@click.command("eval")
@click.option("--examples", type=click.Path(path_type=Path), default=None,
              help="Evaluate these saved adversarial examples (`attack --save-examples`) on --model instead of "
                   "attacking it: the same record as `advgrad transfer` (takes only --model and its options, "
                   "--block, --device, --out).")
@model_option
@model_source_options
@labels_only_option
@data_option
@click.option("--eps", type=Floats(), default=",".join(f"{e:g}" for e in DEFAULTS.eps), show_default=True,
              help="Comma-separated radii (in the --norm).")
@click.option("--norm", type=click.Choice(tuple(NORMS)), default=DEFAULTS.norm, show_default=True,
              help="Lp norm of the threat model.")
@click.option("--attacks", type=Names(tuple(ATTACKS)), default=",".join(DEFAULTS.attacks), show_default=True,
              help=f"Comma-separated: {', '.join(ATTACKS)} (autoattack: the standard ensemble, "
                   "APGD-CE → APGD-T → FAB-T → Square).")
@click.option("--steps", type=int, default=DEFAULTS.steps, show_default=True, help="PGD steps (α = 2.5·ε/steps).")
@click.option("--restarts", type=int, default=DEFAULTS.restarts, show_default=True, help="PGD random restarts.")
@click.option("--n", "--n-test", "n", type=IntIn(min=1, rule="a positive integer"), default=None,
              help="Evaluate the first N test images (default: all); --n-test under torchrun, whose own options "
                   "--n... would take --n.")
@click.option("--block", type=int, default=DEFAULTS.block, show_default=True,
              help="Points per attack call: the unit of random seeds, of the work shared between processes and of "
                   "--resume (250, AutoAttack's reference batch).")
@click.option("--min-norm", "min_norm", type=Names(MIN_NORM_ATTACKS), default=None,
              help=f"Comma-separated attacks whose per-point minimal ‖δ‖ (in --norm) to measure: "
                   f"{', '.join(MIN_NORM_ATTACKS)} (minimal-norm attacks as they are, the others by bisection); "
                   "with their ensemble, the "
                   "accuracy-vs-ε curve, medians and each attack's best-on count.")
@click.option("--min-norm-steps", "min_norm_steps", type=IntIn(min=1, rule="a positive integer"), default=None,
              help="Steps of each --min-norm attack that takes steps (default: each its paper's; cw and ead: "
                   "9 searches × 10,000).")
@click.option("--min-eps", "min_eps", is_flag=True,
              help="Also bisect each sample's minimal ε (up to the largest --eps) with --min-eps-attack.")
@click.option("--min-eps-attack", type=click.Choice(MIN_EPS_ATTACKS), default=DEFAULTS.min_eps_attack,
              show_default=True, help="The attack --min-eps bisects with (one that takes a radius per sample; "
                                      "apgd-ce: Auto-PGD's 100 steps, no step size to tune).")
@click.option("--precision", type=float, default=DEFAULTS.precision, show_default=True,
              help="Bisection precision for --min-eps.")
@click.option("--queries", type=int, default=DEFAULTS.queries, show_default=True,
              help="Queries of the black-box search in the sanity report.")
@click.option("--no-sanity", is_flag=True,
              help="Skip the sanity report (on a folder it runs on its first images only).")
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True)
@click.option("--resume", is_flag=True,
              help="Continue a killed run of this same command from its state (OUT.state/, beside --out), "
                   "attacking only the blocks it had not finished; the same record as an uninterrupted run.")
@device_option
@click.option("--data-root", type=click.Path(path_type=Path), default=None,
              help="Folder with the checkpoint's data set files (torchvision's layout).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("out/eval.json"), show_default=True,
              help="JSON record, a .json file; the CSV table goes beside it (same name, .csv). Neither may be "
                   "the --model file.")
@click.pass_context
def eval_cmd(ctx: click.Context, /, examples: Path | None, model_path: Path, eps: tuple[float, ...], norm: str,
             attacks: tuple[str, ...], steps: int, restarts: int, n: int | None, block: int,
             min_norm: tuple[str, ...] | None, min_norm_steps: int | None, min_eps: bool,
             min_eps_attack: str, precision: float, queries: int, no_sanity: bool, seed: int, resume: bool,
             device: str, data_root: Path | None, out: Path, **sources: Any) -> None:
    """How robust is the model, and can the number be trusted? Accuracy under FGSM/PGD at every ε
    (only correctly classified points are attacked; "worst" = survives every attack), optionally the
    per-sample minimal ε, and a sanity report that flags gradient masking.

    With --examples: how saved adversarial examples transfer to --model (as `advgrad transfer`).
    """
    if examples is not None:
        _transfer(ctx, examples, model_path, block, device, out, sources)
        return
    config = EvalConfig(eps=eps, norm=norm, attacks=attacks, steps=steps, restarts=restarts, block=block,
                        seed=seed, min_eps=min_eps, min_eps_attack=min_eps_attack, min_norm=min_norm or (),
                        min_norm_steps=min_norm_steps, precision=precision,
                        queries=queries)
    csv_path = out.with_suffix(".csv")
    if out.suffix.lower() != ".json":
        raise UsageFail(f"--out {str(out)!r}: expected a .json file (the CSV goes beside it)")
    check_outputs([("--out", out), ("the CSV beside --out", csv_path)], inputs=[("--model", model_path)])
    from advgrad.runs.evaluation import CSV_FIELDS, run_eval
    from advgrad.runs.output import is_main, write_csv, write_json

    state = out.with_suffix(".state")
    with progress_bar("eval", "image") as bar, resumable(state):
        report = run_eval(model_path, config, n=n, sanity=not no_sanity, device=device, data_root=data_root,
                          on_warning=warn, progress=follow(bar), on_status=bar.status, state=state, resume=resume,
                          **sources)
    if is_main():  # under torchrun: process 0 alone prints and writes
        _print_report(report, model_path)
        write_json(out, report.record)
        write_csv(csv_path, report.rows, CSV_FIELDS)
    report.finish()
    if not is_main():
        return
    verdict = "all ok" if report.evaluation.all_ok else "has warnings"
    click.echo(f"wrote {out} and {csv_path} ({report.seconds:.0f} s)"
               + (f"; sanity report {verdict}" if report.evaluation.checks else ""))


def _transfer(ctx: click.Context, examples: Path, model_path: Path, block: int, device: str, out: Path,
              sources: dict[str, Any]) -> None:
    """``eval --examples``: refuse the options that configure an attack or pick data, then ``advgrad transfer``."""
    from advgrad.cli._transfer import run_transfer
    from advgrad.runs.transfer import MODEL_OPTIONS  # model_source_options' names

    allowed = {"examples", "model_path", "block", "device", "out", *MODEL_OPTIONS}
    for param in ctx.command.params:
        if param.name not in allowed and ctx.get_parameter_source(param.name or "") is not ParameterSource.DEFAULT:
            flag = max(param.opts, key=len) if param.opts else param.name
            raise UsageFail(f"{flag} does not apply with --examples: the saved examples are evaluated as they are "
                            "(no attack runs, the data is the file's); drop one of them")
    run_transfer(examples, model_path, batch_size=block, device=device, png_dir=None, out=out,
                 sources={k: sources[k] for k in MODEL_OPTIONS if sources[k] is not None})


def _print_report(report: EvalReport, model_path: Path) -> None:
    """The header, one line per accuracy record (with its forward and backward sample-passes per point), and
    the sanity report."""
    record, evaluation, config = report.record, report.evaluation, report.evaluation.config
    click.echo(f"model {model_path} ({record['model']['name']}), {record['dataset']}, n = {record['n']}, "
               f"clean accuracy {evaluation.clean_accuracy:.2%}; PGD-{config.steps}×{config.restarts}, "
               f"{NORMS[config.norm].symbol}, seed {config.seed}")
    w = max(8, *(len(r["attack"]) for r in evaluation.records))
    click.echo(f"{'attack':>{w}}  {'ε':>6}  {'accuracy':>8}  {'seconds':>7}  {'fwd/pt':>8}  {'bwd/pt':>8}")
    for r in evaluation.records:
        fwd, bwd = (f"{r[k] / max(r['n'], 1):>8.4g}" if r.get(k) is not None else " " * 8
                    for k in ("forward", "backward"))
        click.echo(f"{r['attack']:>{w}}  {r['eps']:>6g}  {r['accuracy']:>8.2%}  {r['seconds']:>7.1f}  {fwd}  {bwd}")
        if "cascade" in r:  # an ensemble: robust accuracy after each member
            click.echo(" " * (w + 2) + " → ".join(f"{m} {a:.2%}" for m, a in r["cascade"].items()))
    if "min_norm" in record:
        norms = record["min_norm"]
        click.echo(f"minimal {NORMS[norms['norm']].symbol} ‖δ‖ per point (best on: the points where the attack "
                   "found the smallest of all):")
        click.echo(f"  {'attack':>12}  {'median':>8}  {'mean':>8}  {'broken':>7}  {'best on':>7}  {'optimality':>10}")
        for name, a in norms["attacks"].items():
            median, mean = (f"{v:.4g}" if v is not None else "∞" for v in (a["median"], a["mean"]))
            best = "" if a["best_on"] is None else str(a["best_on"])
            score = "" if a["optimality"] is None else f"{a['optimality']:.3f}"
            click.echo(f"  {name:>12}  {median:>8}  {mean:>8}  {a['broken']:>7.1%}  {best:>7}  {score:>10}")
    if evaluation.checks:
        sanity_n = int(record.get("sanity_n", record["n"]))
        click.echo("sanity report:" if sanity_n == record["n"] else
                   f"sanity report (on the first {sanity_n} of the {record['n']} points: a folder is evaluated "
                   "chunk by chunk, the report runs on the first chunk):")
        width = max(len(c.name) for c in evaluation.checks)
        for c in evaluation.checks:
            click.echo(f"  {c.status:<4}  {c.name:<{width}}  {c.message}")
