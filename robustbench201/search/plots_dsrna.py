"""The figure of a DSRNA comparison (``rb201 search dsrna --compare``): clean against robust accuracy of every
searched cell, the random cells and the ceiling, one colour and marker per method, labels that never overlap.

Drawn from a JSON-ready dict (:func:`dsrna_compare_data`) like every figure of :mod:`.plots`."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import Rb201Error
from ..tables.formats import axis_label, dataset_title

#: Group key -> (colour, marker): fixed per method, whatever the order of ``--metrics``.
DSRNA_STYLES = {
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


def _math(label: str) -> str:
    """A method label with its regularisers as subscripts (``R_Jac`` -> R with subscript Jac, in mathtext)."""
    for name in ("Jac", "CB", "table"):
        label = label.replace(f"R_{name}", rf"$R_\mathrm{{{name}}}$")
    return label


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _compare_label(column: str, pgd_steps: int | None = None) -> str:
    """:func:`axis_label` with PGD's step count when known: ``'pgd@8'`` -> ``'PGD-10, eps 8/255 (accuracy)'``."""
    if column == "mean_adv":
        return "mean adversarial accuracy (fraction)"
    label = axis_label(column)
    if pgd_steps and column.startswith("pgd@"):
        label = label.replace("PGD", f"PGD-{pgd_steps}", 1)
    return label


def dsrna_compare_data(
    report: dict[str, Any], robust: str | None = None, background: tuple[np.ndarray, np.ndarray] | None = None
) -> dict[str, Any]:
    """What the comparison figure draws: one point per (method, cell) with its error bars (std over the training
    seeds in trained mode), random cells, the ceiling (the table optimum, or the CIFAR-10 table's optimum cell trained
    like the others), the labels (cells at the same point share one) and, as ``background``, (clean, robust) of every
    isomorphism class of the table. ``robust``: the y column (default ``fgsm@1`` on a table, the largest-epsilon
    PGD column when trained)."""
    labels = {g["key"]: g["label"] for g in report["groups"]}  # the report names its methods
    cols = report["columns"]
    trained = report["mode"] == "trained"
    if robust is None:
        robust = "fgsm@1" if "fgsm@1" in cols else [c for c in cols if c.startswith("pgd@")][-1]
    if robust not in cols:
        raise Rb201Error(f"column {robust!r} not in the comparison; allowed: {', '.join(cols[1:])}")
    cfg = report["config"]
    runs = [*report["runs"], *report["random"]]
    seen: dict[tuple[str, int], int] = {}
    for r in runs:
        seen[(r["group"], r["index"])] = seen.get((r["group"], r["index"]), 0) + 1
    points = []
    for (group, index), count in seen.items():
        r = next(x for x in runs if x["group"] == group and x["index"] == index)
        label = _math("random live cells" if group == "random" else labels.get(group, group))
        err = (r["spread"]["clean"], r["spread"][robust]) if trained else (None, None)
        points.append({"group": group, "label": label, "index": index, "count": count, "x": r["values"]["clean"],
                       "y": r["values"][robust], "xerr": err[0], "yerr": err[1]})  # fmt: skip
    data: dict[str, Any] = {"kind": "dsrna_compare", "points": points, "reference": None, "random_mean": None,
                            "optimum": None, "background": None}  # fmt: skip
    if background is not None:
        data["background"] = [np.asarray(background[0], dtype=float).tolist(),
                              np.asarray(background[1], dtype=float).tolist()]  # fmt: skip
    if trained and "reference" in report:
        ref = report["reference"]
        data["reference"] = {"label": ref["label"], "index": ref["index"], "x": ref["values"]["clean"],
                             "y": ref["values"][robust], "xerr": ref["spread"]["clean"],
                             "yerr": ref["spread"][robust]}  # fmt: skip
    elif not trained:
        exp = report["random_expectation"]
        data["random_mean"] = [exp["clean"]["mean"], exp[robust]["mean"]]
        best = report["optimum"][robust]
        data["optimum"] = {"index": best["index"], "y": best["value"]}
    data["x_label"] = _compare_label("clean")
    data["y_label"] = _compare_label(robust, cfg.get("pgd_steps") if trained else None)
    how = (
        f"cells trained {_count(cfg['train_epochs'], 'epoch')} x {_count(len(cfg['train_seeds']), 'seed')}, bars: std"
        if trained
        else "scored on the results table"
    )
    ds = dataset_title(cfg["search"]["dataset"])
    data["title"] = f"{ds}: DSRNA vs DARTS vs random cells\n({_count(len(cfg['seeds']), 'search seed')}; {how})"
    return data


def render_dsrna_compare(data: dict[str, Any], plt: Any) -> Any:
    fig, ax = plt.subplots(figsize=(7.0, 5.6))
    if data["background"] is not None:
        bx, by = data["background"]
        ax.scatter(bx, by, s=2, color="0.82", lw=0, label=f"all {len(bx)} isomorphism classes of the table")
    labelled: set[str] = set()
    notes: dict[tuple[float, float], list[str]] = {}  # one label per position: cells that coincide share it
    for p in data["points"]:
        colour, marker = DSRNA_STYLES.get(p["group"], ("k", "o"))
        face = "none" if p["group"] == "random" else colour
        ax.errorbar(p["x"], p["y"], xerr=p["xerr"], yerr=p["yerr"], fmt=marker, color=colour, ms=7, mfc=face,
                    capsize=2, lw=0.8, label=None if p["label"] in labelled else p["label"], alpha=0.85)  # fmt: skip
        labelled.add(p["label"])
        text = f"#{p['index']}" + (f" x{p['count']}" if p["count"] > 1 else "")
        where = (round(p["x"], 6), round(p["y"], 6))
        if text not in notes.setdefault(where, []):
            notes[where].append(text)
    ref = data["reference"]
    if ref is not None:
        ax.errorbar(ref["x"], ref["y"], xerr=ref["xerr"], yerr=ref["yerr"], fmt="*", color="tab:red", ms=12,
                    capsize=2, lw=0.8, label=ref["label"])  # fmt: skip
        notes.setdefault((round(ref["x"], 6), round(ref["y"], 6)), []).append(f"#{ref['index']}")
    if data["random_mean"] is not None:
        ax.plot(*data["random_mean"], "P", color="k", ms=9, label="random live cell (mean)")
    if data["optimum"] is not None:
        ax.axhline(
            data["optimum"]["y"], color="tab:red", ls="--", lw=1, label=f"table optimum #{data['optimum']['index']}"
        )
    ax.set_xlabel(data["x_label"])
    ax.set_ylabel(data["y_label"])
    ax.set_title(data["title"])
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
    fig.canvas.draw()  # fixes the axis limits the labels are placed in
    place_labels(ax, {xy: ", ".join(t) for xy, t in notes.items()}, fontsize=6.5)
    return fig


_LEADER = {"arrowstyle": "-", "lw": 0.5, "color": "0.35", "shrinkA": 0, "shrinkB": 3}


def place_labels(ax: Any, labels: dict[tuple[float, float], str], fontsize: float) -> None:
    """Annotate each data point with its text where the drawn text overlaps no marker, no other label and nothing
    outside the axes: points closer than a marker's width share one label (their texts joined), and each label takes
    the first free place on rings of growing radius around its point (16 directions, up and right first), joined to
    it by a thin leader line. Boxes are measured on the renderer, so the check is the one a reader's eye makes."""
    import math

    from matplotlib.text import Text

    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    px_per_pt = fig.dpi / 72.0
    half = 4.0 * px_per_pt  # half a marker (7 points) and a little room, in pixels
    pts = {xy: ax.transData.transform(xy) for xy in labels}
    # points within a marker of each other share one label
    groups: list[tuple[tuple[float, float], list[str]]] = []
    for xy, text in sorted(labels.items(), key=lambda kv: (-kv[0][1], kv[0][0])):
        for anchor, texts in groups:
            if math.dist(pts[anchor], pts[xy]) < 2 * half:
                texts.append(text)
                break
        else:
            groups.append((xy, [text]))
    area = ax.get_window_extent(renderer)
    taken = [(px - half, py - half, px + half, py + half) for px, py in pts.values()]
    rings = [(r, math.radians(a)) for r in (9, 16, 26, 38, 52, 70, 92, 120) for a in
             (30, 60, 0, 90, 330, 120, 300, 150, 270, 180, 210, 240, 15, 45, 75, 105)]  # fmt: skip
    pad = 1.5
    for xy, texts in groups:
        text = ", ".join(texts)
        best = None
        for r, a in rings:
            dx, dy = r * math.cos(a), r * math.sin(a)
            ha = "left" if dx > 1 else ("right" if dx < -1 else "center")
            va = "bottom" if dy > 1 else ("top" if dy < -1 else "center")
            ann = ax.annotate(text, xy, xytext=(dx, dy), textcoords="offset points", fontsize=fontsize, ha=ha, va=va,
                              arrowprops=_LEADER)  # fmt: skip
            ann.update_positions(renderer)
            bb = Text.get_window_extent(ann, renderer)  # the text's own box, without its leader line
            box = (bb.x0 - pad, bb.y0 - pad, bb.x1 + pad, bb.y1 + pad)
            inside = area.x0 <= box[0] and box[2] <= area.x1 and area.y0 <= box[1] and box[3] <= area.y1
            hits = sum(1 for b in taken if box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3])
            score = hits + (0 if inside else 100)
            if best is None or score < best[0]:
                if best is not None:
                    best[1].remove()
                best = (score, ann, box)
            else:
                ann.remove()
            if score == 0:
                break
        assert best is not None
        taken.append(best[2])
