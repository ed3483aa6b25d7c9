"""The numbers behind the report's figures of one dataset, computed from its wide index (no drawing here).

Every summary is over isomorphism classes (one row per class, its representative) for class-level columns and over
all cells holding a value for per-cell columns (hardware latency, zero-cost proxies), and says how many it used
(``n``). Epsilons are in units of 1/255; accuracies are fractions 0..1. Kendall's tau is
:func:`robustbench201.search.analysis.kendall` (tau-b over the rows where both values are finite), Pareto fronts are
:func:`robustbench201.search.analysis.pareto_front`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..search.analysis import kendall, pareto_front
from ..search.plots import metric_label
from ..store.schema import format_eps
from ..tables.index import Index

__all__ = ["rows_of", "histogram", "distributions", "eps_panels", "corruption_grid", "kendall_block", "cost_block",
           "ATTACK_LABELS"]  # fmt: skip

ATTACK_LABELS = {"fgsm": "FGSM", "pgd": "PGD", "aa_apgd-ce": "APGD-CE", "aa_apgd-dlr": "APGD-DLR",
                 "aa_square": "Square", "autoattack": "AutoAttack", "worst_case": "worst case over attacks",
                 "ibp": "IBP certified", "crown_ibp": "CROWN-IBP certified"}  # fmt: skip
_PLAIN = ("accuracy", "value")
_QUANTILES = (10, 25, 50, 75, 90)


def _f(x: float) -> float | None:
    """A float for JSON (None for NaN)."""
    return None if x is None or not math.isfinite(x) else float(x)


def rows_of(idx: Index, j: int) -> np.ndarray:
    """The NB201 indices a summary of column ``j`` runs over: the class representatives for a class-level column,
    every cell otherwise."""
    n = len(idx.reps)
    if idx.class_level[j]:
        return np.flatnonzero(idx.reps == np.arange(n))
    return np.arange(n)


def _values(idx: Index, j: int) -> np.ndarray:
    v = idx.take(rows_of(idx, j), j)
    return v[np.isfinite(v)]


def histogram(values: np.ndarray, bins: int = 30) -> dict[str, Any]:
    """Equal-width histogram of the finite ``values``: ``bins`` bins from ``lo`` to ``hi`` (the edges are
    ``numpy.linspace(lo, hi, bins + 1)``), their ``counts``, and the 10/50/90% quantiles (n = values used)."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return {"n": 0, "lo": None, "hi": None, "counts": []}
    lo, hi = float(v.min()), float(v.max())
    if hi == lo:  # one value: one bin around it
        lo, hi, bins = lo - 0.5 * max(abs(lo), 1e-3), hi + 0.5 * max(abs(hi), 1e-3), 1
    counts, _ = np.histogram(v, bins=np.linspace(lo, hi, bins + 1))
    p10, p50, p90 = np.percentile(v, [10, 50, 90])
    return {"n": int(v.size), "lo": lo, "hi": hi, "counts": [int(c) for c in counts], "min": float(v.min()),
            "max": float(v.max()), "p10": float(p10), "median": float(p50), "p90": float(p90)}  # fmt: skip


def distributions(idx: Index) -> list[dict[str, Any]]:
    """One histogram per column, in column order; ``over`` says whether it counts classes or cells."""
    out = []
    for j, name in enumerate(idx.names):
        h = histogram(_values(idx, j))
        h.update({"column": name, "over": "classes" if idx.class_level[j] else "cells"})
        out.append(h)
    return out


def eps_panels(idx: Index) -> list[dict[str, Any]]:
    """Robust accuracy against epsilon: one panel per (attack key, semantics, split) with at least two epsilons,
    with the 10/25/50/75/90% quantiles over the classes at each epsilon (``n``: classes with a value there)."""
    groups: dict[tuple[str, str, str], list[tuple[float, int]]] = {}
    for j, info in enumerate(idx.info):
        if info["family"] not in ("adversarial", "certified") or info["measure"] not in _PLAIN:
            continue
        if info["epsilon"] is None:
            continue
        g = (info["key"], info.get("semantics") or "per-epsilon", info.get("split", "test"))
        groups.setdefault(g, []).append((float(info["epsilon"]), j))
    panels = []
    for (key, sem, split), cols in groups.items():
        if len(cols) < 2:
            continue
        cols.sort()
        qs: dict[str, list[float | None]] = {f"p{q}": [] for q in _QUANTILES}
        ns = []
        for _, j in cols:
            v = _values(idx, j)
            ns.append(int(v.size))
            pct = np.percentile(v, _QUANTILES) if v.size else [math.nan] * len(_QUANTILES)
            for q, x in zip(_QUANTILES, pct, strict=True):
                qs[f"p{q}"].append(_f(float(x)))
        title = ATTACK_LABELS.get(key, key)
        if split != "test":
            title += f" ({split} split)"
        panels.append({"key": key, "title": title, "semantics": sem, "split": split,
                       "eps": [e for e, _ in cols], "eps_labels": [format_eps(e) for e, _ in cols],
                       "columns": [idx.names[j] for _, j in cols], "n": ns, **qs})  # fmt: skip
    return panels


def corruption_grid(idx: Index) -> dict[str, Any] | None:
    """Mean accuracy over the classes per corruption (rows, alphabetical) and severity 1..5 (columns), test split,
    and (``profile``) the 10/25/50/75/90% quantiles over the classes of each class's mean over the corruptions per
    severity; None when the dataset holds no corruption."""
    cells: dict[str, dict[int, int]] = {}
    for j, info in enumerate(idx.info):
        if info["family"] == "corruption" and info["measure"] in _PLAIN and info.get("split", "test") == "test":
            cells.setdefault(info["key"], {})[int(info["severity"])] = j
    if not cells:
        return None
    keys = sorted(cells)
    sevs = sorted({s for row in cells.values() for s in row})
    mean, ns, cols = [], [], []
    for k in keys:
        mrow, nrow, crow = [], [], []
        for s in sevs:
            j = cells[k].get(s)
            v = _values(idx, j) if j is not None else np.empty(0)
            mrow.append(_f(float(v.mean())) if v.size else None)
            nrow.append(int(v.size))
            crow.append(idx.names[j] if j is not None else None)
        mean.append(mrow)
        ns.append(nrow)
        cols.append(crow)
    clean = _values(idx, idx.col["clean"]) if "clean" in idx.col else np.empty(0)
    # per class, its mean over the corruptions at each severity (classes with every corruption value), and the
    # spread of that mean over the classes: what a cell's own profile is drawn against
    reps = np.flatnonzero(idx.reps == np.arange(len(idx.reps)))
    profile: dict[str, list[Any]] = {f"p{q}": [] for q in _QUANTILES}
    profile["n"] = []
    for s in sevs:
        js = [cells[k][s] for k in keys if s in cells[k]]
        m = np.column_stack([idx.take(reps, j) for j in js])
        per_class = m[~np.isnan(m).any(axis=1)].mean(axis=1)
        profile["n"].append(int(per_class.size))
        pct = np.percentile(per_class, _QUANTILES) if per_class.size else [math.nan] * len(_QUANTILES)
        for q, x in zip(_QUANTILES, pct, strict=True):
            profile[f"p{q}"].append(_f(float(x)))
    return {"keys": keys, "severities": sevs, "mean": mean, "n": ns, "columns": cols, "profile": profile,
            "clean_mean": _f(float(clean.mean())) if clean.size else None}  # fmt: skip


def _kendall_columns(idx: Index) -> list[tuple[str, str, np.ndarray]]:
    """(name, label, values at the class representatives) of the measures the tau matrix compares."""
    reps = np.flatnonzero(idx.reps == np.arange(len(idx.reps)))
    out: list[tuple[str, str, np.ndarray]] = []

    def add(j: int) -> None:
        out.append((idx.names[j], metric_label(idx.names[j]), idx.take(reps, j)))

    if "clean" in idx.col:
        add(idx.col["clean"])
    attacks: dict[tuple[str, str], list[tuple[float, int]]] = {}
    corr: list[int] = []
    other: list[int] = []
    for j, info in enumerate(idx.info):
        plain = info["measure"] in _PLAIN and info.get("split", "test") == "test"
        if info["family"] in ("adversarial", "certified") and plain and info["epsilon"] is not None:
            attacks.setdefault((info["key"], info.get("semantics") or ""), []).append((float(info["epsilon"]), j))
        elif info["family"] == "corruption" and plain:
            corr.append(j)
        elif info["family"] in ("surrogate", "nb201-training", "cost", "zero-cost") and plain:
            other.append(j)
    for cols in attacks.values():
        eps = sorted(cols)
        inner = [c for c in eps if c[0] < 255] or eps
        chosen = {next((c for c in inner if c[0] >= 1), inner[-1]), inner[-1]}
        for _, j in sorted(chosen):
            add(j)
    if corr:
        m = np.column_stack([idx.take(reps, j) for j in corr])
        with np.errstate(all="ignore"):
            mean = np.where(np.isnan(m).any(axis=1), np.nan, m.mean(axis=1))
        out.append(("corruptions (mean)", f"mean accuracy over {len(corr)} corruption columns", mean))
    for j in other:
        add(j)
    return out


def kendall_block(idx: Index) -> dict[str, Any] | None:
    """Kendall tau between the dataset's headline measures over the classes: clean accuracy, each attack at the
    first epsilon >= 1/255 and at its largest epsilon below 255/255, the mean over corruption columns, surrogates,
    NB201 accuracy, params, FLOPs and zero-cost proxies. ``n[i][j]``: classes with both values."""
    cols = _kendall_columns(idx)
    if len(cols) < 2:
        return None
    k = len(cols)
    tau = [[1.0 if i == j else None for j in range(k)] for i in range(k)]
    ns = [[0] * k for _ in range(k)]
    for i in range(k):
        ns[i][i] = int(np.isfinite(cols[i][2]).sum())
        for j in range(i + 1, k):
            t, n = kendall(cols[i][2], cols[j][2])
            tau[i][j] = tau[j][i] = _f(t)
            ns[i][j] = ns[j][i] = n
    return {"columns": [c[0] for c in cols], "labels": [c[1] for c in cols], "tau": tau, "n": ns}


def cost_block(idx: Index) -> dict[str, Any] | None:
    """Params / FLOPs against every accuracy column that is not a corruption (clean, attacks, certified, NB201
    training): per (cost, accuracy) pair Kendall tau and the Pareto front (NB201 indices, by ascending cost) over
    the classes. None when the table has no params or FLOPs column."""
    import pandas as pd

    reps = np.flatnonzero(idx.reps == np.arange(len(idx.reps)))
    xs = {c: idx.take(reps, idx.col[c]) for c in ("params", "flops") if c in idx.col}
    if not xs:
        return None
    ys = [
        j
        for j, info in enumerate(idx.info)
        if info["family"] in ("clean", "adversarial", "certified", "nb201-training") and info["measure"] in _PLAIN
    ]
    if not ys:
        return None
    pairs = {}
    for x, xv in xs.items():
        for j in ys:
            y = idx.names[j]
            yv = idx.take(reps, j)
            df = pd.DataFrame({"x": xv, "y": yv}, index=reps)
            tau, n = kendall(xv, yv)
            front = pareto_front(df, "y", "x") if n else []
            pairs[f"{x}|{y}"] = {"tau": _f(tau), "n": n, "front": front}
    names = [idx.names[j] for j in ys]
    adversarial = [idx.names[j] for j in ys if idx.info[j]["family"] == "adversarial"]
    default_y = next((c for c in ("fgsm@1", "pgd@1") if c in names), (adversarial or names)[0])
    return {"x": list(xs), "y": names, "default_y": default_y, "pairs": pairs}
