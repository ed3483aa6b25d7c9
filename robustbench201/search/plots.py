"""Figures of the analyses, the NAS baselines and DSRNA, in one style (matplotlib, Agg backend; the ``plot`` extra).

Every figure names its dataset and metric, gives units on its axes (epsilon in units of 1/255, parameters in
millions, latency in ms), explains every highlighted element in its legend, and writes PNG, PDF or SVG (by the
path's suffix or ``fmt``). Figures draw what the analyses computed; they compute nothing themselves.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Rb201Error, check_choice
from ..store.schema import format_eps, parse_wide_name

FIGURE_FORMATS: tuple[str, ...] = ("png", "pdf", "svg")
_ATTACK_NAMES = {
    "fgsm": "FGSM",
    "pgd": "PGD",
    "aa_apgd-ce": "APGD-CE",
    "aa_apgd-dlr": "APGD-DLR",
    "aa_square": "Square",
}
_EPS_TICKS = (0.1, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 255.0)  # labelled; other epsilons still plotted
_UNITS = {"params": "parameters (millions)", "flops": "FLOPs (millions of multiply-adds)"}
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


def _save(fig: Any, path: str | Path, fmt: str | None = None) -> Path:
    from ..store.atomic import atomic_path

    plt = _plt()
    out = figure_path(path, fmt)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=out.suffix.lstrip("."))
    plt.close(fig)
    return out


def dataset_label(dataset: str) -> str:
    return {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "mnist5k": "MNIST-5k"}.get(dataset, dataset)


def metric_label(column: str) -> str:
    """A readable label of a wide column: ``'fgsm@1'`` -> ``'FGSM accuracy, eps = 1/255'``, ``'params'`` ->
    ``'parameters (millions)'``, ``'edgegpu_latency'`` -> ``'edgegpu latency (ms)'``."""
    if column in _UNITS:
        return _UNITS[column]
    if column.endswith("_latency"):
        return f"{column.removesuffix('_latency')} latency (ms)"
    if column.endswith("_energy"):
        return f"{column.removesuffix('_energy')} energy (mJ)"
    try:
        w = parse_wide_name(column)
    except Rb201Error:
        return column
    name = _ATTACK_NAMES.get(w.key, w.key.replace("_", " "))
    what = "accuracy" if w.measure is None else w.measure.replace("_", " ")
    if w.key == "clean":
        return "clean accuracy"
    if not math.isnan(w.epsilon):
        sem = ", cumulative" if w.semantics else ""
        return f"{name} {what}, eps = {format_eps(w.epsilon)}/255{sem}"
    if w.severity:
        return f"{name} {what}, severity {w.severity}"
    return f"{name} {what}" if w.measure else name


def _eps_axis(ax: Any, eps: Sequence[float]) -> None:
    """Symmetric-log epsilon axis with a labelled tick at every grid epsilon (no bare powers of ten)."""
    from matplotlib.ticker import FixedLocator, NullLocator

    ax.set_xscale("symlog", linthresh=1.0, linscale=0.6)
    shown = [e for e in eps if e in _EPS_TICKS] or list(eps)
    ax.xaxis.set_major_locator(FixedLocator(shown))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([format_eps(e) for e in shown])
    ax.set_xlabel("L-inf epsilon (units of 1/255)")


def eps_curves(
    df: Any,
    path: str | Path,
    columns: dict[str, list[str]],
    archs: dict[int, str] | None = None,
    dataset: str = "",
    fmt: str | None = None,
) -> Path:
    """Robust accuracy against epsilon, one panel per attack (``columns``: attack -> its ``attack@eps`` columns,
    ascending): the median and the 10-90% band over the rows, and the curves of ``archs`` (index -> why it is
    highlighted; default: the cells of highest and of median clean accuracy)."""
    attacks = [a for a, cols in columns.items() if cols]
    if not attacks:
        raise Rb201Error("the table has no attack columns to plot")
    if archs is None and "clean" in df.columns:
        clean = df["clean"].dropna().sort_values()
        archs = {
            int(clean.index[-1]): "highest clean accuracy",
            int(clean.index[len(clean) // 2]): "median clean accuracy",
        }
    with _style() as plt:
        fig, axes = plt.subplots(1, len(attacks), figsize=(3.1 * len(attacks), 3.2), sharey=True, squeeze=False)
        for ax, a in zip(axes[0], attacks, strict=True):
            cols = columns[a]
            eps = np.array([parse_wide_name(c).epsilon for c in cols])
            v = df[cols].to_numpy(dtype=np.float64)
            q10, q50, q90 = np.nanpercentile(v, [10, 50, 90], axis=0)
            ax.fill_between(eps, q10, q90, alpha=0.25, color="tab:blue", lw=0, label="10-90% of cells")
            ax.plot(eps, q50, "k-", lw=1.5, label="median cell")
            for (i, why), color in zip((archs or {}).items(), ("tab:red", "tab:green", "tab:purple")):
                if i in df.index:
                    ax.plot(eps, df.loc[i, cols].to_numpy(dtype=float), "o-", ms=3, color=color, label=f"#{i} ({why})")
            ax.set_title(_ATTACK_NAMES.get(a, a))
            _eps_axis(ax, eps)
            ax.set_ylim(0, 1)
        axes[0][0].set_ylabel("accuracy (fraction)")
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.tight_layout(rect=(0, 0.06, 1, 0.93))
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
        n = len(df)
        fig.suptitle(
            f"{dataset_label(dataset)}: robust accuracy of {n} cells against epsilon (each epsilon attacked on its own)"
        )
        return _save(fig, path, fmt)


def heatmap(matrix: Any, path: str | Path, title: str, fmt: str | None = None) -> Path:
    """A square correlation matrix (DataFrame, values in [-1, 1]) as an annotated heatmap; each annotation is
    black or white, whichever reads better on its cell's colour."""
    with _style() as plt:
        n = len(matrix)
        size = 1.6 + 0.5 * n
        fig, ax = plt.subplots(figsize=(size + 1.2, size))
        cmap = plt.get_cmap("RdBu_r")
        values = matrix.to_numpy(dtype=float)
        im = ax.imshow(values, vmin=-1, vmax=1, cmap=cmap)
        ax.set_xticks(range(n), labels=list(matrix.columns), rotation=45, ha="right")
        ax.set_yticks(range(n), labels=list(matrix.index))
        ax.grid(False)
        if n <= 20:
            for i in range(n):
                for j in range(n):
                    r, g, b, _ = cmap((values[i, j] + 1) / 2)
                    light = 0.299 * r + 0.587 * g + 0.114 * b > 0.5
                    ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="black" if light else "white")  # fmt: skip
        fig.colorbar(im, ax=ax, shrink=0.8, label="Kendall tau")
        ax.set_title(title)
        return _save(fig, path, fmt)


def pareto(
    df: Any,
    objective: str,
    cost: str,
    front: Sequence[int],
    path: str | Path,
    dataset: str = "",
    fmt: str | None = None,
) -> Path:
    """Scatter of ``objective`` against ``cost`` over the rows, with the Pareto ``front`` (row labels; maximum
    objective at minimum cost)."""
    with _style() as plt:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        ax.scatter(df[cost], df[objective], s=3, alpha=0.3, color="gray", lw=0, label=f"cells ({len(df)})")
        ax.step(
            df.loc[front, cost],
            df.loc[front, objective],
            "r.-",
            where="post",
            label=f"Pareto front ({len(front)} cells)",
        )
        ax.set_xlabel(metric_label(cost))
        ax.set_ylabel(metric_label(objective))
        ax.set_title(f"{dataset_label(dataset)}: {metric_label(objective)} against {metric_label(cost).split(' (')[0]}")
        ax.legend(loc="lower right")
        return _save(fig, path, fmt)


def regret(results: Sequence[Any], path: str | Path, dataset: str = "", fmt: str | None = None) -> Path:
    """Regret (table optimum minus best found) against queries, one line per :class:`~.nas.SearchResult`: the
    median over runs and the band of the middle half of the runs (25-75%). The y axis is logarithmic above 1e-3
    and linear below, so runs that reached the optimum (regret 0) show at 0 instead of vanishing."""
    with _style() as plt:
        fig, ax = plt.subplots(figsize=(6, 4))
        for r in results:
            reg = r.regret
            x = np.arange(1, reg.shape[1] + 1)
            with np.errstate(all="ignore"):
                q25, q50, q75 = np.nanpercentile(reg, [25, 50, 75], axis=0)
            (line,) = ax.plot(
                x, q50, label=f"{r.algo}: median of {r.n_runs} runs (final {np.nanmedian(reg[:, -1]):.4f})"
            )
            ax.fill_between(x, q25, q75, alpha=0.2, color=line.get_color(), lw=0, label=f"{r.algo}: 25-75% of runs")
        ax.set_yscale("symlog", linthresh=1e-3, linscale=0.5)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("queries (distinct isomorphism classes)")
        first = results[0]
        ax.set_ylabel("regret: table optimum - best found")
        what = metric_label(first.objective)
        ax.set_title(f"{dataset_label(dataset)}: search for {what} (optimum {first.optimum:.4f})")
        ax.legend()
        return _save(fig, path, fmt)


def alphas(alpha_history: Sequence[Any], path: str | Path, title: str = "", fmt: str | None = None) -> Path:
    """Softmax architecture weights over epochs (epochs+1 x 6 edges x 5 ops), one panel per edge, with the
    uniform weight 1/5 marked."""
    from matplotlib.ticker import MaxNLocator

    from ..space import EDGES, OPS

    a = np.asarray(alpha_history)
    with _style() as plt:
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
        fig.suptitle(title or "architecture weights over the search")
        return _save(fig, path, fmt)
