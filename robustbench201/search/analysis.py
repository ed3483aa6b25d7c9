"""Analyses of Jung et al. (ICLR 2023) on a wide results table (rows = NB201 indices, columns = wide names).

* rank correlations (Kendall tau-b): clean vs every attack/epsilon, between attacks, between corruptions;
* the equal-parameter-count study (cells with exactly two ``nor_conv_3x3`` edges and no ``nor_conv_1x1``: all have
  the same parameter count, yet their mean adversarial accuracy spans a wide range);
* surrogate-vs-robustness correlation for whatever surrogate columns the table has (zero-cost proxies, Jacobian,
  Hessian, params, FLOPs);
* Pareto fronts of a robustness column against a cost column.

Epsilons are in pixel units of 1/255 throughout. Every function takes the DataFrame as an argument. Attack columns
are the per-epsilon values where the table holds them (the published protocol), else the cumulative worst case (the
only kind a ``smoke`` or ``full`` build stores): :func:`attack_semantics` says which a table's analyses use.

A rank correlation over few cells is not a finding: analyses report the number of isomorphism classes they use, and
the report warns below :data:`MIN_CLASSES`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import Rb201Error, check_choice
from ..space import ops_table
from ..store.schema import parse_wide_name
from ..vocab import CERTIFIED_METHODS

#: The four L-inf attacks of the published dataset.
ATTACKS: tuple[str, ...] = ("fgsm", "pgd", "aa_apgd-ce", "aa_square")
#: Columns treated as surrogates (training-free or cheap predictors) when present in a table.
SURROGATES: tuple[str, ...] = (
    "jacobian",
    "hessian",
    "jacov",
    "synflow",
    "snip",
    "grasp",
    "fisher",
    "grad_norm",
    "epe_nas",
    "nwot",
    "l2_norm",
    "plain",
    "zen",
    "params",
    "flops",
    "nb201_test_accuracy",
)
AVERAGINGS: tuple[str, ...] = ("flat", "per-attack")
#: Fewest isomorphism classes a correlation or range is reported over without a warning that it is no finding
#: (a Kendall tau over 30 pairs of independent rankings is within +-0.26 of 0 with probability 0.95).
MIN_CLASSES = 30


def attack_semantics(df) -> str | None:  # type: ignore[no-untyped-def]
    """``'per-epsilon'`` when ``df`` has per-epsilon attack accuracies, else ``'cumulative'`` when it has cumulative
    ones, else None: the kind the analyses of ``df`` use."""
    kinds = set()
    for c in df.columns:
        try:
            key, eps, sev, measure, semantics = parse_wide_name(str(c))
        except Rb201Error:
            continue
        if measure is None and not math.isnan(eps) and "/" not in key and key not in CERTIFIED_METHODS:
            kinds.add(semantics or "per-epsilon")
    return "per-epsilon" if "per-epsilon" in kinds else ("cumulative" if kinds else None)


def _parsed(df) -> dict[str, tuple[str, float, int]]:  # type: ignore[no-untyped-def]
    """Accuracy columns of the test split -> (key, epsilon, severity); attack columns of :func:`attack_semantics`."""
    sem = attack_semantics(df)
    out = {}
    for c in df.columns:
        try:
            key, eps, sev, measure, semantics = parse_wide_name(str(c))
        except Rb201Error:
            continue
        if measure is not None or "/" in key:
            continue
        if math.isnan(eps) and not semantics or (semantics or "per-epsilon") == sem:
            out[str(c)] = (key, eps, sev)
    return out


def classes_with_values(df, columns: Sequence[str]) -> int:  # type: ignore[no-untyped-def]
    """Rows of ``df`` with a value in every one of ``columns``."""
    cols = [c for c in columns if c in df.columns]
    if not cols:
        return 0
    return int(df[cols].notna().all(axis=1).sum())


def attack_columns(df, attack: str, exclude_eps: Sequence[float] = ()) -> list[str]:  # type: ignore[no-untyped-def]
    """Accuracy columns ``attack@eps`` of ``df``, ascending in epsilon, without the epsilons in ``exclude_eps``."""
    cols = [(e, c) for c, (k, e, _) in _parsed(df).items() if k == attack and not math.isnan(e)]
    return [c for e, c in sorted(cols) if e not in set(exclude_eps)]


def corruption_keys(df) -> list[str]:  # type: ignore[no-untyped-def]
    """Corruption names with ``name:severity`` columns in ``df``."""
    return sorted({k for k, _, s in _parsed(df).values() if s > 0})


def _need(df, cols: Sequence[str]) -> None:  # type: ignore[no-untyped-def]
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise Rb201Error(f"the table lacks columns {missing}; it has {len(df.columns)} columns")


def kendall(x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """Kendall tau-b over the rows where both are finite; (tau, number of rows used)."""
    from scipy.stats import kendalltau

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    n = int(ok.sum())
    if n < 3:
        return float("nan"), n
    return float(kendalltau(x[ok], y[ok]).statistic), n


def kendall_matrix(df, columns: Sequence[str]):  # type: ignore[no-untyped-def]
    """Symmetric DataFrame of pairwise Kendall tau between ``columns``."""
    import pandas as pd

    _need(df, columns)
    vals = {c: df[c].to_numpy(dtype=np.float64) for c in columns}
    m = np.eye(len(columns))
    for i, a in enumerate(columns):
        for j in range(i + 1, len(columns)):
            m[i, j] = m[j, i] = kendall(vals[a], vals[columns[j]])[0]
    return pd.DataFrame(m, index=list(columns), columns=list(columns))


def clean_vs_robust(df, attacks: Sequence[str] = ATTACKS, clean: str = "clean"):  # type: ignore[no-untyped-def]
    """Kendall tau between the clean ranking and each attack's ranking at each epsilon (rows: attack, epsilon)."""
    import pandas as pd

    _need(df, [clean])
    rows = []
    for a in attacks:
        for c in attack_columns(df, a):
            tau, n = kendall(df[clean].to_numpy(), df[c].to_numpy())
            rows.append({"attack": a, "epsilon": parse_wide_name(c)[1], "column": c, "tau": tau, "n": n})
    if not rows:
        raise Rb201Error(f"the table has no columns of the attacks {list(attacks)}")
    return pd.DataFrame(rows)


def attack_matrix(df, epsilon: float = 1.0, attacks: Sequence[str] = ATTACKS):  # type: ignore[no-untyped-def]
    """Kendall tau between attacks at one epsilon (1/255 units), on the attacks the table has at that epsilon."""
    cols = [c for a in attacks for c in attack_columns(df, a) if parse_wide_name(c)[1] == float(epsilon)]
    if len(cols) < 2:
        raise Rb201Error(f"fewer than two attacks at epsilon {epsilon:g} (1/255) in the table")
    return kendall_matrix(df, cols)


def corruption_matrix(df, severity: int | None = None):  # type: ignore[no-untyped-def]
    """Kendall tau between corruptions: per corruption the mean over severities 1..5 (or one ``severity``)."""
    import pandas as pd

    keys = corruption_keys(df)
    if len(keys) < 2:
        raise Rb201Error("the table has fewer than two corruptions (columns 'name:severity')")
    sevs = range(1, 6) if severity is None else [int(severity)]
    means = {}
    for k in keys:
        cols = [f"{k}:{s}" for s in sevs if f"{k}:{s}" in df.columns]
        if cols:
            means[k] = df[cols].mean(axis=1, skipna=False)
    return kendall_matrix(pd.DataFrame(means), list(means))


def mean_adversarial(
    df,  # type: ignore[no-untyped-def]
    attacks: Sequence[str] = ATTACKS,
    exclude_eps: Sequence[float] = (255.0,),
    averaging: str = "flat",
):
    """Mean adversarial accuracy per row: ``"flat"`` = mean over all (attack, epsilon) columns; ``"per-attack"`` =
    mean over attacks of each attack's mean over its epsilons. ``exclude_eps`` drops epsilons (1/255 units)."""
    check_choice("averaging", averaging, AVERAGINGS)
    groups = [attack_columns(df, a, exclude_eps) for a in attacks]
    groups = [g for g in groups if g]
    if not groups:
        raise Rb201Error(f"the table has no columns of the attacks {list(attacks)}")
    if averaging == "flat":
        return df[[c for g in groups for c in g]].mean(axis=1, skipna=False)
    import pandas as pd

    return pd.concat([df[g].mean(axis=1, skipna=False) for g in groups], axis=1).mean(axis=1, skipna=False)


def op_counts(index: Sequence[int]) -> np.ndarray:
    """(rows, 5) number of edges per op (NB201 op order) for NB201 indices."""
    ops = np.asarray(ops_table(), dtype=np.int64)[np.asarray(index, dtype=np.int64)]
    return np.stack([(ops == k).sum(axis=1) for k in range(5)], axis=1)


def equal_params_study(
    df,  # type: ignore[no-untyped-def]
    n_conv3: int = 2,
    n_conv1: int = 0,
    attacks: Sequence[str] = ATTACKS,
    exclude_eps: Sequence[float] = (255.0,),
    averaging: str = "flat",
) -> dict[str, Any]:
    """Cells with exactly ``n_conv3`` 3x3 and ``n_conv1`` 1x1 conv edges (hence one parameter count): the range of
    their mean adversarial accuracy (see :func:`mean_adversarial`). Rows of ``df`` are the cells considered."""
    counts = op_counts(df.index)
    sel = (counts[:, 3] == n_conv3) & (counts[:, 2] == n_conv1)
    if not sel.any():
        raise Rb201Error(f"no cell in the table has {n_conv3} nor_conv_3x3 and {n_conv1} nor_conv_1x1 edges")
    sub = df[sel]
    mean = mean_adversarial(sub, attacks, exclude_eps, averaging).dropna()
    if mean.empty:
        raise Rb201Error("no selected cell has values for every attack column used")
    out: dict[str, Any] = {
        "cells": int(sel.sum()),
        "min": float(mean.min()),
        "max": float(mean.max()),
        "median": float(mean.median()),
        "argmin": int(mean.idxmin()),
        "argmax": int(mean.idxmax()),
        "attacks": list(attacks),
        "exclude_eps": [float(e) for e in exclude_eps],
        "averaging": averaging,
    }
    if "params" in df.columns:
        p = sub["params"].dropna().unique()
        out["params"] = [float(v) for v in sorted(p)]
    return out


def headline_candidates(df) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The equal-parameter-count range under the natural candidate averagings (to find the paper's 20%-41%)."""
    out = []
    for averaging in AVERAGINGS:
        for excl in ((), (255.0,)):
            r = equal_params_study(df, exclude_eps=excl, averaging=averaging)
            out.append({k: r[k] for k in ("cells", "min", "max", "averaging", "exclude_eps")})
    return out


def surrogate_correlation(
    df,  # type: ignore[no-untyped-def]
    surrogates: Sequence[str] | None = None,
    targets: Sequence[str] | None = None,
):
    """Kendall tau of each surrogate column with each target (default: ``clean`` and every ``fgsm``/``pgd``
    epsilon), over the rows where both are known. Rows: surrogate, target, epsilon, tau, n."""
    import pandas as pd

    surr = [s for s in (surrogates or SURROGATES) if s in df.columns]
    if surrogates is not None:
        _need(df, surrogates)
    if not surr:
        raise Rb201Error(f"the table has none of the surrogate columns {list(SURROGATES)}")
    if targets is None:
        targets = [c for c in ["clean"] if c in df.columns] + attack_columns(df, "fgsm") + attack_columns(df, "pgd")
    _need(df, targets)
    rows = []
    for s in surr:
        for t in targets:
            tau, n = kendall(df[s].to_numpy(), df[t].to_numpy())
            rows.append({"surrogate": s, "target": t, "epsilon": parse_wide_name(t)[1], "tau": tau, "n": n})
    return pd.DataFrame(rows)


def pareto_front(df, objective: str, cost: str) -> list[int]:  # type: ignore[no-untyped-def]
    """Indices of rows not dominated in (maximise ``objective``, minimise ``cost``), by ascending cost."""
    _need(df, [objective, cost])
    sub = df[[objective, cost]].dropna()
    obj = sub[objective].to_numpy(dtype=np.float64)
    order = np.lexsort((-obj, sub[cost].to_numpy(dtype=np.float64)))
    vals = obj[order]
    # a row is on the front when its objective beats every row of lower cost (or equal cost and higher objective)
    before = np.maximum.accumulate(np.concatenate(([-np.inf], vals[:-1])))
    return [int(i) for i in sub.index.to_numpy()[order[vals > before]]]
