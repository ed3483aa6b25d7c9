"""Write a complete dataset directory from tidy row tables: sorted schema v1 Parquet, optional HDF5 arrays, the
derived wide matrices, and the manifest last (so a directory with a manifest is always complete)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import DataIntegrityError
from ..store.schema import COLUMNS, SORT_COLUMNS, pa_schema, table_metadata
from .layout import FileEntry, Manifest, file_entry, write_manifest
from .wide import pivot, write_wide

log = logging.getLogger(__name__)


def columns_table(columns: Mapping[str, Any], spec_json: str = "{}"):  # type: ignore[no-untyped-def]
    """Column arrays (numpy arrays or lists, one per schema v1 column) -> a schema v1 pyarrow Table."""
    import pyarrow as pa

    missing = [c for c in COLUMNS if c not in columns]
    if missing:
        raise DataIntegrityError(f"rows lack schema v1 columns {missing}")
    schema = pa_schema()
    arrays = [pa.array(columns[f.name], type=f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema).replace_schema_metadata(table_metadata(spec_json))


def sort_rows(table):  # type: ignore[no-untyped-def]
    """Sort a schema v1 table by ``SORT_COLUMNS`` (stable, deterministic)."""
    return table.sort_by([(c, "ascending") for c in SORT_COLUMNS])


def write_arrays_h5(target: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write arrays at their ``array_path`` keys into one HDF5 file (atomically, no timestamps)."""
    import h5py

    from ..store.atomic import atomic_path

    with atomic_path(target) as tmp, h5py.File(tmp, "w", track_order=False) as fh:
        for key in sorted(arrays):
            a = arrays[key]
            # small arrays (confusion matrices) are stored contiguously: chunk + filter overhead would dominate
            opts = {"compression": "gzip", "shuffle": True} if a.nbytes > 1 << 14 else {}
            fh.create_dataset(key, data=a, track_times=False, **opts)


def write_dataset_dir(
    out_dir: str | Path,
    parts: Mapping[str, Any],
    name: str,
    created: str,
    arrays: Mapping[str, np.ndarray] | None = None,
    code_version: str = __version__,
    extra: dict[str, Any] | None = None,
) -> Manifest:
    """Write ``results-<part>.parquet`` for each tidy table in ``parts``, ``arrays-000.h5`` if ``arrays``,
    ``wide-<dataset>.parquet`` per dataset, then ``manifest.json``. Returns the manifest."""
    import pyarrow as pa

    from ..store.atomic import write_parquet_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries: list[FileEntry] = []
    tables = []
    for part in sorted(parts):
        t = sort_rows(parts[part])
        if not t.schema.metadata or b"rb201.schema_version" not in t.schema.metadata:
            t = t.replace_schema_metadata(table_metadata())
        fname = f"results-{part}.parquet"
        write_parquet_atomic(t, out / fname)
        entries.append(file_entry(out, fname, "results", rows=t.num_rows))
        tables.append(t)
        log.info("wrote %s (%d rows)", fname, t.num_rows)
    if arrays:
        write_arrays_h5(out / "arrays-000.h5", arrays)
        entries.append(file_entry(out, "arrays-000.h5", "arrays", rows=len(arrays)))
    if tables:
        for ds, wide in pivot(pa.concat_tables(tables)).items():
            fname = f"wide-{ds}.parquet"
            write_wide(wide, out / fname)
            entries.append(file_entry(out, fname, "wide", dataset=ds))
    manifest = Manifest(name, created, code_version, tuple(entries), extra=extra or {})
    write_manifest(out, manifest)
    return manifest
