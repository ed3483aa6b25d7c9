"""Both array layouts read alike. ``tests/fixtures/dataset-layout1/dataset`` was written by the rb201 before the packed
layout (``make_layout1.py`` there, one HDF5 group per cell); ``expected.npz`` holds its arrays straight from the
generator, so neither layout is checked against a reader of the other. The same cells written today (shards, merge)
are in the packed layout; ``rb201.Dataset`` returns the same rows, values and arrays from both, a merge of the old
dataset writes the packed layout, and a download of the old dataset reads as it did."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

import robustbench201 as rb201
from robustbench201.errors import DataIntegrityError
from robustbench201.published import download, publish
from robustbench201.store.arrays import CHUNK_BYTES, LAYOUT_ATTR, ArraysFile, PackedWriter
from robustbench201.store.dataset import DatasetWriter
from robustbench201.store.merge import merge_datasets
from robustbench201.store.schema import Row, array_kind
from robustbench201.store.shardfile import ARRAYS_LAYOUT_ATTR, read_arch_arrays, write_arch_files
from robustbench201.store.validate import validate_dataset

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "dataset-layout1"
CELLS = {"cifar10": (1, 7, 42, 1462), "mnist5k": (3,)}


def expected() -> dict[str, np.ndarray]:
    with np.load(FIXTURE / "expected.npz") as z:
        return {str(k): z[f"a{j}"] for j, k in enumerate(z["keys"].tolist())}


def of_cell(arrays: dict[str, np.ndarray], dataset: str, arch: int) -> dict[str, np.ndarray]:
    return {k: a for k, a in arrays.items() if array_kind(k)[:2] == (dataset, arch)}


def same_arrays(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(want)
    for k, a in want.items():
        g = np.asarray(got[k])
        assert g.dtype == a.dtype and g.shape == a.shape and np.array_equal(g, a), k


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict[str, Path]:
    """The old dataset (a copy of the fixture) and the same cells written today, through shards and merge."""
    root = tmp_path_factory.mktemp("layouts")
    old = root / "old"
    shutil.copytree(FIXTURE / "dataset", old)
    rows = (
        pq.read_table(old / "results-000.parquet").to_pylist() + pq.read_table(old / "results-001.parquet").to_pylist()
    )
    spec = json.loads(pq.read_schema(old / "results-000.parquet").metadata[b"rb201.spec"])
    arrays = expected()
    for ds, cells in CELLS.items():
        shard = root / f"shard-{ds}"
        shard.mkdir()
        for i in cells:
            mine = [Row(**{"split": "test", **r}) for r in rows if r["dataset"] == ds and r["arch_index"] == i]
            write_arch_files(shard, i, mine, of_cell(arrays, ds, i), json.dumps(next(iter(spec.values()))))
    merge_datasets([root / "shard-cifar10", root / "shard-mnist5k"], root / "new")
    return {"old": old, "new": root / "new"}


def test_the_fixture_is_the_old_layout_and_today_writes_the_packed_one(layouts):
    old = json.loads((layouts["old"] / "manifest.json").read_text())
    new = json.loads((layouts["new"] / "manifest.json").read_text())
    assert old["schema_version"] == "2" and new["schema_version"] == "3"
    for f in old["files"]:
        if f["kind"] == "arrays":
            with h5py.File(layouts["old"] / f["path"]) as fh:
                assert LAYOUT_ATTR not in fh.attrs and any(k.startswith("arch_") for k in fh[f["dataset"]])
    packed = [f for f in new["files"] if f["kind"] == "arrays"]
    assert [f["dataset"] for f in packed] == ["cifar10", "mnist5k"]  # one file per dataset, counts as written
    assert {f["dataset"]: f["arrays"] for f in packed} == {"cifar10": 40, "mnist5k": 10}
    assert validate_dataset(layouts["old"]).ok and validate_dataset(layouts["new"]).ok


@pytest.mark.parametrize("which", ["old", "new"])
def test_every_cell_reads_its_arrays_from_either_layout(layouts, which):
    ds = rb201.Dataset(layouts[which])
    want = expected()
    for dataset, cells in CELLS.items():
        for i in cells:
            same_arrays(ds.arrays(i, dataset), of_cell(want, dataset, i))
        assert ds.arrays(0, dataset) == {}  # a cell without arrays
    same_arrays(ds.arrays(3), of_cell(want, "mnist5k", 3))  # every dataset
    same_arrays(
        ds.arrays(rb201.Arch.from_index(1462).string, "cifar10"), of_cell(want, "cifar10", 1462)
    )  # any encoding


def test_values_rows_and_tables_are_the_same_from_both_layouts(layouts):
    old, new = rb201.Dataset(layouts["old"]), rb201.Dataset(layouts["new"])
    assert old.datasets == new.datasets == ("cifar10", "mnist5k")
    for dataset in old.datasets:
        assert old.columns(dataset) == new.columns(dataset)
        a, b = old.table(dataset), new.table(dataset)
        assert a.columns.tolist() == b.columns.tolist() and a.equals(b)
        for i in CELLS[dataset]:
            assert old.query(i, dataset).to_dict() == new.query(i, dataset).to_dict()
    cols = ["arch_index", "dataset", "split", "key", "measure", "value"]
    ra = old.read_results().select(cols).sort_by([(c, "ascending") for c in cols]).to_pylist()
    rb = new.read_results().select(cols).sort_by([(c, "ascending") for c in cols]).to_pylist()
    assert ra == rb


def test_merging_an_old_dataset_writes_the_packed_layout(layouts, tmp_path):
    rep = merge_datasets([layouts["old"]], tmp_path / "again")
    assert rep.arrays == 50 and json.loads((tmp_path / "again" / "manifest.json").read_text())["schema_version"] == "3"
    ds = rb201.Dataset(tmp_path / "again")
    for dataset, cells in CELLS.items():
        for i in cells:
            same_arrays(ds.arrays(i, dataset), of_cell(expected(), dataset, i))
    # the old dataset with new shards of the same cells: identical arrays are dropped, each is written once
    rep = merge_datasets([layouts["old"], layouts["new"]], tmp_path / "both")
    assert rep.arrays == 50 and rep.conflicts == 0 and rep.identical_dropped == rep.rows_in // 2


def test_a_download_of_an_old_layout_dataset_reads_as_before(layouts, tmp_path):
    src = tmp_path / "published"
    shutil.copytree(layouts["old"], src)
    registry = publish(src, src.as_uri() + "/", name="layout1", registry=tmp_path / "registry.json")
    got = download("layout1", tmp_path / "got", registry=registry, progressbar=False)
    ds = rb201.Dataset(got, verify=True)
    same_arrays(ds.arrays(42, "cifar10"), of_cell(expected(), "cifar10", 42))
    assert ds.query(42, "cifar10").to_dict() == rb201.Dataset(layouts["new"]).query(42, "cifar10").to_dict()


# ---- the packed layout itself ---------------------------------------------------------------------------------------
def _path(arch: int, key: str, measure: str = "correct", dataset: str = "cifar10") -> str:
    return f"{dataset}/arch_{arch:05d}/w/seed_0/clean/{key}/none/none/{measure}"


def test_the_packed_layout_keeps_every_kind_of_array(tmp_path):
    """Many cells (more than a chunk), flags of two lengths (two variants of one kind), int64 counts (narrowed to 16
    bits, or 32 for the cell whose counts need it), a 0-d flag, an empty array, a kind some cells lack; every cell
    reads back exactly (dtype included), one at a time and streamed, and identical cell indexes are stored once."""
    rng = np.random.default_rng(0)
    want: dict[str, np.ndarray] = {}
    cells = list(range(0, 3000, 7))
    for arch in cells:
        want[_path(arch, "flags")] = rng.random(40 if arch % 3 else 50) < 0.3
        big = arch == cells[-1]  # counts beyond 16 bits: stored wider, as another variant
        want[_path(arch, "conf", "confusion")] = rng.integers(0, 70_000 if big else 50, (10, 10), dtype=np.int64)
        want[_path(arch, "zero_d")] = np.bool_(arch % 2)
        want[_path(arch, "none", "per_batch")] = np.zeros((0, 3), dtype=np.float32)
        if arch % 5:
            want[_path(arch, "some", "stage")] = rng.integers(0, 4, 30).astype(np.int8)
    assert len(cells) > CHUNK_BYTES // 100  # the confusion matrices span several chunks
    w = DatasetWriter(tmp_path)
    (entry,) = w.add_arrays(want)
    assert entry.arrays == len(want) and entry.dataset == "cifar10"
    with ArraysFile(tmp_path / entry.path) as f:
        assert f.layout == 2 and f.datasets() == ["cifar10"]
        streamed = dict(f.cells("cifar10"))
        assert list(streamed) == cells
        for arch in cells:
            mine = {k: a for k, a in want.items() if array_kind(k)[1] == arch}
            same_arrays(f.cell("cifar10", arch), {k: np.asarray(a) for k, a in mine.items()})
            same_arrays(streamed[arch], {k: np.asarray(a) for k, a in mine.items()})
        kinds = f.fh["cifar10/w/seed_0/clean"]
        flags = kinds["flags/none/none/correct"]
        assert flags["cells"].id != flags["cells.1"].id  # two lengths, two variants
        assert kinds["none/none/none/per_batch/cells"].id == kinds["zero_d/none/none/correct/cells"].id  # one index
        assert flags["data"].dtype == np.uint8 and flags["data"].shape[1:] == (7,)  # 50 flags (cell 0) in 7 bytes
        assert flags["data.1"].shape[1:] == (5,) and flags["data.1"].attrs["length"] == 40
        conf = kinds["conf/none/none/confusion"]
        assert (conf["data"].dtype, conf["data.1"].dtype, conf["data.1"].shape[0]) == (np.uint16, np.uint32, 1)


def test_the_packed_writer_refuses_cells_out_of_order_and_foreign_keys(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as fh:
        w = PackedWriter(fh, "cifar10")
        w.add(5, {"cifar10/w/seed_0/clean/k/none/none/correct": np.ones(3, bool)})
        with pytest.raises(DataIntegrityError, match="index order"):
            w.add(5, {"cifar10/w/seed_0/clean/k/none/none/correct": np.ones(3, bool)})
        with pytest.raises(DataIntegrityError, match="not one of dataset"):
            w.add(6, {"cifar100/w/seed_0/clean/k/none/none/correct": np.ones(3, bool)})
    w = DatasetWriter(tmp_path / "d")
    with pytest.raises(DataIntegrityError, match="not an rb201 array path"):
        w.add_arrays({"cifar10/x/correct": np.ones(3, bool)})
    with pytest.raises(DataIntegrityError, match="not one of cell 2"), w.arrays_stream("cifar10") as s:
        s.add_cell(2, {_path(3, "k"): np.ones(3, bool)})
    assert not list((tmp_path / "d").glob("arrays-*"))  # the failed stream left no file


def test_shard_arrays_files_stack_arrays_and_old_ones_still_read(tmp_path):
    arrays = {_path(4, "flags"): np.arange(12) % 3 == 0, _path(4, "conf", "confusion"): np.eye(3, dtype=np.int64),
              _path(4, "more"): np.ones(12, bool)}  # fmt: skip
    write_arch_files(tmp_path, 4, [Row(4, "cifar10", "clean", "clean", "accuracy", 0.5)], arrays, "{}")
    h5 = tmp_path / "arch-00004.h5"
    with h5py.File(h5) as fh:
        assert fh.attrs[ARRAYS_LAYOUT_ATTR] == 2 and sorted(fh) == ["0", "1"]  # two stacks: (12,) bool, (3, 3) int64
    same_arrays(read_arch_arrays(h5), arrays)
    with h5py.File(tmp_path / "old.h5", "w") as fh:  # the layout written before: every array at its path
        for k, a in arrays.items():
            fh.create_dataset(k, data=a)
    same_arrays(read_arch_arrays(tmp_path / "old.h5"), arrays)
    with pytest.raises(DataIntegrityError, match="sha256"):
        read_arch_arrays(h5, "0" * 64)
