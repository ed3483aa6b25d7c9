"""Tidy rows in blocks of NB201 indices, for merging: a block's rows sorted with duplicates dropped and conflicts
counted (:func:`dedup_sort`), corruption rows of one column from one source only
(:func:`check_corruption_sources`), and rows of dataset directories partitioned into blocks on disk
(:class:`Spool`). :mod:`.merge` drives them; memory holds one block."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Rb201Error
from .schema import KEY_COLUMNS, SORT_COLUMNS

__all__ = ["BLOCK", "MergeConflictError", "Duplicates", "dedup_sort", "check_corruption_sources", "unique_rows",
           "Spool"]  # fmt: skip

#: NB201 indices per block of rows (about 200 representatives: 100k rows of the jung2023 preset).
BLOCK = 512


class MergeConflictError(Rb201Error):
    """Rows or arrays with the same key but different values, or shards of different specs."""


@dataclass
class Duplicates:
    """Duplicate rows found so far: identical ones dropped, keys with conflicting values (a few as examples)."""

    identical: int = 0
    conflicts: int = 0
    examples: list[str] = field(default_factory=list)


def unique_rows(t: Any, columns: list[str]) -> list[tuple[Any, ...]]:
    """The distinct combinations of some columns of a table."""
    got = t.select(columns).group_by(columns).aggregate([])
    return list(zip(*(got.column(c).to_pylist() for c in columns), strict=True))


def dedup_sort(t: Any, found: Duplicates) -> Any:
    """A block's rows sorted (``SORT_COLUMNS``, then the other key columns; rows without an epsilon first), identical
    duplicates dropped, one row kept of each conflicting key (the first input's), conflicts counted in ``report``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    eps = t.column("epsilon")
    t = t.append_column("_eps", pc.if_else(pc.is_nan(eps), pa.scalar(-math.inf), eps))
    order = [c if c != "epsilon" else "_eps" for c in SORT_COLUMNS] + [c for c in KEY_COLUMNS if c not in SORT_COLUMNS]
    t = t.take(pc.sort_indices(t, sort_keys=[(c, "ascending") for c in [*order, "_order"]])).drop_columns(["_eps"])
    n = t.num_rows
    if n < 2:
        return t.drop_columns(["_order"])
    same = np.ones(n - 1, dtype=bool)
    for c in KEY_COLUMNS:
        a, b = t.column(c).slice(1), t.column(c).slice(0, n - 1)
        eq = pc.equal(a, b)
        if c == "epsilon":
            eq = pc.or_(eq, pc.and_(pc.is_nan(a), pc.is_nan(b)))
        same &= np.asarray(eq.to_numpy(zero_copy_only=False), dtype=bool)
    if not same.any():
        return t.drop_columns(["_order"])
    keep = np.ones(n, dtype=bool)
    keep[1:] = ~same
    values = t.column("value").to_numpy()
    starts = np.flatnonzero(keep)
    ends = np.append(starts[1:], n)
    for s, e in zip(starts[ends - starts > 1].tolist(), ends[ends - starts > 1].tolist(), strict=True):
        distinct: list[float] = []
        for v in values[s:e].tolist():
            if not any(v == w or (v != v and w != w) for w in distinct):
                distinct.append(v)
        found.identical += (e - s) - len(distinct)
        if len(distinct) > 1:
            found.conflicts += 1
            if len(found.examples) < 5:
                row = t.slice(s, 1).to_pylist()[0]
                desc = ", ".join(f"{c}={row[c]}" for c in KEY_COLUMNS)
                found.examples.append(f"{desc}: values {sorted(distinct)}")
    return t.filter(pa.array(keep)).drop_columns(["_order"])


def check_corruption_sources(t: Any, seen: dict[tuple[str, int], set[str]], dataset: str) -> None:
    """Refuse corruption rows of one result column that come from different sources: their ``source`` says which
    corruption set they were measured on (the published files, or a version of the generator), and numbers from
    two sets must not share a column. ``seen``: (key, severity) -> sources of the dataset so far."""
    import pyarrow.compute as pc

    corr = t.filter(pc.equal(t.column("family"), "corruption"))
    if not corr.num_rows:
        return
    for key, sev, source in unique_rows(corr, ["key", "severity", "source"]):
        got = seen.setdefault((key, sev), set())
        got.add(source)
        if len(got) > 1:
            raise MergeConflictError(
                f"dataset {dataset!r}: corruption {key!r} severity {sev} has rows from different sources "
                f"{sorted(got)} (e.g. two versions of the corruption generator); merge results of one corruption "
                "source at a time"
            )


class Spool:
    """Rows of dataset directories partitioned by (dataset, block of NB201 indices) into Arrow IPC files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._writers: dict[tuple[str, int], tuple[Any, Any]] = {}  # (dataset, block) -> (IPC writer, its file)
        self._files: dict[tuple[str, int], Path] = {}
        self.pairs: set[tuple[str, str]] = set()

    def add(self, t: Any) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        block = pa.array(t.column("arch_index").to_numpy() // BLOCK)
        for ds, b in unique_rows(t.append_column("_block", block), ["dataset", "_block"]):
            part = t.filter(pc.and_(pc.equal(t.column("dataset"), ds), pc.equal(block, b)))
            key = (ds, int(b))
            if key not in self._writers:
                path = self.root / f"{len(self._files):05d}.arrows"
                self._files[key] = path
                sink = pa.OSFile(str(path), "wb")
                self._writers[key] = (pa.ipc.new_stream(sink, part.schema), sink)
            self._writers[key][0].write_table(part)
            self.pairs.update((ds, sp) for (sp,) in unique_rows(part, ["split"]))

    def close(self) -> None:
        for w, sink in self._writers.values():
            w.close()
            sink.close()
        self._writers.clear()

    def read(self, dataset: str, block: int, split: str) -> Any:
        import pyarrow as pa
        import pyarrow.compute as pc

        path = self._files.get((dataset, block))
        if path is None:
            return None
        with pa.OSFile(str(path), "rb") as fh:
            t = pa.ipc.open_stream(fh).read_all()
        return t.filter(pc.equal(t.column("split"), split))
