"""Figures: reproducible (every committed figure in docs/img is what ``scripts/make_figures.py`` makes from the
shipped data, compared by the hash of the plotted data, not by pixels) and legible (no two texts overlap, legends
outside the data, fixed colours per algorithm and method, words on every axis, titles that say what was used)."""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from dataset_kinds import write_smoke

from robustbench201.search import plots
from robustbench201.vocab import NAS_ALGORITHMS

ROOT = Path(__file__).resolve().parent.parent
IMG = ROOT / "docs" / "img"


@cache
def make_figures() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_figures", ROOT / "scripts" / "make_figures.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@cache
def docs_figures() -> dict[str, dict[str, Any]]:
    return make_figures().figures()


@cache
def smoke_figures() -> dict[str, dict[str, Any]]:
    """The figures ``rb201 analyze`` draws for a dataset like the demo's (4 classes, cumulative only)."""
    import tempfile

    import robustbench201 as rb201
    from robustbench201.search.report import analyze

    src = write_smoke(Path(tempfile.mkdtemp(prefix="rb201-fig-")) / "smoke")
    return analyze(rb201.table("mnist5k", source=src), None, "all", "mnist5k").figures


def _search_figures() -> dict[str, dict[str, Any]]:
    """Regret plots with the algorithms asked in another order, and one algorithm alone."""
    import robustbench201 as rb201
    from robustbench201.search.nas import TableSurrogate, run_search

    sur = TableSurrogate(rb201.table("cifar10"), "fgsm@1")
    res = {a: run_search(sur, a, 30, 3, 0) for a in ("rs", "re", "ls")}
    return {
        "regret_ls_rs": plots.regret_data([res["ls"], res["rs"]], "cifar10"),
        "regret_re": plots.regret_data([res["re"]], "cifar10"),
    }


def test_every_committed_figure_is_what_the_script_makes_from_the_shipped_data():
    from PIL import Image

    want = make_figures().index(docs_figures())
    index = json.loads((IMG / "figures.json").read_text())
    assert index == want, "docs/img is stale: run python scripts/make_figures.py"
    assert sorted(p.name for p in IMG.glob("*.png")) == sorted(index), "a figure in docs/img that no script makes"
    for name, entry in index.items():
        with Image.open(IMG / name) as im:
            assert im.text.get(plots.HASH_KEY) == entry["sha256"], f"{name} was not drawn from the data it lists"


def test_a_changed_figure_changes_its_hash():
    data = docs_figures()["cifar10_robust_vs_eps"]
    changed = json.loads(json.dumps(data))
    changed["panels"][0]["curves"][1]["index"] += 1  # the stale median-cell label the hash must catch
    assert plots.data_hash(changed) != plots.data_hash(data)
    assert plots.data_hash(json.loads(json.dumps(data))) == plots.data_hash(data)


def _texts(fig: Any) -> list[tuple[str, Any]]:
    """(text, window box) of every text drawn in ``fig``."""
    from matplotlib.text import Text

    renderer = fig.canvas.get_renderer()
    out = []
    for t in fig.findobj(Text):
        if not t.get_visible() or not t.get_text().strip() or not t.get_figure():
            continue
        if t in _tick_labels(fig) and not _in_view(t):
            continue
        bb = Text.get_window_extent(t, renderer)  # an annotation's own text, without its leader line
        if bb.width > 0 and bb.height > 0:
            out.append((t.get_text(), bb))
    return out


def _overlapping(fig: Any) -> list[tuple[str, str]]:
    """Pairs of texts of ``fig`` whose drawn boxes intersect."""
    texts = _texts(fig)
    return [(a, b) for (a, ba), (b, bb) in itertools.combinations(texts, 2) if ba.overlaps(bb)]


def _tick_labels(fig: Any) -> set[Any]:
    labels = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            labels.update(axis.get_ticklabels(which="both"))
    return labels


def _in_view(t: Any) -> bool:
    """A tick label is drawn only when its tick is within the axis limits."""
    ax = t.axes
    if ax is None:
        return True
    for axis, lim in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        for tick in axis.get_major_ticks() + axis.get_minor_ticks():
            if t in (tick.label1, tick.label2):
                lo, hi = sorted(lim)
                return tick.get_visible() and lo - 1e-9 <= tick.get_loc() <= hi + 1e-9 and t.get_visible()
    return True


def _all_figures() -> dict[str, dict[str, Any]]:
    return {**docs_figures(), **{f"smoke_{k}": v for k, v in smoke_figures().items()}, **_search_figures()}


@pytest.fixture(scope="module")
def rendered():
    figs = {name: plots.render(data) for name, data in _all_figures().items()}
    yield figs
    import matplotlib.pyplot as plt

    for fig in figs.values():
        plt.close(fig)


def test_no_two_texts_of_any_figure_overlap(rendered):
    assert len(rendered) >= 12
    for name, fig in rendered.items():
        assert len(_texts(fig)) >= 5, name
        assert not _overlapping(fig), f"{name}: overlapping texts {_overlapping(fig)}"


def test_the_overlap_check_sees_overlaps():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.set_xticks([0.0, 0.001], labels=["first tick", "second tick"])  # two labels on one spot
    ax.annotate("#1", (0.5, 0.5))
    ax.annotate("#2", (0.5, 0.5), xytext=(1, 1), textcoords="offset points")
    fig.canvas.draw()
    found = _overlapping(fig)
    plt.close(fig)
    assert ("first tick", "second tick") in found and ("#1", "#2") in found


def test_legends_sit_outside_the_data(rendered):
    for name, fig in rendered.items():
        renderer = fig.canvas.get_renderer()
        legends = [lg for lg in fig.legends] + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
        for lg in legends:
            box = lg.get_window_extent(renderer)
            for ax in fig.axes:
                if ax.get_label() == "<colorbar>":
                    continue
                assert not box.overlaps(ax.get_window_extent(renderer)), f"{name}: a legend covers the data"


def test_every_axis_speaks_words(rendered):
    for name, fig in rendered.items():
        data_axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>" and ax.axison]
        for ax in data_axes:
            heatmap = bool(ax.get_images())  # categorical axes: the tick labels are the words
            assert ax.get_xlabel() or heatmap, name
        if data_axes and not data_axes[0].get_images():
            assert data_axes[0].get_ylabel(), name  # panels sharing y: the first one names it
        for text, _ in _texts(fig):
            plain = re.sub(r"\$[^$]*\$", "", text)  # mathtext subscripts (R_Jac) are typeset, not shown as "_"
            assert "_" not in plain, f"{name}: snake_case text {text!r}"


def test_each_algorithm_and_method_keeps_its_colour(rendered):
    from matplotlib.colors import to_hex

    for name in ("regret_fgsm1", "regret_ls_rs", "regret_re"):
        ax = rendered[name].axes[0]
        for line in ax.get_lines():
            algo = {v: k for k, v in NAS_ALGORITHMS.items()}[line.get_label().split(":")[0]]
            assert to_hex(line.get_color()) == to_hex(plots.ALGO_COLORS[algo]), (name, algo)
    from robustbench201.search.plots_dsrna import DSRNA_STYLES

    if "dsrna_compare_mnist5k" in rendered:
        from robustbench201.search.dsrna.config import METHOD_LABELS

        ax = rendered["dsrna_compare_mnist5k"].axes[0]
        handles, labels = ax.get_legend_handles_labels()
        from robustbench201.search.plots_dsrna import _math

        for h, label in zip(handles, labels, strict=True):
            group = next((g for g, lab in METHOD_LABELS.items() if _math(lab) == label), None)
            if group in DSRNA_STYLES:
                line = h[0] if isinstance(h, tuple) else getattr(h, "lines", [h])[0]
                assert to_hex(line.get_color()) == to_hex(DSRNA_STYLES[group][0]), label


def test_titles_say_the_severities_and_classes_used():
    smoke = smoke_figures()
    assert "severities 1 and 5; 4 isomorphism classes" in smoke["kendall_corruptions"]["title"]
    assert "robust accuracy of 4 isomorphism classes" in smoke["robust_vs_eps"]["title"]
    assert "cumulative" in smoke["robust_vs_eps"]["title"]
    docs = docs_figures()
    assert "severities 1-5; 6466 isomorphism classes" in docs["cifar10_kendall_corruptions"]["title"]
    assert "each epsilon attacked on its own" in docs["cifar10_robust_vs_eps"]["title"]
    labels = docs["cifar10_kendall_corruptions"]["labels"]
    assert "Gaussian noise" in labels and "JPEG compression" in labels


def test_figure_files_carry_their_data_hash(tmp_path):
    from PIL import Image

    data = smoke_figures()["kendall_corruptions"]
    path = plots.draw(data, tmp_path / "k.png")
    with Image.open(path) as im:
        assert im.text[plots.HASH_KEY] == plots.data_hash(data)
    assert np.isfinite(np.asarray(data["values"], dtype=float)).all()


def test_labels_of_a_dense_cluster_of_cells_do_not_overlap():
    """A DSRNA comparison whose cells crowd one corner (as the top-right cluster of the MNIST-5k run did)."""
    from robustbench201.search.dsrna.config import METHOD_LABELS
    from robustbench201.search.plots_dsrna import dsrna_compare_data

    rng = np.random.default_rng(0)
    runs = [{"group": g, "index": 100 + 7 * k + j, "values": {"clean": 0.90 + 0.004 * rng.random(),
             "fgsm@1": 0.66 + 0.004 * rng.random()}} for k, g in enumerate(("none", "jacobian", "certified"))
            for j in range(4)]  # fmt: skip
    random = [{"group": "random", "index": 9000 + j, "values": {"clean": 0.901 + 0.002 * j, "fgsm@1": 0.661}}
              for j in range(4)]  # fmt: skip
    report = {
        "columns": ["clean", "fgsm@1"], "mode": "table", "runs": runs, "random": random,
        "random_expectation": {"clean": {"mean": 0.85}, "fgsm@1": {"mean": 0.5}},
        "optimum": {"fgsm@1": {"index": 655, "value": 0.692}},
        "config": {"search": {"dataset": "cifar10"}, "seeds": [0, 1, 2, 3]},
        "groups": [{"key": g, "label": METHOD_LABELS[g]} for g in ("none", "jacobian", "certified")],
    }  # fmt: skip
    import matplotlib.pyplot as plt

    fig = plots.render(dsrna_compare_data(report))
    try:
        assert not _overlapping(fig), _overlapping(fig)
        shown = " ".join(t for t, _ in _texts(fig)).replace(",", " ").split()
        assert {f"#{r['index']}" for r in runs + random} <= set(shown)  # every cell is named, crowded ones together
    finally:
        plt.close(fig)
