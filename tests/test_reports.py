"""What a researcher sees: output formats, best-first sorting, the unit hint, the analyze summary, the NAS gap to the
optimum, and figures in every format."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

import robustbench201 as rb201
from robustbench201.cli import main
from robustbench201.errors import InvalidChoiceError
from robustbench201.tables.formats import FORMATS, render


def run(*args: str) -> str:
    res = CliRunner().invoke(main, list(args))
    assert res.exit_code == 0, res.output
    return res.output


def test_render_every_format():
    rows = [(655, 0.692, float("nan")), (13714, 0.65, 0.946)]
    text = render(("arch_index", "fgsm@1", "clean"), rows, "text")
    assert text.splitlines()[0].split() == ["arch_index", "fgsm@1", "clean"]  # headers never cut
    md = render(("arch_index", "fgsm@1", "clean"), rows, "markdown").splitlines()
    assert md[0].startswith("| arch_index") and set(md[1]) <= set("|-:") and md[2].startswith("|")
    got = list(csv.reader(io.StringIO(render(("a", "b", "c"), rows, "csv"))))
    assert got == [["a", "b", "c"], ["655", "0.692", ""], ["13714", "0.65", "0.946"]]
    doc = json.loads(render(("a", "b", "c"), rows, "json"))
    assert doc[0] == {"a": 655, "b": 0.692, "c": None}
    with pytest.raises(InvalidChoiceError, match="output format 'xml'"):
        render(("a",), [(1,)], "xml")


def test_table_sorts_best_first_unless_told():
    out = run("table", "-c", "fgsm@1,params", "--sort", "fgsm@1", "--limit", "3", "--format", "csv")
    vals = [float(r["fgsm@1"]) for r in csv.DictReader(io.StringIO(out))]
    assert vals == sorted(vals, reverse=True) and vals[0] == pytest.approx(0.692)  # the optimum, #655
    out = run("table", "-c", "fgsm@1,params", "--sort", "params", "--limit", "3", "--format", "csv")
    params = [float(r["params"]) for r in csv.DictReader(io.StringIO(out))]
    assert params == sorted(params)  # costs: smallest first
    out = run("table", "-c", "fgsm@1", "--sort", "fgsm@1", "--asc", "--limit", "3", "--format", "csv")
    vals = [float(r["fgsm@1"]) for r in csv.DictReader(io.StringIO(out))]
    assert vals == sorted(vals)
    text = run("table", "-c", "clean,fgsm@1,params", "--where", "params<0.5", "--sort", "fgsm@1", "--limit", "10")
    assert "sorted by fgsm@1 descending" in text
    doc = json.loads(run("table", "-c", "clean", "--sort", "clean", "--limit", "2", "--format", "json"))
    assert doc["descending"] is True and doc["rows"][0]["arch_index"] == 13714
    md = run("table", "-c", "clean", "--limit", "2", "--format", "markdown")
    assert md.startswith("| arch_index")


def test_an_epsilon_given_as_a_fraction_gets_the_unit_hint():
    with pytest.raises(InvalidChoiceError, match=r"units of 1/255: did you mean 8\?"):
        rb201.query(13433, "cifar10").robust("pgd", eps=8 / 255)


def test_analyze_prints_the_headline_first_and_never_cuts_headers(tmp_path):
    out = run("analyze", "all", "--dataset", "cifar10", "--out", str(tmp_path))
    lines = out.splitlines()
    assert (
        lines[0].startswith(
            "cifar10: 6466 of 6466 isomorphism classes have values (one row each); attacks: per-epsilon values"
        )
        and lines[2] == "summary"
    )
    headline = lines[3]
    assert "equal parameter count (405 classes" in headline and "21.5% (#7443) to 40.9% (#11693)" in headline
    assert "aa_apgd-ce@1" in out and "aa_square@1" in out  # full attack names in the matrix headers
    assert "flat, excluding" not in out
    assert "0.21 (aa_apgd-ce@1 vs fgsm@1) to 0.70 (aa_apgd-ce@1 vs pgd@1)" in out  # the pairs, not a verdict
    assert len(lines) < 90  # the surrogate section is summarised, the full one is a file
    full = tmp_path / "cifar10_surrogates.csv"
    assert full.is_file() and len(full.read_text().splitlines()) > 100
    for fmt in ("markdown", "csv"):
        assert run("analyze", "params", "--format", fmt)
    doc = json.loads(run("analyze", "params", "--format", "json"))
    assert doc["equal_params"]["cells"] == 405 and doc["equal_params"]["dead_excluded"] == 5


@pytest.mark.parametrize("fmt", ["pdf", "svg"])
def test_figures_in_vector_formats(tmp_path, fmt):
    run("analyze", "kendall", "--dataset", "cifar10", "--out", str(tmp_path), "--figure-format", fmt)
    made = sorted(p.suffix for p in tmp_path.iterdir() if p.suffix != ".csv")
    assert made and set(made) == {f".{fmt}"}
    head = (tmp_path / f"cifar10_robust_vs_eps.{fmt}").read_bytes()[:5]
    assert head == (b"%PDF-" if fmt == "pdf" else b"<?xml")


def test_nas_prints_the_optimum_and_the_gap(tmp_path):
    out = run("search", "table", "--algo", "re", "--objective", "fgsm@1", "--budget", "60", "--seeds", "4",
              "--plot", str(tmp_path / "regret.svg"))  # fmt: skip
    assert "table optimum 0.6920 at #655" in out
    assert "from the optimum (" in out and "runs found the optimum" in out
    assert (tmp_path / "regret.svg").read_bytes().startswith(b"<?xml")
    for fmt in FORMATS:
        assert run("search", "table", "--algo", "rs", "--budget", "20", "--seeds", "2", "--format", fmt)
