"""Adversarial examples saved with their provenance, to be tried on another model (a transfer attack).

``save_examples`` writes one ``.npz`` (atomically; numpy arrays only, no pickle): ``x_adv`` (N, C, H, W)
float32 exactly as the attack returned it, the true labels ``y``, optionally the clean inputs ``x``, and
``meta``, a JSON record: the format, the attack, ε, the norm, the seed, the bounds, the source model's
sha256 and advgrad's version. ``load_examples`` reads it back and checks it (shapes, dtypes, bounds, labels,
and ‖x_adv − x‖ ≤ ε to float32 rounding). ``advgrad.evaluate.transfer.transfer_success`` evaluates them on
another model.

``export_png`` writes the examples as 8-bit PNGs (ImageFolder layout, readable by ``load_data``): lossy,
since rounding to multiples of 1/255 moves each pixel by up to 1/510 and can undo an attack.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from advgrad import _validate
from advgrad._version import __version__
from advgrad.data.files import DataError, read_npz
from advgrad.norms import get_norm
from advgrad.records.write import check_writable, write_bytes, write_npz

FORMAT, FORMAT_VERSION = "advgrad-examples", 1
PNG_LOSSY = ("PNG stores 8 bits per channel: x_adv is rounded to multiples of 1/255 (up to 1/510 per pixel), "
             "which can undo an attack or leave the ε-ball; evaluate transfer from the .npz")


@dataclass(frozen=True)
class Examples:
    """Adversarial examples and where they came from (``meta``: attack, eps, norm, seed, bounds, ...).

    Parameters
    ----------
    x_adv : Tensor
        (N, C, H, W) float32 within the bounds.
    y : Tensor
        (N,) int64 true labels.
    x : Tensor or None
        (N, C, H, W) the clean inputs, if saved.
    meta : dict

    Examples
    --------
    >>> import torch
    >>> from advgrad import Examples
    >>> examples = Examples(torch.zeros(2, 1, 2, 2), torch.tensor([0, 1]), None, {"bounds": [0, 1]})
    >>> len(examples), examples.bounds
    (2, (0.0, 1.0))
    """

    x_adv: Tensor  # (N, C, H, W) float32 within bounds
    y: Tensor  # (N,) int64 true labels
    x: Tensor | None  # (N, C, H, W) the clean inputs, if saved
    meta: dict[str, Any]

    def __len__(self) -> int:
        return len(self.y)

    @property
    def bounds(self) -> tuple[float, float]:
        lo, hi = self.meta["bounds"]
        return float(lo), float(hi)


def _slack(eps: float, norm: str, like: Tensor, bounds: tuple[float, float]) -> float:
    """How far float32 rounding can carry ‖x_adv − x‖ past ε: each coordinate of x + δ rounds by at most half
    an ulp of the largest |bound| (2⁻²⁴·scale relative), which sums to that times ‖1‖_p = D^(1/p) over D
    coordinates; the norm of δ itself carries a relative error of a few ulps (1e-5·ε covers it)."""
    scale = max(1.0, abs(bounds[0]), abs(bounds[1]))
    ones = torch.ones((1, like[0].numel()), dtype=torch.float64)
    return 1e-5 * eps + 2.0 ** -23 * scale * float(get_norm(norm).measure(ones)[0])


def _check(where: str, x_adv: Tensor, y: Tensor, x: Tensor | None, meta: dict[str, Any]) -> None:
    """ValueError (DataError from a file) unless the arrays fit together and ``meta``'s bounds and ε."""
    err = DataError if where else ValueError
    at = f"{where}: " if where else ""
    if x_adv.ndim != 4 or not x_adv.is_floating_point() or len(x_adv) == 0:
        raise err(f"{at}x_adv must be a non-empty float (N, C, H, W) batch, got {x_adv.dtype} {tuple(x_adv.shape)}")
    if y.ndim != 1 or y.is_floating_point() or len(y) != len(x_adv) or bool((y < 0).any()):
        raise err(f"{at}y must be {len(x_adv)} integer labels ≥ 0, got {y.dtype} {tuple(y.shape)}")
    lo, hi = meta["bounds"]
    for name, t in (("x_adv", x_adv), ("x", x)):
        if t is None:
            continue
        if t.shape != x_adv.shape:
            raise err(f"{at}x has shape {tuple(t.shape)} but x_adv {tuple(x_adv.shape)}")
        tmin, tmax = (float(v) for v in torch.aminmax(t))
        if not (tmin >= lo and tmax <= hi):
            raise err(f"{at}{name} has values in [{tmin:g}, {tmax:g}], outside the bounds [{lo:g}, {hi:g}]")
    if x is not None:
        dist = float(get_norm(meta["norm"]).measure(x_adv.double() - x.double()).max())
        if dist > meta["eps"] + _slack(meta["eps"], meta["norm"], x_adv, (lo, hi)):
            raise err(f"{at}an example lies {dist:.6g} from its clean input in L{meta['norm']}, more than "
                      f"eps = {meta['eps']:g}")


def save_examples(path: str | os.PathLike[str], x_adv: Tensor, y: Tensor, *, attack: str, eps: float,
                  norm: str = "inf", seed: int | None = None, model_sha256: str | None = None,
                  x: Tensor | None = None, bounds: tuple[float, float] = (0.0, 1.0),
                  arrays: dict[str, np.ndarray] | None = None, **extra: Any) -> Path:
    """Write the examples and their provenance to one ``.npz`` (see the module docstring); ``extra``: more
    JSON-able provenance (e.g. ``num_classes``, ``data``); ``arrays``: more numeric arrays stored beside them
    (``advgrad attack`` adds its predictions and confidences). Checked first: nothing is written for bad input.

    Parameters
    ----------
    path : str or PathLike
    x_adv, y : Tensor
        (N, C, H, W) examples within ``bounds`` and (N,) true labels.
    attack : str
    eps : float
    norm : str
    seed : int, optional
    model_sha256 : str, optional
        The source model's file hash.
    x : Tensor, optional
        The clean inputs; with them ‖x_adv − x‖ ≤ ε is checked.
    bounds : (float, float)
    arrays, **extra
        As above.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        Arrays that do not fit together, values outside the bounds, an example farther than ε from x.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from advgrad import load_examples, save_examples
    >>> x = torch.rand(3, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    >>> x_adv, y = (x + 0.05).clamp(0, 1), torch.tensor([0, 1, 2])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = save_examples(Path(tmp) / "adv.npz", x_adv, y, attack="pgd", eps=0.05, x=x)
    ...     loaded = load_examples(path)
    >>> torch.equal(loaded.x_adv, x_adv), loaded.meta["attack"], loaded.meta["norm"]
    (True, 'pgd', 'inf')
    """
    clash = sorted(set(arrays or {}) & {"x_adv", "y", "x", "meta"})
    if clash or any(a.dtype.kind not in "biuf" for a in (arrays or {}).values()):
        raise ValueError("arrays must be numeric arrays named other than x_adv, y, x, meta; "
                         f"got {sorted(arrays or {})}")
    if not isinstance(attack, str) or not attack:
        raise ValueError(f"attack must be the attack's name, got {attack!r}")
    if model_sha256 is not None and not (isinstance(model_sha256, str) and len(model_sha256) == 64):
        raise ValueError(f"model_sha256 must be a sha256 hex digest (64 characters), got {model_sha256!r}")
    meta: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "attack": attack,
        "eps": _validate.number("eps", eps, minimum=0.0), "norm": get_norm(norm).name,
        "seed": None if seed is None else _validate.count("seed", seed, 0), "bounds": list(_validate.bounds(bounds)),
        "model_sha256": model_sha256, "n": len(y), "advgrad_version": __version__,
        "torch_version": str(torch.__version__), **extra}
    text = json.dumps(meta, allow_nan=False)  # fails here, before writing, on what JSON cannot hold
    x_adv, y = x_adv.detach().cpu(), y.detach().cpu()
    x = None if x is None else x.detach().cpu()
    _check("", x_adv, y, x, meta)
    check_writable(path)
    stored: dict[str, Any] = {**(arrays or {}), "x_adv": x_adv.float().numpy(), "y": y.long().numpy(),
                              "meta": np.array(text)}
    if x is not None:
        stored["x"] = x.float().numpy()
    return write_npz(path, **stored)


def load_examples(path: str | os.PathLike[str]) -> Examples:
    """Read and check what ``save_examples`` wrote (shapes, dtypes, bounds, labels, ‖x_adv − x‖ ≤ ε).

    Parameters
    ----------
    path : str or PathLike

    Returns
    -------
    Examples

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    DataError
        A file that is not what ``save_examples`` writes (one line; a ValueError).

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from advgrad import load_examples, save_examples
    >>> x = torch.rand(3, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    >>> x_adv, y = (x + 0.05).clamp(0, 1), torch.tensor([0, 1, 2])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     examples = load_examples(save_examples(Path(tmp) / "adv.npz", x_adv, y, attack="fgsm", eps=0.05))
    >>> len(examples), examples.x is None, examples.meta["eps"]
    (3, True, 0.05)
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no examples file at {str(p)!r}")
    where = repr(str(p))
    arrays = read_npz(p, ("x_adv", "y", "meta"), ("x",))
    try:
        meta = json.loads(str(arrays["meta"][()]))
    except (ValueError, TypeError, IndexError):
        raise DataError(f"{where}: its meta entry is not a JSON record") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"{where}: not an advgrad examples file (no {FORMAT!r} header)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{where}: examples format {meta.get('format_version')!r}; this advgrad reads {FORMAT_VERSION}")
    try:
        meta["eps"] = _validate.number("eps", meta.get("eps"), minimum=0.0)
        meta["norm"] = get_norm(str(meta.get("norm"))).name
        meta["bounds"] = list(_validate.bounds(meta.get("bounds")))
    except ValueError as exc:
        raise DataError(f"{where}: {exc}") from None
    tensors = {}
    for key in ("x_adv", "y", "x"):
        a = arrays.get(key)
        if a is not None and (a.dtype.kind not in "fiu" or (key == "y") == (a.dtype.kind == "f")):
            raise DataError(f"{where}: {key} has dtype {a.dtype}")
        tensors[key] = None if a is None else torch.from_numpy(a.astype(np.float32 if key != "y" else np.int64))
    x_adv, y, x = tensors["x_adv"], tensors["y"], tensors["x"]
    assert x_adv is not None and y is not None  # required keys: read_npz checked them
    _check(where, x_adv, y, x, meta)
    return Examples(x_adv, y, x, meta)


def export_png(folder: str | os.PathLike[str], examples: Examples,
               class_names: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Write ``folder/CLASS/00000.png`` per example (8 bits per channel, bounds (0, 1), 1 or 3 channels).
    **Lossy** (``PNG_LOSSY``).

    Parameters
    ----------
    folder : str or PathLike
    examples : Examples
    class_names : tuple of str, optional
        The sub-folder names (default "0", "1", ...).

    Returns
    -------
    dict
        ``{"files", "max_rounding", "warning"}``: the number of files, the largest change of a pixel.

    Raises
    ------
    ValueError
        Not 1 or 3 channels in bounds (0, 1), or fewer class names than labels.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from advgrad import Examples, export_png
    >>> examples = Examples(torch.full((2, 1, 2, 2), 0.5), torch.tensor([0, 1]), None, {"bounds": [0, 1]})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     report = export_png(tmp, examples, ("cat", "dog"))
    ...     files = sorted(p.relative_to(tmp).as_posix() for p in Path(tmp).rglob("*.png"))
    >>> report["files"], round(report["max_rounding"], 5), files
    (2, 0.00196, ['cat/00000.png', 'dog/00001.png'])
    """
    from PIL import Image

    c = examples.x_adv.shape[1]
    if c not in (1, 3) or examples.bounds != (0.0, 1.0):
        raise ValueError(f"PNG export needs 1 or 3 channels in bounds (0, 1), got {c} in {examples.bounds}")
    k = int(examples.y.max()) + 1
    names = class_names or tuple(str(i) for i in range(k))
    if len(names) < k:
        raise ValueError(f"class_names has {len(names)} names but the labels go up to {k - 1}")
    root = check_writable(Path(folder) / names[0] / "00000.png").parent.parent
    q = (examples.x_adv * 255).round().clamp_(0, 255).to(torch.uint8)  # (N, C, H, W)
    rounding = float((q.float() / 255 - examples.x_adv).abs().max())
    for i, (img, label) in enumerate(zip(q, examples.y.tolist())):
        array = img[0].numpy() if c == 1 else img.permute(1, 2, 0).numpy()
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG")
        write_bytes(root / names[label] / f"{i:05d}.png", buf.getvalue())
    return {"files": len(q), "max_rounding": rounding, "warning": PNG_LOSSY}
