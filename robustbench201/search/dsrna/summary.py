"""What a finished DSRNA search reports: the derived cell with per-edge decisions and warnings
(:mod:`.diagnostics`), the regularisers per epoch, and the cell's values on a results table.

On a dataset with a table (CIFAR-10, CIFAR-100, ImageNet16-120) the cell is scored there. On one without (MNIST-5k)
the summary says so and scores the cell on CIFAR-10's table as a transfer estimate, labelled as such: those are the
numbers of the same cell trained on CIFAR-10 by NB201 and attacked by Jung et al., not a measurement on the search
dataset (``rb201 search dsrna --compare`` measures one by training).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ...atomic import write_text_atomic
from ...data.info import PUBLISHED_DATASETS, canonical_dataset, dataset_info
from ...errors import Rb201Error
from ...space import Arch
from .config import METHOD_LABELS
from .diagnostics import cell_findings, edge_decisions, movement, regularizer_findings, regularizer_table
from .result import DSRNAResult
from .table_prior import at_chance, describe, load_prior

ALPHA_PNG = "alphas.png"
TABLE_JSON = "table_score.json"
TRANSFER_JSON = "transfer_score.json"
#: The table a cell searched on a dataset without one is scored on, as a transfer estimate.
TRANSFER_DATASET = "cifar10"
TRANSFER_LABEL = "CIFAR-10"
#: The mean adversarial accuracy column a score adds: flat mean over the attacks' per-epsilon accuracies, 255 excluded.
MEAN_ADV = "mean_adv"


@dataclass(frozen=True)
class TableScore:
    """Table values of a cell on one dataset (accuracies as fractions; column names are the wide names, epsilons in
    1/255 units; ``mean_adv`` the mean adversarial accuracy) and, per column, its percentile among the isomorphism
    classes with a value (the share of classes it matches or beats, 0..100). ``at_chance``: the columns whose value is
    chance accuracy (1/K within three binomial standard deviations on the table's test set, :func:`.table_prior.
    at_chance`), where a high percentile says the attack broke the other cells, not that this one is robust."""

    dataset: str
    index: int
    representative: int
    values: dict[str, float]
    percentiles: dict[str, float]
    n_classes: int
    at_chance: tuple[str, ...] = ()

    @property
    def clean(self) -> float:
        return self.values.get("clean", float("nan"))

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "index": self.index,
            "representative": self.representative,
            "values": self.values,
            "percentiles": self.percentiles,
            "n_classes": self.n_classes,
            "at_chance": list(self.at_chance),
        }


def _table_column(name: str) -> bool:
    """Accuracy columns worth reporting: clean, attacks (``key@eps``), corruptions (``name:severity``), NB201."""
    if "/" in name:
        return False
    return name in ("clean", "nb201_test_accuracy") or "@" in name or ":" in name


class TableScorer:
    """Scores cells on one dataset's table: reads the wide table once, one row per isomorphism class."""

    def __init__(self, dataset: str, source: object | None = None) -> None:
        from ... import _query as q

        self.dataset = canonical_dataset(dataset)
        try:
            wide = q.table(self.dataset, "wide", source=source)
        except Rb201Error as exc:
            raise Rb201Error(f"cannot read the {self.dataset} table: {exc}") from None
        self.wide = wide
        self.reps = wide[wide.index.to_numpy() == wide["representative"].to_numpy()]

    @cached_property
    def columns(self) -> list[str]:
        cols = [str(c) for c in self.reps.columns if c != "representative" and _table_column(str(c))]
        return cols + ([MEAN_ADV] if self.mean_adv is not None else [])

    @cached_property
    def mean_adv(self) -> Any:
        """Mean adversarial accuracy per class (flat mean over the attacks' per-epsilon columns, eps 255 excluded,
        as :func:`.analysis.mean_adversarial`), or None without attack columns."""
        from ..analysis import mean_adversarial

        try:
            return mean_adversarial(self.reps)
        except Rb201Error:
            return None

    def column(self, name: str) -> np.ndarray:
        """Values of ``name`` over the classes (NaN where missing)."""
        if name == MEAN_ADV:
            return self.mean_adv.to_numpy(dtype=float)
        return self.reps[name].to_numpy(dtype=float)

    def optimum(self, name: str) -> tuple[int, float]:
        """(representative, value) of the best class on column ``name``."""
        v = self.column(name)
        if not np.isfinite(v).any():
            raise Rb201Error(f"the {self.dataset} table has no values in column {name!r}")
        i = int(np.nanargmax(v))
        return int(self.reps.index[i]), float(v[i])

    def random_expectation(self, name: str) -> dict[str, float]:
        """Mean and 10/50/90th percentiles of ``name`` for a cell drawn uniformly from the 15625 cells (each class
        weighted by its size; cells of classes without a value are left out)."""
        rep = self.wide["representative"].to_numpy()
        pos = {int(r): i for i, r in enumerate(self.reps.index)}
        col = self.column(name)
        v = np.array([col[pos[int(r)]] for r in rep])
        v = v[np.isfinite(v)]
        q10, q50, q90 = np.percentile(v, [10, 50, 90])
        return {"mean": float(v.mean()), "p10": float(q10), "p50": float(q50), "p90": float(q90), "n": int(v.size)}

    def score(self, arch: object) -> TableScore:
        a = Arch.parse(arch)
        rep = a.representative.index
        if rep not in self.reps.index:
            raise Rb201Error(f"the {self.dataset} table has no row for {a.string} (class {rep})")
        pos = int(self.reps.index.get_loc(rep))
        values: dict[str, float] = {}
        percentiles: dict[str, float] = {}
        info = dataset_info(self.dataset)
        chance: list[str] = []
        for col in self.columns:
            column = self.column(col)
            v = float(column[pos])
            if not math.isfinite(v):
                continue
            values[col] = v
            column = column[np.isfinite(column)]
            percentiles[col] = float(100.0 * np.mean(column <= v))
            if at_chance(v, 1.0 / info.num_classes, info.n_test):
                chance.append(col)
        return TableScore(self.dataset, a.index, rep, values, percentiles, int(len(self.reps)), tuple(chance))


def score_on_table(result: DSRNAResult | object, dataset: str, source: object | None = None) -> TableScore:
    """Look the derived cell (a :class:`DSRNAResult` or any architecture) up in the results table: clean,
    adversarial and corruption accuracies, the mean adversarial accuracy, and percentiles among the isomorphism
    classes (6466 in the full table). ``source``: a dataset directory (default: the embedded table)."""
    arch = result.arch if isinstance(result, DSRNAResult) else Arch.parse(result)
    try:
        return TableScorer(dataset, source).score(arch)
    except Rb201Error as exc:
        raise Rb201Error(f"cannot score {arch.string} on the {canonical_dataset(dataset)} table: {exc}") from None


def diagnose(result: DSRNAResult) -> dict[str, Any]:
    """Per-edge decisions, how far the alphas moved, and the warnings about the cell and the regularisers."""
    cfg = result.config
    decisions = edge_decisions(result.alpha_history[-1], cfg.exclude_none)
    a_lr = result.a_lr if math.isfinite(result.a_lr) else None
    findings = cell_findings(result.arch, decisions, a_lr, result.steps_per_epoch or None, cfg.epochs)
    findings += regularizer_findings(result.history, cfg.terms)
    return {
        "edges": [d.to_json() for d in decisions],
        "movement": movement(result.alpha_history),
        "findings": [f.to_json() for f in findings],
        "regularizers": regularizer_table(result.history, cfg.terms),
    }


def summarize(
    result: DSRNAResult,
    out: str | Path | None = None,
    *,
    table_source: object | None = None,
    plot: bool = True,
    transfer: bool = True,
) -> dict[str, Any]:
    """What a finished search reports: the derived cell, per-epoch times, the final softmax alphas, per-edge
    decisions and warnings (:func:`diagnose`), and its values and percentiles in the results table of the search
    dataset; for a dataset without a table, ``table_note`` says so and (``transfer``) ``transfer`` holds the
    CIFAR-10 table's values as a labelled transfer estimate. ``dead_mass``: the probability of the dead cells under
    the final architecture weights (mean over the last epoch's steps). A search guided by the table adds
    ``surrogate`` (:func:`.table_prior.describe`: the column and table that guided it, the derived cell's value and
    percentile in that column, a transfer's Kendall tau between the published tables). With ``out``, the score is
    written to ``table_score.json`` (or ``transfer_score.json``) and (``plot``) the alphas' trajectories to
    ``alphas.png``."""
    ds = result.config.dataset
    info: dict[str, Any] = {
        "arch": result.arch_string,
        "index": result.index,
        "representative": result.representative,
        "dead": result.arch.is_dead,
        "dataset": ds,
        "metric": result.config.metric,
        "seconds_per_epoch": [round(h["seconds"], 3) for h in result.history],
        "a_lr": result.a_lr,
        "steps_per_epoch": result.steps_per_epoch,
        "reg_scale": result.reg_scale,
        "alphas": result.alpha_history[-1],
        **diagnose(result),
    }
    if ds in PUBLISHED_DATASETS:
        try:
            info["table"] = score_on_table(result, ds, source=table_source).to_json()
        except Rb201Error as exc:
            info["table_error"] = str(exc)
    else:
        info["table_note"] = (
            f"no results table exists for {ds}"
            + (
                f"; transfer estimate: the same cell on the {TRANSFER_DATASET} table (trained on {TRANSFER_LABEL} by "
                f"NB201), not a measurement on {ds}"
                if transfer
                else ""
            )
            + "; to measure the cell on the search data, train and attack it (rb201 search dsrna --compare)"
        )
        if transfer:
            try:
                score = score_on_table(result, TRANSFER_DATASET, source=table_source)
                info["transfer"] = score.to_json() | {"label": f"transfer estimate ({TRANSFER_DATASET} table)"}
            except Rb201Error as exc:
                info["table_error"] = str(exc)
    if result.history and "dead_mass" in result.history[-1]:
        info["dead_mass"] = result.history[-1]["dead_mass"]
    cfg = result.config
    if cfg.table_estimator is not None and cfg.surrogate_dataset is not None:
        prior = load_prior(cfg.surrogate_dataset, cfg.surrogate_column, cfg.surrogate_source, cfg.surrogate_chance)
        info["surrogate"] = describe(prior, result.arch, ds, cfg.table_estimator)
    if out is not None:
        out_dir = Path(out)
        if "table" in info:
            write_text_atomic(out_dir / TABLE_JSON, json.dumps(info["table"], indent=1))
        if "transfer" in info:
            write_text_atomic(out_dir / TRANSFER_JSON, json.dumps(info["transfer"], indent=1))
        if plot:
            from .. import plots

            what = METHOD_LABELS[cfg.metric]
            title = (
                f"{plots.dataset_label(ds)}: architecture weights of {what}, seed {cfg.seed} "
                f"(architecture lr {result.a_lr:.3g}); derived #{result.index}"
            )
            info["plot"] = str(plots.alphas(result.alpha_history, out_dir / ALPHA_PNG, title=title))
    return info
