"""Figures of the analyses and the NAS baselines, in one style (matplotlib, Agg backend; the ``plot`` extra).

Every figure is drawn from a small JSON-ready dict of what it plots (``*_data`` functions: the series, the labels,
the title), so a figure is reproducible: :func:`data_hash` of that dict is stored in every PNG written (text chunk
``rb201-data-sha256``), and ``scripts/make_figures.py`` with ``tests/test_figures.py`` check that the committed
figures in ``docs/img`` are what the shipped data gives. Every figure names its dataset, the cells it used and its
metric in words on every axis (``PGD, eps 8/255``; epsilon in units of 1/255, parameters in millions, latency in
ms), keeps its legend outside the data, draws each algorithm and method in a fixed colour, and no two of its texts
overlap. Figures draw what the analyses computed; they compute nothing themselves.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Rb201Error, check_choice
from ..store.schema import format_eps, parse_wide_name
from ..tables.formats import axis_label, column_title, dataset_title, key_title
from ..vocab import NAS_ALGORITHMS

FIGURE_FORMATS: tuple[str, ...] = ("png", "pdf", "svg")
#: PNG text chunk holding :func:`data_hash` of the data a figure plots.
HASH_KEY = "rb201-data-sha256"
_EPS_TICKS = (0.1, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 255.0)  # labelled; other epsilons still plotted
#: Fixed colours: the same algorithm or attack has the same colour in every figure, whatever the order asked.
ALGO_COLORS = {"rs": "#7f7f7f", "re": "#1f77b4", "ls": "#d62728", "ga": "#2ca02c"}
_STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.bbox": "tight",
    "savefig.dpi": 150,
}


def _plt():  # type: ignore[no-untyped-def]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise Rb201Error("figures need matplotlib: pip install 'robustbench201[plot]'") from None
    return plt


@contextlib.contextmanager
def _style() -> Iterator[Any]:
    plt = _plt()
    with plt.rc_context(_STYLE):
        yield plt


def figure_path(path: str | Path, fmt: str | None = None) -> Path:
    """``path`` with the suffix of ``fmt`` (png, pdf, svg); without ``fmt`` the path's own suffix (default png)."""
    p = Path(path)
    if fmt is None:
        fmt = p.suffix.lstrip(".").lower() or "png"
    check_choice("figure format", fmt, FIGURE_FORMATS)
    return p.with_suffix("." + fmt)


def _rounded(value: Any) -> Any:
    """``value`` with floats rounded to 6 decimals (NaN as None): the form that is hashed and stored."""
    if isinstance(value, dict):
        return {str(k): _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    if isinstance(value, np.ndarray):
        return _rounded(value.tolist())
    if isinstance(value, np.generic):
        return _rounded(value.item())
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6) + 0.0
    return value


def data_hash(data: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a figure's data (floats to 6 decimals): equal data, equal hash."""
    text = json.dumps(_rounded(data), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _save(fig: Any, path: str | Path, data: dict[str, Any], fmt: str | None = None) -> Path:
    """Write ``fig`` atomically into an existing folder (a missing one is a one-line error), the PNG stamped with
    :func:`data_hash` of ``data``."""
    from ..atomic import atomic_path

    plt = _plt()
    out = figure_path(path, fmt)
    kind = out.suffix.lstrip(".")
    meta = {HASH_KEY: data_hash(data)} if kind == "png" else None
    try:
        with atomic_path(out, make_parents=False) as tmp:
            fig.savefig(tmp, format=kind, metadata=meta)
    finally:
        plt.close(fig)
    return out


#: A dataset's name in figures (:func:`robustbench201.tables.formats.dataset_title`).
dataset_label = dataset_title
#: A column as an axis label (:func:`robustbench201.tables.formats.axis_label`).
metric_label = axis_label


def _semantics_phrase(semantics: str | None) -> str:
    return {
        "per-epsilon": "each epsilon attacked on its own",
        "cumulative": "cumulative: a point broken at a smaller epsilon counts as broken",
    }.get(semantics or "", "")


def _eps_axis(ax: Any, eps: Sequence[float]) -> None:
    """Symmetric-log epsilon axis with a labelled tick at every grid epsilon (no bare powers of ten)."""
    from matplotlib.ticker import FixedLocator, NullLocator

    ax.set_xscale("symlog", linthresh=1.0, linscale=0.6)
    shown = [e for e in eps if e in _EPS_TICKS] or list(eps)
    ax.xaxis.set_major_locator(FixedLocator(shown))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([format_eps(e) for e in shown])
    ax.set_xlabel("L-inf epsilon (units of 1/255)")


# ---- robust accuracy against epsilon --------------------------------------------------------------------------
def eps_curves_data(
    df: Any,
    columns: dict[str, list[str]],
    archs: dict[int, str] | None = None,
    dataset: str = "",
    semantics: str | None = "per-epsilon",
) -> dict[str, Any]:
    """What :func:`eps_curves` draws: per attack (``columns``: attack -> its ``attack@eps`` columns, ascending) the
    epsilons, the 10/50/90% quantiles over the rows with values and the curves of ``archs`` (index -> why it is
    highlighted; default: the cells of highest and of median clean accuracy, ties broken by the lower index)."""
    attacks = [a for a, cols in columns.items() if cols]
    if not attacks:
        raise Rb201Error("the table has no attack columns to plot")
    used = [c for a in attacks for c in columns[a]]
    rows = df[df[used].notna().any(axis=1)]
    if archs is None and "clean" in rows.columns:
        clean = rows["clean"].dropna().sort_index().sort_values(kind="stable")
        archs = {
            int(clean.index[-1]): "highest clean accuracy",
            int(clean.index[len(clean) // 2]): "median clean accuracy",
        }
    panels = []
    for a in attacks:
        cols = columns[a]
        v = rows[cols].to_numpy(dtype=np.float64)
        with np.errstate(all="ignore"):
            q10, q50, q90 = np.nanpercentile(v, [10, 50, 90], axis=0)
        curves = [
            {"index": i, "why": why, "values": rows.loc[i, cols].to_numpy(dtype=float).tolist()}
            for i, why in (archs or {}).items()
            if i in rows.index
        ]
        panels.append({"attack": key_title(a), "eps": [parse_wide_name(c).epsilon for c in cols], "q10": q10.tolist(),
                       "q50": q50.tolist(), "q90": q90.tolist(), "curves": curves})  # fmt: skip
    phrase = _semantics_phrase(semantics)
    title = f"{dataset_label(dataset)}: robust accuracy of {len(rows)} isomorphism classes against epsilon"
    return {"kind": "eps_curves", "title": title + (f"\n({phrase})" if phrase else ""), "panels": panels}


def _render_eps_curves(data: dict[str, Any], plt: Any) -> Any:
    panels = data["panels"]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.1 * len(panels), 3.4), sharey=True, squeeze=False)
    colors = ("tab:red", "tab:green", "tab:purple")
    for ax, p in zip(axes[0], panels, strict=True):
        eps = np.asarray(p["eps"])
        ax.fill_between(eps, p["q10"], p["q90"], alpha=0.25, color="tab:blue", lw=0, label="10-90% of classes")
        ax.plot(eps, p["q50"], "k-", lw=1.5, label="median over classes")
        for c, color in zip(p["curves"], colors, strict=False):
            ax.plot(eps, c["values"], "o-", ms=3, color=color, label=f"#{c['index']} ({c['why']})")
        ax.set_title(p["attack"])
        _eps_axis(ax, list(eps))
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("robust accuracy (fraction)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.suptitle(data["title"])
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), frameon=False)
    return fig


def eps_curves(
    df: Any,
    path: str | Path,
    columns: dict[str, list[str]],
    archs: dict[int, str] | None = None,
    dataset: str = "",
    fmt: str | None = None,
    semantics: str | None = "per-epsilon",
) -> Path:
    """Robust accuracy against epsilon, one panel per attack (:func:`eps_curves_data`), written to ``path``."""
    return draw(eps_curves_data(df, columns, archs, dataset, semantics), path, fmt)


# ---- correlation matrix -----------------------------------------------------------------------------------------
def heatmap_data(matrix: Any, title: str, labels: Sequence[str] | None = None) -> dict[str, Any]:
    """What :func:`heatmap` draws: a square matrix of Kendall tau (a DataFrame, values in [-1, 1]), its row and column
    labels in words (default: :func:`column_title` of each name) and the title."""
    names = [str(c) for c in matrix.columns]
    return {"kind": "heatmap", "title": title, "labels": list(labels or [column_title(n) for n in names]),
            "values": matrix.to_numpy(dtype=float).tolist()}  # fmt: skip


def _render_heatmap(data: dict[str, Any], plt: Any) -> Any:
    values = np.asarray(data["values"], dtype=float)
    labels = data["labels"]
    n = len(labels)
    size = 2.2 + 0.5 * n
    fig, ax = plt.subplots(figsize=(size + 1.6, size + 0.6))
    cmap = plt.get_cmap("RdBu_r")
    im = ax.imshow(values, vmin=-1, vmax=1, cmap=cmap)
    ax.set_xticks(range(n), labels=labels, rotation=90)
    ax.set_yticks(range(n), labels=labels)
    ax.grid(False)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                r, g, b, _ = cmap((values[i, j] + 1) / 2)
                light = 0.299 * r + 0.587 * g + 0.114 * b > 0.5
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if light else "white")  # fmt: skip
    fig.colorbar(im, ax=ax, shrink=0.8, label="Kendall tau")
    ax.set_title(data["title"])
    return fig


def heatmap(matrix: Any, path: str | Path, title: str, fmt: str | None = None) -> Path:
    """A square correlation matrix as an annotated heatmap (each annotation black or white, whichever reads
    better on its cell's colour; labels in words), written to ``path``."""
    return draw(heatmap_data(matrix, title), path, fmt)


# ---- Pareto front -----------------------------------------------------------------------------------------------
def pareto_data(df: Any, objective: str, cost: str, front: Sequence[int], dataset: str = "") -> dict[str, Any]:
    """What :func:`pareto` draws: ``objective`` against ``cost`` over the rows with both, and the Pareto ``front``
    (row labels; maximum objective at minimum cost)."""
    rows = df[[cost, objective]].dropna()
    title = (f"{dataset_label(dataset)}: {column_title(objective)} against {column_title(cost)}\n"
             f"({len(rows)} isomorphism classes, {len(front)} on the Pareto front)")  # fmt: skip
    return {"kind": "pareto", "title": title, "x_label": metric_label(cost), "y_label": metric_label(objective),
            "x": rows[cost].tolist(), "y": rows[objective].tolist(), "front_x": df.loc[list(front), cost].tolist(),
            "front_y": df.loc[list(front), objective].tolist()}  # fmt: skip


def _render_pareto(data: dict[str, Any], plt: Any) -> Any:
    fig, ax = plt.subplots(figsize=(5.5, 4.4))
    ax.scatter(data["x"], data["y"], s=3, alpha=0.3, color="gray", lw=0, label=f"classes ({len(data['x'])})")
    ax.step(data["front_x"], data["front_y"], "r.-", where="post", label=f"Pareto front ({len(data['front_x'])})")
    ax.set_xlabel(data["x_label"])
    ax.set_ylabel(data["y_label"])
    ax.set_title(data["title"])
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    return fig


def pareto(
    df: Any,
    objective: str,
    cost: str,
    front: Sequence[int],
    path: str | Path,
    dataset: str = "",
    fmt: str | None = None,
) -> Path:
    """Scatter of ``objective`` against ``cost`` with the Pareto ``front`` (:func:`pareto_data`), written to
    ``path``."""
    return draw(pareto_data(df, objective, cost, front, dataset), path, fmt)


# ---- regret of the NAS baselines --------------------------------------------------------------------------------
def regret_data(results: Sequence[Any], dataset: str = "") -> dict[str, Any]:
    """What :func:`regret` draws: per :class:`~.nas.SearchResult` (in the fixed order rs, re, ls) the median and the
    25-75% band over its runs of the regret (table optimum minus best found) after each query."""
    order = {a: k for k, a in enumerate(ALGO_COLORS)}
    lines = []
    for r in sorted(results, key=lambda r: order.get(r.algo, len(order))):
        reg = r.regret
        with np.errstate(all="ignore"):
            q25, q50, q75 = np.nanpercentile(reg, [25, 50, 75], axis=0)
        lines.append({"algo": r.algo, "runs": r.n_runs, "median": q50.tolist(), "q25": q25.tolist(),
                      "q75": q75.tolist(), "final": float(np.nanmedian(reg[:, -1]))})  # fmt: skip
    first = results[0]
    cons = f" subject to {' and '.join(first.constraints)}" if first.constraints else ""
    goal = f"{'max' if first.maximize else 'min'} {column_title(first.objective)}{cons}"
    title = (f"{dataset_label(dataset)}: search for {goal}\n"
             f"(table optimum {first.optimum:.4f} at #{first.optimum_index}; budget {first.budget})")  # fmt: skip
    return {"kind": "regret", "title": title, "lines": lines}


def _render_regret(data: dict[str, Any], plt: Any) -> Any:
    fig, ax = plt.subplots(figsize=(7.2, 4))
    for ln in data["lines"]:
        a = ln["algo"]
        color = ALGO_COLORS.get(a, "k")
        x = np.arange(1, len(ln["median"]) + 1)
        name = NAS_ALGORITHMS.get(a, a)
        ax.plot(x, ln["median"], color=color, label=f"{name}: median of {ln['runs']} runs (final {ln['final']:.4f})")
        ax.fill_between(x, ln["q25"], ln["q75"], alpha=0.2, color=color, lw=0, label=f"{name}: 25-75% of runs")
    ax.set_yscale("symlog", linthresh=1e-3, linscale=0.5)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("queries (distinct isomorphism classes)")
    ax.set_ylabel("regret: table optimum - best found")
    ax.set_title(data["title"])
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return fig


def regret(results: Sequence[Any], path: str | Path, dataset: str = "", fmt: str | None = None) -> Path:
    """Regret against queries (:func:`regret_data`): the y axis is logarithmic above 1e-3 and linear below, so runs
    that reached the optimum (regret 0) show at 0 instead of vanishing. Written to ``path``."""
    return draw(regret_data(results, dataset), path, fmt)


# ---- architecture weights of a DSRNA search ---------------------------------------------------------------------
def alphas(alpha_history: Sequence[Any], path: str | Path, title: str = "", fmt: str | None = None) -> Path:
    """Softmax architecture weights over epochs (epochs+1 x 6 edges x 5 ops), one panel per edge, with the
    uniform weight 1/5 marked."""
    a = np.asarray(alpha_history, dtype=float)
    return draw({"kind": "alphas", "title": title or "architecture weights over the search", "alphas": a.tolist()},
                path, fmt)  # fmt: skip


def _render_alphas(data: dict[str, Any], plt: Any) -> Any:
    from matplotlib.ticker import MaxNLocator

    from ..space import EDGES, OPS

    a = np.asarray(data["alphas"], dtype=float)
    fig, axes = plt.subplots(2, 3, figsize=(11, 5.5), sharex=True, sharey=True)
    for k, ax in enumerate(axes.flat):
        for o, name in enumerate(OPS):
            ax.plot(range(len(a)), a[:, k, o], label=name)
        ax.axhline(1 / len(OPS), color="gray", ls=":", lw=1, label="uniform (1/5)")
        ax.set_title(f"edge {EDGES[k][0]} -> {EDGES[k][1]}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[1]:
        ax.set_xlabel("epoch")
    for ax in axes[:, 0]:
        ax.set_ylabel("softmax(alpha)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), bbox_to_anchor=(0.5, -0.05), frameon=False)
    fig.suptitle(data["title"])
    return fig


# ---- a cell ---------------------------------------------------------------------------------------------------
def _render_cell(data: dict[str, Any], plt: Any) -> Any:
    """``{"kind": "cell", "index": NB201 index, "title": ...}``: the cell as a DAG (:func:`robustbench201.draw`)."""
    from ..draw import draw_cell

    return draw_cell(data["index"], title=data["title"])


# ---- one entry for all ------------------------------------------------------------------------------------------
def render(data: dict[str, Any]) -> Any:
    """The matplotlib Figure of a figure's data (any ``*_data`` dict); the caller closes it."""
    from .plots_dsrna import render_dsrna_compare

    renderers = {"eps_curves": _render_eps_curves, "heatmap": _render_heatmap, "pareto": _render_pareto,
                 "regret": _render_regret, "alphas": _render_alphas, "dsrna_compare": render_dsrna_compare,
                 "cell": _render_cell}  # fmt: skip
    kind = data.get("kind")
    if kind not in renderers:
        raise Rb201Error(f"unknown figure kind {kind!r}; allowed: {', '.join(renderers)}")
    with _style() as plt:
        fig = renderers[kind](data, plt)
        fig.canvas.draw()  # lay out now, so the file and a check of the text boxes see the same figure
        return fig


def draw(data: dict[str, Any], path: str | Path, fmt: str | None = None) -> Path:
    """Render a figure's data and write it to ``path`` (png, pdf or svg by ``fmt`` or the suffix)."""
    figure_path(path, fmt)  # refuse a bad format before drawing
    with _style():
        return _save(render(data), path, data, fmt)


def dsrna_compare(
    report: dict[str, Any],
    path: str | Path,
    robust: str | None = None,
    background: tuple[np.ndarray, np.ndarray] | None = None,
    fmt: str | None = None,
) -> Path:
    """Clean against robust accuracy of every cell of a DSRNA comparison (:func:`.plots_dsrna.dsrna_compare_data`),
    written to ``path``."""
    from .plots_dsrna import dsrna_compare_data

    return draw(dsrna_compare_data(report, robust, background), path, fmt)
