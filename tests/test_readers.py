"""One product: every reader command (query, table, analyze, search table, compare, status) and the Python API work
on every kind of dataset the project builds (``tests/dataset_kinds.py``: the demo's smoke build with cumulative
values only, a jung2023 build with both semantics, an imported Jung dataset, the embedded table), with their defaults,
in every output format; a bare ``attack@eps`` reads the semantics a dataset holds; empty answers are said."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from dataset_kinds import SMOKE_CELLS, write_imported, write_jung2023, write_smoke

import robustbench201 as rb201
from robustbench201.cli import main
from robustbench201.errors import NoValuesError, Rb201Error
from robustbench201.tables.formats import FORMATS

KINDS = ("smoke", "jung2023", "imported", "embedded")
#: Each kind's first dataset and a cell it holds.
HOLDS = {"smoke": ("mnist5k", 1462), "jung2023": ("cifar10", None), "imported": ("cifar10", None),
         "embedded": ("cifar10", 13433)}  # fmt: skip
_VALUE = re.compile(r"\b\d\.\d{3,4}\b")


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | None]:
    root = tmp_path_factory.mktemp("kinds")
    return {
        "smoke": str(write_smoke(root / "smoke")),
        "jung2023": str(write_jung2023(root / "jung2023")),
        "imported": str(write_imported(root / "imported")),
        "embedded": None,
    }


def run(*args: str, ok: bool = True) -> str:
    """The command's standard output (warnings on standard error are checked where they matter)."""
    res = CliRunner().invoke(main, list(args))
    if ok:
        assert res.exit_code == 0, (args, res.output)
    else:
        assert res.exit_code != 0, (args, res.output)
        assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1, res.output
    return res.stdout if ok else res.output


def _src(sources: dict[str, str | None], kind: str) -> list[str]:
    return [] if sources[kind] is None else ["--source", str(sources[kind])]


def _cell(sources: dict[str, str | None], kind: str) -> int:
    ds, cell = HOLDS[kind]
    if cell is not None:
        return cell
    return int(rb201.Dataset(sources[kind]).index(ds).covered_classes()[1])


def _check(out: str, fmt: str) -> None:
    """Output in ``fmt`` that carries values: JSON parses, CSV is one table pandas reads, text shows numbers."""
    if fmt == "json":
        json.loads(out)
    elif fmt == "csv":
        df = pd.read_csv(io.StringIO(out))
        assert len(df) and len(df.columns) > 1
    else:
        assert _VALUE.search(out), out


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", KINDS)
def test_every_reader_prints_values_of_every_kind_of_dataset_with_its_defaults(sources, kind, fmt):
    src = _src(sources, kind)
    _check(run("query", str(_cell(sources, kind)), *src, "--format", fmt), fmt)
    _check(run("table", *src, "--format", fmt), fmt)
    _check(run("analyze", *src, "--format", fmt), fmt)
    _check(run("search", "table", *src, "--seeds", "3", "--format", fmt), fmt)
    if sources[kind] is not None:
        _check(run("compare", str(sources[kind]), "--to", str(sources[kind]), "--format", fmt), fmt)


@pytest.mark.parametrize("kind", ("smoke", "jung2023", "imported"))
def test_status_describes_a_merged_dataset(sources, kind):
    out = run("status", str(sources[kind]))
    assert "no shards yet" not in out
    assert re.search(r"\d+ of 6466 classes have values", out), out
    doc = json.loads(run("status", str(sources[kind]), "--format", "json"))
    assert doc["datasets"][0]["of_classes"] == 6466
    if kind == "smoke":
        assert doc["datasets"][0]["classes"] == 4 and "cumulative worst case only" in out


# ---- semantics by what a dataset holds ------------------------------------------------------------------------
def test_a_cumulative_only_dataset_answers_bare_names_and_says_so(sources):
    out = run("table", "--source", sources["smoke"], "-c", "clean,fgsm@8", "--sort", "fgsm@8")
    assert out.splitlines()[0].split() == ["arch_index", "clean", "fgsm@8/cumulative"]
    assert "fgsm@8: read as the cumulative worst case" in out
    d = rb201.Dataset(sources["smoke"])
    q = d.query(1462, "mnist5k")
    assert q.robust("fgsm", eps=8) == q.value("fgsm@8/cumulative") == q.robust("fgsm", 8, semantics="cumulative")
    assert list(d.table("mnist5k", columns=["clean", "fgsm@8"]).columns) == [
        "representative",
        "clean",
        "fgsm@8/cumulative",
    ]
    with pytest.raises(Rb201Error, match="only the cumulative worst case"):
        q.robust("fgsm", eps=8, semantics="per-epsilon")
    # the default columns come from the dataset: every one is held
    header = run("table", "--source", sources["smoke"], "--format", "csv").splitlines()[0]
    assert header == "arch_index,clean,fgsm@1/cumulative,pgd@1/cumulative,ibp@1"


def test_a_dataset_with_both_semantics_asks_which_and_names_both(sources):
    out = run("table", "--source", sources["jung2023"], "-c", "fgsm@8", ok=False)
    assert "holds both" in out and "'fgsm@8/per-epsilon'" in out and "'fgsm@8/cumulative'" in out
    out = run("table", "--source", sources["jung2023"], "-c", "fgsm@8/per-epsilon,fgsm@8/cumulative", "--format", "csv")
    df = pd.read_csv(io.StringIO(out))
    assert (df["fgsm@8/cumulative"] <= df["fgsm@8/per-epsilon"]).all()
    q = rb201.query(_cell(sources, "jung2023"), "cifar10", source=sources["jung2023"])
    with pytest.raises(Rb201Error, match="holds both"):
        q.robust("pgd", eps=1)
    assert q.robust("pgd", eps=1, semantics="cumulative") < q.robust("pgd", eps=1, semantics="per-epsilon")
    # the names shown are names that resolve back: every default column, and the JSON of a query
    header = run("table", "--source", sources["jung2023"], "--format", "csv").splitlines()[0].split(",")
    assert "fgsm@1/per-epsilon" in header
    values = json.loads(run("query", str(q.index), "--source", sources["jung2023"], "--format", "json"))["values"]
    for name in values["cifar10"]:
        assert q.value(name) == values["cifar10"][name]
    # the analyses use the per-epsilon values of the published protocol and say so
    assert "attacks: per-epsilon values" in run("analyze", "--source", sources["jung2023"])


def test_equal_semantics_need_no_choice(tmp_path):
    from dataset_kinds import _rows

    from robustbench201.store.dataset import write_dataset_dir
    from robustbench201.store.schema import rows_to_table

    rows = _rows([0, 1462, 655], "mnist5k", ("per-epsilon", "cumulative"), (1,))
    same = [r if r.semantics != "cumulative" or r.epsilon != 1.0 else r.__class__(**{**r.as_dict(), "value": next(
        p.value for p in rows if p.arch_index == r.arch_index and p.key == r.key and p.epsilon == 1.0
        and p.semantics == "per-epsilon")}) for r in rows]  # fmt: skip
    write_dataset_dir(tmp_path / "d", {"run": rows_to_table(same)}, name="d", created="x")
    q = rb201.Dataset(tmp_path / "d").query(1462, "mnist5k")
    assert q.robust("pgd", eps=1) == q.robust("pgd", eps=1, semantics="cumulative")  # equal: no question
    with pytest.raises(Rb201Error, match="holds both"):
        q.robust("pgd", eps=8)  # they differ at eps 8


# ---- empty is said --------------------------------------------------------------------------------------------
def test_a_cell_the_dataset_does_not_hold_is_an_error_naming_what_it_covers(sources):
    out = run("query", "5", "--source", sources["smoke"], ok=False)
    assert "cell 5" in out and "4 of 6466 classes of mnist5k" in out and "1462" in out
    with pytest.raises(NoValuesError, match="4 of 6466 classes of mnist5k"):
        rb201.query(5, source=sources["smoke"])
    # a dataset left out of a query because it lacks the cell is said in the notes
    q = rb201.query(SMOKE_CELLS[0], source=sources["smoke"])
    assert q.datasets == ("mnist5k",)


def test_table_shows_only_cells_with_values_unless_asked(sources):
    out = run("table", "--source", sources["smoke"], "--limit", "0", "--format", "csv")
    assert sorted(pd.read_csv(io.StringIO(out))["arch_index"]) == sorted(SMOKE_CELLS)
    text = run("table", "--source", sources["smoke"])
    assert "4 of 6466 classes of mnist5k have a value in these columns (6462 without one not shown)" in text
    out = run("table", "--source", sources["smoke"], "--include-empty", "--limit", "0", "--format", "csv")
    assert len(pd.read_csv(io.StringIO(out))) == 6466


def test_sorting_by_a_calibration_error_puts_the_smallest_first(sources):
    out = run("table", "--source", sources["smoke"], "-c", "clean,clean/ece", "--sort", "clean/ece", "--format", "csv")
    ece = pd.read_csv(io.StringIO(out))["clean/ece"].tolist()
    assert ece == sorted(ece) and len(ece) == len(SMOKE_CELLS)


def test_analyses_count_their_classes_and_warn_below_the_minimum(sources):
    doc = json.loads(run("analyze", "--source", sources["smoke"], "--format", "json"))
    assert doc["heading"].startswith("mnist5k: 4 of 6466 isomorphism classes have values")
    assert doc["classes_used"]["clean_vs_robust"] == 4 and doc["summary"]
    assert any("fewer than 30" in w for w in doc["warnings"])
    assert "params" in doc["skipped"]  # no cell with two 3x3 and no 1x1 convs: refused, with the reason
    doc = json.loads(run("analyze", "--source", sources["jung2023"], "--format", "json"))
    assert doc["classes"] == 40 and doc["classes_used"]["clean_vs_robust"] == 40
    n = doc["equal_params"]["cells"]
    assert 2 <= n < 30 and doc["warnings"] == [f"equal_params: computed over {n} classes, fewer than 30: indicative "
                                               "only, not a finding"]  # fmt: skip
    csv_out = run("analyze", "--source", sources["jung2023"], "--format", "csv")
    long = pd.read_csv(io.StringIO(csv_out))
    assert list(long.columns) == ["analysis", "x", "y", "statistic", "value", "classes"]
    assert {"clean_vs_robust", "attacks_eps1", "corruptions", "equal_params", "surrogates"} <= set(long["analysis"])


def test_compare_with_nothing_in_common_exits_non_zero(sources):
    out = run("compare", sources["smoke"], "--to", "jung2023", ok=False)
    assert "nothing to compare" in out and "mnist5k (4 of 6466 classes)" in out
    out = run("compare", sources["smoke"], "--to", sources["smoke"])
    assert "equal on every cell" in out and "most different" not in out  # no 'worst' cells when nothing differs


def test_a_search_on_a_table_of_few_classes_searches_those_and_says_so(sources):
    res = CliRunner().invoke(main, ["search", "table", "--source", sources["smoke"]])
    assert res.exit_code == 0, res.output
    assert "nan" not in res.output and "fgsm@1/cumulative" in res.output
    assert "budget 300 cut to 4" in res.output


def test_status_on_an_empty_folder_still_says_no_shards(tmp_path):
    assert "no shards yet" in run("status", str(tmp_path))


def test_writes_into_a_missing_folder_are_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    run("arch", "1462", "--draw", str(tmp_path / "missing" / "cell.png"), ok=False)
    out = run("arch", "1462", "--draw", str(tmp_path / "file" / "cell.png"), ok=False)
    assert "is not a folder" in out
    run("arch", "1462", "--draw", str(tmp_path / "cell.txt"), ok=False)
    out = run("search", "table", "--budget", "10", "--seeds", "2", "--plot", str(tmp_path / "no" / "r.png"), ok=False)
    assert "does not exist" in out
    out = run("analyze", "kendall", "--out", str(tmp_path / "file" / "figs"), ok=False)
    assert "cannot create the folder" in out
    out = run("arch", "1462", "--draw", str(tmp_path / "cell.png"))
    assert (tmp_path / "cell.png").read_bytes()[:4] == b"\x89PNG"
    assert Path(tmp_path / "cell.png").stat().st_size > 1000
