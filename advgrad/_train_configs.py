"""The training configs (re-exported by ``advgrad.configs``, where they are documented with the others):
``TrainConfig`` (one training run's optimisation), ``AdvConfig`` (how adversarial training perturbs each
batch) and ``TrainingPlan`` (a whole ``advgrad train`` run). Torch-free, like every config."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from advgrad import _validate
from advgrad._validate import ParameterError
from advgrad.catalog import (
    DATASETS,
    DEVICES,
    HEADS,
    LR_SCHEDULES,
    MODELS,
    OBJECTIVES,
    OPTIMIZERS,
    TRAIN_LOSSES,
    ObjectiveEntry,
    norm_name,
)

DEFAULT_STEPS = 7    # adversarial training's K for pgd and trades
DEFAULT_BETA = 6.0   # TRADES' β


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (stored in the checkpoint).

    Parameters
    ----------
    epochs, batch_size : int
        Passes over the training set; images per optimiser step.
    optimizer : {"adam", "sgd"}
    lr : float
        The peak learning rate of ``schedule``.
    schedule : {"one-cycle", "cosine", "constant"}
    weight_decay, momentum : float
        L2 weight decay (≥ 0); SGD's momentum in [0, 1).
    seed : int
        Seeds the initial weights, the shuffling and the adversarial starts.
    device : {"auto", "cpu", "cuda"}
    loss : {"ce", "mse"}
        Cross-entropy, or ½‖onehot(y) − ŷ‖² on the output probabilities ŷ.
    amp, channels_last, compile : bool
        Accelerator options (bf16 autocast, channels-last memory, ``torch.compile``), off by default.

    Raises
    ------
    ValueError
        A field out of its range or not among the allowed names.

    Examples
    --------
    >>> from advgrad import TrainConfig
    >>> TrainConfig(epochs=2, optimizer="sgd").to_dict()["optimizer"]
    'sgd'
    >>> TrainConfig(lr=0)
    Traceback (most recent call last):
    ...
    ValueError: lr must be a positive number, got 0
    """

    epochs: int = 8
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 2e-3  # peak of the one-cycle schedule; 97.6 % on mnist-5k with the default cnn
    schedule: str = "one-cycle"
    weight_decay: float = 0.0
    momentum: float = 0.9  # SGD only
    seed: int = 0
    device: str = "auto"
    loss: str = "ce"  # "ce" or "mse": J = ½‖onehot(y) − ŷ‖², ŷ the model's output probabilities
    # Accelerator options, off by default (each changes the bits, so each is part of the run's identity):
    amp: bool = False            # the training forward under bf16 autocast (the attacks stay float32)
    channels_last: bool = False  # conv models and their 4-D batches in channels-last memory format
    compile: bool = False        # the training forward through torch.compile

    def __post_init__(self) -> None:
        _validate.count("epochs", self.epochs, phrase="a positive integer")
        _validate.count("batch size", self.batch_size, phrase="a positive integer")
        _validate.number("lr", self.lr, minimum=0.0, strict=True, phrase="a positive number")
        _validate.number("weight decay", self.weight_decay, minimum=0.0, phrase="≥ 0")
        _validate.number("momentum", self.momentum, minimum=0.0, below=1.0, phrase="in [0, 1)")
        _validate.count("seed", self.seed, minimum=0)
        for value, allowed, what in ((self.optimizer, OPTIMIZERS, "optimizer"),
                                     (self.schedule, LR_SCHEDULES, "schedule"),
                                     (self.device, DEVICES, "device"), (self.loss, TRAIN_LOSSES, "loss")):
            _validate.one_of(what, value, allowed)
        for name in ACCELERATION:
            _validate.flag(name, getattr(self, name))

    def to_dict(self) -> dict[str, Any]:
        """The fields; an accelerator option only when on, so that a run without them has the same record
        (and checkpoint identity for ``--resume``) as before they existed."""
        return {k: v for k, v in asdict(self).items() if k not in ACCELERATION or v}


ACCELERATION = ("amp", "channels_last", "compile")  # TrainConfig's accelerator flags


@dataclass(frozen=True)
class AdvConfig:
    """How the training batch is perturbed. ``steps``/``alpha`` None mean the method's defaults: K = 7 for
    pgd/trades; α = ε (fgsm), 1.25·ε (fgsm-rs, Wong et al.), 2.5·ε/K (pgd, trades).

    Parameters
    ----------
    method : {"fgsm", "fgsm-rs", "pgd", "trades"}
        The adversarial objective (``catalog.OBJECTIVES``).
    eps : float
        The training radius ε (≥ 0).
    steps : int, optional
        K, the attack steps per batch (pgd and trades).
    alpha : float, optional
        The step size α at the full ε.
    beta : float
        TRADES' β, the weight of the KL term.
    eps_warmup : int
        Epochs over which ε grows linearly from 0 (0: none).
    norm : {"inf", "2", "1"}

    Raises
    ------
    ValueError
        An unknown method or a field out of its range.

    Examples
    --------
    >>> from advgrad import AdvConfig
    >>> adv = AdvConfig("pgd", 0.3, eps_warmup=4)
    >>> adv.k, round(adv.step_size(0.3), 4), adv.eps_at(0.5, epochs=4)
    (7, 0.1071, 0.15)

    References
    ----------
    Goodfellow, Shlens, Szegedy, "Explaining and harnessing adversarial examples", ICLR 2015, arXiv 1412.6572
    (fgsm); Wong, Rice, Kolter, "Fast is better than free: revisiting adversarial training", ICLR 2020,
    arXiv 2001.03994 (fgsm-rs); Madry et al., "Towards deep learning models resistant to adversarial
    attacks", ICLR 2018, arXiv 1706.06083 (pgd); Zhang et al., "Theoretically principled trade-off between
    robustness and accuracy", ICML 2019, arXiv 1901.08573 (trades).
    """

    method: str
    eps: float
    steps: int | None = None
    alpha: float | None = None
    beta: float = DEFAULT_BETA  # trades only
    eps_warmup: int = 0         # epochs over which ε grows linearly from 0 (0: none)
    norm: str = "inf"

    def __post_init__(self) -> None:
        OBJECTIVES.get_entry(self.method)
        _validate.number("eps", self.eps, minimum=0.0, phrase="a finite number ≥ 0")
        _validate.optional_count("adversarial steps", self.steps)
        if self.alpha is not None:
            _validate.number("adversarial step size alpha", self.alpha, minimum=0.0, strict=True, phrase="> 0")
        _validate.number("beta", self.beta, minimum=0.0, phrase="a finite number ≥ 0")
        _validate.count("eps warm-up", self.eps_warmup, minimum=0, phrase="a whole number of epochs ≥ 0")
        object.__setattr__(self, "norm", norm_name(self.norm))

    @property
    def entry(self) -> ObjectiveEntry:
        return OBJECTIVES[self.method]

    @property
    def k(self) -> int:
        """The number of attack steps per batch."""
        return int(self.steps or DEFAULT_STEPS) if self.entry.multi_step else 1

    def step_size(self, eps: float) -> float:
        """α for radius ``eps`` (the explicit ``alpha`` scales with ε during warm-up)."""
        if self.alpha is not None:
            return self.alpha * (eps / self.eps if self.eps > 0 else 1.0)
        return self.entry.alpha_factor * eps / self.k

    def eps_at(self, progress: float, epochs: int) -> float:
        """ε at training progress ∈ [0, 1] of a run of ``epochs`` epochs (linear warm-up)."""
        if self.eps_warmup <= 0:
            return float(self.eps)
        return float(self.eps) * min(1.0, progress * epochs / self.eps_warmup)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainingPlan:
    """A training run of ``advgrad.runs.training.run_training``: train ``model`` (``hidden`` widths and
    ``head`` for the MLPs) on the first ``n_train`` images (None: all) of ``dataset`` (files under
    ``data_root``; ``download`` lets torchvision fetch them; or a data file/folder, with the held-out split
    ``test_data``: ``advgrad.data.training``; folders resized and centre-cropped to ``image_size``, one channel
    with ``grayscale``) with ``train``, adversarially when ``adv`` is
    given — then a PGD probe of ``probe_steps`` steps on ``probe_n`` fixed training images tracks the best
    epoch. Writes ``out`` (a .pt checkpoint holding the state to resume from), ``metrics_path`` beside it
    and, with ``adv``, ``best_path``; ``resume`` continues the run saved in ``out``."""

    out: Path = Path("out/model.pt")
    dataset: str = "mnist-5k"
    model: str = "cnn"
    hidden: tuple[int, ...] | None = None
    head: str = "softmax"
    train: TrainConfig = field(default_factory=TrainConfig)
    adv: AdvConfig | None = None
    n_train: int | None = None
    probe_n: int = 512
    probe_steps: int = 10
    data_root: Path | None = None
    download: bool = False
    resume: bool = False
    test_data: str | None = None
    image_size: tuple[int, ...] | None = None
    grayscale: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once, here
        if self.test_data is None:  # a built-in name (a file or folder comes with its test_data)
            DATASETS.get_entry(self.dataset)
        elif self.dataset in DATASETS or self.data_root is not None or self.download:
            raise ParameterError("test_data", " is the held-out split of a data file or folder given as dataset; "
                                              f"{self.dataset!r} is built in (its own test split), and data_root/"
                                              "download apply to built-in sets only")
        if (self.image_size is not None or self.grayscale) and self.test_data is None:
            raise ParameterError("image_size/grayscale", " apply to a folder of images with its test_data, not to the "
                                                         f"built-in {self.dataset!r}")
        if self.image_size is not None:
            if len(self.image_size) not in (1, 2):
                raise ParameterError("image_size", f" must be (H,) or (H, W), got {self.image_size!r}")
            set_(self, "image_size", tuple(_validate.count("image_size", s) for s in self.image_size))
        entry = MODELS.get_entry(self.model)
        if self.hidden is not None:
            set_(self, "hidden", tuple(_validate.count("hidden width", w) for w in self.hidden))
        _validate.one_of("head", self.head, HEADS)
        if (self.hidden is not None or self.head != "softmax") and not entry.hidden:
            takers = " and ".join(sorted(name for name, e in MODELS.items() if e.hidden))
            raise ParameterError("hidden/head", f" apply to {takers}, not {self.model}")
        if self.head not in entry.heads:
            takers = ", ".join(name for name, e in MODELS.items() if self.head in e.heads)
            raise ParameterError("head", f" {self.head} applies to {takers} only")
        if not isinstance(self.train, TrainConfig) or not isinstance(self.adv, (AdvConfig, type(None))):
            raise ValueError(f"train must be a TrainConfig, adv an AdvConfig or None; got {self.train!r}, {self.adv!r}")
        _validate.optional_count("n_train", self.n_train)
        _validate.count("probe_n", self.probe_n)
        _validate.count("probe_steps", self.probe_steps)
        for name in ("download", "resume", "grayscale"):
            _validate.flag(name, getattr(self, name))
        set_(self, "out", Path(self.out))
        if self.out.suffix.lower() != ".pt":
            raise ParameterError("out", f" {str(self.out)!r}: expected a .pt file (the metrics JSON goes beside it, "
                                        "same name .json)")
        if self.data_root is not None:
            set_(self, "data_root", Path(self.data_root))

    @property
    def metrics_path(self) -> Path:
        """The metrics JSON beside ``out``: out/model.pt → out/model.json."""
        return self.out.with_suffix(".json")

    @property
    def best_path(self) -> Path:
        """The best-probe checkpoint beside ``out``: out/model.pt → out/model.best.pt."""
        return self.out.with_name(self.out.stem + ".best" + self.out.suffix)
