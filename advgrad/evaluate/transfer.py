"""Transfer attacks: adversarial examples made on one model (``advgrad.records.examples``) tried on another —
its accuracy on x and x_adv and the transfer success rate, the share of the points it classifies correctly
when clean that x_adv fools (Papernot et al. 2016, "Transferability in machine learning")."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from advgrad import _validate
from advgrad._runtime import predict
from advgrad.models.fitting import check_model_fits
from advgrad.records.examples import Examples


@torch.no_grad()
def transfer_success(model: nn.Module, examples: Examples, *, bounds: tuple[float, float] = (0.0, 1.0),
                     batch_size: int = 500) -> dict[str, Any]:
    """The target ``model``'s accuracy on x (if saved) and x_adv, and the transfer success rate: among the
    points it classifies correctly when clean, the share x_adv fools (without x: 1 − accuracy on x_adv).
    ValueError if the examples' shape, bounds or labels do not fit the model.

    Parameters
    ----------
    model : nn.Module
        The target model.
    examples : Examples
        Made on another model (``load_examples``).
    bounds : (float, float)
        The model's input range; must be the examples'.
    batch_size : int

    Returns
    -------
    dict
        ``n``, ``clean_accuracy`` (None without x), ``adv_accuracy``, ``n_clean_correct``, ``success_rate``
        and ``source`` (the attack's provenance).

    Raises
    ------
    ValueError
        As above.

    Examples
    --------
    >>> import torch
    >>> from advgrad import Examples, transfer_success
    >>> _ = torch.manual_seed(0)
    >>> target = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x = torch.rand(6, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    >>> examples = Examples((x + 0.3).clamp(0, 1), target(x).argmax(1), x, {"bounds": [0, 1], "attack": "pgd"})
    >>> report = transfer_success(target, examples)
    >>> report["clean_accuracy"], report["n_clean_correct"], 0 <= report["success_rate"] <= 1
    (1.0, 6, True)
    """
    if _validate.bounds(bounds) != examples.bounds:
        raise ValueError(f"the examples live in bounds {examples.bounds} but the model takes {bounds}")
    k = examples.meta.get("num_classes")
    need = int(k) if isinstance(k, int) else int(examples.y.max()) + 1
    check_model_fits(model, examples.x_adv.shape[1:], need, examples.bounds, exact=isinstance(k, int))
    size = _validate.count("batch_size", batch_size)
    adv_ok = predict(model, examples.x_adv, size) == examples.y
    clean_ok = None if examples.x is None else predict(model, examples.x, size) == examples.y
    attacked = clean_ok if clean_ok is not None else torch.ones_like(adv_ok)
    n_attacked = int(attacked.sum())
    fooled = int((attacked & ~adv_ok).sum())
    n = len(examples)
    return {"n": n, "clean_accuracy": None if clean_ok is None else int(clean_ok.sum()) / n,
            "adv_accuracy": int(adv_ok.sum()) / n, "n_clean_correct": n_attacked,
            "success_rate": fooled / n_attacked if n_attacked else float("nan"),
            "source": {k: examples.meta.get(k) for k in ("attack", "eps", "norm", "seed", "model_sha256")}}
