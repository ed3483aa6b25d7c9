"""Figures for the NAS baselines and the analyses (PNG, matplotlib with the Agg backend). Epsilons in 1/255 units."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import Rb201Error


def _plt():  # type: ignore[no-untyped-def]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise Rb201Error("figures need matplotlib: pip install 'robustbench201[plot]'") from None
    return plt


def _save(fig, path: str | Path) -> Path:  # type: ignore[no-untyped-def]
    plt = _plt()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


def regret(results: Sequence, path: str | Path, title: str | None = None, log: bool = True) -> Path:  # type: ignore[type-arg]
    """Mean regret (+- one std band) against the number of queries, one line per :class:`SearchResult`."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        reg = r.regret
        x = np.arange(1, reg.shape[1] + 1)
        mean, std = np.nanmean(reg, axis=0), np.nanstd(reg, axis=0)
        floor = 1e-4 if log else 0.0
        ax.plot(x, np.maximum(mean, floor), label=f"{r.algo} (final {np.nanmean(r.trajectories[:, -1]):.4f})")
        ax.fill_between(x, np.maximum(mean - std, floor), np.maximum(mean + std, floor), alpha=0.2)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("queries (distinct cells)")
    ax.set_ylabel("regret to the table optimum")
    first = results[0]
    ax.set_title(title or f"{first.objective}: optimum {first.optimum:.4f}, {first.n_runs} runs")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def eps_curves(
    df,  # type: ignore[no-untyped-def]
    path: str | Path,
    columns: dict[str, list[str]],
    archs: Sequence[int] | None = None,
) -> Path:
    """Robust accuracy vs epsilon per attack (``columns``: attack -> its ``attack@eps`` columns, ascending):
    median and 10-90% band over all rows, plus a few cells' curves (default: the best and the median cell by clean
    accuracy)."""
    from ..store.schema import parse_wide_name

    attacks = [a for a, cols in columns.items() if cols]
    if not attacks:
        raise Rb201Error("the table has no attack columns to plot")
    if archs is None and "clean" in df.columns:
        clean = df["clean"].dropna().sort_values()
        archs = [int(clean.index[-1]), int(clean.index[len(clean) // 2])]
    plt = _plt()
    fig, axes = plt.subplots(1, len(attacks), figsize=(3.4 * len(attacks), 3.2), sharey=True, squeeze=False)
    for ax, a in zip(axes[0], attacks, strict=True):
        cols = columns[a]
        eps = np.array([parse_wide_name(c)[1] for c in cols])
        v = df[cols].to_numpy(dtype=np.float64)
        q10, q50, q90 = np.nanpercentile(v, [10, 50, 90], axis=0)
        ax.fill_between(eps, q10, q90, alpha=0.25, label="10-90% of cells")
        ax.plot(eps, q50, "k-", label="median")
        for i in archs or ():
            if i in df.index:
                ax.plot(eps, df.loc[i, cols].to_numpy(dtype=float), "o-", ms=3, label=f"#{i}")
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_title(a)
        ax.set_xlabel("epsilon (1/255)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy")
    axes[0][-1].legend(fontsize=7)
    return _save(fig, path)


def heatmap(matrix, path: str | Path, title: str = "Kendall tau") -> Path:  # type: ignore[no-untyped-def]
    """A square correlation matrix (DataFrame) as an annotated heatmap."""
    plt = _plt()
    n = len(matrix)
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * n, 0.8 + 0.45 * n))
    im = ax.imshow(matrix.to_numpy(), vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(n), labels=list(matrix.columns), rotation=90, fontsize=7)
    ax.set_yticks(range(n), labels=list(matrix.index), fontsize=7)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{matrix.iat[i, j]:.2f}", ha="center", va="center", fontsize=6)
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def pareto(df, objective: str, cost: str, front: Sequence[int], path: str | Path) -> Path:  # type: ignore[no-untyped-def]
    """Scatter of ``objective`` vs ``cost`` over all rows with the Pareto ``front`` (row labels; max objective, min
    cost)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.scatter(df[cost], df[objective], s=3, alpha=0.3, color="gray", label="cells")
    ax.step(df.loc[front, cost], df.loc[front, objective], "r.-", where="post", label=f"Pareto front ({len(front)})")
    ax.set_xlabel(cost)
    ax.set_ylabel(objective)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def alphas(alpha_history: Sequence, path: str | Path) -> Path:  # type: ignore[type-arg]
    """Softmax architecture weights over epochs (epochs+1 x 6 edges x 5 ops), one panel per edge."""
    from matplotlib.ticker import MaxNLocator

    from ..space import EDGES, OPS

    plt = _plt()
    a = np.asarray(alpha_history)
    fig, axes = plt.subplots(2, 3, figsize=(12, 6), sharex=True, sharey=True)
    for k, ax in enumerate(axes.flat):
        for o, name in enumerate(OPS):
            ax.plot(range(len(a)), a[:, k, o], label=name)
        ax.set_title(f"edge {EDGES[k][0]}->{EDGES[k][1]}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0, 0].set_ylabel("softmax(alpha)")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


# ---- DSRNA comparison (rb201 search dsrna --compare) ---------------------------------------------------------------
_DSRNA_GROUPS = {  # group key -> (label, colour, marker)
    "none": ("DARTS", "tab:blue", "o"),
    "jacobian": ("DSRNA (R_Jac)", "tab:orange", "s"),
    "certified": ("DSRNA (R_CB)", "tab:green", "^"),
    "combined": ("DSRNA (R_Jac + R_CB)", "tab:purple", "D"),
    "random": ("random live cells", "0.45", "x"),
}
_DSRNA_DATASETS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "mnist5k": "MNIST-5k"}
_DSRNA_STYLE = {"font.size": 9, "axes.titlesize": 10, "legend.fontsize": 7.5, "axes.grid": True, "grid.alpha": 0.3}


def _dsrna_count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _dsrna_axis_label(column: str, pgd_steps: int | None = None) -> str:
    """``'pgd@8'`` -> ``'PGD-10 accuracy, eps = 8/255'``; ``'mean_adv'`` -> mean adversarial accuracy."""
    if column == "clean":
        return "clean accuracy (fraction)"
    if column == "mean_adv":
        return "mean adversarial accuracy (fraction)"
    key, _, eps = column.partition("@")
    name = {"fgsm": "FGSM", "pgd": f"PGD-{pgd_steps}" if pgd_steps else "PGD"}.get(key, key)
    return f"{name} accuracy, eps = {eps}/255 (fraction)"


def dsrna_compare(
    report: dict,  # type: ignore[type-arg]
    path: str | Path,
    robust: str | None = None,
    background: tuple[np.ndarray, np.ndarray] | None = None,
) -> Path:
    """Clean against robust accuracy of every cell of a DSRNA comparison (:mod:`.dsrna_compare`): one marker per
    search (colour and shape by method; error bars: std over the training seeds in trained mode), random cells, and
    the ceiling (the table optimum, or the CIFAR-10 table's optimum cell trained like the others). ``robust``: the
    y column (default ``fgsm@1`` on a table, the largest-epsilon PGD column when trained); ``background``: (clean,
    robust) of every isomorphism class of the table, drawn in light grey."""
    cols = report["columns"]
    trained = report["mode"] == "trained"
    if robust is None:
        robust = "fgsm@1" if "fgsm@1" in cols else [c for c in cols if c.startswith("pgd@")][-1]
    if robust not in cols:
        raise Rb201Error(f"column {robust!r} not in the comparison; allowed: {', '.join(cols[1:])}")
    cfg = report["config"]
    plt = _plt()
    with plt.rc_context(_DSRNA_STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
        if background is not None:
            ax.scatter(*background, s=2, color="0.82", lw=0, label=f"all {len(background[0])} cells of the table")
        runs = [*report["runs"], *report["random"]]
        seen: dict[tuple[str, int], int] = {}
        for r in runs:
            seen[(r["group"], r["index"])] = seen.get((r["group"], r["index"]), 0) + 1
        labelled: set[str] = set()
        notes: dict[tuple[float, float], list[str]] = {}  # one annotation per position: cells that coincide share it
        for (group, index), count in seen.items():
            r = next(x for x in runs if x["group"] == group and x["index"] == index)
            label, colour, marker = _DSRNA_GROUPS.get(group, (group, "k", "o"))
            x, y = r["values"]["clean"], r["values"][robust]
            err = (r["spread"]["clean"], r["spread"][robust]) if trained else (None, None)
            face = "none" if group == "random" else colour
            ax.errorbar(x, y, xerr=err[0], yerr=err[1], fmt=marker, color=colour, ms=7, mfc=face, capsize=2, lw=0.8,
                        label=None if label in labelled else label, alpha=0.85)  # fmt: skip
            labelled.add(label)
            text = f"#{index}" + (f" x{count}" if count > 1 else "")
            if text not in notes.setdefault((round(x, 6), round(y, 6)), []):
                notes[(round(x, 6), round(y, 6))].append(text)
        for (x, y), texts in notes.items():
            ax.annotate(", ".join(texts), (x, y), xytext=(5, 4), textcoords="offset points", fontsize=6.5)
        if trained and "reference" in report:
            ref = report["reference"]
            x, y = ref["values"]["clean"], ref["values"][robust]
            ax.errorbar(x, y, xerr=ref["spread"]["clean"], yerr=ref["spread"][robust], fmt="*", color="tab:red",
                        ms=12, capsize=2, lw=0.8, label=ref["label"])  # fmt: skip
        elif not trained:
            exp = report["random_expectation"]
            ax.plot(exp["clean"]["mean"], exp[robust]["mean"], "P", color="k", ms=9, label="random live cell (mean)")
            best = report["optimum"][robust]
            ax.axhline(best["value"], color="tab:red", ls="--", lw=1, label=f"table optimum #{best['index']}")
        ax.set_xlabel(_dsrna_axis_label("clean"))
        ax.set_ylabel(_dsrna_axis_label(robust, cfg.get("pgd_steps") if trained else None))
        ds = _DSRNA_DATASETS.get(cfg["search"]["dataset"], cfg["search"]["dataset"])
        n_seeds = len(cfg["seeds"])
        epochs, seeds = _dsrna_count(cfg["train_epochs"], "epoch"), _dsrna_count(len(cfg["train_seeds"]), "seed")
        how = f"cells trained {epochs} x {seeds}, bars: std" if trained else "scored on the results table"
        ax.set_title(f"{ds}: DSRNA vs DARTS vs random cells ({n_seeds} search seeds; {how})")
        ax.legend(loc="best", frameon=True)
        fig.tight_layout()
        return _save(fig, path)
