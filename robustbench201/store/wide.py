"""The wide form of a results table: per dataset, a float64 matrix with one row per NB201 index (0..15624) and one
column per metric, named by :func:`robustbench201.store.schema.wide_name`.

Built from tidy rows (schema v1 or v2) by :class:`WideBuilder`, block by block, or by :func:`pivot` from one table
(rows differing only in their training seed are averaged, and the column says so); stored as
``wide-<dataset>.parquet`` beside the tidy files so a query reads one small file. Cells hold exactly the value of the
row for that index (NaN where there is none). A column whose rows all belong to isomorphism-class representatives is
*class-level*: readers fill the other members of each class from their representative (:func:`fill_isomorphs`), as
the published robustness dataset evaluated one network per class.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataIntegrityError
from ..space import NUM_ARCHS, representative_indices
from .schema import FAMILIES, META_KIND, META_SCHEMA_VERSION, READABLE_SCHEMA_VERSIONS, wide_name, with_split

META_DATASET = "rb201.dataset"
META_COLUMNS = "rb201.columns"
_GROUP = ("family", "key", "norm", "epsilon", "severity", "semantics", "measure", "weights", "source", "split")


@dataclass
class Wide:
    """One dataset's wide matrix: ``matrix[i, j]`` is column ``names[j]`` of NB201 index ``i``."""

    dataset: str
    names: tuple[str, ...]
    matrix: np.ndarray  # float64, NUM_ARCHS x len(names)
    info: tuple[dict[str, Any], ...]  # per column: the key columns, provenance, seeds, class_level
    reps: np.ndarray  # int64, NUM_ARCHS: index -> isomorphism-class representative (stored, so readers need no space)

    def __post_init__(self) -> None:
        self.col = {n: j for j, n in enumerate(self.names)}


def column_name(info: dict[str, Any]) -> str:
    """The wide name of a column from its facts (``epsilon`` None when the column has none)."""
    eps = math.nan if info.get("epsilon") is None else float(info["epsilon"])
    sev = int(info.get("severity") or 0)
    return wide_name(info["key"], eps, sev, info["measure"], info.get("semantics", ""), info.get("split", "test"))


def _order(info: dict[str, Any]) -> tuple:
    fam = FAMILIES.index(info["family"]) if info["family"] in FAMILIES else len(FAMILIES)
    eps = -1.0 if info["epsilon"] is None else info["epsilon"]
    cumulative = info.get("semantics") == "cumulative"
    plain = info["measure"] in ("accuracy", "value")
    return (info.get("split", "test"), fam, info["key"], cumulative, not plain, info["measure"], eps, info["severity"])


class ColumnCodes:
    """Integer ids of the distinct combinations of some columns' values, built block by block: a block's rows get
    their ids from each column's dictionary encoding (one lookup per distinct value, not per row), so no string key
    is ever built per row. Ids are given in order of first appearance and stay valid across blocks."""

    def __init__(self, columns: tuple[str, ...]) -> None:
        self.columns = columns
        self._values: list[dict[Any, int]] = [{} for _ in columns]  # per column: value (None for NaN) -> code
        self._first: list[list[Any]] = [[] for _ in columns]  # per column: code -> value as read
        self._ids: dict[tuple[int, ...], int] = {}
        self.keys: list[tuple[int, ...]] = []  # id -> codes

    def __len__(self) -> int:
        return len(self.keys)

    def _codes(self, j: int, column: Any) -> np.ndarray:
        import pyarrow as pa
        import pyarrow.compute as pc

        arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        enc = pc.dictionary_encode(arr)
        memo, first = self._values[j], self._first[j]
        local = []
        for v in enc.dictionary.to_pylist():
            k = None if isinstance(v, float) and math.isnan(v) else v
            code = memo.get(k)
            if code is None:
                code = memo[k] = len(first)
                first.append(v)
            local.append(code)
        return np.asarray(local, dtype=np.int64)[enc.indices.to_numpy(zero_copy_only=False)]

    def encode(self, table: Any) -> np.ndarray:
        """The id of each row of ``table`` (a pyarrow Table holding the columns), int64."""
        if table.num_rows == 0:
            return np.empty(0, dtype=np.int64)
        codes = [self._codes(j, table.column(c)) for j, c in enumerate(self.columns)]
        sizes = [max(len(f), 1) for f in self._first]
        if math.prod(sizes) < 1 << 62:  # one int64 per row (mixed radix)
            combined = np.zeros(table.num_rows, dtype=np.int64)
            for c, size in zip(codes, sizes, strict=True):
                combined = combined * size + c
            _, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
        else:
            _, first, inverse = np.unique(np.stack(codes, axis=1), axis=0, return_index=True, return_inverse=True)
        ids = np.empty(len(first), dtype=np.int64)
        for u, row in enumerate(first.tolist()):
            key = tuple(int(c[row]) for c in codes)
            got = self._ids.get(key)
            if got is None:
                got = self._ids[key] = len(self.keys)
                self.keys.append(key)
            ids[u] = got
        return ids[inverse.reshape(-1)]

    def values(self, group: int) -> dict[str, Any]:
        """The column values of id ``group`` (as pyarrow reads them)."""
        return {c: self._first[j][code] for j, (c, code) in enumerate(zip(self.columns, self.keys[group], strict=True))}


def _pairs(ids: np.ndarray, values: np.ndarray) -> list[tuple[int, int]]:
    """The distinct (id, integer value) pairs of two aligned arrays (values fit in 32 bits)."""
    combined = np.unique((ids << 32) | (values.astype(np.int64) & 0xFFFFFFFF))
    low = (combined & 0xFFFFFFFF).astype(np.uint32).astype(np.int32)
    return list(zip((combined >> 32).tolist(), low.tolist(), strict=True))


class WideBuilder:
    """One dataset's wide matrix built from its tidy rows fed in blocks (:meth:`add`), so no table of all rows is ever
    held: memory is two NUM_ARCHS x columns arrays (sums and counts) plus the matrix :meth:`finish` returns."""

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset
        self.codes = ColumnCodes(_GROUP)
        self._sums = np.zeros((0, NUM_ARCHS))
        self._counts = np.zeros((0, NUM_ARCHS), dtype=np.int32)
        self._seeds: list[set[int]] = []
        self._ns: list[set[int]] = []

    def add(self, table: Any) -> None:
        """Add rows of this dataset (a pyarrow Table of tidy rows; without ``split`` every row is on the test split)."""

        if table.num_rows == 0:
            return
        table = with_split(table)
        ids = self.codes.encode(table)
        n = len(self.codes)
        if n > len(self._sums):
            cap = max(n, 2 * len(self._sums), 16)
            self._sums = np.concatenate([self._sums, np.zeros((cap - len(self._sums), NUM_ARCHS))])
            self._counts = np.concatenate([self._counts, np.zeros((cap - len(self._counts), NUM_ARCHS), np.int32)])
        while len(self._seeds) < n:
            self._seeds.append(set())
            self._ns.append(set())
        arch = _to_numpy(table.column("arch_index"), np.int32).astype(np.int64)
        np.add.at(self._sums, (ids, arch), _to_numpy(table.column("value"), np.float64))
        np.add.at(self._counts, (ids, arch), 1)
        for g, seed in _pairs(ids, _to_numpy(table.column("seed"), np.int32)):
            self._seeds[g].add(seed)
        for g, count in _pairs(ids, _to_numpy(table.column("n"), np.int32)):
            self._ns[g].add(count)

    def finish(self) -> Wide:
        """The wide matrix: columns in a stable, readable order (test-split columns first); cells hold the mean of
        their rows (of several training seeds, and the column says so), NaN where there is none. Raises
        :class:`DataIntegrityError` when two different kinds of rows (weights, semantics, source or family) would
        share one wide column name."""
        reps = np.asarray(representative_indices(), dtype=np.int64)
        infos: list[dict[str, Any]] = []
        for g in range(len(self.codes)):
            h = self.codes.values(g)
            eps = h["epsilon"]
            eps = None if eps is None or math.isnan(eps) else float(eps)
            present = np.flatnonzero(self._counts[g] > 0)
            ns = sorted(self._ns[g])
            info = dict(h, epsilon=eps)
            info.update(
                name=column_name(dict(h, epsilon=eps)),
                seeds=sorted(self._seeds[g]),
                n=ns[0] if len(ns) == 1 else -1,
                class_level=bool(np.all(reps[present] == present)) and len(present) < NUM_ARCHS,
                code=g,
            )
            if info["split"] == "test":  # test-split columns are described as in schema v1
                del info["split"]
            infos.append(info)
        infos.sort(key=_order)
        seen: dict[str, dict[str, Any]] = {}
        for info in infos:
            if info["name"] in seen:
                other = seen[info["name"]]
                diff = [k for k in _GROUP if info.get(k) != other.get(k)]
                raise DataIntegrityError(
                    f"{self.dataset}: two kinds of rows map to the wide column {info['name']!r} (they differ in "
                    f"{diff}: {[other.get(k) for k in diff]} vs {[info.get(k) for k in diff]}); filter the rows first"
                )
            seen[info["name"]] = info
        matrix = np.empty((NUM_ARCHS, len(infos)))
        for j, info in enumerate(infos):
            g = info.pop("code")
            with np.errstate(invalid="ignore", divide="ignore"):
                matrix[:, j] = self._sums[g] / self._counts[g]
            if self._counts[g].max(initial=0) > 1:
                info["averaged"] = "mean over seeds " + ", ".join(map(str, info["seeds"]))
        return Wide(self.dataset, tuple(i["name"] for i in infos), matrix, tuple(infos), reps)


def pivot(table) -> dict[str, Wide]:  # type: ignore[no-untyped-def]
    """Tidy rows (a pyarrow Table; without a ``split`` column every row is on the test split) -> ``{dataset: Wide}``
    (:class:`WideBuilder` per dataset).

    Raises :class:`DataIntegrityError` when two different kinds of rows (weights, semantics, source or family)
    would share one wide column name."""
    import pyarrow.compute as pc

    out: dict[str, Wide] = {}
    for ds in sorted(pc.unique(table.column("dataset")).to_pylist()):
        builder = WideBuilder(ds)
        builder.add(table.filter(pc.equal(table.column("dataset"), ds)))
        out[ds] = builder.finish()
    return out


def fill_isomorphs(wide: Wide) -> np.ndarray:
    """Matrix with every class-level column filled for all members of each class from the representative."""
    cols = [j for j, i in enumerate(wide.info) if i.get("class_level")]
    m = wide.matrix.copy()
    if cols:
        m[:, cols] = wide.matrix[wide.reps][:, cols]
    return m


def wide_table(wide: Wide) -> Any:
    """One dataset's wide matrix as the pyarrow Table its file holds (float64 columns, column facts in the file
    metadata); :class:`robustbench201.store.dataset.DatasetWriter` writes it."""
    import pyarrow as pa

    arrays = [pa.array(np.arange(NUM_ARCHS, dtype=np.int32)), pa.array(wide.reps.astype(np.int32))]
    arrays += [pa.array(wide.matrix[:, j]) for j in range(len(wide.names))]
    meta = {
        META_SCHEMA_VERSION: "2" if any("split" in i for i in wide.info) else "1",  # as for tidy files
        META_KIND: "wide",
        META_DATASET: wide.dataset,
        META_COLUMNS: json.dumps(list(wide.info), sort_keys=True),
    }
    return pa.Table.from_arrays(arrays, names=["arch_index", "representative", *wide.names]).replace_schema_metadata(
        meta
    )


def _to_numpy(column, dtype) -> np.ndarray:  # type: ignore[no-untyped-def]
    """A null-free primitive column as numpy, straight from its buffer (``Array.to_numpy`` imports pandas)."""
    arr = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if arr.null_count:
        raise DataIntegrityError(f"column {arr.type} has {arr.null_count} nulls; wide tables use NaN, not null")
    return np.frombuffer(arr.buffers()[1], dtype=dtype)[arr.offset : arr.offset + len(arr)]


def read_wide(path: str | Path) -> Wide:
    """Read a file holding a :func:`wide_table`; :class:`DataIntegrityError` if it is not one or is damaged."""
    import pyarrow.parquet as pq

    try:  # ParquetFile.read, not pq.read_table: the latter imports pandas (0.4 s) on the query path
        with pq.ParquetFile(path) as pf:
            table = pf.read()
    except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
        raise DataIntegrityError(f"cannot read {path}: {exc}") from None
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    if meta.get(META_KIND) != "wide" or meta.get(META_SCHEMA_VERSION) not in READABLE_SCHEMA_VERSIONS:
        raise DataIntegrityError(
            f"{path} is not an rb201 wide table of schema version {' or '.join(READABLE_SCHEMA_VERSIONS)} "
            f"(kind {meta.get(META_KIND)!r}, version {meta.get(META_SCHEMA_VERSION)!r})"
        )
    try:
        info = tuple(json.loads(meta[META_COLUMNS]))
        stored = tuple(table.column_names[2:])
        ok = stored == tuple(i["name"] for i in info) and table.num_rows == NUM_ARCHS
        # names follow the current naming rule (files written before the semantics segment existed named a
        # cumulative column like a per-epsilon one); the column facts decide
        names = tuple(column_name(i) for i in info)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataIntegrityError(f"{path}: malformed column metadata ({exc})") from None
    if not ok:
        raise DataIntegrityError(f"{path}: columns or rows do not match its metadata")
    info = tuple(dict(i, name=n) for i, n in zip(info, names, strict=True))
    matrix = np.empty((NUM_ARCHS, len(names)), dtype=np.float64)
    for j, name in enumerate(stored):
        matrix[:, j] = _to_numpy(table.column(name), np.float64)
    reps = _to_numpy(table.column("representative"), np.int32).astype(np.int64)
    return Wide(meta[META_DATASET], names, matrix, info, reps)
