"""Transfer attacks on mnist-5k: examples crafted on ``cnn`` (white box), evaluated on ``mlp``, ``cnn-small``
and ``logreg`` (black box to the attacker), offline, a few minutes on one CPU thread.

    python scripts/transfer_table.py [--out results/transfer] [--epochs 3] [--threads 1]

Each model is trained ``--epochs`` epochs (seed 0, Adam one-cycle, batch 64) on the 4,000 training digits.
FGSM, PGD-20 (α = 2.5·ε/20, random start) and MI-FGSM (Dong et al. 2018: 10 steps, α = ε/10, μ = 1, no random
start) attack the 1,000 test digits on ``cnn`` at L∞ ε = 0.1 and 0.2 (seed 0). The examples go through the
same path as ``advgrad attack --save-examples`` and ``advgrad transfer``: ``save_examples`` → an .npz with
its provenance → ``load_examples`` → ``transfer_success`` on each target. Reported per target: accuracy on the
adversarial examples, and the transfer success rate (of the digits the target classifies correctly when
clean, the share the examples fool).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE, TARGETS = "cnn", ("mlp", "cnn-small", "logreg")
EPS = (0.1, 0.2)
ATTACKS = {"FGSM": ("fgsm", {}), "PGD-20": ("pgd", {"steps": 20}), "MI-FGSM-10": ("mifgsm", {"steps": 10})}


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "transfer")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from advgrad._runtime import predict
    from advgrad.attacks import run_attack
    from advgrad.configs import AttackConfig, TrainConfig
    from advgrad.data.builtin import load_dataset
    from advgrad.evaluate.transfer import transfer_success
    from advgrad.models.zoo import build_for
    from advgrad.records.examples import load_examples, save_examples
    from advgrad.records.write import write_json, write_text
    from advgrad.training.train import fit

    start = time.perf_counter()
    data = load_dataset("mnist-5k")
    config = TrainConfig(epochs=args.epochs, batch_size=64, lr=2e-3, schedule="one-cycle", seed=0, device="cpu")
    models = {}
    for name in (SOURCE, *TARGETS):
        model, _ = build_for(name, data, seed=0)
        fit(model, data, config)
        models[name] = model.eval()
    x, y = data.x_test, data.y_test
    clean = {name: float((predict(m, x) == y).double().mean()) for name, m in models.items()}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, (method, options) in ATTACKS.items():
            for eps in EPS:
                attack = AttackConfig.of(method, **options)
                result = run_attack(models[SOURCE], x, y, eps, attack, generator=torch.Generator().manual_seed(0))
                path = Path(tmp) / f"{method}-{eps}.npz"
                save_examples(path, result.x_adv, y, attack=label, eps=eps, seed=0, x=x, num_classes=10)
                examples = load_examples(path)
                row = {"attack": label, "eps": eps}
                for name, model in models.items():
                    t = transfer_success(model, examples)
                    row[name] = {"adv_accuracy": t["adv_accuracy"], "success_rate": t["success_rate"]}
                rows.append(row)
    seconds = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "transfer.json", {"clean_accuracy": clean, "rows": rows, "epochs": args.epochs,
                                            "seconds": seconds})
    write_text(args.out / "README.md", _readme(clean, rows, args, seconds, torch.__version__))
    print((args.out / "README.md").read_text())
    return rows


def _readme(clean: dict[str, float], rows: list[dict], args: argparse.Namespace, seconds: float,
            torch_version: str) -> str:
    names = (SOURCE, *TARGETS)
    head = "| attack | ε | " + " | ".join(f"{n}{' (source)' if n == SOURCE else ''}" for n in names) + " |"
    lines = [head, "|" + "---|" * (2 + len(names)),
             "| none (clean) | 0 | " + " | ".join(f"{clean[n]:.1%}" for n in names) + " |"]
    for r in rows:
        cells = [f"{r[n]['adv_accuracy']:.1%} ({r[n]['success_rate']:.1%})" for n in names]
        lines.append(f"| {r['attack']} | {r['eps']:g} | " + " | ".join(cells) + " |")
    return f"""# Transfer attacks on mnist-5k: crafted on cnn, evaluated on mlp, cnn-small, logreg

Command (from the repository root):

    OMP_NUM_THREADS=1 python scripts/transfer_table.py --epochs {args.epochs} --threads {args.threads}

Each cell: the model's accuracy on the 1,000 mnist-5k test digits after the attack, and in brackets the
transfer success rate (of the digits that model classifies correctly when clean, the share the examples
fool). The `cnn` column is the white-box attack on the source itself; the other columns are transfer.
All models trained {args.epochs} epochs (Adam one-cycle, lr 2e-3, batch 64, seed 0) on the 4,000 training
digits. FGSM: one step; PGD-20: α = 2.5·ε/20, random start; MI-FGSM-10 (Dong et al. 2018): 10 steps,
α = ε/10, momentum μ = 1, no random start. L∞, seed 0. The examples go through save_examples →
load_examples → transfer_success, the path of `advgrad attack --save-examples` and `advgrad transfer`.

{chr(10).join(lines)}

Machine: {platform.machine()} {platform.system()}, Python {platform.python_version()}, torch {torch_version},
{args.threads} torch thread(s), a shared machine; {seconds:.0f} s in all (training included). Numbers
are for this seed and these few epochs; other CPUs may round differently, which can flip a handful of
examples near a decision boundary.
"""


if __name__ == "__main__":
    main()
