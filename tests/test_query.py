"""rb201.query / query_many / table / load / Dataset on the embedded table and on damaged dataset directories."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest

import robustbench201 as rb201
from robustbench201 import default_dataset
from robustbench201.errors import DataIntegrityError, InvalidArchError, InvalidChoiceError
from robustbench201.space import Arch


def test_published_values_of_13433_on_cifar10():
    r = rb201.query(13433, "cifar10")
    assert r.clean_accuracy == 0.893
    assert r.robust("pgd", eps=1) == 0.336
    assert r.value("pgd@1") == 0.336
    assert r.datasets == ("cifar10",)


def test_arch_forms_resolve_to_the_same_record():
    a = Arch.from_index(13433)
    for form in (13433, a, a.string, a.ops, "13433", np.int64(13433)):
        assert rb201.query(form, "cifar10").robust("fgsm", eps=8) == rb201.query(13433, "cifar10").robust("fgsm", 8)


def test_non_representative_uses_its_representative_and_says_so():
    i = next(i for i in range(15625) if Arch.from_index(i).representative.index != i)
    rep = Arch.from_index(i).representative.index
    r = rb201.query(i, "cifar10")
    assert r.representative == rep and not r.is_representative
    assert r.clean_accuracy == rb201.query(rep, "cifar10").clean_accuracy
    assert any(f"representative {rep}" in n for n in r.notes())
    # per-cell columns stay the cell's own (NB201 accuracy of the isomorph was trained separately)
    assert (
        r.value("nb201_test_accuracy")
        == default_dataset().index("cifar10").raw[i, default_dataset().index("cifar10").col["nb201_test_accuracy"]]
    )
    assert f"-> representative {rep}" in repr(r)


def test_all_datasets_when_none_given_are_explicit():
    r = rb201.query(13433)
    assert r.datasets == ("cifar10", "cifar100", "ImageNet16-120")
    clean = r.values("clean")
    assert set(clean) == set(r.datasets) and clean["cifar10"] == 0.893
    assert r.value("clean", dataset="cifar10") == 0.893
    with pytest.raises(InvalidChoiceError, match="holds 3 datasets"):
        r.clean_accuracy  # noqa: B018 - one type per accessor: a float, so the dataset must be named
    with pytest.raises(InvalidChoiceError, match="ImageNet16-120"):
        r.corruption("fog", 3, dataset="ImageNet16-120")


def test_errors_list_what_exists():
    r = rb201.query(13433, "cifar10")
    with pytest.raises(
        InvalidChoiceError, match=r"no epsilon 1.5 for pgd on cifar10; available: 0.1, 0.5, 1, 2, 3, 4, 8"
    ):
        r.robust("pgd", eps=1.5)
    with pytest.raises(InvalidChoiceError, match="available: 1, 2, 3, 4, 5"):
        r.corruption("fog", severity=6)
    with pytest.raises(InvalidChoiceError, match="unknown key 'nope'.*clean"):
        r.value("nope")
    with pytest.raises(InvalidChoiceError, match="needs an epsilon"):
        r.value("pgd")
    with pytest.raises(InvalidChoiceError, match="dataset"):
        rb201.query(1, "svhn")
    with pytest.raises(InvalidArchError, match="0..15624"):
        rb201.query(15625, "cifar10")


def test_result_exports():
    r = rb201.query(13433, "cifar10")
    d = r.to_dict()
    json.dumps(d)
    assert d["values"]["cifar10"]["pgd@1"] == 0.336 and d["arch_index"] == 13433
    df = r.to_frame()
    row = df[(df.column == "fgsm@1")].iloc[0]
    assert row.epsilon == 1.0 and row.family == "adversarial" and row.source == "jung2023"
    text = r.summary()
    assert all(len(line) <= 100 for line in text.splitlines())
    assert "0.336" in text


def test_query_many_is_vectorised_and_consistent():
    idx = np.arange(0, 15625, 7)
    got = rb201.query_many(idx, "fgsm@1", "cifar10")
    assert got.shape == idx.shape
    for k in (0, 5, 100):
        assert got[k] == rb201.query(int(idx[k]), "cifar10").robust("fgsm", 1)
    assert np.array_equal(rb201.query_many(list(idx[:5]), "fgsm@1", "cifar10"), got[:5])
    strings = [Arch.from_index(int(i)).string for i in idx[:3]]
    assert np.array_equal(rb201.query_many(strings, "fgsm@1", "cifar10"), got[:3])
    with pytest.raises(InvalidChoiceError, match="out of range"):
        rb201.query_many(np.array([3, 20000]), "clean", "cifar10")


def test_tables_wide_and_long():
    w = rb201.table("cifar10", columns=["clean", "pgd@1", "params"])
    assert list(w.columns) == ["representative", "clean", "pgd@1", "params"]
    assert len(w) == 15625 and w.loc[13433, "pgd@1"] == 0.336
    assert not w["clean"].isna().any()  # class-level values filled for every member
    long = rb201.load(dataset="cifar10", columns=["pgd@1"])
    assert len(long) == 6466 and set(long.columns) >= {"arch_index", "epsilon", "semantics", "value"}
    assert rb201.table("cifar10", form="long", columns=["clean"]).value.between(0, 1).all()
    with pytest.raises(InvalidChoiceError, match="wide"):
        rb201.table("cifar10", form="tall")


def test_query_path_imports_neither_torch_nor_pandas():
    code = (
        "import sys, robustbench201 as rb201\n"
        "r = rb201.query(13433, 'cifar10'); assert r.robust('pgd', eps=1) == 0.336\n"
        "rb201.query_many(range(100), 'clean', 'cifar10')\n"
        "print(sorted(m for m in ('torch', 'pandas', 'torchvision') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory):
    """A real dataset directory holding a copy of the embedded cost + NB201 parts."""
    from robustbench201.store.dataset import write_dataset_dir

    src = default_dataset()
    t = src.read_results(columns=["params", "nb201_test_accuracy"])
    out = tmp_path_factory.mktemp("ds") / "small"
    write_dataset_dir(out, {"x": t}, name="small", created="2024-01-01T00:00:00Z")
    return out


def test_dataset_directory_as_source(small_dir):
    ds = rb201.Dataset(small_dir)
    assert ds.validate().name == "small"
    r = rb201.query(1462, "cifar10", source=small_dir)
    assert r.value("params") == rb201.query(1462, "cifar10").value("params")
    assert rb201.query(1462, "cifar10", source=ds).value("nb201_test_accuracy") == r.nb201_test_accuracy
    with pytest.raises(InvalidChoiceError, match="available: nb201_test_accuracy, params|available: .*params"):
        r.value("clean")


def test_dataset_without_wide_files_pivots_the_rows(small_dir, tmp_path):
    d = tmp_path / "nowide"
    shutil.copytree(small_dir, d)
    m = json.loads((d / "manifest.json").read_text())
    for f in m["files"]:
        if f["kind"] == "wide":
            (d / f["path"]).unlink()
    m["files"] = [f for f in m["files"] if f["kind"] != "wide"]
    (d / "manifest.json").write_text(json.dumps(m))
    ds = rb201.Dataset(d)
    assert ds.datasets == ("cifar10", "cifar100", "ImageNet16-120")
    assert ds.value(5, "params", "cifar100") == rb201.query(5, "cifar100").value("params")


def test_damaged_directories_raise_data_integrity_errors(small_dir, tmp_path):
    d = tmp_path / "bad"
    shutil.copytree(small_dir, d)
    res = next(d.glob("results-*.parquet"))
    data = bytearray(res.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\0" * 64  # same size, corrupt bytes
    res.write_bytes(bytes(data))
    with pytest.raises(DataIntegrityError, match="sha256"):
        rb201.Dataset(d).validate()
    with pytest.raises(DataIntegrityError):
        rb201.Dataset(d).read_results()
    res.write_bytes(bytes(data[: len(data) // 2]))  # truncated
    with pytest.raises(DataIntegrityError, match="truncated"):
        rb201.Dataset(d)
    m = json.loads((small_dir / "manifest.json").read_text())
    m["schema_version"] = "4"  # a version this rb201 does not know (it reads 1, 2 and 3)
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DataIntegrityError, match="schema version"):
        rb201.Dataset(d)
    (d / "manifest.json").unlink()
    with pytest.raises(DataIntegrityError, match="manifest"):
        rb201.Dataset(d)


def test_nan_where_a_cell_has_no_value():
    dead = next(i for i in range(15625) if Arch.from_index(i).is_dead and Arch.from_index(i).is_representative)
    r = rb201.query(dead, "cifar10")
    assert math.isnan(r.value("synflow")) or isinstance(r.value("synflow"), float)
    assert r.clean_accuracy < 0.2


def test_the_wide_table_is_one_datasets_and_says_so():
    with pytest.raises(InvalidChoiceError, match="pass dataset="):
        rb201.table()
    long = rb201.table(form="long", columns=["clean"])
    assert set(long["dataset"]) == {"cifar10", "cifar100", "ImageNet16-120"}
