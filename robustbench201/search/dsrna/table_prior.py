"""The results table as DSRNA's robustness prior: ``R_table = E_{a ~ p_alpha}[v(a)]`` over all 15625 cells.

``v`` is one column (or expression, as in ``rb201 search table --objective``) of a results table, per cell: every
cell takes its isomorphism class's value (the row of its representative; :class:`~..nas.TableSurrogate`). Under
DARTS' product distribution ``p_alpha`` the expectation is exact and differentiable in the alphas
(:mod:`..cell_distribution`); :func:`.regularizers.table_regularizer` wraps it for autograd. No torch here.

**Cells without a value** (a partial ``--source`` dataset, a proxy column that covers part of the space) are
counted (:attr:`TablePrior.n_missing_cells`) and left out of the average: ``R_table = E[v | a has a value] =
E[v 1_known] / P(known)``, never a silent zero. A column with no value at all is an error.

**No reward for chance.** A dead cell (no input-output path) predicts one class whatever its input: its accuracy is
chance (1/K) under every attack, which at large epsilons beats every live cell (CIFAR-10, PGD at 8/255: the five
dead classes score 0.100, the best live class 0.036). ``chance`` chooses how the prior handles it
(:func:`chance_study` shows which cell maximises each choice on a table):

* ``gate`` (default): ``v = lo + g (s - lo)``, ``g = clip((clean - 1/K) / (1 - 1/K), 0, 1)``, ``s`` the column
  (negated for ``min:``), ``lo`` its worst value over the cells. Robustness counts in proportion to how far the
  cell's clean accuracy is above chance: a cell at chance gets the column's worst value, so neither dead nor
  near-chance live cells (ImageNet16-120 has live classes at chance) are pulled towards; among accurate cells
  (CIFAR-10: clean 0.47-0.95) the ranking changes little.
* ``dead-penalty``: ``v = s - lambda 1_dead``, i.e. ``R = E[s] - lambda P(dead)``, with ``lambda`` twice the
  column's range over the cells, so a dead cell is worth at least one range less than the worst cell. Exact for
  dead cells, blind to live cells at chance.
* ``retained``: ``v = s / clean``, the accuracy retained relative to clean. Rewards chance the most: a dead cell
  retains all of its (chance) accuracy, ``v = 1``.
* ``none``: the raw column.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import numpy as np

from ...data.info import PUBLISHED_DATASETS, canonical_dataset, dataset_info
from ...errors import Rb201Error, check_choice
from ...space import NUM_ARCHS, Arch, representative_indices
from ...vocab import DSRNA_CHANCE_MODES
from ..cell_distribution import cell_tensor, edge_gradient, expectation

__all__ = [
    "TablePrior",
    "at_chance",
    "chance_study",
    "column_kendall",
    "dead_mass",
    "describe",
    "guided_columns",
    "load_prior",
]

CHANCE_MODES: tuple[str, ...] = DSRNA_CHANCE_MODES
#: The column the mean adversarial accuracy is read under (flat mean over the attacks' per-epsilon columns, 255
#: excluded, as :func:`..analysis.mean_adversarial`).
MEAN_ADV = "mean_adv"


@lru_cache(maxsize=1)
def _dead() -> np.ndarray:
    d = np.array([Arch.from_index(i).is_dead for i in range(NUM_ARCHS)])
    d.setflags(write=False)
    return d


@lru_cache(maxsize=1)
def _class_reps() -> np.ndarray:
    """The representative of every isomorphism class (6466), ascending."""
    return np.unique(np.asarray(representative_indices(), dtype=np.int64))


@lru_cache(maxsize=1)
def _dead_tensor() -> np.ndarray:
    t = cell_tensor(_dead().astype(np.float64))
    t.setflags(write=False)
    return t


def dead_mass(probs: np.ndarray) -> float:
    """The probability of the 341 dead cells under the edge-wise probabilities ``probs`` (6 x 5)."""
    return float(expectation(probs, _dead_tensor()))


def at_chance(value: float, chance: float, n: int) -> bool:
    """True when ``value`` (an accuracy as a fraction, measured on ``n`` images) is within three binomial standard
    deviations of the chance accuracy ``chance``: what a classifier that ignores its input scores."""
    return math.isfinite(value) and abs(value - chance) <= 3.0 * math.sqrt(chance * (1.0 - chance) / n)


@dataclass(frozen=True, eq=False)
class TablePrior:
    """Per-cell values of one column of one table, as the prior uses them (see the module docstring).

    ``raw``: the column per cell in NB201 index order (NaN: no value); ``values``: what the prior averages (the
    column oriented for maximisation and handled for chance; NaN: unknown); ``chance``: 1/K of the table's dataset;
    ``penalty``: the ``dead-penalty`` lambda (0 otherwise); ``used``: the table columns the column or expression
    reads."""

    dataset: str
    column: str
    source: str | None
    chance_mode: str
    chance: float
    maximize: bool
    raw: np.ndarray
    values: np.ndarray
    penalty: float = 0.0
    used: tuple[str, ...] = ()

    @cached_property
    def known(self) -> np.ndarray:
        return np.isfinite(self.values)

    @cached_property
    def value_tensor(self) -> np.ndarray:
        """The 5^6 tensor of ``values`` with 0 where unknown (the numerator of the conditional expectation)."""
        return cell_tensor(np.where(self.known, self.values, 0.0))

    @cached_property
    def known_tensor(self) -> np.ndarray:
        return cell_tensor(self.known.astype(np.float64))

    @property
    def n_missing_cells(self) -> int:
        return int((~self.known).sum())

    @property
    def n_missing_classes(self) -> int:
        return int((~self.known[_class_reps()]).sum())

    def value_and_gradient(self, probs: np.ndarray) -> tuple[float, np.ndarray]:
        """``E[v | known]`` under the edge-wise probabilities ``probs`` (6 x 5) and its gradient in ``probs``."""
        num, den = float(expectation(probs, self.value_tensor)), float(expectation(probs, self.known_tensor))
        if not den > 0:
            raise Rb201Error(f"no cell with a value for {self.column!r} has probability > 0 under these weights")
        g_num, g_den = edge_gradient(probs, self.value_tensor), edge_gradient(probs, self.known_tensor)
        value = num / den
        return value, (g_num - value * g_den) / den

    def mass(self, probs: np.ndarray, what: str = "dead") -> float:
        """Probability of the dead cells (``what="dead"``) or of the cells without a value (``"missing"``)."""
        tensor = _dead_tensor() if what == "dead" else 1.0 - self.known_tensor
        return float(expectation(probs, tensor))

    def class_values(self) -> np.ndarray:
        """The raw column over the isomorphism classes (ascending representative; NaN: no value)."""
        return self.raw[_class_reps()]

    def percentile(self, index: int) -> float:
        """Share of the classes with a value that cell ``index`` matches or beats in the raw column (0..100; NaN
        when the cell has no value)."""
        v = float(self.raw[int(index)])
        col = self.class_values()
        col = col[np.isfinite(col)]
        if not math.isfinite(v):
            return math.nan
        return float(100.0 * np.mean(col <= v if self.maximize else col >= v))


def _read(dataset: str, column: str, source: str | None):  # type: ignore[no-untyped-def]
    """(raw per cell, maximize, the objective's text, the columns it reads, clean per cell or None) from the wide
    table of ``dataset``."""
    from ..nas import TableSurrogate, load_table

    df = load_table(dataset, source)
    if MEAN_ADV in column and MEAN_ADV not in df.columns:
        from ..analysis import mean_adversarial

        df = df.assign(**{MEAN_ADV: mean_adversarial(df)})
    sur = TableSurrogate(df, column)
    clean = TableSurrogate(df, "clean").value if "clean" in df.columns else None
    return sur.value, sur.maximize, sur.objective.text, sur.objective.expression.columns, clean


def build_prior(dataset: str, column: str, source: str | None = None, chance: str = "gate") -> TablePrior:
    """The prior of ``column`` (a wide column name, ``mean_adv``, or an expression) of ``dataset``'s table (the
    embedded one, or ``source``: a dataset directory or a wide ``.parquet`` / ``.csv``), handled for chance by
    ``chance`` (see the module docstring)."""
    check_choice("chance handling", chance, CHANCE_MODES)
    ds = canonical_dataset(dataset)
    try:
        raw, maximize, text, used, clean = _read(ds, column, source)
    except Rb201Error as exc:
        raise Rb201Error(f"surrogate column {column!r} of the {ds} table: {exc}") from None
    k = 1.0 / dataset_info(ds).num_classes
    s = raw if maximize else -raw
    penalty = 0.0
    if chance in ("gate", "retained") and (clean is None or not np.isfinite(clean).any()):
        raise Rb201Error(f"chance handling {chance!r} needs the table's clean accuracy; the {ds} table has none")
    if chance == "gate":
        lo = float(np.nanmin(s))
        g = np.clip((clean - k) / (1.0 - k), 0.0, 1.0)
        values = lo + g * (s - lo)
    elif chance == "retained":
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where(clean > 0, s / clean, np.nan)
    elif chance == "dead-penalty":
        span = float(np.nanmax(s) - np.nanmin(s))
        penalty = 2.0 * span if span > 0 else 1.0
        values = s - penalty * _dead()
    else:
        values = s.copy()
    values = np.asarray(values, dtype=np.float64)
    values.setflags(write=False)
    raw = np.asarray(raw, dtype=np.float64)
    raw.setflags(write=False)
    return TablePrior(ds, text, source, chance, k, maximize, raw, values, penalty, tuple(used))


@lru_cache(maxsize=8)
def _cached(dataset: str, column: str, source: str | None, chance: str) -> TablePrior:
    return build_prior(dataset, column, source, chance)


def load_prior(dataset: str, column: str, source: str | None = None, chance: str = "gate") -> TablePrior:
    """:func:`build_prior`, read once per process for the same arguments (a search reads its prior at every step)."""
    return _cached(canonical_dataset(dataset), column, None if source is None else str(source), chance)


def chance_study(
    dataset: str, columns: tuple[str, ...], source: str | None = None, modes: tuple[str, ...] = CHANCE_MODES
) -> list[dict[str, Any]]:
    """Which cell maximises each chance handling, per column: ``column``, ``chance``, the maximising class
    (``index``, ``arch``, ``dead``), its raw ``value``, its ``clean`` accuracy, and ``at_chance`` (its raw value is
    chance accuracy within three binomial standard deviations on the table's test set)."""
    ds = canonical_dataset(dataset)
    clean = build_prior(ds, "clean", source, "none").raw
    n = dataset_info(ds).n_test
    rows = []
    for col in columns:
        for mode in modes:
            prior = build_prior(ds, col, source, mode)
            reps = _class_reps()
            v = prior.values[reps]
            best = int(reps[int(np.nanargmax(v))])
            value = float(prior.raw[best])
            rows.append({
                "column": col, "chance": mode, "index": best, "arch": Arch.from_index(best).string,
                "dead": bool(_dead()[best]), "value": value, "clean": float(clean[best]),
                "percentile": prior.percentile(best), "at_chance": at_chance(value, prior.chance, n),
            })  # fmt: skip
    return rows


def column_kendall(column: str, source: str | None = None) -> dict[str, float]:
    """Kendall tau-b of ``column`` over the isomorphism classes between the tables of the published datasets
    (``"cifar10~cifar100"``, ...): how alike they rank the cells, i.e. what the prior of one dataset can say about
    another. Datasets whose table lacks the column are left out."""
    from ..analysis import kendall

    cols: dict[str, np.ndarray] = {}
    for ds in PUBLISHED_DATASETS:
        try:
            cols[ds] = build_prior(ds, column, source, "none").class_values()
        except Rb201Error:
            continue
    names = list(cols)
    return {
        f"{a}~{b}": kendall(cols[a], cols[b])[0] for i, a in enumerate(names) for b in names[i + 1 :]
    }  # fmt: skip


def guided_columns(prior: TablePrior, columns: Sequence[str]) -> list[str]:
    """The ``columns`` of a report that the prior's column reads, directly or through ``mean_adv`` (the mean over the
    attack columns): a score in them is not held out from the search it grades."""
    used = set(prior.used)
    attack_used = MEAN_ADV in used or any("@" in c for c in used)
    return [c for c in columns if c in used or (c == MEAN_ADV and attack_used) or (MEAN_ADV in used and "@" in c)]


def describe(
    prior: TablePrior, arch: object, search_dataset: str, estimator: str, kendall: bool = True
) -> dict[str, Any]:
    """What a search guided by ``prior`` reports: which table, column and handling guided it, the derived cell's
    raw value and percentile among the classes in that column (and whether that value is at chance), the cells
    without a value, and, when the search images are not the table's dataset, that the prior is a transfer
    (``kendall``: with the Kendall tau between the published tables for the column)."""
    a = Arch.parse(arch)
    value = float(prior.raw[a.index])
    info: dict[str, Any] = {
        "dataset": prior.dataset,
        "column": prior.column,
        "source": prior.source or "embedded",
        "chance": prior.chance_mode,
        "estimator": estimator,
        "value": value,
        "percentile": prior.percentile(a.index),
        "n_classes": int(np.isfinite(prior.class_values()).sum()),
        "at_chance": at_chance(value, prior.chance, dataset_info(prior.dataset).n_test),
        "missing_cells": prior.n_missing_cells,
        "missing_classes": prior.n_missing_classes,
        "transfer": canonical_dataset(search_dataset) != prior.dataset,
    }
    if info["transfer"] and kendall:
        info["kendall"] = column_kendall(prior.column, prior.source)
    return info
