"""The on-disk format of an evaluation shard's files (the directory lifecycle is :mod:`robustbench201.runner.shard`).

Layout::

    OUT/shard-{start:05d}-{end:05d}-{spec12}-{run6}/     (or shard-list-{sha6}-{spec12}-{run6} for --arch lists)
      manifest.json        format "rb201-shard": spec, job identity, code version, devices, per-arch timings, failures
      arch-00042.h5        arrays of architecture 42 (written first, atomically)
      arch-00042.parquet   its tidy rows (store.schema), written last: the commit marker of the architecture

An architecture is finished exactly when its Parquet file exists, reads completely, holds rows of that architecture
only, and the HDF5 file it names has the sha256 recorded in its metadata (:func:`verify_arch_file`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path, sha256_file, write_parquet_atomic
from ..errors import DataIntegrityError
from .schema import Row, conform_table, rows_to_table

MANIFEST = "manifest.json"
SHARD_FORMAT = "rb201-shard"
META_ARRAYS_FILE = "rb201.arrays_file"
META_ARRAYS_SHA = "rb201.arrays_sha256"
META_ARCH = "rb201.arch_index"
META_TIMINGS = "rb201.timings"
META_DEVICE = "rb201.device"
COMPRESS_MIN_ELEMENTS = 1024  # smaller arrays are stored contiguous (chunking overhead exceeds the gain)


def arch_stem(index: int) -> str:
    return f"arch-{index:05d}"


def write_arch_files(
    shard_dir: Path,
    index: int,
    rows: list[Row],
    arrays: dict[str, np.ndarray],
    spec_json: str,
    timings: dict[str, float] | None = None,
    device: str = "",
) -> int:
    """Write one architecture's HDF5 (if it has arrays) then its Parquet (the commit marker); return the rows."""
    stem = arch_stem(index)
    h5_name, sha = "", ""
    if arrays:
        import h5py

        h5_path = shard_dir / f"{stem}.h5"
        with atomic_path(h5_path) as tmp:
            with h5py.File(tmp, "w") as fh:
                for key in sorted(arrays):
                    data = np.asarray(arrays[key])
                    big = data.size >= COMPRESS_MIN_ELEMENTS  # per-sample flags: gzip+shuffle, ~8x smaller
                    fh.create_dataset(key, data=data, **({"compression": "gzip", "shuffle": True} if big else {}))
            sha = sha256_file(tmp)
        h5_name = h5_path.name
    table = rows_to_table(rows, spec_json)
    meta = dict(table.schema.metadata or {})
    meta.update(
        {
            META_ARRAYS_FILE.encode(): h5_name.encode(),
            META_ARRAYS_SHA.encode(): sha.encode(),
            META_ARCH.encode(): str(index).encode(),
            META_TIMINGS.encode(): json.dumps(timings or {}).encode(),
            META_DEVICE.encode(): device.encode(),
        }
    )
    write_parquet_atomic(table.replace_schema_metadata(meta), shard_dir / f"{stem}.parquet")
    return len(rows)


@dataclass
class ArchFileInfo:
    """What a verified per-architecture Parquet says about itself."""

    index: int
    rows: int
    spec_hashes: tuple[str, ...]
    arrays_file: str
    timings: dict[str, float]
    device: str
    table: Any = field(default=None, repr=False)  # the rows, as read


def verify_arch_file(parquet_path: Path, index: int | None = None) -> ArchFileInfo:
    """Read a per-architecture Parquet completely and check its HDF5 hash; raise DataIntegrityError if unusable."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(parquet_path)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError on truncated or garbled files
        raise DataIntegrityError(f"{parquet_path} cannot be read ({type(exc).__name__}: {exc})") from None
    table = conform_table(table, str(parquet_path))  # schema v1 rows (written before v2, or all test): test split
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    idx_col = set(table.column("arch_index").to_pylist())
    want = index if index is not None else int(meta.get(META_ARCH, -1))
    if table.num_rows == 0 or idx_col != {want}:
        raise DataIntegrityError(f"{parquet_path} should hold rows of architecture {want} only, has {sorted(idx_col)}")
    arrays_file = meta.get(META_ARRAYS_FILE, "")
    if arrays_file:
        h5 = parquet_path.parent / arrays_file
        if not h5.is_file():
            raise DataIntegrityError(f"{parquet_path} names arrays file {h5}, which is missing")
        if sha256_file(h5) != meta.get(META_ARRAYS_SHA, ""):
            raise DataIntegrityError(f"{h5} does not match the sha256 in {parquet_path} (modified or truncated)")
    try:
        timings = json.loads(meta.get(META_TIMINGS, "{}"))
    except json.JSONDecodeError:
        timings = {}
    return ArchFileInfo(
        index=want,
        rows=table.num_rows,
        spec_hashes=tuple(sorted(set(table.column("spec_hash").to_pylist()))),
        arrays_file=arrays_file,
        timings=timings,
        device=meta.get(META_DEVICE, ""),
        table=table,
    )


def read_shard_manifest(shard_dir: Path) -> dict[str, Any] | None:
    """The manifest of a shard directory, or None if it has none (or it is unreadable)."""
    try:
        data = json.loads((shard_dir / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("format") == SHARD_FORMAT else None
