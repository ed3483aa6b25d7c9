"""Text tables: one owner of how a column is displayed (``column_display``), fixed decimals per kind, units, dead
cells last whatever the sort, and notes under columns that carry no information."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from robustbench201.cli import main
from robustbench201.space import Arch
from robustbench201.tables.formats import FORMATS, column_display, column_title, format_value, render


@pytest.mark.parametrize(
    "name, kind, decimals, unit",
    [
        ("clean", "accuracy", 3, ""),
        ("fgsm@1", "accuracy", 3, ""),
        ("pgd@8/cumulative", "accuracy", 3, ""),
        ("valid/pgd@8", "accuracy", 3, ""),
        ("fog:3", "accuracy", 3, ""),
        ("pgd@1/confidence_pred", "accuracy", 3, ""),
        ("fog:5/ece", "accuracy", 3, ""),
        ("nb201_test_accuracy", "accuracy", 3, ""),
        ("ibp@1", "accuracy", 3, ""),
        ("params", "params", 3, "M"),
        ("flops", "flops", 2, "M"),
        ("edgegpu_latency", "latency", 3, "ms"),
        ("fpga_energy", "energy", 3, "mJ"),
        ("ibp@1/margin_lb", "margin", 3, ""),
        ("synflow", "score", 4, ""),
        ("jacobian", "score", 4, ""),
        ("arch_index", "integer", 0, ""),
        ("tau", "statistic", 3, ""),
        ("regret", "statistic", 4, ""),
    ],
)
def test_each_column_kind_has_its_decimals_and_unit(name, kind, decimals, unit):
    d = column_display(name)
    assert (d.kind, d.decimals, d.unit) == (kind, decimals, unit)


def test_values_keep_their_trailing_zeros_and_units():
    assert format_value("fgsm@1", 0.35) == "0.350"
    assert format_value("clean", 0.1) == "0.100"
    assert format_value("params", 0.129306) == "0.129 M"
    assert format_value("edgegpu_latency", 6.4191) == "6.419 ms"
    assert format_value("ibp@1/margin_lb", -1.069e8) == "-1.07e+08"
    assert format_value("arch_index", 42) == "42"
    assert format_value("clean", float("nan")) == ""
    text = render(["arch_index", "clean", "params"], [[0, 0.35, 0.129306], [1, 0.1, 1.5]])
    assert text.splitlines()[1].split() == ["0", "0.350", "0.129", "M"]
    # CSV and JSON carry the stored values, unformatted
    assert render(["clean"], [[0.35]], "csv") == "clean\n0.35"
    assert json.loads(render(["clean"], [[float("nan")]], "json")) == [{"clean": None}]


def test_column_titles_are_words():
    assert column_title("pgd@8") == "PGD, eps 8/255"
    assert column_title("fgsm@1/cumulative") == "FGSM, eps 1/255, cumulative"
    assert column_title("gaussian_noise:3") == "Gaussian noise, severity 3"
    assert column_title("edgegpu_latency") == "Edge GPU latency"
    assert column_title("aa_apgd-ce@1") == "APGD-CE, eps 1/255"


def run(*args: str) -> str:
    res = CliRunner().invoke(main, list(args))
    assert res.exit_code == 0, res.output
    return res.stdout


@pytest.mark.parametrize("column, order", [("edgegpu_latency", "--asc"), ("clean", "--desc"), ("clean", "--asc"),
                                           ("params", "--asc")])  # fmt: skip
def test_dead_cells_come_last_whatever_the_sort(column, order):
    out = run("table", "-c", f"clean,{column}", "--sort", column, order, "--limit", "0", "--format", "csv")
    df = pd.read_csv(io.StringIO(out))
    dead = np.array([Arch.from_index(int(i)).is_dead for i in df["arch_index"]])
    assert dead.any() and not dead[: (~dead).sum()].any() and dead[(~dead).sum() :].all()
    live = df[~dead][column].dropna().to_numpy()
    assert (np.diff(live) >= 0).all() if order == "--asc" else (np.diff(live) <= 0).all()


def test_text_tables_use_fixed_decimals_and_units():
    out = run("table", "-c", "clean,fgsm@1,params,edgegpu_latency", "--limit", "5")
    rows = [ln.split() for ln in out.splitlines()[1:6]]
    for r in rows:
        assert len(r[1]) == 5 and len(r[2]) == 5 and r[4] == "M" and r[6] == "ms", r  # 0.xxx, unit after the number


def test_a_column_without_information_gets_a_note(tmp_path):
    from dataset_kinds import write_smoke

    src = str(write_smoke(tmp_path / "smoke"))
    out = run("table", "--source", src)
    assert "ibp@1: 0.000 in all 4 rows: IBP certifies no test point at eps 1/255" in out
    assert "certified margin lower bound ibp@1/margin_lb runs from -" in out
    doc = json.loads(run("table", "--source", src, "--format", "json"))
    assert any(n.startswith("ibp@1: 0.000") for n in doc["notes"]) and doc["summary"].startswith("4 rows")
    md = run("table", "--source", src, "--format", "markdown")
    assert "- ibp@1: 0.000 in all 4 rows" in md


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_of_a_table(fmt):
    out = run("table", "-c", "clean,params", "--limit", "3", "--format", fmt)
    if fmt == "csv":
        assert list(pd.read_csv(io.StringIO(out)).columns) == ["arch_index", "clean", "params"]
    elif fmt == "json":
        assert len(json.loads(out)["rows"]) == 3
    else:
        assert "0.129" in out
