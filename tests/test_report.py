"""`rb201 report` of a dataset and of the published table, without a browser: the packed columns read back to the
dataset's values, the numbers behind the figures equal their definitions, the display of every column follows the
command line's rules, and the page is one self-contained file (tests/test_report_browser.py drives it in
Chromium; tests/test_report_build.py covers the report of a build)."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner
from scipy.stats import kendalltau

from robustbench201 import default_dataset
from robustbench201.cli import main
from robustbench201.errors import Rb201Error
from robustbench201.report import source_kind, write_report
from robustbench201.report.columns import column_display
from robustbench201.report.dataset_view import dataset_report
from robustbench201.report.encode import B85_ALPHABET, Packer, b85, decimals_of, unb85, unpack
from robustbench201.report.figures import histogram
from robustbench201.report.page import CSP
from robustbench201.space import NUM_ARCHS, representative_indices, unique_indices
from robustbench201.store.dataset import columns_table, write_dataset_dir
from robustbench201.tables.formats import format_value
from robustbench201.tables.select import best_first_descending

SHIFTED = (0, 3, 6, 9, 11)  # representatives whose fgsm@1 a rebuilt dataset reports 0.05 higher
SHIFT = 0.05


def page_data(path) -> dict:  # type: ignore[no-untyped-def]
    """The JSON data a written report carries."""
    text = path.read_text(encoding="utf-8")
    return json.loads(re.search(r'<script type="application/json" id="rb201-data">(.*?)</script>', text).group(1))


def small_dataset(out):  # type: ignore[no-untyped-def]
    """A dataset of the published CIFAR-10 rows of clean, FGSM, PGD and two corruptions for the representatives
    below 2000, with fgsm@1 of the cells SHIFTED raised by SHIFT (a rebuild that differs in known places)."""
    t = default_dataset().read_results("cifar10")
    keys = pa.array(["clean", "fgsm", "pgd", "fog", "snow"])
    keep = pc.and_(pc.equal(t.column("source"), "jung2023"), pc.is_in(t.column("key"), keys))
    t = t.filter(
        pc.and_(pc.and_(keep, pc.equal(t.column("measure"), "accuracy")), pc.less(t.column("arch_index"), 2000))
    )
    df = t.to_pandas()
    hit = (df["key"] == "fgsm") & (df["epsilon"] == 1.0) & df["arch_index"].isin(SHIFTED)
    assert hit.sum() == len(SHIFTED)
    df.loc[hit, "value"] += SHIFT
    write_dataset_dir(out, {"rebuilt": columns_table({c: df[c].to_numpy() for c in df.columns})}, name="rebuilt",
                      created="2024-01-01T00:00:00Z")  # fmt: skip
    return out


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):  # type: ignore[no-untyped-def]
    return small_dataset(tmp_path_factory.mktemp("report") / "rebuilt")


@pytest.fixture(scope="module")
def published():  # type: ignore[no-untyped-def]
    return dataset_report("jung2023")


# ---- packing ----------------------------------------------------------------------------------------------------
def test_base85_round_trips_every_byte_and_avoids_what_html_treats_specially():
    assert len(set(B85_ALPHABET)) == 85 and not set("<&\"'/\\") & set(B85_ALPHABET)
    data = bytes(range(256)) * 3 + b"\xff\xff\xff"
    for n in (0, 1, 2, 3, 4, 5, len(data)):
        assert unb85(b85(data[:n]), n) == data[:n]
    assert "<" not in b85(data) and "&" not in b85(data)


def test_decimals_are_found_only_where_they_give_every_value_back():
    assert decimals_of(np.array([0.805, 0.1, np.nan, 1.0])) == 3
    assert decimals_of(np.array([3.0, 15624.0])) == 0
    assert decimals_of(np.array([1 / 3])) is None
    assert decimals_of(np.array([1e12 + 0.5])) is None  # the integers would not fit in 32 bits


def test_packed_columns_read_back_exactly_or_with_the_same_printed_digits():
    rng = np.random.default_rng(0)
    acc = np.round(rng.random(500), 3)
    acc[[3, 77]] = np.nan
    nxt = np.round(np.clip(acc - rng.random(500) * 0.05, 0, 1), 3)  # a larger epsilon: stored as a difference
    # float32 cannot hold these, and some lie within float32's error of a printed rounding boundary
    edge = np.concatenate([np.arange(250) * 0.001 + 0.0005 + 1e-9, rng.random(250) * 50])
    few = rng.choice([0.5, 2.25, math.pi], 500)
    cols = [acc, nxt, edge, few, np.full(500, np.nan), np.arange(500) * 1e6]
    p = Packer()
    metas = [p.add(acc, cid="a"), p.add(nxt, cid="b", delta_of="a"), p.add(edge, decimals=3), p.add(few),
             p.add(cols[4]), p.add(cols[5])]  # fmt: skip
    assert [m["e"] for m in metas] == ["i", "i", "f", "u", "n", "i"] and metas[1]["d"] == 0
    back = unpack(*p.finish(), metas, 500)
    for k in (0, 1, 3, 4, 5):
        assert np.array_equal(back[k], cols[k], equal_nan=True), k
    printed = [f"{v:.3f}" for v in cols[2]]
    assert [f"{v:.3f}" for v in back[2]] == printed
    assert metas[2]["x"], "values on a rounding boundary are carried exactly"


def test_the_published_table_packs_back_to_its_values(published):
    """Every column of the embedded table, read back as the page reads it: decimal columns bit for bit, the others
    printing the same digits as the exact value."""
    data, blobs = published
    reps = np.asarray(unique_indices())
    src = default_dataset()
    for d in data["datasets"]:
        idx = src.index(d["name"])
        rows = [len(reps) if c["cl"] else NUM_ARCHS for c in d["columns"]]
        back = unpack(*blobs[d["blob"]], [c["enc"] for c in d["columns"]], rows)
        for c, v in zip(d["columns"], back, strict=True):
            j = idx.col[c["name"]]
            want = idx.take(reps if c["cl"] else np.arange(NUM_ARCHS), j)
            if c["enc"]["e"] in ("i", "u", "n"):
                assert np.array_equal(v, want, equal_nan=True), c["name"]
            else:
                show = c["show"]
                text = (lambda x, s=show: f"{x:.{s['decimals']}f}") if show["decimals"] is not None else (
                    lambda x, s=show: f"{x:.{s['digits'] - 1}e}")  # fmt: skip
                ok = ~np.isnan(want)
                assert np.array_equal(np.isnan(v), ~ok), c["name"]
                assert [text(x) for x in v[ok]] == [text(x) for x in want[ok]], c["name"]


# ---- how columns are shown ----------------------------------------------------------------------------------------
def test_each_column_is_shown_as_the_command_line_prints_it():
    idx = default_dataset().index("cifar10")
    show = {n: column_display(idx, n) for n in idx.names}
    assert (show["clean"].kind, show["clean"].decimals, show["fgsm@1"].decimals) == ("accuracy", 3, 3)
    assert (show["params"].decimals, show["params"].unit, show["flops"].decimals) == (3, "M", 2)
    assert (show["edgegpu_latency"].unit, show["edgegpu_energy"].unit) == ("ms", "mJ")
    assert show["synflow"].decimals is None and show["synflow"].digits == 4
    assert show["fog:3"].label == "fog, severity 3"
    for n in idx.names:  # best first means what rb201 table --sort means
        assert show[n].descending == best_first_descending(idx, n), n
    # the page's rule (assets/base.js fmt) on the metadata prints what the command line prints, for every column
    for n in idx.names:
        values = idx.raw[:, idx.col[n]]
        for v in values[np.isfinite(values)][:50]:
            assert _page_text(float(v), show[n]) == format_value(n, float(v), unit=False), (n, v)


def _page_text(v: float, show) -> str:  # noqa: ANN001
    """assets/base.js ``fmt`` in Python (toFixed / toExponential / Python's 'g' as gfmt writes it)."""
    v *= show.scale
    if show.decimals is not None:
        return f"{v:.{show.decimals}f}"
    if show.style == "scientific" and v != 0 and not 1e-2 <= abs(v) < 1e4:
        return f"{v:.{show.digits - 1}e}"
    return f"{v:.{show.digits}g}"


# ---- the numbers behind the figures ------------------------------------------------------------------------------
def test_histogram_counts_every_value_once():
    v = np.array([0.1, 0.2, 0.2, 0.9, np.nan])
    h = histogram(v, bins=4)
    assert h["n"] == 4 and sum(h["counts"]) == 4 and (h["lo"], h["hi"]) == (0.1, 0.9)
    assert h["counts"] == [3, 0, 0, 1] and h["median"] == 0.2
    one = histogram(np.array([0.5, 0.5]))
    assert one["counts"] == [2] and one["lo"] < 0.5 < one["hi"]


def test_figures_of_the_published_table_equal_their_definitions(published):
    data, _ = published
    d = next(x for x in data["datasets"] if x["name"] == "cifar10")
    idx = default_dataset().index("cifar10")
    reps = np.asarray(unique_indices())
    f = d["figures"]
    pgd = next(p for p in f["eps"] if p["key"] == "pgd")
    assert pgd["eps"] == [0.1, 0.5, 1, 2, 3, 4, 8] and pgd["n"] == [6466] * 7
    col = idx.take(reps, idx.col["pgd@2"])
    assert pgd["p50"][3] == pytest.approx(float(np.median(col)), abs=0) and pgd["p10"][3] == np.percentile(col, 10)
    grid = f["corruptions"]
    assert len(grid["keys"]) == 15 and grid["severities"] == [1, 2, 3, 4, 5]
    fog3 = idx.take(reps, idx.col["fog:3"])
    assert grid["mean"][grid["keys"].index("fog")][2] == pytest.approx(float(fog3.mean()), rel=1e-12)
    kd = f["kendall"]
    i, j = kd["columns"].index("clean"), kd["columns"].index("fgsm@1")
    want = kendalltau(idx.take(reps, idx.col["clean"]), idx.take(reps, idx.col["fgsm@1"])).statistic
    assert kd["tau"][i][j] == pytest.approx(want, abs=1e-12) and kd["n"][i][j] == 6466
    assert {"fgsm@1", "fgsm@8", "pgd@1", "pgd@8", "corruptions (mean)", "params", "flops"} <= set(kd["columns"])
    cost = f["cost"]
    front = cost["pairs"]["params|fgsm@1"]["front"]
    p, y = idx.take(reps, idx.col["params"]), idx.take(reps, idx.col["fgsm@1"])
    dominated = [i for i in front if ((p <= p[np.searchsorted(reps, i)]) & (y > y[np.searchsorted(reps, i)])).any()]
    assert front and not dominated and cost["default_y"] == "fgsm@1"
    hist = {h["column"]: h for h in f["distributions"]}
    assert len(hist) == len(idx.names) and hist["clean"]["n"] == 6466 and hist["clean"]["over"] == "classes"
    assert hist["edgegpu_latency"]["over"] == "cells" and hist["edgegpu_latency"]["n"] == NUM_ARCHS
    assert hist["jacov"]["n"] == 9445  # the zero-cost proxies cover 9445 cells


def test_a_dataset_report_says_where_it_differs_from_the_published_table(rebuilt):
    data, _ = dataset_report(rebuilt)
    pv = data["provenance"]
    assert pv["verified"]["ok"] and pv["verified"]["files"] == len(pv["files"]) and pv["name"] == "rebuilt"
    cmp = {c["column"]: c for c in data["compare"]["columns"]}
    n = cmp["clean"]["n"]
    assert cmp["fgsm@1"]["mean_abs_diff"] == pytest.approx(SHIFT * len(SHIFTED) / n, rel=1e-9)
    assert {w["arch_index"] for w in cmp["fgsm@1"]["worst"]} <= set(SHIFTED)
    assert all(c["max_abs_diff"] == 0 for name, c in cmp.items() if name != "fgsm@1")
    d = data["datasets"][0]
    assert d["name"] == "cifar10" and d["classes"] == n == sum(1 for i in unique_indices() if i < 2000)
    assert d["figures"]["cost"] is None  # a table without params or FLOPs


def test_the_published_report_has_no_comparison_with_itself(published):
    assert published[0]["compare"] is None
    assert [d["name"] for d in published[0]["datasets"]] == ["cifar10", "cifar100", "ImageNet16-120"]
    assert published[0]["datasets"][2]["figures"]["corruptions"] is None  # no corruptions on ImageNet16-120


# ---- the file -------------------------------------------------------------------------------------------------------
def test_the_published_report_is_one_self_contained_file_under_5_mb(tmp_path):
    rep = write_report("jung2023", tmp_path / "jung.html")
    text = rep.path.read_text(encoding="utf-8")
    assert rep.kind == "published" and rep.bytes == len(text.encode()) < 5_000_000
    assert f'content="{CSP}"' in text and "default-src 'none'" in CSP
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text)  # nothing to load
    assert "<script src" not in text and "<link" not in text
    scripts = re.findall(r'<script type="text/plain" id="rb201-blob-(\w+)" data-bytes="(\d+)">([^<]*)</script>', text)
    assert {s[0] for s in scripts} == {"space", "ds0", "ds1", "ds2"}
    data = page_data(rep.path)
    assert data["format"] == "rb201-report" and data["source_kind"] == "published"


def test_sources_are_recognised_and_anything_else_is_refused_by_name(tmp_path, rebuilt):
    assert source_kind("jung2023") == "published" and source_kind(rebuilt) == "dataset"
    (tmp_path / "empty").mkdir()
    for bad in (tmp_path / "missing", tmp_path / "empty"):
        with pytest.raises(Rb201Error, match=re.escape(str(bad))):
            source_kind(bad)
    res = CliRunner().invoke(main, ["report", str(tmp_path / "empty"), "-o", str(tmp_path / "r.html")])
    assert res.exit_code == 1 and "neither a dataset directory" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "r.html").exists()


def test_a_damaged_dataset_is_refused_naming_the_file(tmp_path, rebuilt):
    import shutil

    copy = tmp_path / "damaged"
    shutil.copytree(rebuilt, copy)
    victim = next(p for p in sorted(copy.glob("results-*.parquet")))
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same size, one byte changed: only the sha256 can tell
    victim.write_bytes(bytes(raw))
    res = CliRunner().invoke(main, ["report", str(copy), "-o", str(tmp_path / "r.html")])
    assert res.exit_code == 1 and victim.name in res.output and "Traceback" not in res.output
    assert not (tmp_path / "r.html").exists()


def test_watching_is_refused_for_a_dataset(tmp_path, rebuilt):
    res = CliRunner().invoke(main, ["report", str(rebuilt), "-o", str(tmp_path / "r.html"), "--watch", "5"])
    assert res.exit_code == 1 and "watching is for a build in progress" in res.output


def test_the_cli_writes_a_dataset_report_and_says_where(tmp_path, rebuilt):
    res = CliRunner().invoke(main, ["report", str(rebuilt), "-o", str(tmp_path / "r.html")])
    assert res.exit_code == 0, res.output
    assert res.output.startswith(f"wrote {tmp_path / 'r.html'} (dataset report, ")


def test_the_class_members_the_page_derives_are_the_official_classes(published):
    """The page groups cells by the representative column of the space block: check that column."""
    data, blobs = published
    sp = data["space"]
    cols = unpack(*blobs["space"], sp["enc"], sp["n"])
    assert np.array_equal(cols[7], np.asarray(representative_indices(), dtype=float))
    assert int((cols[6] == 0).sum()) == 341  # dead cells: no live edge
