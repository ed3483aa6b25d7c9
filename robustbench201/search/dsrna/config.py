"""The settings of a DSRNA search (:class:`DSRNAConfig`) and of a comparison of searches (:class:`CompareConfig`),
their defaults, and where each default comes from. No torch import (the command line reads its defaults from here).

Sources (docs/SEARCH.md, "Settings, defaults and their sources", has the table):

* DARTS: Liu, Simonyan & Yang, ICLR 2019, CIFAR-10 search: weights SGD lr 0.025 with a cosine to 0.001, momentum
  0.9, weight decay 3e-4, gradient norm clipped at 5, batch 64, 50 epochs, the training images split half/half
  between weights and alphas; alphas Adam lr 3e-4, betas (0.5, 0.999), weight decay 1e-3; first or second order.
* NB201's DARTS baseline (Dong & Yang, ICLR 2020; ``DARTS-V1.sh`` and ``DARTS.config`` of their code): the same,
  except weight decay 5e-4 with Nesterov momentum, alpha and weight steps in the other order, ``none`` kept in the
  argmax; 50 epochs of 25,000 + 25,000 CIFAR-10 images at batch 64, i.e. 391 alpha steps per epoch.
* DSRNA: Hosseini, Yang & Xie, CVPR 2021: ``L_val - gamma R`` with gamma = 0.01.

Ours, where the papers are silent or their setting does not transfer: the architecture learning rate follows the
size of the search (:func:`auto_a_lr`: the alphas get the same Adam step budget as NB201's DARTS baseline on
CIFAR-10), and gamma can be given relative to the loss scale at the start (``gamma_mode="relative"``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ...data.info import PUBLISHED_DATASETS, canonical_dataset
from ...errors import Rb201Error, check_choice
from ...vocab import CERTIFIED_METHODS, DSRNA_CHANCE_MODES, DSRNA_GAMMA_MODES, DSRNA_METRICS

#: DARTS' (and NB201's) Adam learning rate of the alphas.
DARTS_A_LR = 3e-4
#: Alpha steps of NB201's DARTS baseline on CIFAR-10: 50 epochs x ceil(25000 / 64) = 391 steps.
NB201_DARTS_ALPHA_STEPS = 50 * 391
#: The Adam step budget (learning rate x steps, in units of alpha) of that search: 5.865.
A_STEP_BUDGET = DARTS_A_LR * NB201_DARTS_ALPHA_STEPS
#: The automatic architecture learning rate never exceeds this (short searches would otherwise take huge steps).
A_LR_MAX = 0.1
#: DSRNA's gamma (absolute mode).
PAPER_GAMMA = 0.01
#: Our default gamma in relative mode: the regulariser's term starts at this fraction of the validation loss.
RELATIVE_GAMMA = 0.5
#: Our gamma of R_table in absolute mode (no paper has one): R_table is an accuracy, so one unit of accuracy weighs
#: as much as one nat of validation loss.
TABLE_ABSOLUTE_GAMMA = 1.0
#: The table column that guides a table-regularised search by default, and the table of a dataset without one.
SURROGATE_COLUMN = "pgd@1"
SURROGATE_FALLBACK_DATASET = "cifar10"
CHANCE_MODES: tuple[str, ...] = DSRNA_CHANCE_MODES
METRICS: tuple[str, ...] = DSRNA_METRICS
GAMMA_MODES: tuple[str, ...] = DSRNA_GAMMA_MODES
BOUND_METHODS: tuple[str, ...] = CERTIFIED_METHODS
#: How reports and figures name the search of each metric.
METHOD_LABELS: dict[str, str] = {
    "none": "DARTS",
    "jacobian": "DSRNA (R_Jac)",
    "certified": "DSRNA (R_CB)",
    "combined": "DSRNA (R_Jac + R_CB)",
    "table": "DSRNA (R_table)",
    "table-st": "DSRNA (R_table, argmax ST)",
    "table+jacobian": "DSRNA (R_table + R_Jac)",
    "table+certified": "DSRNA (R_table + R_CB)",
}
#: The regularisers a metric uses.
METRIC_TERMS: dict[str, tuple[str, ...]] = {
    "jacobian": ("jacobian",),
    "certified": ("certified",),
    "combined": ("jacobian", "certified"),
    "none": (),
    "table": ("table",),
    "table-st": ("table",),
    "table+jacobian": ("table", "jacobian"),
    "table+certified": ("table", "certified"),
}
#: The settings that only a search with R_table reads (left out of the identity of other searches).
_TABLE_SETTINGS = ("gamma_table", "surrogate_column", "surrogate_dataset", "surrogate_source", "surrogate_chance")


def _count(name: str, v: object, low: int = 1) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise Rb201Error(f"{name} must be an integer >= {low}, got {v!r}")


def _number(name: str, v: object, *, positive: bool = False, allowed: str = "") -> None:
    ok = not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)
    if not ok or v < 0 or (positive and v == 0):  # type: ignore[operator]
        kind = "> 0" if positive else ">= 0"
        raise Rb201Error(f"{name} must be a finite number {kind}{allowed}, got {v!r}")


@dataclass(frozen=True)
class DSRNAConfig:
    """Settings of one search (defaults and their sources: module docstring and docs/SEARCH.md).

    Data: ``n_train`` images of ``dataset`` (drawn with ``seed``); the first ``split`` of them train the weights,
    the rest are the validation images that train the alphas. Supernet: ``channels`` (C), ``n_cells`` (N).
    Regulariser: ``metric``; ``eps`` is the L-inf radius in pixel units of 1/255; ``q`` the norm of the Jacobian rows
    (1: the dual of L-inf); ``bound`` the bound method of R_CB; ``reg_batch`` caps the validation images per step
    that enter R. ``gamma_jacobian`` / ``gamma_certified`` weigh R_Jac / R_CB (None: 0.01, the paper's, in
    ``absolute`` mode; 0.5 in ``relative`` mode, where gamma multiplies the ratio of the validation loss to |R|
    measured on ``calib_batches`` validation batches before the first step). Weights: SGD with ``w_*`` (cosine from
    ``w_lr`` to ``w_lr_min``), gradient norm clipped at ``grad_clip``. Alphas: Adam with ``a_*``; ``a_lr=None``
    picks :func:`auto_a_lr`. ``exclude_none`` derives the cell without ``none`` (original DARTS; default: NB201's
    DARTS, which keeps ``none`` in the argmax).

    R_table (metrics ``table``, ``table-st``, ``table+jacobian``, ``table+certified``; :mod:`.table_prior`): the
    expectation of ``surrogate_column`` (a wide column name, ``mean_adv``, or an expression as in ``rb201 search
    table --objective``) of the ``surrogate_dataset`` table (None: the search dataset's, or CIFAR-10's for a dataset
    without one, a transfer), read from the embedded table or ``surrogate_source`` (a dataset directory or a wide
    ``.parquet`` / ``.csv``), with chance handled by ``surrogate_chance``; weighed by ``gamma_table`` (None: 0.5 in
    relative mode, 1 in absolute mode)."""

    dataset: str = "mnist5k"
    metric: str = "jacobian"
    epochs: int = 10
    channels: int = 8
    n_cells: int = 1
    batch_size: int = 64
    n_train: int = 1000
    split: float = 0.5
    gamma_mode: str = "relative"
    gamma_jacobian: float | None = None
    gamma_certified: float | None = None
    gamma_table: float | None = None
    surrogate_column: str = SURROGATE_COLUMN
    surrogate_dataset: str | None = None
    surrogate_source: str | None = None
    surrogate_chance: str = "gate"
    calib_batches: int = 4
    eps: float = 2.0
    q: float = 1.0
    bound: str = "ibp"
    reg_batch: int = 32
    second_order: bool = False
    exclude_none: bool = False
    seed: int = 0
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_nesterov: bool = False
    w_weight_decay: float = 3e-4
    grad_clip: float = 5.0
    a_lr: float | None = None
    a_betas: tuple[float, float] = (0.5, 0.999)
    a_weight_decay: float = 1e-3

    def __post_init__(self) -> None:
        object.__setattr__(self, "dataset", canonical_dataset(self.dataset))
        check_choice("metric", self.metric, METRICS)
        check_choice("gamma mode", self.gamma_mode, GAMMA_MODES)
        check_choice("bound method", self.bound, BOUND_METHODS)
        check_choice("chance handling", self.surrogate_chance, CHANCE_MODES)
        if not isinstance(self.surrogate_column, str) or not self.surrogate_column.strip():
            raise Rb201Error(f"surrogate_column must name a table column or expression, got {self.surrogate_column!r}")
        table_ds = self.surrogate_dataset
        if table_ds is None:
            table_ds = self.dataset if self.dataset in PUBLISHED_DATASETS else SURROGATE_FALLBACK_DATASET
        object.__setattr__(self, "surrogate_dataset", canonical_dataset(table_ds))
        if self.surrogate_dataset not in PUBLISHED_DATASETS:
            raise Rb201Error(
                f"surrogate_dataset {self.surrogate_dataset!r} has no results table; allowed: "
                f"{', '.join(PUBLISHED_DATASETS)}"
            )
        if self.surrogate_source is not None:
            object.__setattr__(self, "surrogate_source", str(self.surrogate_source))
        for name in ("epochs", "channels", "n_cells", "batch_size", "reg_batch", "calib_batches"):
            _count(name, getattr(self, name))
        _count("n_train (split between weights and alphas)", self.n_train, 4)
        _count("seed", self.seed, 0)
        ok = not isinstance(self.split, bool) and isinstance(self.split, int | float) and 0 < self.split < 1
        if not ok:
            raise Rb201Error(f"split (share of n_train that trains the weights) must be in (0, 1), got {self.split!r}")
        n_w = self.n_weight_images
        if n_w < 2 or self.n_train - n_w < 2:
            raise Rb201Error(
                f"split {self.split} of n_train {self.n_train} leaves {n_w} weight and {self.n_train - n_w} "
                "validation images; each side needs >= 2"
            )
        if not 0 <= self.eps <= 255:
            raise Rb201Error(f"eps must be in [0, 255] (pixel units of 1/255), got {self.eps!r}")
        if not self.q >= 1:
            raise Rb201Error(f"q must be >= 1 (1 is the dual norm of L-inf), got {self.q!r}")
        for name in ("gamma_jacobian", "gamma_certified", "gamma_table"):
            if getattr(self, name) is not None:
                _number(name, getattr(self, name), allowed=" (or None for the default of the gamma mode)")
        for name in ("w_lr", "w_lr_min", "grad_clip"):
            _number(name, getattr(self, name), positive=True)
        for name in ("w_momentum", "w_weight_decay", "a_weight_decay"):
            _number(name, getattr(self, name))
        if self.w_lr_min > self.w_lr:
            raise Rb201Error(f"w_lr_min {self.w_lr_min} must not exceed w_lr {self.w_lr}")
        if self.a_lr is not None:
            _number("a_lr", self.a_lr, positive=True, allowed=" (or None for the automatic rate)")
        betas = tuple(float(b) for b in self.a_betas)
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise Rb201Error(f"a_betas must be two numbers in [0, 1), got {self.a_betas!r}")
        object.__setattr__(self, "a_betas", betas)

    # ---- derived settings -----------------------------------------------------------------------------------------
    @property
    def n_weight_images(self) -> int:
        """Images that train the weights (the rest of ``n_train`` train the alphas)."""
        return int(self.n_train * self.split)

    def steps_per_epoch(self, n: int | None = None) -> int:
        """Weight steps per epoch, each preceded by one alpha step, for ``n`` images (default ``n_train``)."""
        n = self.n_train if n is None else n
        n_w = int(n * self.split)
        return max(1, n_w // min(self.batch_size, n_w))

    def gamma(self, term: str) -> float:
        """The gamma of regulariser ``term`` (``"jacobian"``, ``"certified"`` or ``"table"``) in this config's gamma
        mode."""
        value = {"jacobian": self.gamma_jacobian, "certified": self.gamma_certified, "table": self.gamma_table}[term]
        if value is not None:
            return float(value)
        if self.gamma_mode == "relative":
            return RELATIVE_GAMMA
        return TABLE_ABSOLUTE_GAMMA if term == "table" else PAPER_GAMMA

    @property
    def table_estimator(self) -> str | None:
        """How R_table enters the search: ``"expectation"`` (smooth), ``"argmax-st"`` (the value of the current
        argmax cell with a straight-through gradient), or None when the metric does not use the table."""
        if "table" not in self.terms:
            return None
        return "argmax-st" if self.metric == "table-st" else "expectation"

    def identity(self) -> dict[str, Any]:
        """The settings that determine a search's trajectory for its epochs (:meth:`to_json` without ``epochs``, and
        without the table's settings when the metric does not read the table): what a resumed checkpoint or a
        finished result must match."""
        d = self.to_json()
        d.pop("epochs")
        if "table" not in self.terms:
            for name in _TABLE_SETTINGS:
                d.pop(name)
        return d

    @property
    def terms(self) -> tuple[str, ...]:
        """The regularisers this search uses (``()`` for plain DARTS)."""
        return METRIC_TERMS[self.metric]

    def resolved_a_lr(self, steps_per_epoch: int | None = None) -> float:
        """The architecture learning rate of this search: ``a_lr``, or :func:`auto_a_lr` for its size."""
        if self.a_lr is not None:
            return float(self.a_lr)
        return auto_a_lr(self.epochs * (steps_per_epoch or self.steps_per_epoch()))

    # ---- serialisation --------------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"a_betas": list(self.a_betas)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DSRNAConfig:
        d = dict(d)
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise Rb201Error(f"unknown DSRNA setting(s) {unknown}; allowed: {', '.join(cls.__dataclass_fields__)}")
        if "a_betas" in d:
            d["a_betas"] = tuple(d["a_betas"])
        return cls(**d)


def auto_a_lr(alpha_steps: int) -> float:
    """The architecture learning rate that gives ``alpha_steps`` Adam steps the step budget (learning rate x steps)
    of NB201's DARTS baseline on CIFAR-10, 3e-4 x 19550 = 5.865, within [3e-4, 0.1]: 3e-4 for that search itself,
    0.084 for 10 epochs of 1000 MNIST-5k images (70 steps)."""
    _count("alpha_steps", alpha_steps)
    return float(min(A_LR_MAX, max(DARTS_A_LR, A_STEP_BUDGET / alpha_steps)))


def epochs_for_budget(a_lr: float, steps_per_epoch: int) -> int:
    """Epochs that give the alphas NB201's DARTS step budget at learning rate ``a_lr`` and ``steps_per_epoch``."""
    return max(1, math.ceil(A_STEP_BUDGET / (a_lr * steps_per_epoch) - 1e-9))


#: NB201's training seeds (PROTOCOL.md section 3).
TRAIN_SEEDS: tuple[int, ...] = (777, 888, 999)


@dataclass(frozen=True)
class CompareConfig:
    """A comparison: the shared search settings ``search`` (its ``metric`` and ``seed`` are replaced per run), the
    ``metrics`` and ``seeds`` to run, ``n_random`` random live cells drawn with ``random_seed``; for trained
    scoring, ``train_epochs`` and ``train_seeds`` of the project's trainer on ``n_score_train`` training images
    (None: all) at the search's width and depth, attacks at ``score_eps`` (1/255 units, PGD with ``pgd_steps``) on
    ``n_test`` test images, and ``reference`` (train the CIFAR-10 table's fgsm@1 optimum too)."""

    search: DSRNAConfig = dataclasses.field(default_factory=DSRNAConfig)
    metrics: tuple[str, ...] = ("none", "jacobian", "certified")
    seeds: tuple[int, ...] = (0, 1, 2)
    n_random: int = 5
    random_seed: int = 0
    train_epochs: int = 10
    train_seeds: tuple[int, ...] = TRAIN_SEEDS
    n_score_train: int | None = None
    n_test: int = 500
    score_eps: tuple[float, ...] = (2.0, 8.0)
    pgd_steps: int = 10
    reference: bool = True

    def __post_init__(self) -> None:
        for name in ("metrics", "seeds", "train_seeds", "score_eps"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.metrics or not self.seeds:
            raise Rb201Error(f"a comparison needs >= 1 metric and >= 1 seed, got {self.metrics} and {self.seeds}")
        for m in self.metrics:
            if m not in METRICS:
                raise Rb201Error(f"unknown metric {m!r} in metrics; allowed: {', '.join(METRICS)}")
        for what, values in (("metrics", self.metrics), ("seeds", self.seeds), ("train seeds", self.train_seeds)):
            if len(set(values)) != len(values):
                raise Rb201Error(f"{what} {values} repeat a value")
        for s in (*self.seeds, *self.train_seeds):
            if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                raise Rb201Error(f"seeds must be integers >= 0, got {s!r}")
        if not self.train_seeds:
            raise Rb201Error("train_seeds must name >= 1 training seed (NB201 uses 777, 888, 999)")
        for name, low in (("n_random", 0), ("train_epochs", 1), ("n_test", 1), ("pgd_steps", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise Rb201Error(f"{name} must be an integer >= {low}, got {v!r}")
        if self.n_score_train is not None and (not isinstance(self.n_score_train, int) or self.n_score_train < 2):
            raise Rb201Error(f"n_score_train must be an integer >= 2 or None (all), got {self.n_score_train!r}")
        if not self.score_eps or not all(0 < e <= 255 for e in self.score_eps):
            raise Rb201Error(f"score_eps must be epsilons in (0, 255] (units of 1/255), got {self.score_eps}")

    @property
    def mode(self) -> str:
        """``table`` for a dataset with a results table, else ``trained``."""
        return "table" if self.search.dataset in PUBLISHED_DATASETS else "trained"

    def run_config(self, metric: str, seed: int) -> DSRNAConfig:
        return dataclasses.replace(self.search, metric=metric, seed=seed)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["search"] = self.search.to_json()
        return d | {k: list(getattr(self, k)) for k in ("metrics", "seeds", "train_seeds", "score_eps")}
