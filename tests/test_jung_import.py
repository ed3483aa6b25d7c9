"""Importer of the original Jung et al. layout: fixtures in the real format (with confidence and cm) and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from published import JUNG_SAMPLE, assert_robustness_equals_embedded, fixture_json

import robustbench201 as rb201
from robustbench201.cli import main
from robustbench201.errors import DataIntegrityError, InvalidChoiceError, Rb201Error
from robustbench201.space import Arch, unique_indices
from robustbench201.store.jung import WEIGHTS, import_jung, read_jung
from robustbench201.store.schema import array_path

EPS = {"fgsm@Linf": [0.1, 1.0, 255.0], "pgd@Linf": [0.5, 1.0, 8.0]}


def write_fixture(root: Path, ids=(0, 1, 2)) -> Path:
    """A tiny dataset in the original layout: 3 ids, clean/fgsm/pgd/fog, accuracy + confidence + cm."""
    root.mkdir(parents=True, exist_ok=True)
    meta_ids = {
        str(i): {"nb201-string": Arch.from_index(i).string, "isomorph": str(Arch.from_index(i).representative.index)}
        for i in range(20)
    }
    (root / "meta.json").write_text(json.dumps({"ids": meta_ids, "epsilons": EPS}))
    ds = root / "cifar10"
    ds.mkdir(exist_ok=True)

    def put(key, measure, values):
        (ds / f"{key}_{measure}.json").write_text(json.dumps({"cifar10": {key: {measure: values}}}))

    put("clean", "accuracy", {str(i): 0.9 - i / 100 for i in ids})
    put("clean", "confidence", {str(i): 0.8 - i / 100 for i in ids})
    put("fgsm@Linf", "accuracy", {str(i): [0.5 - i / 100, 0.3, 0.1] for i in ids})
    put("pgd@Linf", "accuracy", {str(i): [0.4, 0.2 - i / 100, 0.0] for i in ids})
    put("fog", "accuracy", {str(i): [0.8, 0.7, 0.6, 0.5, 0.4 - i / 100] for i in ids})
    cm = (np.eye(10, dtype=int) * 900 + 10).tolist()
    put("clean", "cm", {str(i): cm for i in ids})
    put("pgd@Linf", "cm", {str(i): [cm, cm, cm] for i in ids})
    return root


def test_fixture_round_trip(tmp_path):
    src = write_fixture(tmp_path / "orig")
    s = import_jung(src, tmp_path / "out", created="2024-01-01T00:00:00Z")
    assert s.rows == 3 * (1 + 1 + 3 + 3 + 5)
    assert s.arrays == 3 * (1 + 3)
    ds = rb201.Dataset(tmp_path / "out", verify=True)
    r = ds.query(1, "cifar10")
    assert r.clean_accuracy == 0.89
    assert r.value("clean", measure="confidence") == 0.79
    assert r.robust("fgsm", eps=255) == 0.1 and r.robust("pgd", eps=1) == 0.19
    assert r.corruption("fog", 5) == 0.39
    long = ds.read_results("cifar10").to_pylist()
    pgd = [x for x in long if x["key"] == "pgd"]
    assert {x["semantics"] for x in pgd} == {"per-epsilon"} and {x["norm"] for x in pgd} == {"Linf"}
    assert {(x["seed"], x["weights"], x["source"], x["n"]) for x in long} == {(-1, "nb201-200ep", "jung2023", 10000)}
    assert all(math.isnan(x["epsilon"]) and x["severity"] == 0 for x in long if x["key"] == "clean")
    key = array_path("cifar10", 2, "adversarial", "pgd", "confusion_matrix", 8.0, 0, -1, "nb201-200ep", "per-epsilon")
    cm = ds.arrays(2, "cifar10")[key]
    assert cm.sum() == 10000 and cm[3, 3] == 910


def test_import_is_deterministic(tmp_path):
    src = write_fixture(tmp_path / "orig")
    import_jung(src, tmp_path / "a", created="x")
    import_jung(src, tmp_path / "b", created="x")
    for f in ("manifest.json", "results-cifar10.parquet", "wide-cifar10.parquet"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_missing_meta(tmp_path):
    src = write_fixture(tmp_path / "orig")
    (src / "meta.json").unlink()
    with pytest.raises(DataIntegrityError, match="meta.json"):
        import_jung(src, tmp_path / "out")
    with pytest.raises(Rb201Error, match="not a directory"):
        import_jung(tmp_path / "nowhere", tmp_path / "out")


def test_wrong_length_list(tmp_path):
    src = write_fixture(tmp_path / "orig")
    f = src / "cifar10" / "pgd@Linf_accuracy.json"
    f.write_text(json.dumps({"cifar10": {"pgd@Linf": {"accuracy": {"0": [0.1, 0.2]}}}}))
    with pytest.raises(DataIntegrityError, match=r"id 0 has 2 values; expected 3 \(one per epsilons"):
        import_jung(src, tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_unknown_id_and_unknown_key(tmp_path):
    src = write_fixture(tmp_path / "orig")
    f = src / "cifar10" / "clean_accuracy.json"
    f.write_text(json.dumps({"cifar10": {"clean": {"accuracy": {"99": 0.5}}}}))
    with pytest.raises(DataIntegrityError, match="unknown id 99"):
        import_jung(src, tmp_path / "out")
    src = write_fixture(tmp_path / "orig2")
    (src / "cifar10" / "blur@Linf_accuracy.json").write_text("{}")
    with pytest.raises(InvalidChoiceError, match="unknown attack key 'blur@Linf'"):
        import_jung(src, tmp_path / "out")


def test_meta_that_disagrees_with_the_space(tmp_path):
    src = write_fixture(tmp_path / "orig")
    meta = json.loads((src / "meta.json").read_text())
    meta["ids"]["3"]["nb201-string"] = Arch.from_index(4).string
    (src / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataIntegrityError, match="id 3 has string"):
        import_jung(src, tmp_path / "out")


def test_published_dataset_reads_completely(shared_data):
    meta, tables, arrays, items = read_jung(shared_data / "nb201-robustness")
    assert set(tables) == {"cifar10", "cifar100", "ImageNet16-120"}
    assert tables["cifar10"].num_rows == 6466 * 108 and tables["ImageNet16-120"].num_rows == 6466 * 33
    assert len(arrays) == 6466 and len(items["cifar10"]) == 21
    assert set(tables["cifar10"].column("arch_index").to_numpy().tolist()) == set(unique_indices())
    assert meta.epsilons["fgsm@Linf"][-1] == 255.0


def test_published_sample_reads_completely():
    """The fixture version of the test above, on ``fixtures/nb201-robustness/sample``: the same files and epsilon
    grids, 200 representatives instead of 6466, the confusion matrices of 20 of them."""
    summary = fixture_json("nb201-robustness/summary.json")
    meta, tables, arrays, items = read_jung(JUNG_SAMPLE)
    assert set(tables) == {"cifar10", "cifar100", "ImageNet16-120"}
    assert tables["cifar10"].num_rows == 200 * 108 and tables["cifar100"].num_rows == 200 * 108
    assert tables["ImageNet16-120"].num_rows == 200 * 33
    assert len(arrays) == 20 and len(items["cifar10"]) == 21
    assert len(items["cifar100"]) == 20 and len(items["ImageNet16-120"]) == 5
    for t in tables.values():
        assert sorted(set(t.column("arch_index").to_numpy().tolist())) == summary["sample_ids"]
    assert set(summary["sample_ids"]) <= set(unique_indices())
    assert {k: list(v) for k, v in meta.epsilons.items()} == summary["epsilons"]
    assert meta.epsilons["fgsm@Linf"][-1] == 255.0


def test_cli_imports_the_published_sample_with_the_embedded_values(tmp_path):
    """``rb201 import-jung`` on the original layout: every imported accuracy equals the embedded default table's, and
    every confusion matrix equals the published one."""
    out = tmp_path / "jung"
    res = CliRunner().invoke(main, ["import-jung", str(JUNG_SAMPLE), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert f"wrote {200 * (108 + 108 + 33)} rows and 20 arrays" in res.output
    ids = np.array(fixture_json("nb201-robustness/summary.json")["sample_ids"])
    assert_robustness_equals_embedded(out, ids)
    cms = json.loads((JUNG_SAMPLE / "cifar10" / "clean_cm.json").read_text())["cifar10"]["clean"]["cm"]
    assert len(cms) == 20
    ds = rb201.Dataset(out)
    for i, cm in cms.items():
        key = array_path("cifar10", int(i), "clean", "clean", "confusion_matrix", math.nan, 0, -1, WEIGHTS, "")
        got = ds.arrays(int(i), "cifar10")
        assert list(got) == [key] and got[key].sum() == 10000
        np.testing.assert_array_equal(got[key], np.array(cm))
