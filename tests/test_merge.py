"""Merging shards into a dataset directory, and validating it (no torch: shard files are written directly)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

import robustbench201 as rb201
from robustbench201.atomic import WriteError
from robustbench201.errors import DataIntegrityError
from robustbench201.store.merge import MergeConflictError, merge_datasets
from robustbench201.store.schema import SORT_COLUMNS, Row, array_path
from robustbench201.store.shardfile import write_arch_files
from robustbench201.store.validate import validate_dataset

SPEC_A = ("aaaa1111", '{"name": "a"}')
SPEC_B = ("bbbb2222", '{"name": "b"}')


def rows_for(idx: int, dataset: str = "cifar10", spec=SPEC_A, shift: float = 0.0) -> list[Row]:
    common = dict(arch_index=idx, dataset=dataset, seed=777, weights="nb201-200ep", spec_hash=spec[0], n=100)
    out = [Row(family="clean", key="clean", measure="accuracy", value=0.5 + idx / 1e5 + shift, **common)]
    for eps in (0.5, 1.0, 8.0):
        out.append(
            Row(
                family="adversarial",
                key="fgsm",
                norm="Linf",
                epsilon=eps,
                semantics="per-epsilon",
                measure="accuracy",
                value=0.4 / eps,
                **common,
            )
        )
    return out


def make_shard(d, archs, dataset="cifar10", spec=SPEC_A, shift=0.0, arrays=True):
    d.mkdir(parents=True, exist_ok=True)
    for i in archs:
        arr = {}
        if arrays:
            key = array_path(dataset, i, "clean", "clean", "confusion", seed=777, weights="nb201-200ep")
            arr[key] = np.full((3, 3), i + int(shift * 10), dtype=np.int64)
        write_arch_files(d, i, rows_for(i, dataset, spec, shift), arr, spec[1])
    return d


def read_all(ds):
    import pandas as pd

    m = json.loads((ds / "manifest.json").read_text())
    files = [ds / f["path"] for f in m["files"] if f["kind"] == "results"]
    return pd.concat([pq.read_table(p).to_pandas() for p in files], ignore_index=True), m


def test_overlapping_shards_merge_into_sorted_deduplicated_valid_dataset(tmp_path):
    a = make_shard(tmp_path / "s1", [5, 1, 9])
    (a / "manifest.json").write_text(json.dumps({"format": "rb201-shard"}))  # a single shard dir as input
    b = make_shard(tmp_path / "s2", [9, 12])
    c = make_shard(tmp_path / "s3", [3], dataset="cifar100")
    rep = merge_datasets([a, b, c], tmp_path / "ds", max_rows_per_file=6)
    assert rep.rows_in == 6 * 4 and rep.rows_out == 5 * 4 and rep.identical_dropped == 4 and rep.conflicts == 0
    df, m = read_all(tmp_path / "ds")
    assert len(df) == 20 and not df.duplicated(subset=["arch_index", "dataset", "key", "epsilon"]).any()
    # rows all on the test split are stored as schema v1 (no split column), as before version 2 existed
    assert "split" not in df.columns
    key = df[[c for c in SORT_COLUMNS if c != "split"]].fillna(-1).to_records(index=False).tolist()
    assert key == sorted(key)
    # a dataset with arrays is version 3 (packed arrays); its rows stay schema v1
    assert m["format"] == "rb201-dataset" and m["schema_version"] == "3" and list(m["specs"]) == [SPEC_A[0]]
    results = [f for f in m["files"] if f["kind"] == "results"]
    assert len(results) == 4 and {f["dataset"] for f in results} == {"cifar10", "cifar100"}  # 16 + 4 rows, 6 max
    assert np.isnan(df.loc[df.family == "clean", "epsilon"]).all()
    assert {f["dataset"]: f["arrays"] for f in m["files"] if f["kind"] == "arrays"} == {"cifar10": 4, "cifar100": 1}
    k = array_path("cifar10", 9, "clean", "clean", "confusion", seed=777, weights="nb201-200ep")
    assert rb201.Dataset(tmp_path / "ds").arrays(9, "cifar10")[k].tolist() == [[9] * 3] * 3
    assert rep.arrays == 5  # 4 cifar10 archs + 1 cifar100
    v = validate_dataset(tmp_path / "ds")
    assert v.ok, v.problems
    assert v.rows == 20 and v.coverage is not None
    lines = "\n".join(v.lines())
    assert "cifar10: 4/6466 representatives" in lines and "missing representatives" in lines


def test_conflicting_duplicates_are_refused_unless_first_is_chosen(tmp_path):
    a = make_shard(tmp_path / "s1", [1, 3])
    b = make_shard(tmp_path / "s2", [3, 5], shift=0.25)
    with pytest.raises(MergeConflictError, match="conflicting"):
        merge_datasets([a, b], tmp_path / "ds")
    assert not (tmp_path / "ds").exists()
    rep = merge_datasets([a, b], tmp_path / "ds", on_conflict="first")
    assert rep.conflicts == 1 + 1  # one row key (clean accuracy of 3) + one array
    df, _ = read_all(tmp_path / "ds")
    clean3 = df[(df.arch_index == 3) & (df.family == "clean")]["value"].tolist()
    assert clean3 == [pytest.approx(0.5 + 3 / 1e5)]  # the first input wins
    assert validate_dataset(tmp_path / "ds").ok


def test_mixed_specs_are_refused_unless_allowed(tmp_path):
    a = make_shard(tmp_path / "s1", [1])
    b = make_shard(tmp_path / "s2", [3], spec=SPEC_B)
    with pytest.raises(MergeConflictError, match="mixes evaluation specs"):
        merge_datasets([a, b], tmp_path / "ds")
    rep = merge_datasets([a, b], tmp_path / "ds", allow_mixed_specs=True)
    _, m = read_all(tmp_path / "ds")
    assert set(m["specs"]) == {SPEC_A[0], SPEC_B[0]} and m["specs"][SPEC_B[0]] == {"name": "b"}
    assert rep.specs == sorted([SPEC_A[0], SPEC_B[0]])


def test_merge_refuses_a_truncated_shard_file_and_an_existing_output(tmp_path):
    a = make_shard(tmp_path / "s1", [1, 3])
    p = a / "arch-00003.parquet"
    p.write_bytes(p.read_bytes()[:50])
    with pytest.raises(DataIntegrityError, match="arch-00003.parquet"):
        merge_datasets([a], tmp_path / "ds")
    (tmp_path / "exists").mkdir()
    with pytest.raises(WriteError, match="already exists"):
        merge_datasets([make_shard(tmp_path / "s2", [1])], tmp_path / "exists")


def test_a_dataset_directory_can_be_merged_again(tmp_path):
    merge_datasets([make_shard(tmp_path / "s1", [1, 3])], tmp_path / "ds1")
    rep = merge_datasets([tmp_path / "ds1", make_shard(tmp_path / "s2", [3, 5])], tmp_path / "ds2")
    assert rep.rows_out == 12 and rep.arrays == 3
    assert validate_dataset(tmp_path / "ds2").ok


def test_an_architecture_in_two_inputs_is_compared_and_written_once_whatever_the_file_size(tmp_path):
    """With tiny arrays files every architecture gets its own; architectures 3 and 5 come in both inputs: their
    arrays are compared (a conflict is found, identical ones are dropped) and written once, the first input's."""
    a = make_shard(tmp_path / "s1", [1, 3, 5])
    b = make_shard(tmp_path / "s2", [3, 5, 7])
    rep = merge_datasets([a, b], tmp_path / "ds", max_array_bytes=1)
    _, m = read_all(tmp_path / "ds")
    assert rep.arrays == 4 and len([f for f in m["files"] if f["kind"] == "arrays"]) == 4
    assert validate_dataset(tmp_path / "ds").ok
    c = make_shard(tmp_path / "s3", [5], shift=0.5)
    c5 = array_path("cifar10", 5, "clean", "clean", "confusion", seed=777, weights="nb201-200ep")
    rep = merge_datasets([a, c], tmp_path / "ds3", max_array_bytes=1, on_conflict="first")
    assert rep.conflicts == 1 + 1  # the clean accuracy of 5 and its confusion matrix
    got = rb201.Dataset(tmp_path / "ds3").arrays(5)
    assert list(got) == [c5] and got[c5].tolist() == [[5] * 3] * 3  # the first input's matrix, once


@pytest.mark.parametrize("damage", ["truncate", "modify", "unlisted", "missing", "manifest"])
def test_validate_detects_damage(tmp_path, damage):
    merge_datasets([make_shard(tmp_path / "s1", [1, 3, 5])], tmp_path / "ds")
    ds = tmp_path / "ds"
    target = ds / "results-000.parquet"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:-7])
        expect = "bytes"
    elif damage == "modify":
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
        expect = "sha256"
    elif damage == "unlisted":
        (ds / "results-999.parquet").write_bytes(b"x")
        expect = "not listed"
    elif damage == "missing":
        (ds / "arrays-000.h5").unlink()
        expect = "missing"
    else:
        m = json.loads((ds / "manifest.json").read_text())
        m["schema_version"] = "0"
        (ds / "manifest.json").write_text(json.dumps(m))
        expect = "schema version"
    rep = validate_dataset(ds)
    assert not rep.ok and any(expect in p for p in rep.problems), rep.problems
    with pytest.raises(DataIntegrityError):
        rep.raise_if_bad()


def test_merge_refuses_a_shard_file_of_another_schema_version(tmp_path):
    d = make_shard(tmp_path / "s1", [1])
    p = d / "arch-00001.parquet"
    table = pq.read_table(p)
    meta = dict(table.schema.metadata)
    meta[b"rb201.schema_version"] = b"0"
    pq.write_table(table.replace_schema_metadata(meta), p)
    with pytest.raises(DataIntegrityError, match="schema version '0'"):
        merge_datasets([d], tmp_path / "ds")


def test_validate_counts_rows_repeated_across_files_and_reads_files_in_batches(tmp_path, monkeypatch):
    from robustbench201.store import validate
    from robustbench201.store.dataset import write_dataset_dir
    from robustbench201.store.schema import rows_to_table

    parts = {"a": rows_to_table(rows_for(1) + rows_for(3)), "b": rows_to_table(rows_for(3) + rows_for(5))}
    write_dataset_dir(tmp_path / "d", parts, name="d", created="x", specs={SPEC_A[0]: {}})
    real = validate._key_batches
    monkeypatch.setattr(validate, "_key_batches", lambda p: real(p, rows=3))  # batches smaller than a cell's rows
    rep = validate_dataset(tmp_path / "d")
    assert rep.duplicates == 4 and rep.problems == ["4 duplicate rows (same key columns)"]
    (cov,) = rep.coverage.datasets
    assert (cov.dataset, cov.archs, cov.columns, cov.incomplete) == ("cifar10", 3, 4, [])
