"""Speed on a GPU (or, with tiny sizes, the CPU): attacks, adversarial training and two processes.

    python scripts/bench_gpu.py [--device cuda] [--n 10000] [--model preact-resnet18] [--batch 512]
                                [--repeats 3] [--out results/bench_gpu.md]
    python scripts/bench_gpu.py --device cpu --n small --model cnn-small --out /tmp/bench_gpu.md   # smoke test

Random CIFAR-shaped data (3×32×32 in [0, 1], 10 classes, seeded): speed does not depend on what the
images show. Three tables:

1. PGD-10 (L∞, ε = 8/255, α = 2/255, random start) on ``--n`` images already on the device, in batches
   of ``--batch``: advgrad's ``pgd`` against torchattacks' ``PGD`` and the floor, 10 × (forward + ∂J/∂X)
   with the parameters' gradients off — the least any PGD must compute. Images per second.
2. One adversarial-training epoch on ``--n`` images (SGD, batch ``--batch``, the test pass on 512 images
   included) with FGSM-RS (Wong et al. 2020: ε = 8/255, α = 10/255) and PGD-7 (Madry et al. 2018:
   α = 2/255): ``advgrad.fit`` against a plain PyTorch loop of the same maths (attack in eval mode with the
   parameters frozen, then the step on the perturbed batch); advgrad also with bf16 autocast and
   channels-last (``amp``, ``channels_last``). Epochs per second.
3. The FGSM-RS epoch under torchrun with 1 and 2 processes (NCCL on CUDA: needs 2 GPUs; gloo on the CPU).

The median of ``--repeats`` runs after a warm-up counts; on CUDA every timing ends with a synchronise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from advgrad import distributed  # noqa: E402
from advgrad.attacks import pgd  # noqa: E402
from advgrad.configs import AdvConfig, TrainConfig  # noqa: E402
from advgrad.data.builtin import Dataset  # noqa: E402
from advgrad.models.zoo import build_for  # noqa: E402
from advgrad.records.write import write_text  # noqa: E402
from advgrad.training.objectives import make_objective  # noqa: E402
from advgrad.training.train import fit  # noqa: E402

EPS, ALPHA, STEPS = 8 / 255, 2 / 255, 10
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)
TRAINING = (("FGSM-RS", AdvConfig("fgsm-rs", EPS, alpha=10 / 255)), ("PGD-7", AdvConfig("pgd", EPS, steps=7,
                                                                                         alpha=2 / 255)))


def random_cifar(n: int, n_test: int = 512) -> Dataset:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n + n_test, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (n + n_test,), generator=g)
    return Dataset("random-cifar", x[:n], y[:n], x[n:], y[n:], tuple(str(k) for k in range(10)), CIFAR_MEAN,
                   CIFAR_STD)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(run: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median seconds of ``repeats`` runs after one warm-up run."""
    run()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        run()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def floor(model: nn.Module, x: Tensor, y: Tensor, batch: int) -> Callable[[], None]:
    """STEPS × (forward + ∂J/∂X) per batch, the parameters' gradients off, no step arithmetic."""

    def run() -> None:
        flags = [p.requires_grad_(False) for p in model.parameters()]
        for start in range(0, len(x), batch):
            xb, yb = x[start:start + batch], y[start:start + batch]
            for _ in range(STEPS):
                xg = xb.detach().requires_grad_(True)
                torch.autograd.grad(F.cross_entropy(model(xg), yb), xg)
        for p in flags:
            p.requires_grad_(True)

    return run


def attack_rows(model: nn.Module, data: Dataset, device: torch.device, batch: int, repeats: int) -> dict[str, float]:
    """Images per second of PGD-10 per contender."""
    x, y = data.x_train.to(device), data.y_train.to(device)
    model.eval()
    g = torch.Generator(device=device).manual_seed(0)
    runs: dict[str, Callable[[], object]] = {
        "advgrad": lambda: [pgd(model, x[i:i + batch], y[i:i + batch], EPS, alpha=ALPHA, steps=STEPS, generator=g).x_adv
                            for i in range(0, len(x), batch)]}
    try:
        import torchattacks

        atk = torchattacks.PGD(model, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=True)
        runs["torchattacks"] = lambda: [atk(x[i:i + batch], y[i:i + batch]) for i in range(0, len(x), batch)]
    except ImportError:
        pass
    runs["floor"] = floor(model, x, y, batch)
    return {name: len(x) / timed(run, device, repeats) for name, run in runs.items()}


def plain_epoch(model: nn.Module, data: Dataset, adv: AdvConfig, device: torch.device, batch: int) -> None:
    """The same maths as fit + AdversarialObjective, written plainly: shuffle, attack in eval mode with the
    parameters frozen (uniform start, K signed steps, projection, clip), SGD step on J(x′), loss and
    accuracy per batch, test accuracy at the end."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    alpha = adv.step_size(adv.eps)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(data.y_train), generator=g)
    loss_sum, correct = 0.0, 0
    for start in range(0, len(order), batch):
        idx = order[start:start + batch]
        xb, yb = data.x_train[idx].to(device), data.y_train[idx].to(device)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        x_adv = (xb + torch.empty_like(xb).uniform_(-adv.eps, adv.eps)).clamp(0, 1)
        for _ in range(adv.k):
            x_adv.requires_grad_(True)
            (grad,) = torch.autograd.grad(F.cross_entropy(model(x_adv), yb), x_adv)
            x_adv = (xb + (x_adv.detach() + alpha * grad.sign() - xb).clamp(-adv.eps, adv.eps)).clamp(0, 1)
        for p in model.parameters():
            p.requires_grad_(True)
        model.train()
        logits = model(x_adv.detach())
        loss = F.cross_entropy(logits, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += float(loss) * len(yb)
        correct += int((logits.argmax(1) == yb).sum())
    model.eval()
    with torch.no_grad():
        for start in range(0, len(data.y_test), 500):
            int((model(data.x_test[start:start + 500].to(device)).argmax(1) == data.y_test[start:start + 500]
                 .to(device)).sum())


def training_rows(name: str, data: Dataset, device: torch.device, batch: int, repeats: int
                  ) -> list[tuple[str, str, float]]:
    """(method, contender, epochs per second)."""
    rows = []
    for method, adv in TRAINING:
        runs: dict[str, Callable[[], object]] = {}
        for label, options in (("advgrad", {}), ("advgrad amp + channels-last", {"amp": True, "channels_last": True})):
            def run(options: dict[str, bool] = options, adv: AdvConfig = adv) -> None:
                model, _ = build_for(name, data, seed=0)
                config = TrainConfig(epochs=1, batch_size=batch, optimizer="sgd", lr=0.05, weight_decay=5e-4,
                                     device=device.type, **options)
                fit(model, data, config, objective=make_objective(adv, epochs=1, seed=0))
            runs[label] = run

        def plain(adv: AdvConfig = adv) -> None:
            model, _ = build_for(name, data, seed=0)
            plain_epoch(model.to(device), data, adv, device, batch)
        runs["plain PyTorch"] = plain
        rows += [(method, label, 1 / timed(run, device, repeats)) for label, run in runs.items()]
    return rows


def worker(args: argparse.Namespace) -> None:
    """The FGSM-RS epoch in every process of a torchrun launch (or alone); process 0 writes its seconds."""
    device = distributed.setup(args.device)
    data = random_cifar(args.n_images)
    model, _ = build_for(args.model, data, seed=0)
    config = TrainConfig(epochs=1, batch_size=args.batch, optimizer="sgd", lr=0.05, device=device.type)
    seconds = []
    for _ in range(args.repeats + 1):  # the first run warms up
        distributed.barrier()
        sync(device)
        start = time.perf_counter()
        fit(model, data, config, objective=make_objective(TRAINING[0][1], epochs=1, seed=0))
        sync(device)
        distributed.barrier()
        seconds.append(time.perf_counter() - start)
    if distributed.is_main():
        Path(args.worker).write_text(json.dumps({"seconds": statistics.median(seconds[1:])}))
    distributed.shutdown()


def scaling_rows(args: argparse.Namespace, device: torch.device) -> list[tuple[int, float | None]]:
    """(processes, FGSM-RS epochs per second or None when this machine cannot run them)."""
    rows: list[tuple[int, float | None]] = []
    for processes in (1, 2):
        if device.type == "cuda" and torch.cuda.device_count() < processes:
            rows.append((processes, None))
            continue
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "seconds.json"
            env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
            env["PYTHONPATH"] = str(ROOT)
            launcher = [sys.executable] if processes == 1 else \
                [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
            options = ["--worker", str(out), "--device", device.type, "--n-images", str(args.n_images),
                       "--model", args.model, "--batch", str(args.batch), "--repeats", str(args.repeats)]
            subprocess.run([*launcher, str(Path(__file__).resolve()), *options], env=env, check=True,
                           capture_output=True, timeout=3600)
            rows.append((processes, 1 / json.loads(out.read_text())["seconds"]))
    return rows


def machine(device: torch.device) -> str:
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads"
    return f"{where}; torch {torch.__version__}, Python {platform.python_version()}"


def report(args: argparse.Namespace, device: torch.device, attacks: dict[str, float],
           training: list[tuple[str, str, float]], scaling: list[tuple[int, float | None]], command: str) -> str:
    lines = ["# Speed on the device", "", f"    {command}", "", f"Device: {machine(device)}.", "",
             f"{args.model}, random CIFAR-shaped data, {args.n_images} images, batch {args.batch}, median of "
             f"{args.repeats} runs.", "", "## PGD-10 (images/s)", "", "| contender | images/s | time ÷ floor time |",
             "|---|---:|---:|"]
    for name, rate in attacks.items():
        lines.append(f"| {name} | {rate:.0f} | {attacks['floor'] / rate:.2f} |")
    lines += ["", "## One adversarial-training epoch (epochs/s)", "", "| method | contender | epochs/s |",
              "|---|---|---:|"]
    lines += [f"| {method} | {label} | {rate:.4g} |" for method, label, rate in training]
    if not scaling:
        return "\n".join(lines) + "\n"
    lines += ["", "## FGSM-RS epoch under torchrun (epochs/s)", "", "| processes | epochs/s | speedup |",
              "|---:|---:|---:|"]
    base = scaling[0][1]
    for processes, rate in scaling:
        if rate is None:
            lines.append(f"| {processes} | skipped: {torch.cuda.device_count()} GPU(s) | |")
        else:
            lines.append(f"| {processes} | {rate:.4g} | " + (f"{rate / base:.2f}× |" if base else "|"))
    return "\n".join(lines) + "\n"


def images(value: str) -> int:
    return 64 if value == "small" else int(value)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--n", dest="n_images", type=images, default=10000, help="images, or 'small' (64)")
    p.add_argument("--n-images", dest="n_images", type=int, help=argparse.SUPPRESS)
    p.add_argument("--model", default="preact-resnet18")
    p.add_argument("--batch", type=int, default=None, help="default 512 (32 with --n small)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-scaling", action="store_true", help="skip the torchrun table")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "bench_gpu.md")
    args = p.parse_args(argv)
    args.batch = args.batch or (32 if args.n_images <= 64 else 512)
    warnings.filterwarnings("ignore")
    if args.worker is not None:
        worker(args)
        return 0
    device = distributed.setup(args.device)
    data = random_cifar(args.n_images)
    model, _ = build_for(args.model, data, seed=0)
    attacks = attack_rows(model.to(device), data, device, args.batch, args.repeats)
    training = training_rows(args.model, data, device, args.batch, args.repeats)
    scaling = [] if args.no_scaling else scaling_rows(args, device)
    command = "python scripts/bench_gpu.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = report(args, device, attacks, training, scaling, command.strip())
    write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
