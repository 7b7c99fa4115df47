"""The attack report of ``advgrad attack``: one attack (``AttackConfig``) at one ε on the first N test images
of a saved model's data set, batch by batch — the JSON record (accuracies, success rate, confidences, sizes
of the perturbations, timing, provenance) and the examples arrays of ``--save-examples``.

Targeted attacks aim every image at one class (``target=K``) or each at a class drawn uniformly among the
others (``target="random"``, from the seeded generator, before the attack's random starts draw from it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union

import numpy as np
import torch
from torch import Tensor, nn

from advgrad._runtime import logits as logits_of
from advgrad._validate import ParameterError
from advgrad.attacks import run_attack
from advgrad.attacks.autoattack import AutoAttackResult
from advgrad.catalog import ATTACKS
from advgrad.configs import AttackConfig
from advgrad.datasource import FolderSource, TensorSource
from advgrad.losses import output_activation, probabilities
from advgrad.results import provenance
from advgrad.runs._inputs import Warn
from advgrad.runs._sources import Sources, open_sources

Target = Union[int, Literal["random"], None]
Progress = Callable[[int, int], None]  # progress(images done, images in all)


@dataclass(frozen=True)
class AttackReport:
    """``record``: what ``advgrad attack`` writes as JSON; ``examples``: x, x_adv (N, C, H, W), y, pred_clean,
    pred_adv, conf_clean, conf_adv (N,) and, targeted, target (N,) as numpy arrays."""

    record: dict[str, Any]
    examples: dict[str, np.ndarray]


def targets(y: Tensor, num_classes: int, target: Target, generator: torch.Generator) -> Tensor:
    """Class K for every sample, or per sample a uniformly drawn class other than its label ("random")."""
    if target == "random":
        shift = torch.randint(1, num_classes, y.shape, generator=generator)
        return (y + shift) % num_classes
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < num_classes:
        raise ValueError(f"target must be 'random' or a class in 0..{num_classes - 1}, got {target!r}")
    return torch.full_like(y, target)


def _predict(model: nn.Module, logits: Tensor) -> tuple[Tensor, Tensor]:
    """Predicted class and its probability (N,) each, on the CPU."""
    conf, pred = probabilities(logits, output_activation(model)).max(dim=1)
    return pred.cpu(), conf.cpu()


def _attack_batches(model: nn.Module, batches: Iterator[tuple[Tensor, Tensor]], eps: float, config: AttackConfig,
                    *, relabel: Callable[[Tensor], Tensor], device: torch.device, generator: torch.Generator,
                    done: Callable[[int], None]) -> dict[str, Any]:
    """The attack, one batch of the data at a time (a folder is never read whole): x, y, the attack's labels
    (``relabel(y)``: y, or the targets), x_adv and the clean and adversarial predictions and confidences, on
    the CPU; ``done(k)`` after each batch of k images."""
    keys = ("x", "y", "labels", "x_adv", "pred_clean", "conf_clean", "pred_adv", "conf_adv")
    parts: dict[str, list[Tensor]] = {k: [] for k in keys}
    stages: tuple[str, ...] = ()
    for x, y in batches:
        labels = relabel(y)
        xb, yb = x.to(device), labels.to(device)
        result = run_attack(model, xb, yb, eps, config=config, generator=generator)
        clean = _predict(model, logits_of(model, xb, batch_size=len(xb)))
        for key, value in zip(keys, (x, y, labels, result.x_adv.cpu(), *clean, *_predict(model, result.logits))):
            parts[key].append(value)
        if isinstance(result, AutoAttackResult):  # an ensemble: which member broke each point
            stages = result.stages
            parts.setdefault("broken_by", []).append(result.broken_by.cpu())
        done(len(yb))
    out = {k: torch.cat(v) for k, v in parts.items()}
    return {**out, "stages": stages} if stages else out


def attack_report(model_path: str | os.PathLike[str], eps: float, config: AttackConfig, *, target: Target = None,
                  n: int | None = None, batch_size: int = 500, seed: int = 0, device: str = "auto",
                  data_root: str | os.PathLike[str] | None = None, on_warning: Warn | None = None,
                  progress: Progress | None = None, data: str | os.PathLike[str] | None = None,
                  classes: str | Sequence[int] | None = None, **options: Any) -> AttackReport:
    """Attack the first ``n`` images (all with None) of ``data`` (default: the test split of the data set the
    checkpoint at ``model_path`` was trained on) with ``config`` at radius ``eps``, ``batch_size`` images at a
    time; ``model_path`` is any model ``open_model`` takes (``options``: its model_args, weights, weights_key,
    mean, std, and load_data's image_size, grayscale, workers; ``runs._sources.open_sources``). Random starts
    and random targets come from a generator seeded with ``seed`` (the global RNG is seeded with it too). A
    targeted ``config`` needs ``target``: a class index or "random". The attack success rate counts only the
    images the model classified correctly (targeted: those whose label is not the target, now classified as
    the target)."""
    if config.targeted != (target is not None):
        raise ValueError(f"a targeted attack needs a target (a class or 'random') and only a targeted one takes "
                         f"one; got targeted={config.targeted} and target={target!r}")
    inputs = open_sources(model_path, data=data, data_root=data_root, device=device, n=n, classes=classes,
                          on_warning=on_warning, **options)
    k = inputs.source.num_classes
    if isinstance(target, int) and not 0 <= target < k:
        raise ParameterError("target_class", f" {target} is out of range: {inputs.dataset_name} has classes "
                                             f"0..{k - 1}")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)  # CPU draws, moved to the device: same on any device
    config = config.but(bounds=inputs.bounds)
    goals = None if target is None else targets(_labels(inputs.source), k, target, generator)  # (N,)
    start = time.perf_counter()
    out = _attack_batches(inputs.model, inputs.source.batches(batch_size), eps, config, relabel=_relabel(goals),
                          device=inputs.device, generator=generator, done=_counter(progress, len(inputs.source)))
    seconds = time.perf_counter() - start
    record = {**_record(out, eps, config, target, inputs, seconds),
              "provenance": provenance(seed=seed, model_path=_model_file(model_path))}
    examples = {k: out[k].numpy() for k in ("x", "x_adv", "y", "pred_clean", "pred_adv", "conf_clean", "conf_adv")}
    if target is not None:
        examples["target"] = out["labels"].numpy()
    return AttackReport(record, examples)


def write_examples(path: str | os.PathLike[str], report: AttackReport) -> None:
    """The examples of ``report`` as a ``transfer.save_examples`` file (readable by ``load_examples`` and
    ``advgrad transfer``): x_adv, y, x and the provenance record (attack, ε, norm, seed, bounds, the model's
    sha256, data, class count), beside the predictions and confidences (and targets) ``advgrad attack`` saves."""
    from advgrad.transfer import save_examples

    r, ex = report.record, report.examples
    name = "fgsm" if r["method"] == "fgsm" else f"{r['method']}-{r['steps']}" + (
        f"x{r['restarts']}" if r["restarts"] > 1 else "")
    extra = {k: v for k, v in ex.items() if k not in ("x", "x_adv", "y")}
    save_examples(path, torch.from_numpy(ex["x_adv"]), torch.from_numpy(ex["y"]), attack=name, eps=r["eps"],
                  norm=r["norm"], seed=r["provenance"]["seed"], model_sha256=r["provenance"].get("model_sha256"),
                  x=torch.from_numpy(ex["x"]), bounds=tuple(r["bounds"]), arrays=extra, targeted=r["targeted"],
                  loss=r["loss"], data=r["dataset"], num_classes=r["num_classes"], model=r["model"].get("name"))


def _labels(source: TensorSource | FolderSource) -> Tensor:
    """All labels (N,) of ``source`` without reading its images (a folder knows them from its file names)."""
    if isinstance(source, FolderSource):
        return torch.tensor(source.labels, dtype=torch.long)
    return source.tensors()[1]


def _relabel(goals: Tensor | None) -> Callable[[Tensor], Tensor]:
    """The attack's labels of each batch in turn: the true labels, or the next slice of ``goals``."""
    taken = [0]

    def labels(y: Tensor) -> Tensor:
        if goals is None:
            return y
        taken[0] += len(y)
        return goals[taken[0] - len(y):taken[0]]

    return labels


def _model_file(spec: str | os.PathLike[str]) -> str | os.PathLike[str] | None:
    """The model's file for the provenance record (its sha256), None for a model built from code alone."""
    return spec if os.path.isfile(spec) else None


def _counter(progress: Progress | None, total: int) -> Callable[[int], None]:
    """``done(k)`` per batch of k images → ``progress(images so far, total)``."""
    count = [0]

    def done(k: int) -> None:
        count[0] += k
        if progress is not None:
            progress(count[0], total)

    return done


def _cascade(out: dict[str, Any]) -> dict[str, float]:
    """An ensemble's robust accuracy after each of its members, in cascade order (``broken_by``: the index
    of the member that broke a point, −1 where the model is wrong already, the member count where none did)."""
    broken_by = out["broken_by"]
    return {name: float((broken_by > k).double().mean()) for k, name in enumerate(out["stages"])}


def _record(out: dict[str, Any], eps: float, config: AttackConfig, target: Target, inputs: Sources,
            seconds: float) -> dict[str, Any]:
    """The JSON record, its fields in the order ``advgrad attack`` has always written them."""
    y, labels = out["y"], out["labels"]
    delta = (out["x_adv"] - out["x"]).flatten(1)  # (N, D)
    correct = out["pred_clean"] == y
    targeted = target is not None
    eligible = correct & (labels != y) if targeted else correct
    fooled = (out["pred_adv"] == labels) if targeted else (out["pred_adv"] != y)
    return {
        "method": config.method, "norm": config.norm, "eps": eps,
        "alpha": config.step_size(eps) if ATTACKS[config.method].alpha_factor is not None else None,
        "steps": config.steps, "restarts": config.restarts, "random_start": config.random_start,
        "targeted": targeted, "target": target, "loss": config.to_dict()["loss"],
        "model": inputs.model_meta, "dataset": inputs.dataset_name, "bounds": list(inputs.bounds),
        "n": len(y), "num_classes": inputs.source.num_classes, "clean_accuracy": float(correct.double().mean()),
        "adversarial_accuracy": float((out["pred_adv"] == y).double().mean()),
        "attack_success_rate": float(fooled[eligible].double().mean()) if bool(eligible.any()) else None,
        "attacked": int(eligible.sum()),
        "mean_confidence_adv": float(out["conf_adv"].double().mean()),
        "max_linf": float(delta.abs().amax()) if delta.numel() else 0.0,
        "mean_l2": float(delta.norm(dim=1).double().mean()),
        "seconds": seconds, "images_per_second": len(y) / seconds if seconds > 0 else None,
        "device": str(inputs.device),
        **({"cascade": _cascade(out)} if "stages" in out else {}),
    }
