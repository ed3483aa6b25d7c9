"""``rb201 query``, ``rb201 table`` and ``rb201 import-jung`` through click's CliRunner."""

from __future__ import annotations

import csv
import io
import json

from click.testing import CliRunner
from test_jung_import import write_fixture

from robustbench201.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_query_table_fits_100_columns():
    res = run("query", "13433", "--dataset", "cifar10")
    assert res.exit_code == 0, res.output
    assert "0.336" in res.output and "eps (1/255)" in res.output
    assert max(len(line) for line in res.output.splitlines()) <= 100


def test_query_json_and_csv():
    res = run("query", "13433", "-d", "cifar10", "--format", "json")
    assert json.loads(res.output)["values"]["cifar10"]["pgd@1"] == 0.336
    res = run("query", "13433", "-d", "cifar10", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(res.output)))
    assert any(r["column"] == "pgd@1" and float(r["epsilon"]) == 1 and float(r["value"]) == 0.336 for r in rows)


def test_query_bad_input():
    res = run("query", "not-an-arch")
    assert res.exit_code != 0 and "cannot read an architecture" in res.output and "Traceback" not in res.output
    res = run("query", "1", "--dataset", "svhn")
    assert res.exit_code != 0 and "cifar10" in res.output


def test_table_where_sort_limit():
    res = run(
        "table",
        "-d",
        "cifar10",
        "-c",
        "clean,fgsm@1,params",
        "--where",
        "params<0.5 and clean>0.9",
        "--sort",
        "fgsm@1",
        "--desc",
        "--limit",
        "5",
        "--format",
        "csv",
    )
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.output)))
    assert len(rows) == 5
    assert all(float(r["params"]) < 0.5 and float(r["clean"]) > 0.9 for r in rows)
    f = [float(r["fgsm@1"]) for r in rows]
    assert f == sorted(f, reverse=True)
    res = run("table", "-c", "clean", "--sort", "clean", "--desc", "--limit", "1", "--format", "json")
    assert json.loads(res.output)["rows"][0] == {"arch_index": 13714, "clean": 0.946}
    res = run("table", "-c", "clean,pgd@1", "--limit", "3")
    assert res.exit_code == 0 and "(3 rows of 6466 matching; 6466 of 6466 classes of cifar10 have a value" in res.output


def test_table_bad_input():
    for args, msg in (
        (["--where", "__import__('os')"], "cannot read filter clause"),
        (["--where", "nope<1"], "unknown key 'nope'"),
        (["-c", "pgd@1.5"], "no epsilon 1.5 for pgd on cifar10"),
        (["--sort", "fog:9"], "cannot read column name"),
    ):
        res = run("table", *args)
        assert res.exit_code != 0 and msg in res.output, (args, res.output)


def test_import_jung_cli_and_source(tmp_path):
    src = write_fixture(tmp_path / "orig")
    res = run("import-jung", str(src), "--out", str(tmp_path / "out"))
    assert res.exit_code == 0, res.output
    assert "wrote 39 rows and 12 arrays" in res.output
    res = run("query", "2", "-d", "cifar10", "--source", str(tmp_path / "out"), "--format", "json")
    assert json.loads(res.output)["values"]["cifar10"]["fog:5"] == 0.38
    (src / "meta.json").unlink()
    res = run("import-jung", str(src), "--out", str(tmp_path / "out2"))
    assert res.exit_code != 0 and "meta.json" in res.output


# ---- an epsilon written as a fraction: one line, the same hint on the command line and in Python -----------------
FRACTION_HINT = "epsilons are in units of 1/255: did you mean 8?"


def test_an_epsilon_written_as_a_fraction_gets_one_hint_everywhere_on_the_command_line():
    for args in (
        ["table", "-c", "pgd@8/255"],
        ["table", "-c", "pgd@0.0314"],
        ["table", "-c", "clean", "--sort", "pgd@8/255"],
        ["table", "--where", "pgd@8/255>0.3"],
        ["query", "13433", "-c", "pgd@8/255"],
        ["query", "13433", "-d", "cifar10", "-c", "pgd@0.0314"],
        ["compare", "--to", "jung2023", "-c", "pgd@8/255"],
        ["search", "table", "--objective", "pgd@8/255", "--budget", "5", "--seeds", "1"],
        ["search", "table", "--constraint", "pgd@8/255>0.1", "--budget", "5", "--seeds", "1"],
    ):
        if args[0] == "compare":
            args = [args[0], _a_dataset(), *args[1:]]
        res = run(*args)
        assert res.exit_code != 0 and FRACTION_HINT in res.output, (args, res.output)
        assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1, (args, res.output)


_DATASET: list[str] = []


def _a_dataset() -> str:
    """A small dataset directory of published rows (made once)."""
    if not _DATASET:
        import tempfile
        from pathlib import Path

        from dataset_kinds import write_imported

        _DATASET.append(str(write_imported(Path(tempfile.mkdtemp(prefix="rb201-frac-")) / "ds")))
    return _DATASET[0]


def test_an_epsilon_written_as_a_fraction_gets_the_same_hint_in_python():
    import pytest

    import robustbench201 as rb201
    from robustbench201.errors import Rb201Error

    r = rb201.query(13433, "cifar10")
    for call in (
        lambda: r.robust("pgd", eps=8 / 255),
        lambda: r.robust("pgd", eps="8/255"),
        lambda: r.robust("pgd", eps=0.0314),
        lambda: r.value("pgd@8/255"),
        lambda: r.value("pgd", eps=8 / 255),
        lambda: rb201.query_many(range(3), "pgd@8/255", "cifar10"),
        lambda: rb201.query_many(range(3), "pgd@0.0314", "cifar10"),
        lambda: rb201.table("cifar10", columns=["clean", "pgd@8/255"]),
        lambda: rb201.load(dataset="cifar10", columns=["pgd@8/255"]),
    ):
        with pytest.raises(Rb201Error, match=r"epsilons are in units of 1/255: did you mean 8\?"):
            call()
