"""The README's main job, ``rb201 demo``, on a reduced build (same code path, fewer images and epochs)."""

from __future__ import annotations

from click.testing import CliRunner
from test_report import page_data

from robustbench201.cli import main
from robustbench201.demo import run_demo


def test_demo_builds_merges_validates_and_queries(tmp_path):
    import mlxtend  # noqa: F401 - part of the test extra

    report = run_demo(tmp_path / "demo", archs=(1462, 0), epochs=1, n_test=20, progress=False)
    names = [s.name for s in report.steps]
    assert names == [
        "query the shipped table",
        "train and evaluate on MNIST-5k",
        "merge and validate",
        "query the built dataset",
        "write the HTML reports",
    ]
    table = "\n".join(report.steps[0].lines)
    assert "0.893" in table and "#655" in table
    result = report.steps[-2].lines
    assert any(line.split()[0] == "1462" for line in result[2:4])
    assert (tmp_path / "demo" / "dataset" / "manifest.json").is_file()
    # the last step: the reports of the shipped table, of the build while it ran and after, of the built dataset
    reports = tmp_path / "demo" / "reports"
    printed = "\n".join(report.steps[-1].lines)
    for name, kind in (
        ("jung2023", "published"),
        ("build-during", "build"),
        ("build", "build"),
        ("dataset", "dataset"),
    ):
        assert str(reports / f"{name}.html") in printed and page_data(reports / f"{name}.html")["source_kind"] == kind
    during, after = page_data(reports / "build-during.html"), page_data(reports / "build.html")
    assert 1 <= during["totals"]["cells"]["done"] <= 2 and after["totals"]["cells"]["done"] == 2  # the first commit
    # a second run resumes: nothing is trained or evaluated again, and the shipped table's report is not rewritten
    again = run_demo(tmp_path / "demo", archs=(1462, 0), epochs=1, n_test=20, progress=False)
    assert "0 evaluated, 2 already done" in "\n".join(again.steps[1].lines)
    assert again.steps[-2].lines == result
    assert "already written by this rb201" in again.steps[-1].lines[0]
    assert "the build while it ran: none (every cell was done before this run)" in again.steps[-1].lines


def test_demo_cli_table_only():
    res = CliRunner().invoke(main, ["demo", "--table-only"])
    assert res.exit_code == 0, res.output
    assert "query the shipped table" in res.output and "#655" in res.output


def test_the_demo_works_outside_the_source_tree_by_default(tmp_path, monkeypatch):
    from robustbench201.demo import default_out

    monkeypatch.setenv("RB201_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    assert default_out() == tmp_path / "cache" / "demo"
    res = CliRunner().invoke(main, ["demo", "--table-only"])
    assert res.exit_code == 0, res.output
    assert str(tmp_path / "cache" / "demo") in res.output
    assert not (tmp_path / "rb201-demo").exists()
