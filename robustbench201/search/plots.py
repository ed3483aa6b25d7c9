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
    from ..atomic import atomic_path

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


# ---- DSRNA comparison (rb201 search dsrna --compare) ---------------------------------------------------------------
_DSRNA_STYLES = {  # group key -> (colour, marker)
    "none": ("tab:blue", "o"),
    "jacobian": ("tab:orange", "s"),
    "certified": ("tab:green", "^"),
    "combined": ("tab:purple", "D"),
    "table": ("tab:brown", "v"),
    "table-st": ("tab:pink", "<"),
    "table+jacobian": ("tab:olive", ">"),
    "table+certified": ("tab:cyan", "p"),
    "random": ("0.45", "x"),
}


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _compare_label(column: str, pgd_steps: int | None = None) -> str:
    """:func:`metric_label` with the unit, and PGD's step count when known: ``'pgd@8'`` -> ``'PGD-10 accuracy,
    eps = 8/255 (fraction)'``."""
    if column == "mean_adv":
        return "mean adversarial accuracy (fraction)"
    label = metric_label(column)
    if pgd_steps and column.startswith("pgd@"):
        label = label.replace("PGD", f"PGD-{pgd_steps}", 1)
    return f"{label} (fraction)"


def dsrna_compare(
    report: dict[str, Any],
    path: str | Path,
    robust: str | None = None,
    background: tuple[np.ndarray, np.ndarray] | None = None,
    fmt: str | None = None,
) -> Path:
    """Clean against robust accuracy of every cell of a DSRNA comparison (:mod:`.dsrna.comparison`): one marker per
    search (colour and shape by method; error bars: std over the training seeds in trained mode), random cells, and
    the ceiling (the table optimum, or the CIFAR-10 table's optimum cell trained like the others). ``robust``: the
    y column (default ``fgsm@1`` on a table, the largest-epsilon PGD column when trained); ``background``: (clean,
    robust) of every isomorphism class of the table, drawn in light grey. Cells at the same point share one
    annotation."""
    labels = {g["key"]: g["label"] for g in report["groups"]}
    cols = report["columns"]
    trained = report["mode"] == "trained"
    if robust is None:
        robust = "fgsm@1" if "fgsm@1" in cols else [c for c in cols if c.startswith("pgd@")][-1]
    if robust not in cols:
        raise Rb201Error(f"column {robust!r} not in the comparison; allowed: {', '.join(cols[1:])}")
    cfg = report["config"]
    with _style() as plt:
        fig, ax = plt.subplots(figsize=(7.0, 5.4))
        if background is not None:
            ax.scatter(
                *background, s=2, color="0.82", lw=0, label=f"all {len(background[0])} isomorphism classes of the table"
            )
        runs = [*report["runs"], *report["random"]]
        seen: dict[tuple[str, int], int] = {}
        for r in runs:
            seen[(r["group"], r["index"])] = seen.get((r["group"], r["index"]), 0) + 1
        labelled: set[str] = set()
        notes: dict[tuple[float, float], list[str]] = {}  # one annotation per position: cells that coincide share it
        for (group, index), count in seen.items():
            r = next(x for x in runs if x["group"] == group and x["index"] == index)
            label = "random live cells" if group == "random" else labels.get(group, group)
            colour, marker = _DSRNA_STYLES.get(group, ("k", "o"))
            x, y = r["values"]["clean"], r["values"][robust]
            err = (r["spread"]["clean"], r["spread"][robust]) if trained else (None, None)
            face = "none" if group == "random" else colour
            ax.errorbar(x, y, xerr=err[0], yerr=err[1], fmt=marker, color=colour, ms=7, mfc=face, capsize=2, lw=0.8,
                        label=None if label in labelled else label, alpha=0.85)  # fmt: skip
            labelled.add(label)
            text = f"#{index}" + (f" x{count}" if count > 1 else "")
            if text not in notes.setdefault((round(x, 6), round(y, 6)), []):
                notes[(round(x, 6), round(y, 6))].append(text)
        if trained and "reference" in report:
            ref = report["reference"]
            x, y = ref["values"]["clean"], ref["values"][robust]
            ax.errorbar(x, y, xerr=ref["spread"]["clean"], yerr=ref["spread"][robust], fmt="*", color="tab:red",
                        ms=12, capsize=2, lw=0.8, label=ref["label"])  # fmt: skip
            notes.setdefault((round(x, 6), round(y, 6)), []).append(f"#{ref['index']}")
        elif not trained:
            exp = report["random_expectation"]
            ax.plot(exp["clean"]["mean"], exp[robust]["mean"], "P", color="k", ms=9, label="random live cell (mean)")
            best = report["optimum"][robust]
            ax.axhline(best["value"], color="tab:red", ls="--", lw=1, label=f"table optimum #{best['index']}")
        ax.set_xlabel(_compare_label("clean"))
        ax.set_ylabel(_compare_label(robust, cfg.get("pgd_steps") if trained else None))
        ds = dataset_label(cfg["search"]["dataset"])
        how = (
            f"cells trained {_count(cfg['train_epochs'], 'epoch')} x {_count(len(cfg['train_seeds']), 'seed')}, "
            "bars: std"
            if trained
            else "scored on the results table"
        )
        ax.set_title(f"{ds}: DSRNA vs DARTS vs random cells\n({_count(len(cfg['seeds']), 'search seed')}; {how})")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
        fig.canvas.draw()  # fixes the axis limits the labels are placed in
        _place_labels(ax, {xy: ", ".join(t) for xy, t in notes.items()}, fontsize=6.5)
        return _save(fig, path, fmt)


def _place_labels(ax: Any, labels: dict[tuple[float, float], str], fontsize: float) -> None:
    """Annotate each data point with its text where the text overlaps no marker and no earlier label: the first
    free place among a few offsets around the point, joined to it by a thin leader line."""
    scale = 72.0 / ax.figure.dpi  # pixels -> points
    pts = {xy: ax.transData.transform(xy) * scale for xy in labels}
    boxes = [(px - 6, py - 6, px + 6, py + 6) for px, py in pts.values()]  # the markers (the star is 12 points)
    h = 1.25 * fontsize
    for xy, text in sorted(labels.items(), key=lambda kv: (-kv[0][1], kv[0][0])):
        px, py = pts[xy]
        w = 0.58 * fontsize * len(text)
        offsets = [(7, 3), (7, -3 - h), (-7 - w, 3), (-7 - w, -3 - h)]
        offsets += [(dx, dy + sign * k * h) for k in (1, 2, 3) for sign in (1, -1) for dx, dy in offsets[:4:2]]
        chosen = offsets[0]
        for dx, dy in offsets:
            box = (px + dx, py + dy, px + dx + w, py + dy + h)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in boxes):
                chosen = (dx, dy)
                break
        dx, dy = chosen
        boxes.append((px + dx, py + dy, px + dx + w, py + dy + h))
        leader = {"arrowstyle": "-", "lw": 0.5, "color": "0.35", "shrinkA": 0, "shrinkB": 3}
        ax.annotate(text, xy, xytext=(dx, dy), textcoords="offset points", fontsize=fontsize, ha="left",
                    va="bottom", arrowprops=leader)  # fmt: skip
