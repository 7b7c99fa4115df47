"""The one home of every list of names in advgrad: what each registry offers, as plain data.

Each entry names its implementation by import path ("module:attribute"), resolved on first use, so this
module imports neither torch nor the library: the CLI builds its choices, ``--help`` and its configs from
it before torch loads, and the implementation modules look their entries up here. Adding an attack, a
model, a data set, a loss or a training objective is one implementation plus one line below.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

DEVICES = ("auto", "cpu", "cuda")

T = TypeVar("T")


def resolve(target: str) -> Any:
    """The object at "package.module:attribute" (imported now, cached by Python's module cache)."""
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Entry:
    """A registry line: the implementation's import path and a one-line summary (for --help and docs)."""

    target: str
    summary: str

    @property
    def impl(self) -> Any:
        return resolve(self.target)


# Arguments of an attack function that the runner supplies (the data, the radius, the randomness, the box)
# rather than the user: never options of a config.
SUPPLIED = ("model", "x", "y", "eps", "bounds", "generator", "seed", "progress", "starting_points")


@dataclass(frozen=True)
class AttackEntry(Entry):
    """An attack: ``impl`` is its one public function, ``impl(model, x, y, eps, **options) -> AttackResult``,
    whose keyword parameters are the whole list of its options (``options``, read from the signature).

    ``norms``: the threat models it runs; ``fixed``: keyword arguments this name sets for good ("apgd-dlr" is
    ``apgd`` with ``loss="dlr"``); ``kind``: "budget" (fooled within a given ε), "minimal" (the smallest
    ‖δ‖ per sample; ε optional) or "ensemble" (a cascade of other entries); ``needs``: what it asks of the
    model — "gradients" (∂J/∂X), "scores" (the outputs only: it runs on a model that only answers queries)
    or "labels" (the top-1 label only); ``per_sample_eps``: it takes an (N,) tensor of radii, one per
    sample (what ``--min-eps``'s
    bisection needs); ``sweep``: the ``EvalConfig`` fields (steps, restarts) an evaluation sets on it;
    ``paper``: where it comes from; ``title``: its name as papers and tables print it; ``members``: for an
    ensemble, "module:function" mapping its config to the configs of its members, in cascade order."""

    norms: tuple[str, ...] = ("inf", "2", "1")
    fixed: Mapping[str, Any] = field(default_factory=dict)
    kind: str = "budget"
    needs: str = "gradients"
    per_sample_eps: bool = True
    sweep: tuple[str, ...] = ()
    paper: str = ""
    title: str = ""
    members: str | None = None

    @property
    def parameters(self) -> Mapping[str, inspect.Parameter]:
        """The keyword parameters of ``impl`` (everything after x and y), by name."""
        return _keywords(self.target)

    @property
    def options(self) -> tuple[str, ...]:
        """What a config may set for this attack: ``impl``'s keyword parameters, less the ones the runner
        supplies (``SUPPLIED``), ``norm`` (a config field of its own) and those this name fixes."""
        return tuple(p for p in self.parameters if p not in SUPPLIED and p != "norm" and p not in self.fixed)


@functools.cache
def _keywords(target: str) -> Mapping[str, inspect.Parameter]:
    params = list(inspect.signature(resolve(target)).parameters.values())
    return {p.name: p for p in params[3:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


@dataclass(frozen=True)
class ModelEntry(Entry):
    """``impl(C, H, W, K, normalize, hidden, head) -> nn.Module``; ``hidden``: it takes hidden widths;
    ``heads``: the output layers it offers."""

    hidden: bool = False
    heads: tuple[str, ...] = ("softmax",)


@dataclass(frozen=True)
class DatasetEntry(Entry):
    """``impl(root) -> (x_train, y_train, x_test, y_test)``; the class names; the per-channel training-set
    statistics the model's Normalize layer uses; the torchvision class that downloads it (None: embedded)."""

    classes: tuple[str, ...] = ()
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    torchvision: str | None = None


@dataclass(frozen=True)
class LossEntry(Entry):
    """``impl(activation) -> (logits, y) -> per-sample loss``; ``trainable``: offered by ``advgrad train``;
    ``hand``: the delta function of the hand-written backward pass, where it implements this loss."""

    trainable: bool = False
    hand: str | None = None


@dataclass(frozen=True)
class NormEntry(Entry):
    """``impl``: the ``Norm`` object; ``symbol`` for tables; ``aliases`` accepted on input."""

    symbol: str = ""
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ObjectiveEntry(Entry):
    """An adversarial training objective. ``impl``: the training loss (model, x, x_adv, y, loss_fn, beta) →
    (loss, logits at x_adv). The perturbation: ``multi_step`` (K steps, else one), α = alpha_factor·ε/K,
    ``random_start``; ``kl``: the attack climbs KL(p(x) ‖ p(x′)) instead of the training loss."""

    multi_step: bool = False
    alpha_factor: float = 1.0
    random_start: bool = False
    kl: bool = False


class Registry(dict[str, T], Generic[T]):
    """A dict of entries by name whose missing key is a ValueError listing the names (``what`` names the
    kind of thing in the message)."""

    def __init__(self, what: str, entries: Mapping[str, T]) -> None:
        super().__init__(entries)
        self.what = what

    def get_entry(self, name: object) -> T:
        if not isinstance(name, str) or name not in self:
            raise ValueError(f"unknown {self.what} {name!r}: expected one of {', '.join(self)}")
        return self[name]


_AA = "Croce & Hein 2020, arXiv 2003.01690"
_FAB = "Croce & Hein 2020, arXiv 1907.02044"
ATTACKS: Registry[AttackEntry] = Registry("attack", {
    "fgsm": AttackEntry("advgrad.attacks.pgd:fgsm",
                        "fast gradient sign method (Goodfellow et al. 2015): one step of size ε",
                        paper="arXiv 1412.6572", title="FGSM"),
    "pgd": AttackEntry("advgrad.attacks.pgd:pgd", "projected gradient descent (Madry et al. 2018), α = 2.5·ε/steps",
                       ("inf", "2", "1", "0"), paper="arXiv 1706.06083", sweep=("steps", "restarts"), title="PGD"),
    "mifgsm": AttackEntry("advgrad.attacks.pgd:mifgsm",
                          "momentum iterative FGSM (Dong et al. 2018): the transfer attack, α = ε/steps",
                          paper="arXiv 1710.06081", sweep=("steps",), title="MI-FGSM"),
    "apgd-ce": AttackEntry("advgrad.attacks.apgd:apgd", "Auto-PGD on the cross-entropy (AutoAttack)",
                           ("inf", "2", "1"), {"loss": "ce"}, paper=_AA, sweep=("restarts",), title="APGD-CE"),
    "apgd-dlr": AttackEntry("advgrad.attacks.apgd:apgd", "Auto-PGD on the DLR loss (AutoAttack)",
                            ("inf", "2", "1"), {"loss": "dlr"}, paper=_AA, sweep=("restarts",), title="APGD-DLR"),
    "apgd-t": AttackEntry("advgrad.attacks.apgd:apgd_targeted",
                          "Auto-PGD on the targeted DLR loss, 9 target classes (AutoAttack)",
                          ("inf", "2", "1"), paper=_AA, sweep=("restarts",), title="APGD-T"),
    "fab": AttackEntry("advgrad.attacks.fab:fab",
                       "untargeted FAB, minimal-norm steps to the nearest boundary (AutoAttack's plus)",
                       paper=_FAB, sweep=("restarts",), title="FAB"),
    "fab-t": AttackEntry("advgrad.attacks.fab:fab_targeted", "targeted FAB, minimal-norm boundary steps (AutoAttack)",
                         paper=_FAB, sweep=("restarts",), title="FAB-T"),
    "square": AttackEntry("advgrad.attacks.square:square",
                          "Square Attack: score-based random search, 5,000 queries (AutoAttack)",
                          ("inf", "2", "1"), needs="scores", per_sample_eps=False,
                          paper="Andriushchenko et al. 2020, arXiv 1912.00049", sweep=("restarts",), title="Square"),
    "autoattack": AttackEntry("advgrad.attacks.autoattack:autoattack",
                              "AutoAttack's standard ensemble: APGD-CE → APGD-T → FAB-T → Square, each on the "
                              "survivors (L1: the reference's L1 version)",
                              ("inf", "2", "1"), kind="ensemble", per_sample_eps=False, paper=_AA, title="AutoAttack",
                              members="advgrad.attacks.autoattack:cascade_of"),
    "aa-fast": AttackEntry("advgrad.attacks.fast:aa_fast",
                           "fast evaluation, not AutoAttack: APGD-CE (50 steps) → APGD-T (9 targets × 25) → FMN "
                           "(100) → APGD-T (9 × 100) and Square (5,000) on the survivors nearest the boundary "
                           "(~0.12× AutoAttack's passes)",
                           ("inf", "2"), kind="ensemble", per_sample_eps=False,
                           paper="Liu et al. 2022, arXiv 2203.05154; Gao et al. 2022, arXiv 2206.07314",
                           title="AA-fast", members="advgrad.attacks.fast:cascade_of"),
    "apgd-t-near": AttackEntry("advgrad.attacks.near:apgd_targeted_near",
                               "APGD-T on the share of the points nearest the boundary (first-order estimate)",
                               ("inf", "2", "1"), paper=_AA, title="APGD-T-near"),
    "fab-t-near": AttackEntry("advgrad.attacks.near:fab_targeted_near",
                              "FAB-T on the share of the points nearest the boundary (first-order estimate)",
                              paper=_FAB, title="FAB-T-near"),
    "square-near": AttackEntry("advgrad.attacks.near:square_near",
                               "Square Attack on the share of the points nearest the boundary (first-order estimate)",
                               ("inf", "2", "1"), per_sample_eps=False, paper="arXiv 1912.00049",
                               title="Square-near"),
    "fmn": AttackEntry("advgrad.attacks.minimal.fmn:fmn",
                       "Fast Minimum-Norm: the smallest ‖δ‖ per point, by steps that shrink and grow an ε-ball",
                       ("inf", "2", "1", "0"), kind="minimal", paper="Pintor et al. 2021, arXiv 2102.12827",
                       title="FMN"),
    "sigma-zero": AttackEntry("advgrad.attacks.minimal.sigma_zero:sigma_zero",
                              "σ-zero: the fewest changed pixels, by descent on a smooth L0 count",
                              ("0",), kind="minimal", paper="Cinà et al. 2024, arXiv 2402.01879", title="σ-zero"),
    "ddn": AttackEntry("advgrad.attacks.minimal.ddn:ddn",
                       "Decoupled Direction and Norm: the smallest L2 ‖δ‖ per point, steps rescaled onto a shrinking "
                       "sphere", ("2",), kind="minimal", paper="Rony et al. 2019, arXiv 1811.09600", title="DDN"),
    "cw": AttackEntry("advgrad.attacks.minimal.cw:cw",
                      "Carlini–Wagner L2: Adam on ‖δ‖₂² + c·hinge in a tanh box, c bisected per point (9 searches)",
                      ("2",), kind="minimal", paper="Carlini & Wagner 2017, arXiv 1608.04644", title="CW-L2"),
    "deepfool": AttackEntry("advgrad.attacks.minimal.deepfool:deepfool",
                            "DeepFool: steps to the nearest boundary of the linearised model, overshoot 0.02",
                            ("2", "inf"), kind="minimal", paper="Moosavi-Dezfooli et al. 2016, arXiv 1511.04599",
                            title="DeepFool"),
    "alma": AttackEntry("advgrad.attacks.minimal.alma:alma",
                        "ALMA: an augmented Lagrangian with adaptive per-point penalties, L1 or L2",
                        ("2", "1"), kind="minimal", paper="Rony et al. 2021, arXiv 2011.11857", title="ALMA"),
    "ead": AttackEntry("advgrad.attacks.minimal.ead:ead",
                       "EAD: elastic-net (L1 + L2) FISTA on CW's loss, c searched per point",
                       ("1",), kind="minimal", paper="Chen et al. 2018, arXiv 1709.04114", title="EAD"),
    "hopskipjump": AttackEntry("advgrad.attacks.blackbox.hopskipjump:hopskipjump",
                               "HopSkipJump: the smallest ‖δ‖ from top-1 labels only, by gradient estimates at the "
                               "boundary",
                               ("2", "inf"), kind="minimal", needs="labels", paper="Chen et al. 2020, arXiv 1904.02144",
                               title="HopSkipJump"),
    "rays": AttackEntry("advgrad.attacks.blackbox.rays:rays",
                        "RayS: the smallest L∞ ‖δ‖ from top-1 labels only, by a search over sign rays",
                        ("inf",), kind="minimal", needs="labels", paper="Chen & Gu 2020, arXiv 2006.12792",
                        title="RayS"),
    "boundary": AttackEntry("advgrad.attacks.blackbox.boundary:boundary",
                            "Boundary Attack: a random walk along the decision boundary, top-1 labels only",
                            ("2",), kind="minimal", needs="labels", paper="Brendel et al. 2018, arXiv 1712.04248",
                            title="Boundary"),
    "spsa": AttackEntry("advgrad.attacks.blackbox.spsa:spsa", "SPSA: gradient-free L∞ attack on the margin from scores",
                        ("inf",), needs="scores", paper="Uesato et al. 2018, arXiv 1802.05666", title="SPSA"),
})
# the attacks that run on a model that only answers queries (scores, or labels only)
QUERY_ATTACKS = tuple(name for name, entry in ATTACKS.items() if entry.needs != "gradients")
LABEL_ATTACKS = tuple(name for name, entry in ATTACKS.items() if entry.needs == "labels")
# the attacks ``--min-eps`` may bisect with: those that take one radius per sample
MIN_EPS_ATTACKS = tuple(name for name, entry in ATTACKS.items() if entry.per_sample_eps and entry.kind == "budget")
# the attacks ``--min-norm`` may run: the minimal-norm ones as they are, the others through the bisection
MIN_NORM_ATTACKS = tuple(name for name, entry in ATTACKS.items() if entry.kind == "minimal" or name in MIN_EPS_ATTACKS)

MODELS: Registry[ModelEntry] = Registry("model", {
    "logreg": ModelEntry("advgrad.models.zoo:_logreg",
                         "softmax regression, Goodfellow et al.'s shallow softmax (2015)"),
    "mlp-sigmoid": ModelEntry("advgrad.models.zoo:_mlp_sigmoid", "σ(W_L ⋯ σ(W₁x + b₁) ⋯ + b_L), the classic network",
                              hidden=True, heads=("softmax", "sigmoid")),
    "mlp": ModelEntry("advgrad.models.zoo:_mlp_relu", "ReLU MLP, default 256-256", hidden=True),
    "cnn": ModelEntry("advgrad.models.zoo:_cnn", "Madry et al.'s (2018) MNIST CNN"),
    "cnn-small": ModelEntry("advgrad.models.zoo:_cnn_small", "Wong et al.'s (2020) MNIST net"),
    "preact-resnet18": ModelEntry("advgrad.models.zoo:_resnet",
                                  "pre-activation ResNet-18 (He et al. 2016), for 32×32 images"),
})
HEADS = ("softmax", "sigmoid")

_DIGITS = tuple(str(d) for d in range(10))
DATASETS: Registry[DatasetEntry] = Registry("dataset", {
    "mnist-5k": DatasetEntry("advgrad.data.builtin:_mnist5k", "5,000 MNIST digits embedded in advgrad (4,000 / 1,000)",
                             _DIGITS, (0.1307,), (0.3081,)),
    "fashion-mnist": DatasetEntry("advgrad.data.builtin:_fashion", "Zalando's Fashion-MNIST, 60,000 / 10,000",
                                  ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                   "Sneaker", "Bag", "Ankle boot"), (0.2860,), (0.3530,), "FashionMNIST"),
    "mnist": DatasetEntry("advgrad.data.builtin:_mnist", "MNIST, 60,000 / 10,000", _DIGITS, (0.1307,), (0.3081,),
                          "MNIST"),
    "cifar10": DatasetEntry("advgrad.data.builtin:_cifar10", "CIFAR-10, 50,000 / 10,000",
                            ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                             "truck"), (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), "CIFAR10"),
})

LOSSES: Registry[LossEntry] = Registry("loss", {
    "ce": LossEntry("advgrad.losses:_ce", "cross-entropy −log softmax(z)_y", trainable=True,
                    hand="advgrad.backprop:_delta_ce"),
    "mse": LossEntry("advgrad.losses:_mse", "½‖onehot(y) − ŷ‖² on the model's ŷ", trainable=True,
                     hand="advgrad.backprop:_delta_mse"),
    "margin": LossEntry("advgrad.losses:_margin", "Carlini–Wagner margin max_{j≠y} z_j − z_y"),
    "dlr": LossEntry("advgrad.losses:_dlr", "difference of logits ratio (Croce & Hein 2020)"),
})
TRAIN_LOSSES = tuple(name for name, entry in LOSSES.items() if entry.trainable)
HAND_LOSSES = tuple(name for name, entry in LOSSES.items() if entry.hand)

NORMS: Registry[NormEntry] = Registry("norm", {
    "inf": NormEntry("advgrad.norms:LINF", "L∞: every coordinate within ε", "L∞", ("linf", "infinity", "∞", "l∞")),
    "2": NormEntry("advgrad.norms:L2_NORM", "L2: Euclidean distance within ε", "L2", ("l2", "2.0")),
    "1": NormEntry("advgrad.norms:L1_NORM", "L1: total absolute change within ε", "L1", ("l1", "1.0")),
    "0": NormEntry("advgrad.norms:L0_NORM", "L0: at most ε pixels changed (channels jointly)", "L0", ("l0", "0.0")),
})

OBJECTIVES: Registry[ObjectiveEntry] = Registry("adversarial method", {
    "fgsm": ObjectiveEntry("advgrad.training.objectives:_half_clean_half_adversarial",
                           "½·J(x) + ½·J(x + ε·sign ∇ₓJ) (Goodfellow et al. 2015)"),
    "fgsm-rs": ObjectiveEntry("advgrad.training.objectives:_adversarial",
                              "J(x′), random start + one step of 1.25·ε (Wong et al. 2020)",
                              alpha_factor=1.25, random_start=True),
    "pgd": ObjectiveEntry("advgrad.training.objectives:_adversarial",
                          "J(x′), K-step PGD, random start, α = 2.5·ε/K (Madry et al. 2018)",
                          multi_step=True, alpha_factor=2.5, random_start=True),
    "trades": ObjectiveEntry("advgrad.training.objectives:_trades",
                             "CE(x) + β·KL(p(x) ‖ p(x′)), x′ from K-step PGD on the KL (Zhang et al. 2019)",
                             multi_step=True, alpha_factor=2.5, random_start=True, kl=True),
})

OPTIMIZERS: Registry[Entry] = Registry("optimizer", {
    "sgd": Entry("advgrad.training.train:_sgd", "SGD with momentum and weight decay"),
    "adam": Entry("advgrad.training.train:_adam", "Adam (Kingma & Ba 2015)"),
})
LR_SCHEDULES: Registry[Entry] = Registry("schedule", {
    "constant": Entry("advgrad.training.train:_constant", "the peak learning rate throughout"),
    "cosine": Entry("advgrad.training.train:_cosine", "½(1 + cos πt) of the peak"),
    "one-cycle": Entry("advgrad.training.train:_one_cycle",
                       "linear up to the peak at 40 %, then down to 0 (Smith 2018)"),
})


def norm_name(spec: object) -> str:
    """The canonical name ("inf", "2", "1", "0") of a norm given as a name, an alias, float("inf"), 2, 1 or 0."""
    key: str | None = None
    if isinstance(spec, str):
        key = spec.strip().lower()
        key = next((name for name, e in NORMS.items() if key == name or key in e.aliases), None)
    elif isinstance(spec, (int, float)) and not isinstance(spec, bool):
        key = {float("inf"): "inf", 2: "2", 1: "1", 0: "0"}.get(spec)
    elif (name := getattr(spec, "name", None)) in NORMS:  # a Norm object
        key = str(name)
    if key is None:
        raise ValueError(f"unknown norm {spec!r}: expected one of {', '.join(map(repr, NORMS))} "
                         "(or float('inf'), 2, 1, 0)")
    return key
