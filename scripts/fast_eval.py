"""The fast evaluation (``aa_fast``) against standard AutoAttack, model by model (a record, not a test).

    python scripts/fast_eval.py reference CONFIG [CONFIG ...]   # AutoAttack's verdicts, cached on disk
    python scripts/fast_eval.py record [--out results/fast_eval.md]  # aa_fast on every config, the table

A CONFIG is ``model:norm:eps`` (a checkpoint in /work/models, "inf" or "2", the radius); ``CONFIGS`` lists
the record's. Both attacks run on the first ``--n`` (1,000) test points of the model's dataset, with one
torch thread, the model wrapped in a ``PassCounter`` (sample-passes: a forward of n points counts n, a
backward through it n). Standard AutoAttack takes minutes per model on this CPU: its per-sample verdicts,
passes and seconds are cached in ``--cache`` (/tmp/fast_cache), keyed by model, norm, ε and n, so that the
fast evaluation can be measured (and tuned) without running it again; ``record`` runs ``reference`` first
for a config with no cache entry, in the same process.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

MODELS = Path("/work/models")
CACHE = Path("/tmp/fast_cache")
# (model, norm, ε): L∞ ε = 0.1 (the adversarial training's radius) for the adversarially trained models,
# also for the standard mnist-5k model (it keeps ~46 % there), ε = 0.03 for the standard Fashion-MNIST one,
# and L2 ε = 1.5 on two models.
CONFIGS = (("mnist5k-small", "inf", 0.1), ("mnist5k-fgsmrs", "inf", 0.1), ("mnist5k-pgd", "inf", 0.1),
           ("mnist5k-trades", "inf", 0.1), ("fashion-small", "inf", 0.03), ("fashion-fgsmrs", "inf", 0.1),
           ("fashion-pgd", "inf", 0.1), ("fashion-trades", "inf", 0.1), ("mnist5k-trades", "2", 1.5),
           ("fashion-fgsmrs", "2", 1.5))


def parse(config: str) -> tuple[str, str, float]:
    name, norm, eps = config.split(":")
    return name, norm, float(eps)


def load(name: str, n: int) -> tuple[Any, Any, Any]:
    """The model (eval mode) and its dataset's first n test points."""
    from advgrad.data import load_dataset
    from advgrad.models import load_checkpoint

    ck = load_checkpoint(MODELS / f"{name}.pt")
    data = load_dataset(ck.meta["dataset"]["name"])
    x, y = data.x_test[:n].float().contiguous(), data.y_test[:n].long().contiguous()
    return ck.model.eval(), x, y


def cache_path(cache: Path, name: str, norm: str, eps: float, n: int) -> Path:
    return cache / f"aa-{name}-{norm}-{eps:g}-{n}.pt"


def reference(name: str, norm: str, eps: float, n: int, cache: Path) -> dict[str, Any]:
    """Standard AutoAttack on the config, cached: broken_by (N,), x_adv, passes (forward, backward), seconds."""
    import torch

    from advgrad.attacks.autoattack import autoattack
    from advgrad.models.counting import PassCounter

    path = cache_path(cache, name, norm, eps, n)
    if path.is_file():
        return dict(torch.load(path))
    model, x, y = load(name, n)
    counter = PassCounter(model)
    start = time.perf_counter()
    r = autoattack(counter, x, y, eps, norm=norm)
    seconds = time.perf_counter() - start
    out = {"broken_by": r.broken_by, "stages": r.stages, "x_adv": r.x_adv, "accuracy": r.accuracy,
           "passes": (counter.passes.forward, counter.passes.backward), "seconds": seconds,
           "member_seconds": r.seconds, "fast": fast(model, x, y, eps, norm)}  # the same process: seconds compare
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(out, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").rename(path)
    print(f"{name} {norm} {eps:g}: AutoAttack {r.accuracy} {counter.passes} {seconds:.0f} s", flush=True)
    return out


def fast(model: Any, x: Any, y: Any, eps: float, norm: str, **options: Any) -> dict[str, Any]:
    """aa_fast (its defaults, or ``options``) on the config: broken_by, passes, seconds, the options."""
    from advgrad.attacks.fast import aa_fast
    from advgrad.models.counting import PassCounter

    counter = PassCounter(model)
    start = time.perf_counter()
    r = aa_fast(counter, x, y, eps, norm=norm, **options)
    seconds = time.perf_counter() - start
    return {"broken_by": r.broken_by, "stages": r.stages, "options": options, "seconds": seconds,
            "passes": (counter.passes.forward, counter.passes.backward)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=("reference", "record"))
    p.add_argument("configs", nargs="*")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--cache", type=Path, default=CACHE)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    configs = [parse(c) for c in args.configs] or list(CONFIGS)
    if args.mode == "reference":
        for name, norm, eps in configs:
            reference(name, norm, eps, args.n, args.cache)


if __name__ == "__main__":
    main()
