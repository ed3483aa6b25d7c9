"""`rb201 compare`: a dataset built from the published numbers with known perturbations is reported exactly."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner

from robustbench201 import Dataset, default_dataset
from robustbench201.cli import main
from robustbench201.store.dataset import columns_table, write_dataset_dir
from robustbench201.tables.compare import compare

SHIFTED = (0, 3, 6, 9, 11)  # representatives whose fgsm@1 gets +0.05
SHIFT = 0.05


def _published_rows(keys: tuple[str, ...]):  # type: ignore[no-untyped-def]
    t = default_dataset().read_results("cifar10")
    keep = pc.and_(pc.equal(t.column("source"), "jung2023"), pc.is_in(t.column("key"), pa.array(list(keys))))
    t = t.filter(pc.and_(keep, pc.equal(t.column("measure"), "accuracy")))
    return t.filter(pc.less(t.column("arch_index"), 2000))


@pytest.fixture(scope="module")
def perturbed(tmp_path_factory):  # type: ignore[no-untyped-def]
    t = _published_rows(("clean", "fgsm", "pgd"))
    df = t.to_pandas()
    hit = (df["key"] == "fgsm") & (df["epsilon"] == 1.0) & df["arch_index"].isin(SHIFTED)
    assert hit.sum() == len(SHIFTED)
    df.loc[hit, "value"] += SHIFT
    # pgd@2: reverse the ranking of the cells (a rebuild whose order is completely wrong)
    p2 = (df["key"] == "pgd") & (df["epsilon"] == 2.0)
    df.loc[p2, "value"] = 1.0 - df.loc[p2, "value"]
    table = columns_table({c: df[c].to_numpy() for c in df.columns})
    out = tmp_path_factory.mktemp("cmp") / "rebuilt"
    write_dataset_dir(out, {"rebuilt": table}, name="rebuilt", created="2024-01-01T00:00:00Z")
    return out


def test_known_perturbations_are_reported_exactly(perturbed):
    rep = compare(Dataset(perturbed), default_dataset(), b_sources=("jung2023",), worst=len(SHIFTED))
    by = {c.column: c for c in rep.columns if c.dataset == "cifar10"}
    assert set(by) == {"clean", *(f"fgsm@{e:g}" for e in (0.1, 0.5, 1, 2, 3, 4, 5, 6, 7, 8, 255))} | {
        f"pgd@{e:g}" for e in (0.1, 0.5, 1, 2, 3, 4, 8)
    }
    n = by["clean"].n
    assert 0 < n <= 2000
    for name, c in by.items():
        if name in ("fgsm@1", "pgd@2"):
            continue
        assert c.mean_abs_diff == 0.0 and c.max_abs_diff == 0.0 and c.kendall_tau == pytest.approx(1.0), name
    f1 = by["fgsm@1"]
    assert f1.mean_abs_diff == pytest.approx(SHIFT * len(SHIFTED) / n, rel=1e-9)
    assert f1.mean_diff == pytest.approx(SHIFT * len(SHIFTED) / n, rel=1e-9)
    assert f1.max_abs_diff == pytest.approx(SHIFT)
    assert sorted(i for i, _, _ in f1.worst) == sorted(SHIFTED)
    for _, a, b in f1.worst:
        assert a - b == pytest.approx(SHIFT)
    assert 0.9 < f1.kendall_tau < 1.0  # a few shifted cells barely move the ranking
    assert by["pgd@2"].kendall_tau == pytest.approx(-1.0)
    # the published table holds corruptions and other attacks this rebuild lacks: listed, not compared
    assert any(name.startswith("fog:") for name in rep.only_b["cifar10"])
    assert rep.datasets_only_b == ["cifar100", "ImageNet16-120"]


def test_cli_compare_text_and_json(perturbed):
    runner = CliRunner()
    res = runner.invoke(main, ["compare", str(perturbed), "--to", "jung2023", "-c", "fgsm@1,clean", "--worst", "5"])
    assert res.exit_code == 0, res.output
    assert "fgsm@1" in res.output and "median Kendall tau" in res.output
    line = next(ln for ln in res.output.splitlines() if ln.strip().startswith("fgsm@1"))
    for i in SHIFTED:
        assert f"{i} (" in line
    res = runner.invoke(main, ["compare", str(perturbed), "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    cols = {c["column"]: c for c in doc["columns"]}
    assert cols["clean"]["mean_abs_diff"] == 0.0
    assert not math.isnan(cols["fgsm@1"]["kendall_tau"])


def test_compare_refuses_unknown_columns_and_datasets(perturbed):
    runner = CliRunner()
    res = runner.invoke(main, ["compare", str(perturbed), "-c", "fgsm@9"])
    assert res.exit_code != 0 and "fgsm@9" in res.output and "Traceback" not in res.output
    res = runner.invoke(main, ["compare", str(perturbed), "-d", "cifar100"])
    assert res.exit_code != 0 and "cifar100" in res.output


def test_compare_against_itself_is_exact(perturbed):
    d = Dataset(perturbed)
    rep = compare(d, d)
    assert rep.columns and all(c.mean_abs_diff == 0.0 for c in rep.columns)
    assert all(np.isclose(c.kendall_tau, 1.0) for c in rep.columns)
