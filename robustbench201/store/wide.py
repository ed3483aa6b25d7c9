"""The wide form of a results table: per dataset, a float64 matrix with one row per NB201 index (0..15624) and one
column per metric, named by :func:`robustbench201.store.schema.wide_name`.

Built from tidy rows (schema v1 or v2) by :func:`pivot` (rows differing only in their training seed are averaged, and
the column says so); stored as ``wide-<dataset>.parquet`` beside the tidy files so a query reads one small file.
Cells hold exactly the value of the row for that index (NaN where there is none). A column whose rows all belong to
isomorphism-class representatives is *class-level*: readers fill the other members of each class from their
representative (:func:`fill_isomorphs`), as the published robustness dataset evaluated one network per class.
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
from .schema import FAMILIES, META_KIND, META_SCHEMA_VERSION, READABLE_SCHEMA_VERSIONS, wide_name

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


def pivot(table) -> dict[str, Wide]:  # type: ignore[no-untyped-def]
    """Tidy rows (a pyarrow Table; without a ``split`` column every row is on the test split) -> ``{dataset: Wide}``,
    columns in a stable, readable order (test-split columns first).

    Raises :class:`DataIntegrityError` when two different kinds of rows (weights, semantics, source or family)
    would share one wide column name."""
    import pyarrow as pa
    import pyarrow.compute as pc

    reps = np.asarray(representative_indices(), dtype=np.int64)
    if "split" not in table.column_names:
        table = table.append_column("split", pa.array(["test"] * table.num_rows, type=pa.string()))
    out: dict[str, Wide] = {}
    for ds in sorted(pc.unique(table.column("dataset")).to_pylist()):
        t = table.filter(pc.equal(table.column("dataset"), ds))
        parts = [pc.cast(t.column(c), pa.string()) for c in _GROUP]
        gkey = pc.binary_join_element_wise(*parts, "\x1f")
        if isinstance(gkey, pa.ChunkedArray):
            gkey = gkey.combine_chunks()
        codes = gkey.dictionary_encode().indices.to_numpy(zero_copy_only=False).astype(np.int64)
        groups, first = np.unique(codes, return_index=True)
        heads = t.select(list(_GROUP)).take(pa.array(first)).to_pylist()
        arch = t.column("arch_index").to_numpy().astype(np.int64)
        vals = t.column("value").to_numpy()
        seeds = t.column("seed").to_numpy()
        ns = t.column("n").to_numpy()
        infos: list[dict[str, Any]] = []
        for g, h in zip(groups, heads, strict=True):
            eps = h["epsilon"]
            eps = None if eps is None or math.isnan(eps) else float(eps)
            mask = codes == g
            present = np.unique(arch[mask])
            gseeds = sorted({int(s) for s in np.unique(seeds[mask])})
            gn = np.unique(ns[mask])
            info = dict(h, epsilon=eps)
            info.update(
                name=column_name(dict(h, epsilon=eps)),
                seeds=gseeds,
                n=int(gn[0]) if len(gn) == 1 else -1,
                class_level=bool(np.all(reps[present] == present)) and len(present) < NUM_ARCHS,
                code=int(g),
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
                    f"{ds}: two kinds of rows map to the wide column {info['name']!r} (they differ in {diff}: "
                    f"{[other.get(k) for k in diff]} vs {[info.get(k) for k in diff]}); filter the rows first"
                )
            seen[info["name"]] = info
        remap = np.empty(int(codes.max()) + 1 if len(codes) else 0, dtype=np.int64)
        for j, info in enumerate(infos):
            remap[info.pop("code")] = j
        col = remap[codes]
        ncol = len(infos)
        lin = arch * ncol + col
        counts = np.bincount(lin, minlength=NUM_ARCHS * ncol)
        sums = np.bincount(lin, weights=vals, minlength=NUM_ARCHS * ncol)
        with np.errstate(invalid="ignore", divide="ignore"):
            matrix = (sums / counts).reshape(NUM_ARCHS, ncol)
        if counts.max(initial=0) > 1:
            multi = (counts.reshape(NUM_ARCHS, ncol) > 1).any(axis=0)
            for j in np.flatnonzero(multi):
                infos[j]["averaged"] = "mean over seeds " + ", ".join(map(str, infos[j]["seeds"]))
        out[ds] = Wide(ds, tuple(i["name"] for i in infos), matrix, tuple(infos), reps)
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
