"""The attack report of ``advgrad attack``: one attack (``AttackConfig``) at one ε on the first N test images
of a saved model's data set, batch by batch — the JSON record (accuracies, success rate, confidences, sizes
of the perturbations, timing, provenance) and the examples arrays of ``--save-examples``.

Targeted attacks aim every image at one class (``target=K``) or each at a class drawn uniformly among the
others (``target="random"``, from the seeded generator, before the attack's random starts draw from it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Union

import numpy as np
import torch
from torch import Tensor, nn

from advgrad._runtime import logits as logits_of
from advgrad._runtime import spans
from advgrad._validate import ParameterError
from advgrad.attacks import run_attack
from advgrad.attacks.autoattack import AutoAttackResult
from advgrad.catalog import ATTACKS
from advgrad.configs import AttackConfig
from advgrad.losses import output_activation, probabilities
from advgrad.results import provenance
from advgrad.runs._inputs import Inputs, Warn, open_inputs

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


def _attack_batches(model: nn.Module, x: Tensor, labels: Tensor, eps: float, config: AttackConfig, *,
                    batch_size: int, device: torch.device, generator: torch.Generator,
                    done: Callable[[int], None]) -> dict[str, Any]:
    """The attack, batch by batch: x_adv and the clean and adversarial predictions and confidences, on the
    CPU; ``done(k)`` after each batch of k images."""
    parts: dict[str, list[Tensor]] = {k: [] for k in ("x_adv", "pred_clean", "conf_clean", "pred_adv", "conf_adv")}
    stages: tuple[str, ...] = ()
    for part in spans(len(labels), batch_size):
        xb, yb = x[part].to(device), labels[part].to(device)
        result = run_attack(model, xb, yb, eps, config=config, generator=generator)
        clean = _predict(model, logits_of(model, xb, batch_size=len(xb)))
        for key, value in zip(parts, (result.x_adv.cpu(), *clean, *_predict(model, result.logits))):
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
                  progress: Progress | None = None) -> AttackReport:
    """Attack the first ``n`` test images (all with None) of the checkpoint at ``model_path`` with ``config``
    at radius ``eps``, ``batch_size`` images at a time; random starts and random targets come from a
    generator seeded with ``seed`` (the global RNG is seeded with it too). A targeted ``config`` needs
    ``target``: a class index or "random". The attack success rate counts only the images the model
    classified correctly (targeted: those whose label is not the target, now classified as the target)."""
    if config.targeted != (target is not None):
        raise ValueError(f"a targeted attack needs a target (a class or 'random') and only a targeted one takes "
                         f"one; got targeted={config.targeted} and target={target!r}")
    inputs = open_inputs(model_path, data_root=data_root, device=device, on_warning=on_warning)
    classes = inputs.data.num_classes
    if isinstance(target, int) and not 0 <= target < classes:
        raise ParameterError("target_class", f" {target} is out of range: {inputs.data.name} has classes "
                                             f"0..{classes - 1}")
    x, y = inputs.test_split(n)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)  # CPU draws, moved to the device: same on any device
    labels = targets(y, classes, target, generator) if target is not None else y
    config = config.but(bounds=inputs.bounds)
    start = time.perf_counter()
    out = _attack_batches(inputs.model, x, labels, eps, config, batch_size=batch_size, device=inputs.device,
                          generator=generator, done=_counter(progress, len(y)))
    seconds = time.perf_counter() - start
    record = {**_record(out, x, y, labels, eps, config, target, inputs, seconds),
              "provenance": provenance(seed=seed, model_path=model_path)}
    examples = {"x": x.numpy(), "x_adv": out["x_adv"].numpy(), "y": y.numpy(),
                **{k: out[k].numpy() for k in ("pred_clean", "pred_adv", "conf_clean", "conf_adv")}}
    if target is not None:
        examples["target"] = labels.numpy()
    return AttackReport(record, examples)


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


def _record(out: dict[str, Any], x: Tensor, y: Tensor, labels: Tensor, eps: float, config: AttackConfig,
            target: Target, inputs: Inputs, seconds: float) -> dict[str, Any]:
    """The JSON record, its fields in the order ``advgrad attack`` has always written them."""
    delta = (out["x_adv"] - x).flatten(1)  # (N, D)
    correct = out["pred_clean"] == y
    targeted = target is not None
    eligible = correct & (labels != y) if targeted else correct
    fooled = (out["pred_adv"] == labels) if targeted else (out["pred_adv"] != y)
    return {
        "method": config.method, "norm": config.norm, "eps": eps,
        "alpha": config.step_size(eps) if ATTACKS[config.method].alpha_factor is not None else None,
        "steps": config.steps, "restarts": config.restarts, "random_start": config.random_start,
        "targeted": targeted, "target": target, "loss": config.to_dict()["loss"],
        "model": inputs.checkpoint.meta["model"], "dataset": inputs.data.name, "bounds": list(inputs.bounds),
        "n": len(y), "clean_accuracy": float(correct.double().mean()),
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
