"""The shard directory's lifecycle: create or resume it under the job's writer lock, verify what is finished, record
successes and failures in its manifest. The files and their names are :mod:`robustbench201.store.shardfile`'s (the
layout is described there).

Anything unusable in a shard (a truncated file, an orphan HDF5, a temp file of an interrupted write) is removed and
the architecture recomputed. The manifest is a convenience view: it is rebuilt from the per-architecture files
whenever a shard is opened.

One job at a time writes into a shard: opening it takes the shard's writer lock (:mod:`.lock`), waiting while
another job (a requeued copy of the same array task, or the same launch submitted twice) holds it, and
:meth:`Shard.close` gives it back.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import code_version
from ..atomic import WriteError, clean_stale_temps
from ..errors import DataIntegrityError, RequestError
from ..store.shardfile import (
    SHARD_FORMAT,
    arch_files,
    load_shard_manifest,
    read_shard_manifest,
    remove_arch,
    remove_orphan_arrays,
    shard_dirs,
    shard_name,
    verify_arch_file,
    write_shard_manifest,
)
from .lock import ShardLock, acquire

log = logging.getLogger(__name__)


class ShardConflictError(RequestError):
    """An output directory holds shards of another evaluation spec, or shards overlapping the requested ones."""


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
    lock: ShardLock | None = None
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
        allow_overlap: bool = False,
        lock_wait: float | None = None,
    ) -> Shard:
        """Create or resume the shard for ``archs`` under ``out``: refuse another spec's output directory
        (unless ``force_new_spec``) and overlapping shards of the same job (unless ``allow_overlap``: filling gaps,
        where the overlap is cells another shard failed); take the shard's writer lock (waiting up to ``lock_wait``
        seconds, None: as long as another job holds it); clean temps; re-verify finished files. Call
        :meth:`close` when done."""
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
        check_out_dir(out, spec_hash, identity, set() if allow_overlap else set(archs), name, force_new_spec)
        shard = cls(out / name, spec_hash, spec_json, identity, list(archs), bounds)
        try:
            shard.path.mkdir(exist_ok=True)
        except OSError as exc:
            raise WriteError(f"cannot create shard directory {shard.path}: {exc.strerror or exc}") from None
        shard.lock = acquire(shard.path, lock_wait)
        try:
            for p in clean_stale_temps(shard.path):
                log.info("removed stale temporary file %s", p)
            shard._load_manifest()
        except BaseException:
            shard.close()
            raise
        return shard

    def close(self) -> None:
        """Give back the writer lock (held on by pool workers that inherited it until they exit)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def _load_manifest(self) -> None:
        try:
            old = load_shard_manifest(self.path)
        except DataIntegrityError as exc:
            self.problems.append(f"{exc}; rebuilt from the architecture files")
            old = {}
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
        for idx, pq_path in arch_files(self.path).items():
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
        remove_orphan_arrays(self.path)
        self.save(force=True)
        return finished

    def _discard(self, idx: int, reason: str) -> None:
        log.warning("architecture %d: %s", idx, reason)
        self.problems.append(f"arch {idx}: {reason}")
        self.manifest["problems"].append({"arch": idx, "problem": reason, "time": time.time()})
        remove_arch(self.path, idx)

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
        write_shard_manifest(self.path, self.manifest)
        self._last_save = now


def check_out_dir(
    out: Path, spec_hash: str, identity: dict[str, Any], archs: set[int], name: str, force_new_spec: bool
) -> None:
    """Refuse an output directory holding shards of another spec, or same-job shards overlapping ``archs``."""
    for d in shard_dirs(out):
        if d.name == name:
            continue
        m = read_shard_manifest(d)
        if m is None:
            continue
        if m.get("spec_hash") != spec_hash:
            if not force_new_spec:
                raise ShardConflictError(
                    f"{out} holds shard {d.name} of evaluation spec {m.get('spec_hash')}, not {spec_hash}; "
                    "use another {out}, or {force_new_spec} to mix specs in one directory"
                )
            continue
        if m.get("identity") == identity:
            overlap = archs & set(m.get("archs", []))
            if overlap:
                raise ShardConflictError(
                    f"the requested architectures overlap shard {d.name} ({len(overlap)} shared, e.g. "
                    f"{min(overlap)}); resume with that shard's exact range or use another {{out}}"
                )


def finished_in_out(out: str | Path, spec_hash: str, identity: dict[str, Any]) -> set[int]:
    """Cells with a committed per-architecture file in any shard of this job under ``out`` (not verified: a plan
    uses this to skip cells finished since the last merge; merge verifies every file)."""
    done: set[int] = set()
    for d in shard_dirs(out):
        m = read_shard_manifest(d)
        if m is not None and m.get("spec_hash") == spec_hash and m.get("identity") == identity:
            done.update(arch_files(d))
    return done
