"""The dataset-directory format: integrity on read (sha256, cheaply on repeated opens), every row kind queryable
through its wide name (both semantics), strict manifests, and the bad inputs users meet, as one-line errors."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import robustbench201 as rb201
from robustbench201 import Dataset
from robustbench201.cli import main
from robustbench201.errors import DataIntegrityError, Rb201Error
from robustbench201.store import integrity
from robustbench201.store.dataset import DatasetDir, parse_manifest, write_dataset_dir
from robustbench201.store.schema import Row, parse_wide_name, rows_to_table, wide_name

ARCHS = (0, 1462, 10)  # a mixed cell, the all-3x3 cell, a dead cell (all representatives)


def _rows() -> list[Row]:
    """One row of every kind a run writes, for three cells: clean, per-epsilon and cumulative attacks (with a
    non-accuracy measure too), worst case, corruption, surrogate, certified bound."""
    out = []
    for a in ARCHS:
        base = {"arch_index": a, "dataset": "mnist5k", "seed": 777, "weights": "train-3ep", "spec_hash": "abc"}
        v = 0.1 + a / 20000
        out.append(Row(family="clean", key="clean", measure="accuracy", value=0.9 - v, n=50, **base))
        for sem, shift in (("per-epsilon", 0.0), ("cumulative", -0.05)):
            for eps in (1.0, 8.0):
                for meas, val in (("accuracy", 0.5 - v + shift - eps / 100), ("confidence_pred", 0.7)):
                    out.append(
                        Row(
                            family="adversarial",
                            key="pgd",
                            measure=meas,
                            value=val,
                            n=50,
                            norm="Linf",
                            epsilon=eps,
                            semantics=sem,
                            **base,
                        )  # fmt: skip
                    )
            out.append(
                Row(
                    family="adversarial",
                    key="worst_case",
                    measure="accuracy",
                    value=0.3 - v + shift,
                    n=50,
                    norm="Linf",
                    epsilon=8.0,
                    semantics=sem,
                    **base,
                )  # fmt: skip
            )
        out.append(Row(family="corruption", key="fog", measure="accuracy", value=0.6 - v, n=50, severity=3, **base))
        out.append(Row(family="surrogate", key="jacobian", measure="value", value=0.0 if a == 10 else 2.5, **base))
        out.append(
            Row(
                family="certified", key="ibp", measure="accuracy", value=0.2 - v, n=50, norm="Linf", epsilon=1.0, **base
            )  # fmt: skip
        )
    return out


@pytest.fixture()
def built(tmp_path: Path) -> Path:
    out = tmp_path / "ds"
    write_dataset_dir(out, {"run": rows_to_table(_rows())}, name="ds", created="2024-01-01T00:00:00Z")
    return out


# ---- every row kind round-trips through its wide name ------------------------------------------------------
def test_every_row_kind_round_trips_through_its_wide_name(built):
    rows = _rows()
    d = Dataset(built)
    df = d.table("mnist5k")
    for r in rows:
        name = wide_name(r.key, r.epsilon, r.severity, r.measure, r.semantics)
        parsed = parse_wide_name(name)
        assert (parsed.key, parsed.severity) == (r.key, r.severity)
        assert (math.isnan(parsed.epsilon) and math.isnan(r.epsilon)) or parsed.epsilon == r.epsilon
        assert parsed.semantics == ("cumulative" if r.semantics == "cumulative" else "")
        assert parsed.measure == (None if r.measure in ("accuracy", "value") else r.measure)
        idx = d.index("mnist5k")
        shown = idx.display[idx.col[name]]  # per-epsilon columns with a differing cumulative twin say so
        assert shown == (f"{name.split('/')[0]}/per-epsilon" if r.semantics == "per-epsilon" and r.measure == "accuracy"
                         and r.key == "pgd" else shown)  # fmt: skip
        assert df.loc[r.arch_index, shown] == r.value, name  # table() column
        assert d.value(r.arch_index, shown, "mnist5k") == r.value  # by the name shown
        if shown == name:
            assert d.value(r.arch_index, name, "mnist5k") == r.value  # by the stored name
    q = d.query(1462, "mnist5k")
    per = next(r for r in rows if r.arch_index == 1462 and r.key == "pgd" and r.epsilon == 8.0
               and r.semantics == "per-epsilon" and r.measure == "accuracy")  # fmt: skip
    cum = next(r for r in rows if r.arch_index == 1462 and r.key == "pgd" and r.epsilon == 8.0
               and r.semantics == "cumulative" and r.measure == "accuracy")  # fmt: skip
    with pytest.raises(Rb201Error, match=r"holds both .* 'pgd@8/per-epsilon' .* or 'pgd@8/cumulative'"):
        q.robust("pgd", 8)  # both kinds held and they differ: the reader asks
    assert q.robust("pgd", 8, semantics="per-epsilon") == per.value
    assert q.robust("pgd", 8, semantics="cumulative") == cum.value
    assert q.value("pgd@8/cumulative") == cum.value
    assert q.value("pgd@8/per-epsilon") == per.value
    assert q.value("pgd@8/cumulative/confidence_pred") == 0.7
    assert q.value("ibp@1") == pytest.approx(0.2 - (0.1 + 1462 / 20000))
    assert "pgd@8/cumulative" in q.summary() or "pgd (cumulative)" in q.summary()


def test_the_cli_names_both_semantics(built):
    res = CliRunner().invoke(
        main,
        [
            "table",
            "--source",
            str(built),
            "-d",
            "mnist5k",
            "-c",
            "pgd@1/per-epsilon,pgd@1/cumulative",
            "--format",
            "csv",
            "--where",
            "pgd@1/cumulative>=0",
        ],
    )
    assert res.exit_code == 0, res.output
    header, *lines = res.output.strip().splitlines()
    assert header == "arch_index,pgd@1/per-epsilon,pgd@1/cumulative"
    assert len(lines) == len(ARCHS)
    for line in lines:
        _, per, cum = line.split(",")
        assert float(cum) < float(per)
    res = CliRunner().invoke(main, ["query", "1462", "--source", str(built), "--format", "json"])
    assert res.exit_code == 0, res.output
    values = json.loads(res.output)["values"]["mnist5k"]
    assert "pgd@1/per-epsilon" in values and "pgd@1/cumulative" in values
    res = CliRunner().invoke(main, ["table", "--source", str(built), "-c", "pgd@1"])
    assert res.exit_code != 0 and "holds both" in res.output and len(res.output.strip().splitlines()) == 1


def test_asking_for_the_semantics_a_dataset_lacks_names_what_it_holds(tmp_path):
    rows = [r for r in _rows() if r.semantics != "per-epsilon"]  # a cumulative-only run (smoke, full presets)
    write_dataset_dir(tmp_path / "c", {"run": rows_to_table(rows)}, name="c", created="x")
    q = Dataset(tmp_path / "c").query(0, "mnist5k")
    assert q.robust("pgd", 1) == q.value("pgd@1/cumulative")  # the only kind it holds
    assert q.value("pgd@1") == q.value("pgd@1/cumulative")
    with pytest.raises(Rb201Error, match=r"only the cumulative worst case: ask for 'pgd@1/cumulative'"):
        q.robust("pgd", 1, semantics="per-epsilon")
    with pytest.raises(Rb201Error, match=r"units of 1/255: did you mean 8\?"):
        q.robust("pgd", 8 / 255, semantics="cumulative")
    with pytest.raises(Rb201Error, match="unknown semantics 'nested'"):
        q.robust("pgd", 1, semantics="nested")


# ---- integrity on read --------------------------------------------------------------------------------------
def _flip_byte_in_place(path: Path, keep_mtime: bool = True) -> None:
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size


@pytest.mark.parametrize("kind", ["results", "wide"])
def test_a_file_changed_in_place_with_its_size_and_mtime_kept_is_refused(built, kind):
    d = Dataset(built)
    d.query(0, "mnist5k")  # verified once: a stamp exists now
    d.read_results()
    target = next(built.glob(f"{kind}-*.parquet"))
    _flip_byte_in_place(target)
    integrity.forget_stamps()
    fresh = Dataset(built)
    with pytest.raises(DataIntegrityError, match=rf"{target.name}.*sha256"):
        fresh.query(0, "mnist5k") if kind == "wide" else fresh.read_results()
    if kind == "wide":
        with pytest.raises(DataIntegrityError, match=target.name):
            rb201.query(0, "mnist5k", source=str(built))
        res = CliRunner().invoke(main, ["query", "0", "--source", str(built)])
        assert res.exit_code != 0 and target.name in res.output and "Traceback" not in res.output
    else:
        with pytest.raises(DataIntegrityError, match=target.name):
            rb201.load(source=str(built))


def test_a_truncated_or_missing_file_is_refused_on_opening(built):
    wide = next(built.glob("wide-*.parquet"))
    wide.write_bytes(wide.read_bytes()[:-10])
    with pytest.raises(DataIntegrityError, match="truncated"):
        Dataset(built)
    wide.unlink()
    with pytest.raises(DataIntegrityError, match="missing"):
        Dataset(built)


def test_repeated_opens_trust_an_unchanged_stamp_and_rehash_a_changed_file(built):
    d = DatasetDir.open(built)
    entry = d.manifest.of_kind("results")[0]
    path = built / entry.path
    first = integrity.verify_file(path, entry.sha256, entry.bytes)
    integrity.forget_stamps()  # a new process: only the stamp file is left
    again = integrity.verify_file(path, entry.sha256, entry.bytes)
    assert first.hashed and not again.hashed
    os.utime(path)  # touched, not changed: hashed again, still fine
    assert integrity.verify_file(path, entry.sha256, entry.bytes).hashed
    assert not integrity.verify_file(path, entry.sha256, entry.bytes, use_cache=True).hashed
    assert integrity.verify_file(path, entry.sha256, entry.bytes, use_cache=False).hashed  # rb201 validate


def test_an_unwritable_or_garbled_stamp_cache_only_costs_hashing(built, tmp_path, monkeypatch):
    monkeypatch.setenv("RB201_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / integrity.STAMPS_FILE).write_text("[not json")
    integrity.forget_stamps()
    assert Dataset(built).query(0, "mnist5k").value("clean") > 0
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("RB201_CACHE", str(blocker))
    integrity.forget_stamps()
    assert Dataset(built).query(1462, "mnist5k").value("clean") > 0


def test_the_query_path_stays_fast_and_torch_free_with_verification(built):
    code = (
        "import sys, robustbench201 as rb201; "
        f"print(rb201.query(1462, 'mnist5k', source={str(built)!r}).value('clean')); "
        "assert 'torch' not in sys.modules and 'pandas' not in sys.modules"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout) == pytest.approx(0.9 - 0.1 - 1462 / 20000)


# ---- strict manifests and other bad inputs --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("files", "message"),
    [
        ("not-a-list", "'files' is str"),
        ({"a": 1}, "'files' is dict"),
        ([5], r"files\[0\] is 5"),
        ([{"path": "../x", "kind": "results", "sha256": "0" * 64, "bytes": 1}], "path '../x' is not allowed"),
        ([{"path": "x.parquet", "kind": "table", "sha256": "0" * 64, "bytes": 1}], "kind 'table' is unknown"),
        ([{"path": "x.parquet", "kind": "results", "sha256": "abc", "bytes": 1}], "sha256 'abc'"),
        ([{"path": "x.parquet", "kind": "results", "sha256": "0" * 64, "bytes": "1"}], "'bytes' is '1'"),
    ],
)
def test_malformed_manifests_are_one_line_errors_in_validate_and_merge(built, tmp_path, files, message):
    with pytest.raises(DataIntegrityError, match=message):
        parse_manifest({"format": "rb201-dataset", "schema_version": "1", "files": files})
    doc = json.loads((built / "manifest.json").read_text())
    doc["files"] = files
    (built / "manifest.json").write_text(json.dumps(doc))
    runner = CliRunner()
    res = runner.invoke(main, ["validate", str(built)])
    assert res.exit_code == 1 and "INVALID" in res.output and "Traceback" not in res.output
    res = runner.invoke(main, ["merge", str(built), "--out", str(tmp_path / "m")])
    assert res.exit_code != 0 and "Traceback" not in res.output and "Error:" in res.output
    assert not (tmp_path / "m").exists()
    res = runner.invoke(main, ["query", "0", "--source", str(built)])
    assert res.exit_code != 0 and "Traceback" not in res.output


@pytest.mark.parametrize("text", ["{not json", "5", "[]", '{"attacks": 3}', '{"colour": "red"}'])
def test_a_bad_spec_file_is_a_one_line_error(tmp_path, text):
    spec = tmp_path / "spec.json"
    spec.write_text(text)
    res = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--arch",
            "0",
            "--dataset",
            "mnist5k",
            "--weights",
            "init",
            "--spec",
            str(spec),
            "--out",
            str(tmp_path / "o"),
        ],  # fmt: skip
    )
    assert res.exit_code != 0 and "Traceback" not in res.output, res.output
    assert "spec" in res.output and str(spec) in res.output
    assert not (tmp_path / "o").exists()


def test_a_spec_can_be_reused_from_a_dataset_directory(built, tmp_path):
    from robustbench201.runner.providers import resolve_spec
    from robustbench201.spec import preset

    with pytest.raises(Rb201Error, match="holds 0 evaluation specs"):
        resolve_spec("smoke", str(built))
    doc = json.loads((built / "manifest.json").read_text())
    doc["specs"] = {preset("smoke").hash: json.loads(preset("smoke").to_json())}
    (built / "manifest.json").write_text(json.dumps(doc))
    assert resolve_spec("jung2023", str(built)).hash == preset("smoke").hash


def test_a_registry_that_is_a_list_is_a_one_line_error(tmp_path):
    reg = tmp_path / "registry.json"
    reg.write_text("[1, 2]")
    runner = CliRunner()
    for args in (["download", "x", "--registry", str(reg)], ["download", "--list", "--registry", str(reg)]):
        res = runner.invoke(main, args)
        assert res.exit_code != 0 and "Traceback" not in res.output
        assert "holds a JSON list" in res.output


def test_download_from_a_file_url_mirror(built, tmp_path):
    from robustbench201.published import download, publish

    reg = publish(built, built.resolve().as_uri() + "/", registry=tmp_path / "registry.json")
    out = download("ds", tmp_path / "dl", registry=reg, progressbar=False)
    assert Dataset(out).query(1462, "mnist5k").value("clean") == Dataset(built).query(1462, "mnist5k").value("clean")
    # a mirror missing a file: a clear error, nothing left under the final name
    reg2 = publish(built, (tmp_path / "nowhere").as_uri() + "/", name="gone", registry=tmp_path / "registry.json")
    with pytest.raises(Rb201Error, match="no such file"):
        download("gone", tmp_path / "dl2", registry=reg2, progressbar=False)
    assert not list((tmp_path / "dl2").glob("*.parquet"))
