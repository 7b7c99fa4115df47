"""The attack report of ``advgrad attack``: one attack (``AttackConfig``) at one ε on the first N test images
of a saved model's data set, batch by batch — the JSON record (accuracies, success rate, confidences, sizes
of the perturbations, timing, provenance) and the examples arrays of ``--save-examples``.

Targeted attacks aim every image at one class (``target=K``) or each at a class drawn uniformly among the
others (``target="random"``, from a generator seeded with the seed). The attack runs as ``advgrad eval``'s
passes do (``advgrad.attacks.runner``): blocks of ``block`` (250) images, each with its own seeded randomness;
AutoAttack as ``advgrad.autoattack`` runs it, on the same blocks.

Under torchrun (``torchrun --nproc_per_node N -m advgrad attack ...``) process k attacks the blocks k, k + N,
... of each stage; every block's examples, logits and verdicts are gathered on every process, so every
process ends with the one-process record and examples. Only process 0 reports (warnings, progress); the
caller writes on process 0 only (``distributed.is_main()``).

Cost: the record's ``forward`` and ``backward`` are the attack's sample-passes (``advgrad.models.counting``,
counted by the runner around the attack calls and summed over processes; an ensemble's per member in
``passes_per_attack``). The clean predictions, one forward pass of the N images, are not in them: they are
the report's, not the attack's. FGSM, say, costs 2N forward (its step and the evaluation of x_adv) and N
backward.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union

import numpy as np
import torch
from torch import Tensor, nn

from advgrad import distributed
from advgrad._runtime import logits as logits_of
from advgrad._validate import ParameterError
from advgrad.attacks import runner
from advgrad.attacks.autoattack import robust_after
from advgrad.attacks.pgd import STEP_FACTORS
from advgrad.attacks.runner import BLOCK, Status, Store
from advgrad.configs import AttackConfig
from advgrad.evaluate.robust import passes_record
from advgrad.losses import output_activation, probabilities
from advgrad.models.counting import Passes
from advgrad.models.query import Classifier, QueryModel, answer_rows
from advgrad.records.write import provenance
from advgrad.runs._journal import Journal, data_hash, key_of
from advgrad.runs._sources import Sources, Warn, check_attacks, open_sources

Target = Union[int, Literal["random"], None]
Progress = Callable[[int, int], None]  # progress(images done, images in all)


@dataclass(frozen=True)
class AttackReport:
    """``record``: what ``advgrad attack`` writes as JSON; ``examples``: x, x_adv (N, C, H, W), y, pred_clean,
    pred_adv, conf_clean, conf_adv (N,) and, targeted, target (N,) as numpy arrays; ``journal``: the run's
    state on disk (with ``state``), to delete with ``finish()`` once the files are written."""

    record: dict[str, Any]
    examples: dict[str, np.ndarray]
    journal: Journal | None = None

    def finish(self) -> None:
        """The record and examples are written: the state kept for a resumed run is no longer needed."""
        if self.journal is not None:
            self.journal.close()


def targets(y: Tensor, num_classes: int, target: Target, generator: torch.Generator) -> Tensor:
    """Class K for every sample, or per sample a uniformly drawn class other than its label ("random")."""
    if target == "random":
        shift = torch.randint(1, num_classes, y.shape, generator=generator)
        return (y + shift) % num_classes
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < num_classes:
        raise ValueError(f"target must be 'random' or a class in 0..{num_classes - 1}, got {target!r}")
    return torch.full_like(y, target)


def _predict(model: Classifier, logits: Tensor) -> tuple[Tensor, Tensor]:
    """Predicted class and its probability (N,) each, on the CPU (NaN: a model that answers labels only)."""
    activation = output_activation(model if isinstance(model, nn.Module) else None)
    conf, pred = probabilities(logits, activation).max(dim=1)
    if isinstance(model, QueryModel) and model.labels_only:
        conf = torch.full_like(conf, math.nan)
    return pred.cpu(), conf.cpu()


def _clean(model: Classifier, x: Tensor, block: int, num_classes: int) -> Tensor:
    """The model's logits (N, K) at x on the CPU: a model that only answers queries, its scores (one-hot
    rows where it answers labels only)."""
    if isinstance(model, QueryModel):
        return answer_rows(model, x, num_classes, block)
    return logits_of(model, x, batch_size=block)


def _queries(spent: Tensor, eligible: Tensor) -> dict[str, Any]:
    """A black-box attack's queries per point (mean, median, max) over the points it attacked."""
    q = spent[eligible].double()
    if not len(q):
        return {"mean": None, "median": None, "max": None, "total": int(spent.sum())}
    return {"mean": float(q.mean()), "median": float(q.median()), "max": int(q.max()), "total": int(spent.sum())}


def _attack_all(model: Classifier, x: Tensor, y: Tensor, labels: Tensor, eps: float | None, config: AttackConfig, *,
                block: int, seed: int, bounds: tuple[float, float], progress: Progress | None, num_classes: int,
                store: Store | None, on_status: Status | None = None) -> dict[str, Any]:
    """The attack of every image (x (N, C, H, W) on the CPU, aimed at ``labels`` (N,): y or the targets), by
    the runner (``advgrad.attacks.runner``: blocks of ``block``, shared out under torch.distributed; an
    ensemble attacks the points classified correctly at x, as ``advgrad.autoattack`` does, a single attack
    every image, without early stop): x, y, labels, x_adv, the clean and adversarial predictions and
    confidences (N,) on the CPU, and an ensemble's ``broken_by`` (N,) and ``stages``. The clean logits are
    one pass in blocks of ``block`` on every process."""
    clean = _clean(model, x, block, num_classes)  # (N, K) on the CPU
    stages = runner.stages(config)
    ensemble = len(stages) > 1
    candidates = clean.argmax(1) == labels if ensemble else torch.ones(len(x), dtype=torch.bool)
    outcome = runner.run(model, x, labels, eps, stages, candidates=candidates, seed=seed, bounds=bounds, block=block,
                         early_stop=False, progress=progress, store=store, status=on_status)
    z_adv = clean.clone()  # (N, K): each attacked row replaced by the attack's logits at x_adv
    if outcome.logits is not None:
        z_adv[outcome.attacked] = outcome.logits[outcome.attacked].to(z_adv.dtype)
    out = {"x": x, "y": y, "labels": labels, "x_adv": outcome.x_adv, "passes": outcome.passes}
    if outcome.distance is not None:  # a minimal-norm attack: ‖δ‖ per point, inf where none was found
        out["distance"] = outcome.distance
    if outcome.queries is not None:  # a black-box attack: the model's answers it asked, per point
        out["queries"] = outcome.queries
    out.update(zip(("pred_clean", "conf_clean", "pred_adv", "conf_adv"),
                   (*_predict(model, clean), *_predict(model, z_adv))))
    if not ensemble:
        return out
    return {**out, "broken_by": outcome.broken_by, "stages": tuple(s.method for s in stages)}


def attack_report(model_path: str | os.PathLike[str], eps: float | None, config: AttackConfig, *, target: Target = None,
                  n: int | None = None, block: int = BLOCK, seed: int = 0, device: str = "auto",
                  data_root: str | os.PathLike[str] | None = None, on_warning: Warn | None = None,
                  progress: Progress | None = None, data: str | os.PathLike[str] | None = None,
                  classes: str | Sequence[int] | None = None, state: str | os.PathLike[str] | None = None,
                  resume: bool = False, on_status: Status | None = None, **options: Any) -> AttackReport:
    """Attack the first ``n`` images (all with None) of ``data`` (default: the test split of the data set the
    checkpoint at ``model_path`` was trained on) with ``config`` at radius ``eps``, ``block`` images per attack
    call; ``model_path`` is any model ``open_model`` takes (``options``: its model_args, weights, weights_key,
    mean, std, and load_data's image_size, grayscale, workers; ``runs._sources.open_sources``). Random starts
    come from one generator per block seeded by (``seed``, block), random targets from one
    seeded with ``seed`` (the global RNG is seeded with it too); under torchrun every process must call it
    and every process returns the one-process report (see the module docstring). A targeted ``config`` needs
    ``target``: a class index or "random". The attack success rate counts only the images the model
    classified correctly (targeted: those whose label is not the target, now classified as the target).
    ``state``/``resume``: every finished block kept in that folder, a killed run continued from it (as
    ``runs.evaluation.run_eval``); ``AttackReport.finish()`` deletes it."""
    if bool(config.get("targeted")) != (target is not None):
        raise ValueError(f"a targeted attack needs a target (a class or 'random') and only a targeted one takes "
                         f"one; got targeted={bool(config.get('targeted'))} and target={target!r}")
    distributed.setup(device)  # under torchrun: join the group (else: nothing)
    if not distributed.is_main():  # process 0 alone reports
        on_warning = progress = on_status = None
    inputs = open_sources(model_path, data=data, data_root=data_root, device=device, n=n, classes=classes,
                          on_warning=on_warning, **options)
    check_attacks(inputs.model, [stage.method for stage in runner.stages(config)])
    k = inputs.source.num_classes
    if isinstance(target, int) and not 0 <= target < k:
        raise ParameterError("target_class", f" {target} is out of range: {inputs.dataset_name} has classes "
                                             f"0..{k - 1}")
    torch.manual_seed(seed)
    x, y = inputs.source.tensors()  # (N, C, H, W) on the CPU; a folder is decoded batch by batch
    # Random targets: CPU draws from their own seeded generator, the same on any device and process.
    labels = y if target is None else targets(y, k, target, torch.Generator().manual_seed(seed))  # (N,)
    journal = None
    if state is not None:
        key = key_of(command="attack", config=config.to_dict(), eps=eps, target=target, seed=seed, block=block,
                     model=inputs.model_meta, data=data_hash(x, labels))
        journal = Journal.open(state, key, resume=resume)
    start = time.perf_counter()
    out = _attack_all(inputs.model, x, y, labels, eps, config, block=block, seed=seed, bounds=inputs.bounds,
                      num_classes=k, progress=progress, store=journal.store("attack") if journal is not None else None,
                      on_status=on_status)
    seconds = time.perf_counter() - start
    record = {**_record(out, eps, config, target, inputs, seconds),
              "provenance": provenance(seed=seed, model_path=_model_file(model_path))}
    examples = {k: out[k].numpy() for k in ("x", "x_adv", "y", "pred_clean", "pred_adv", "conf_clean", "conf_adv")}
    if target is not None:
        examples["target"] = out["labels"].numpy()
    return AttackReport(record, examples, journal)


def write_examples(path: str | os.PathLike[str], report: AttackReport) -> None:
    """The examples of ``report`` as a ``records.examples.save_examples`` file (readable by ``load_examples`` and
    ``advgrad transfer``): x_adv, y, x and the provenance record (attack, ε, norm, seed, bounds, the model's
    sha256, data, class count), beside the predictions and confidences (and targets) ``advgrad attack`` saves."""
    from advgrad.records.examples import save_examples

    r, ex = report.record, report.examples
    name = "fgsm" if r["method"] == "fgsm" else f"{r['method']}-{r['steps']}" + (
        f"x{r['restarts']}" if r["restarts"] > 1 else "")
    extra = {k: v for k, v in ex.items() if k not in ("x", "x_adv", "y")}
    # A minimal-norm attack without ε: every example lies within the largest ‖δ‖ it found.
    eps = r["eps"] if r["eps"] is not None else (r.get("min_norm", {}).get("max") or 0.0)
    save_examples(path, torch.from_numpy(ex["x_adv"]), torch.from_numpy(ex["y"]), attack=name, eps=eps,
                  norm=r["norm"], seed=r["provenance"]["seed"], model_sha256=r["provenance"].get("model_sha256"),
                  x=torch.from_numpy(ex["x"]), bounds=tuple(r["bounds"]), arrays=extra, targeted=r["targeted"],
                  loss=r["loss"], data=r["dataset"], num_classes=r["num_classes"], model=r["model"].get("name"))


def step_size(config: AttackConfig, eps: float | None) -> float | None:
    """The step α the gradient loop takes (``pgd``, ``mifgsm``, ``fgsm``): the explicit ``alpha``, else the
    attack's default (PGD 2.5·ε/steps, MI-FGSM ε/steps, FGSM ε); None for attacks without a step size."""
    if config.method not in STEP_FACTORS or eps is None:
        return None
    alpha = config.get("alpha")
    return float(alpha) if alpha is not None else STEP_FACTORS[config.method] * eps / (config.get("steps") or 1)


def _loss_name(loss: object) -> str | None:
    return getattr(loss, "__name__", "callable") if callable(loss) else loss  # type: ignore[return-value]


def _model_file(spec: str | os.PathLike[str]) -> str | os.PathLike[str] | None:
    """The model's file for the provenance record (its sha256), None for a model built from code alone."""
    return spec if os.path.isfile(spec) else None


def _min_norm(out: dict[str, Any], eligible: Tensor, norm: str) -> dict[str, Any]:
    """A minimal-norm attack's distances over the points it attacked (``eligible``): median (inf counts:
    ∞, written None, when most stay unbroken), mean and max over those broken, the share broken."""
    d = out["distance"][eligible].double()
    broken = torch.isfinite(d)
    median = float(d.median()) if len(d) else math.inf
    return {"norm": norm, "median": median if math.isfinite(median) else None,
            "mean": float(d[broken].mean()) if bool(broken.any()) else None,
            "max": float(d[broken].max()) if bool(broken.any()) else None,
            "broken": float(broken.double().mean()) if len(d) else None}


def _mean(values: Tensor) -> float | None:
    """The mean, None where it is not a number (confidences of a model that answers labels only)."""
    mean = float(values.double().mean()) if len(values) else math.nan
    return None if math.isnan(mean) else mean


def _record(out: dict[str, Any], eps: float | None, config: AttackConfig, target: Target, inputs: Sources,
            seconds: float) -> dict[str, Any]:
    """The JSON record, its fields in the order ``advgrad attack`` has always written them."""
    y, labels = out["y"], out["labels"]
    delta = (out["x_adv"] - out["x"]).flatten(1)  # (N, D)
    correct = out["pred_clean"] == y
    targeted = target is not None
    eligible = correct & (labels != y) if targeted else correct
    fooled = (out["pred_adv"] == labels) if targeted else (out["pred_adv"] != y)
    return {
        "method": config.method, "norm": config.norm, "eps": eps, "alpha": step_size(config, eps),
        "steps": config.get("steps") or (1 if config.method in STEP_FACTORS else None),
        "restarts": config.get("restarts") or 1,
        "random_start": bool(config.get("random_start")), "options": config.to_dict()["options"],
        "targeted": targeted, "target": target, "loss": _loss_name(config.get("loss")),
        "model": inputs.model_meta, "dataset": inputs.dataset_name, "bounds": list(inputs.bounds),
        "n": len(y), "num_classes": inputs.source.num_classes, "clean_accuracy": float(correct.double().mean()),
        "adversarial_accuracy": float((out["pred_adv"] == y).double().mean()),
        "attack_success_rate": float(fooled[eligible].double().mean()) if bool(eligible.any()) else None,
        "attacked": int(eligible.sum()),
        "mean_confidence_adv": _mean(out["conf_adv"]),
        "max_linf": float(delta.abs().amax()) if delta.numel() else 0.0,
        "mean_l2": float(delta.norm(dim=1).double().mean()),
        "seconds": seconds, "images_per_second": len(y) / seconds if seconds > 0 else None,
        **passes_record(sum(out["passes"], Passes())),
        "device": str(inputs.device),
        **({"cascade": robust_after(out["broken_by"], out["stages"]),
            "passes_per_attack": {m: passes_record(p) for m, p in zip(out["stages"], out["passes"])}}
           if "stages" in out else {}),
        **({"min_norm": _min_norm(out, eligible, config.norm)} if "distance" in out else {}),
        **({"queries": _queries(out["queries"], eligible)} if "queries" in out else {}),
    }
