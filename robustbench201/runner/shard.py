"""The on-disk shard: one directory per (architectures, job identity) holding per-architecture files.

Layout::

    OUT/shard-{start:05d}-{end:05d}-{spec12}-{run6}/     (or shard-list-{sha6}-{spec12}-{run6} for --arch lists)
      manifest.json        spec, job identity, code version, devices, per-arch timings, failures (JSON, atomic)
      arch-00042.h5        arrays of architecture 42 (written first, atomically)
      arch-00042.parquet   its tidy rows (schema v1), written last: the commit marker of the architecture

An architecture is finished exactly when its Parquet file exists, reads completely, holds rows of that
architecture only, and the HDF5 file it names has the sha256 recorded in its metadata. Anything else (a truncated
file, an orphan HDF5, a temp file of an interrupted write) is removed and the architecture recomputed. The
manifest is a convenience view: it is rebuilt from the per-architecture files whenever a shard is opened.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._version import code_version
from ..errors import DataIntegrityError, Rb201Error
from ..store.atomic import (
    WriteError,
    atomic_path,
    clean_stale_temps,
    sha256_file,
    write_parquet_atomic,
    write_text_atomic,
)
from ..store.schema import Row, check_table_schema, rows_to_table

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SHARD_FORMAT = "rb201-shard"
META_ARRAYS_FILE = "rb201.arrays_file"
META_ARRAYS_SHA = "rb201.arrays_sha256"
META_ARCH = "rb201.arch_index"
META_TIMINGS = "rb201.timings"
META_DEVICE = "rb201.device"
COMPRESS_MIN_ELEMENTS = 1024  # smaller arrays are stored contiguous (chunking overhead exceeds the gain)


class ShardConflictError(Rb201Error):
    """An output directory holds shards of another evaluation spec, or shards overlapping the requested ones."""


def _short_hash(obj: object, n: int) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def shard_name(spec_hash: str, identity: dict[str, Any], archs: list[int], bounds: tuple[int, int] | None) -> str:
    """Directory name of a shard: the range (or a hash of the list), the spec hash, and a hash of the rest of
    the job identity (dataset, weights, seed, ...)."""
    run = _short_hash({k: v for k, v in identity.items() if k != "spec_hash"}, 6)
    where = f"{bounds[0]:05d}-{bounds[1]:05d}" if bounds else f"list-{_short_hash(archs, 6)}"
    return f"shard-{where}-{spec_hash[:12]}-{run}"


def arch_stem(index: int) -> str:
    return f"arch-{index:05d}"


# ---- per-architecture files -------------------------------------------------------------------------------
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
    check_table_schema(table.schema, str(parquet_path))
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


# ---- the shard directory ------------------------------------------------------------------------------------
@dataclass
class Shard:
    """A shard directory and its manifest (owned by the coordinating process; workers only write arch files)."""

    path: Path
    spec_hash: str
    spec_json: str
    identity: dict[str, Any]
    archs: list[int]
    bounds: tuple[int, int] | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    _last_save: float = 0.0

    @classmethod
    def open(
        cls,
        out: str | Path,
        spec_hash: str,
        spec_json: str,
        identity: dict[str, Any],
        archs: list[int],
        bounds: tuple[int, int] | None = None,
        force_new_spec: bool = False,
    ) -> Shard:
        """Create or resume the shard for ``archs`` under ``out``: refuse another spec's output directory
        (unless ``force_new_spec``) and overlapping shards of the same job; clean temps; re-verify finished files."""
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise WriteError(f"output directory {out} exists and is not a directory")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WriteError(f"cannot create output directory {out}: {exc.strerror or exc}") from None
        if not os.access(out, os.W_OK | os.X_OK):
            raise WriteError(f"output directory {out} is not writable")
        name = shard_name(spec_hash, identity, archs, bounds)
        check_out_dir(out, spec_hash, identity, set(archs), name, force_new_spec)
        shard = cls(out / name, spec_hash, spec_json, identity, list(archs), bounds)
        try:
            shard.path.mkdir(exist_ok=True)
        except OSError as exc:
            raise WriteError(f"cannot create shard directory {shard.path}: {exc.strerror or exc}") from None
        for p in clean_stale_temps(shard.path):
            log.info("removed stale temporary file %s", p)
        shard._load_manifest()
        return shard

    def _load_manifest(self) -> None:
        path = self.path / MANIFEST
        old: dict[str, Any] = {}
        if path.is_file():
            try:
                old = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                self.problems.append(f"{path} unreadable ({exc}); rebuilt from the architecture files")
        if old and old.get("identity") != self.identity:
            raise ShardConflictError(f"{self.path} belongs to another job ({old.get('identity')}), not {self.identity}")
        self.manifest = {
            "format": SHARD_FORMAT,
            "spec_hash": self.spec_hash,
            "spec": json.loads(self.spec_json),
            "identity": self.identity,
            "bounds": list(self.bounds) if self.bounds else None,
            "archs": self.archs,
            "code_version": code_version(),
            "created": old.get("created", time.strftime("%Y-%m-%dT%H:%M:%S%z")),
            "devices": old.get("devices", []),
            "finished": {},
            "failures": old.get("failures", {}),
            "problems": old.get("problems", []),
        }

    def scan(self) -> set[int]:
        """Verify every per-architecture file; remove unusable ones (reported in ``problems``); return finished."""
        finished: set[int] = set()
        planned = set(self.archs)
        for pq_path in sorted(self.path.glob("arch-*.parquet")):
            try:
                idx = int(pq_path.stem.split("-")[1])
            except (IndexError, ValueError):
                continue
            try:
                info = verify_arch_file(pq_path, idx)
                if info.spec_hashes != (self.spec_hash,):
                    raise DataIntegrityError(f"{pq_path} holds spec {info.spec_hashes}, not {self.spec_hash}")
            except DataIntegrityError as exc:
                self._discard(idx, f"{exc}; recomputing")
                continue
            if idx in planned:
                finished.add(idx)
                self.manifest["finished"][str(idx)] = {"rows": info.rows, "device": info.device, **info.timings}
                self.manifest["failures"].pop(str(idx), None)
        for h5 in self.path.glob("arch-*.h5"):  # arrays whose commit marker never landed
            if not h5.with_suffix(".parquet").exists():
                h5.unlink(missing_ok=True)
        self.save(force=True)
        return finished

    def _discard(self, idx: int, reason: str) -> None:
        log.warning("architecture %d: %s", idx, reason)
        self.problems.append(f"arch {idx}: {reason}")
        self.manifest["problems"].append({"arch": idx, "problem": reason, "time": time.time()})
        for suffix in (".parquet", ".h5"):
            (self.path / f"{arch_stem(idx)}{suffix}").unlink(missing_ok=True)

    def add_devices(self, devices: list[str]) -> None:
        self.manifest["devices"] = sorted(set(self.manifest["devices"]) | set(devices))

    def record_success(self, idx: int, rows: int, device: str, timings: dict[str, float]) -> None:
        self.manifest["finished"][str(idx)] = {"rows": rows, "device": device, **timings}
        self.manifest["failures"].pop(str(idx), None)
        self.save()

    def record_failure(self, idx: int, error_type: str, message: str, device: str, attempts: int) -> None:
        self.manifest["failures"][str(idx)] = {
            "error_type": error_type,
            "message": message[:2000],
            "device": device,
            "attempts": attempts,
        }
        self.save(force=True)

    def save(self, force: bool = False, min_interval: float = 2.0) -> None:
        """Write the manifest atomically (at most every ``min_interval`` seconds unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._last_save < min_interval:
            return
        self.manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        write_text_atomic(self.path / MANIFEST, json.dumps(self.manifest, indent=1, sort_keys=True))
        self._last_save = now


def read_shard_manifest(shard_dir: Path) -> dict[str, Any] | None:
    """The manifest of a shard directory, or None if it has none (or it is unreadable)."""
    try:
        data = json.loads((shard_dir / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("format") == SHARD_FORMAT else None


def check_out_dir(
    out: Path, spec_hash: str, identity: dict[str, Any], archs: set[int], name: str, force_new_spec: bool
) -> None:
    """Refuse an output directory holding shards of another spec, or same-job shards overlapping ``archs``."""
    for d in sorted(out.glob("shard-*")):
        if not d.is_dir() or d.name == name:
            continue
        m = read_shard_manifest(d)
        if m is None:
            continue
        if m.get("spec_hash") != spec_hash:
            if not force_new_spec:
                raise ShardConflictError(
                    f"{out} holds shard {d.name} of evaluation spec {m.get('spec_hash')}, not {spec_hash}; "
                    "use another --out, or --force-new-spec to mix specs in one directory"
                )
            continue
        if m.get("identity") == identity:
            overlap = archs & set(m.get("archs", []))
            if overlap:
                raise ShardConflictError(
                    f"the requested architectures overlap shard {d.name} ({len(overlap)} shared, e.g. "
                    f"{min(overlap)}); resume with that shard's exact range or use another --out"
                )
