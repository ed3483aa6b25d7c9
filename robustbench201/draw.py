"""Draw an NB201 cell as a DAG (nodes 0..3, one labelled arrow per non-``none`` edge), as in the NB201 figures."""

from __future__ import annotations

from pathlib import Path

from .errors import Rb201Error
from .space import EDGES, Arch

_LABELS = {
    "skip_connect": "skip",
    "nor_conv_1x1": "conv 1x1",
    "nor_conv_3x3": "conv 3x3",
    "avg_pool_3x3": "avg pool 3x3",
}
_COLORS = {"skip_connect": "#555555", "nor_conv_1x1": "#1f77b4", "nor_conv_3x3": "#d62728", "avg_pool_3x3": "#2ca02c"}
#: Where the drawing puts nodes 0..3 (data units) and how much each edge bends (matplotlib ``arc3`` rad); the HTML
#: report draws its cells with the same geometry.
NODE_POSITIONS: dict[int, tuple[float, float]] = {0: (0.0, 0.0), 1: (1.0, 0.0), 2: (2.0, 0.0), 3: (3.0, 0.0)}
EDGE_CURVATURE: dict[tuple[int, int], float] = {(0, 1): 0.0, (1, 2): 0.0, (2, 3): 0.0, (0, 2): 0.45, (1, 3): -0.45,
                                                (0, 3): 0.6}  # fmt: skip
OP_LABELS = _LABELS


def draw_cell(arch: object, path: str | Path | None = None, ax=None, title: str | None = None):  # type: ignore[no-untyped-def]
    """Draw ``arch``; save a PNG to ``path`` if given. Returns the figure. Needs matplotlib (extra ``plot``)."""
    try:
        import matplotlib

        if ax is None:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import FancyArrowPatch
    except ImportError:
        raise Rb201Error("drawing needs matplotlib: pip install 'robustbench201[plot]'") from None
    a = Arch.parse(arch)
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(7, 3.2))
    else:
        fig = ax.figure
    pos, curvature = NODE_POSITIONS, EDGE_CURVATURE
    live = a.live_edges()
    for (src, dst), name, alive in zip(EDGES, a.op_names, live, strict=True):
        if name == "none":
            continue
        rad = curvature[(src, dst)]
        arrow = FancyArrowPatch(
            pos[src],
            pos[dst],
            connectionstyle=f"arc3,rad={rad}",
            arrowstyle="-|>",
            mutation_scale=14,
            lw=2.0,
            color=_COLORS[name],
            alpha=1.0 if alive else 0.35,
            shrinkA=16,
            shrinkB=16,
            linestyle="-" if alive else "--",
        )
        ax.add_patch(arrow)
        mx = (pos[src][0] + pos[dst][0]) / 2
        span = dst - src
        my = -rad * span / 2 if span > 1 else 0.0
        ax.text(
            mx,
            my + (0.07 if span == 1 else 0.0),
            _LABELS[name],
            ha="center",
            va="bottom",
            fontsize=9,
            color=_COLORS[name],
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85},
        )
    for n, (x, y) in pos.items():
        label = {0: "in", 3: "out"}.get(n, str(n))
        ax.add_patch(plt.Circle((x, y), 0.16, color="#f2f2f2", ec="black", lw=1.5, zorder=3))
        ax.text(x, y, label, ha="center", va="center", fontsize=10, zorder=4)
    ax.set_xlim(-0.4, 3.4)
    ax.set_ylim(-1.0, 1.0)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title or f"NB201 #{a.index}" + (" (dead)" if a.is_dead else ""), fontsize=10)
    if path is not None:
        from .atomic import atomic_path

        out = Path(path)
        kind = out.suffix.lstrip(".").lower() or "png"
        if kind not in ("png", "pdf", "svg"):
            raise Rb201Error(f"cannot draw {out}: unknown figure format {kind!r}; allowed: 'png', 'pdf', 'svg'")
        try:
            with atomic_path(out, make_parents=False) as tmp:
                fig.savefig(tmp, dpi=150, bbox_inches="tight", format=kind)
        finally:
            if own:
                plt.close(fig)
    return fig
