"""The on-disk format of an evaluation shard: every shard and file name, and the reading and writing of its files
(the directory's lifecycle, locking and resume, is :mod:`robustbench201.runner.shard`; no other module builds or
globs these names).

Layout::

    OUT/shard-{start:05d}-{end:05d}-{spec12}-{job6}/     (or shard-list-{sha6}-{spec12}-{job6} for --arch lists)
      manifest.json        format "rb201-shard": spec, job identity, code version, devices, per-arch timings, failures
                           (a convenience view, written atomically, rebuilt from the architecture files on resume)
      arch-00042.h5        arrays of architecture 42 (written first, atomically)
      arch-00042.parquet   its tidy rows (store.schema), written last: the commit marker of the architecture

The arrays file stacks the arrays of one dtype and shape (root attribute ``rb201.arrays_layout`` = 2): group ``0``,
``1``, ... holds ``keys`` (the ``store.schema.array_path`` of each row, UTF-8 in fixed-length bytes) and ``data`` (the
arrays, one per row, gzip-compressed from 1024 elements; integers wider than 16 bits in the narrowest type that holds
them, their own dtype in the attribute ``dtype``), so a file of the ``jung2023`` preset is 4 HDF5 datasets instead
of 294. Files written before (no attribute) hold every array at its ``array_path``; :func:`read_arch_arrays`
reads both.

``job6`` hashes the job identity (dataset, weights, seed, ...) without the spec hash, so several datasets or weight
sources can share one ``OUT``. An architecture is finished exactly when its Parquet file exists, reads completely,
holds rows of that architecture only, and the HDF5 file it names has the sha256 recorded in its metadata
(:func:`verify_arch_file`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path, sha256_file, write_parquet_atomic, write_text_atomic
from ..errors import DataIntegrityError
from .arrays import narrow, read_datasets
from .schema import Row, conform_table, rows_to_table

__all__ = ["MANIFEST", "SHARD_FORMAT", "META_ARRAYS_FILE", "META_ARRAYS_SHA", "META_ARCH", "META_TIMINGS",
           "META_DEVICE", "COMPRESS_MIN_ELEMENTS", "shard_name", "shard_dirs", "shards_in", "arch_stem",
           "arch_file", "arch_files", "remove_arch", "remove_orphan_arrays", "write_arch_files",
           "ArchFileInfo", "verify_arch_file", "read_arch_arrays", "write_shard_manifest",
           "load_shard_manifest", "read_shard_manifest"]  # fmt: skip

MANIFEST = "manifest.json"
SHARD_FORMAT = "rb201-shard"
META_ARRAYS_FILE = "rb201.arrays_file"
META_ARRAYS_SHA = "rb201.arrays_sha256"
META_ARCH = "rb201.arch_index"
META_TIMINGS = "rb201.timings"
META_DEVICE = "rb201.device"
COMPRESS_MIN_ELEMENTS = 1024  # smaller arrays are stored contiguous (chunking overhead exceeds the gain)
ARRAYS_LAYOUT_ATTR = "rb201.arrays_layout"
STACKED_LAYOUT = 2


_SHARD_PREFIX = "shard-"
_ARCH_FILE = re.compile(r"^arch-(\d{5})\.parquet$")


def _short_hash(obj: object, n: int) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def shard_name(spec_hash: str, identity: dict[str, Any], archs: list[int], bounds: tuple[int, int] | None) -> str:
    """Directory name of a shard: the range (or a hash of the list), the spec hash, and a hash of the rest of
    the job identity (dataset, weights, seed, ...)."""
    job = _short_hash({k: v for k, v in identity.items() if k != "spec_hash"}, 6)
    where = f"{bounds[0]:05d}-{bounds[1]:05d}" if bounds else f"list-{_short_hash(archs, 6)}"
    return f"{_SHARD_PREFIX}{where}-{spec_hash[:12]}-{job}"


def shard_dirs(out: str | Path) -> list[Path]:
    """The shard directories under ``out``, sorted by name (none when ``out`` is not a directory)."""
    root = Path(out)
    if not root.is_dir():
        return []
    return sorted(d for d in root.iterdir() if d.name.startswith(_SHARD_PREFIX) and d.is_dir())


def shards_in(path: str | Path) -> list[Path]:
    """The shard directories an input ``path`` holds: ``path`` itself when it is one (it has a shard manifest or
    architecture files), then the shard directories below it."""
    path = Path(path)
    own = [path] if arch_files(path) or (path / MANIFEST).is_file() else []
    return own + shard_dirs(path)


def arch_stem(index: int) -> str:
    """The file stem of architecture ``index`` in a shard: ``arch-{index:05d}``."""
    return f"arch-{index:05d}"


def arch_file(shard_dir: str | Path, index: int) -> Path:
    """The Parquet file of architecture ``index`` in ``shard_dir``: its rows and its commit marker."""
    return Path(shard_dir) / f"{arch_stem(index)}.parquet"


def arch_files(shard_dir: str | Path) -> dict[int, Path]:
    """Architecture index -> its committed Parquet file in ``shard_dir`` (not verified), in index order."""
    d = Path(shard_dir)
    if not d.is_dir():
        return {}
    found = {int(m[1]): p for p in d.iterdir() if (m := _ARCH_FILE.match(p.name))}
    return dict(sorted(found.items()))


def remove_arch(shard_dir: str | Path, index: int) -> None:
    """Delete both files of architecture ``index`` (an unusable pair is recomputed)."""
    for suffix in (".parquet", ".h5"):
        (Path(shard_dir) / f"{arch_stem(index)}{suffix}").unlink(missing_ok=True)


def remove_orphan_arrays(shard_dir: str | Path) -> list[Path]:
    """Delete HDF5 files whose commit marker never landed (an interrupted architecture); return them."""
    removed = []
    for h5 in Path(shard_dir).glob("arch-*.h5"):
        if not h5.with_suffix(".parquet").exists():
            h5.unlink(missing_ok=True)
            removed.append(h5)
    return removed


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

        h5_path = Path(shard_dir) / f"{stem}.h5"
        stacks: dict[tuple[str, str, tuple[int, ...]], list[tuple[str, np.ndarray]]] = {}
        for key in sorted(arrays):
            a, orig = narrow(np.asarray(arrays[key]))
            stacks.setdefault((a.dtype.str, orig, a.shape), []).append((key, a))
        with atomic_path(h5_path) as tmp:
            with h5py.File(tmp, "w") as fh:
                fh.attrs[ARRAYS_LAYOUT_ATTR] = STACKED_LAYOUT
                for i, ((_, orig, _), items) in enumerate(stacks.items()):
                    data = np.stack([a for _, a in items])
                    big = data.size >= COMPRESS_MIN_ELEMENTS  # per-sample flags: gzip+shuffle, ~8x smaller
                    keys = np.array([k.encode() for k, _ in items])  # UTF-8, fixed length
                    fh.create_dataset(f"{i}/keys", data=keys)
                    ds = fh.create_dataset(
                        f"{i}/data", data=data, **({"compression": "gzip", "shuffle": True} if big else {})
                    )
                    if orig:
                        ds.attrs["dtype"] = orig
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
    write_parquet_atomic(table.replace_schema_metadata(meta), arch_file(shard_dir, index))
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


def verify_arch_file(parquet_path: Path, index: int | None = None, *, arrays: bool = True) -> ArchFileInfo:
    """Read a per-architecture Parquet completely and (unless not ``arrays``: a reader that checks them with
    :func:`read_arch_arrays`) check its HDF5 hash; raise DataIntegrityError if unusable."""
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(parquet_path) as pf:
            table = pf.read()
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
        if arrays and sha256_file(h5) != meta.get(META_ARRAYS_SHA, ""):
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


def read_arch_arrays(h5_path: Path, sha256: str | None = None) -> dict[str, np.ndarray]:
    """Every array of an architecture's HDF5 file (either layout) keyed by its ``store.schema.array_path``; with
    ``sha256`` the bytes read are checked against it first (:class:`DataIntegrityError` naming the file)."""
    import h5py

    try:
        data = Path(h5_path).read_bytes()
    except OSError as exc:
        raise DataIntegrityError(f"{h5_path} cannot be read: {exc.strerror or exc}") from None
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise DataIntegrityError(f"{h5_path} does not match the sha256 recorded with its rows (modified or truncated)")
    out: dict[str, np.ndarray] = {}
    try:
        with h5py.File(h5py.h5f.open_file_image(data), "r") as fh:  # the bytes just checked, not the file again
            if int(fh.attrs.get(ARRAYS_LAYOUT_ATTR, 1)) == STACKED_LAYOUT:
                for name in fh:
                    stacked = read_datasets(fh[name])
                    orig = fh[name]["data"].attrs.get("dtype")
                    data = stacked["data"].astype(np.dtype(str(orig))) if orig is not None else stacked["data"]
                    out.update((k.decode(), a) for k, a in zip(stacked["keys"].tolist(), data, strict=True))
            else:
                out = read_datasets(fh)
    except (OSError, KeyError, ValueError) as exc:
        raise DataIntegrityError(f"{h5_path} is not a readable arrays file ({exc})") from None
    return out


def write_shard_manifest(shard_dir: str | Path, manifest: dict[str, Any]) -> None:
    """Write a shard's manifest atomically (``manifest["format"]`` is :data:`SHARD_FORMAT`)."""
    write_text_atomic(Path(shard_dir) / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))


def load_shard_manifest(shard_dir: str | Path) -> dict[str, Any]:
    """A shard's manifest as written ({} when it has none); :class:`DataIntegrityError` when it is unreadable."""
    path = Path(shard_dir) / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataIntegrityError(f"{path} unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise DataIntegrityError(f"{path} unreadable (it holds {type(data).__name__}, not an object)")
    return data


def read_shard_manifest(shard_dir: str | Path) -> dict[str, Any] | None:
    """The manifest of a shard directory, or None if it has none (or it is unreadable)."""
    try:
        data = load_shard_manifest(shard_dir)
    except DataIntegrityError:
        return None
    return data if data.get("format") == SHARD_FORMAT else None
