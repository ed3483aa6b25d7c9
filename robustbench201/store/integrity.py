"""Checking files against the sha256 and size a manifest records, cheaply when nothing changed.

:func:`verify_file` hashes a file and compares it with the expected sha256 and size. Hashing every file on every
open would make a repeated ``rb201.query(..., source=DATASET)`` pay for megabytes of sha256 each time, so a verified
file leaves a *stamp* in a small JSON cache beside the user's cache folder: its absolute path, size, inode, device,
``mtime_ns`` and ``ctime_ns`` together with the sha256 it matched. A later check whose stamp is unchanged trusts the
earlier hash; any write to the file changes ``ctime_ns`` (which a user cannot set back), so a file modified in place,
even with its size and modification time kept, is hashed again and refused when it no longer matches.

The cache is only ever an optimisation: it is read leniently (a missing, unreadable or malformed cache is ignored),
written atomically, and an unwritable cache folder just means every open hashes again. ``RB201_CACHE`` moves the
cache folder (shared with downloads, :mod:`robustbench201.published`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from ..atomic import sha256_file, write_text_atomic
from ..errors import DataIntegrityError

log = logging.getLogger(__name__)

ENV_CACHE = "RB201_CACHE"
STAMPS_FILE = "verified-files.json"
STAMPS_FORMAT = "rb201-verified-stamps-1"
MAX_STAMPS = 4096  # the oldest stamps are dropped beyond this many files
_LOCK = threading.Lock()
_MEMO: dict[str, tuple[tuple[int, ...], str]] = {}  # this process's verified stamps (no file read needed)


def user_cache_dir() -> Path:
    """``$RB201_CACHE``, else the platform's user cache folder + ``rb201`` (``~/.cache/rb201`` on Linux,
    ``~/Library/Caches/rb201`` on macOS, ``%LOCALAPPDATA%\\rb201\\Cache`` on Windows), as pooch places downloads.
    No import beyond the standard library (this runs on the query path)."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "rb201"
    if sys.platform.startswith("win"):
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "rb201" / "Cache"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rb201"


def _stamp(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_size, st.st_ino, st.st_dev, st.st_mtime_ns, st.st_ctime_ns)


def _stamps_path() -> Path:
    return user_cache_dir() / STAMPS_FILE


def _read_stamps() -> dict[str, dict[str, object]]:
    try:
        doc = json.loads(_stamps_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("format") != STAMPS_FORMAT or not isinstance(doc.get("files"), dict):
        return {}
    return doc["files"]


def _write_stamp(key: str, stamp: tuple[int, ...], sha256: str) -> None:
    with _LOCK:
        files = _read_stamps()
        files.pop(key, None)
        files[key] = {"stamp": list(stamp), "sha256": sha256}
        if len(files) > MAX_STAMPS:
            files = dict(list(files.items())[-MAX_STAMPS:])
        try:
            write_text_atomic(_stamps_path(), json.dumps({"format": STAMPS_FORMAT, "files": files}))
        except (OSError, ValueError) as exc:  # WriteError (a ValueError) or OSError: the cache is not writable
            log.debug("cannot write the verification cache %s: %s", _stamps_path(), exc)


def _cached_sha(key: str, stamp: tuple[int, ...]) -> str | None:
    memo = _MEMO.get(key)
    if memo is not None and memo[0] == stamp:
        return memo[1]
    rec = _read_stamps().get(key)
    if isinstance(rec, dict) and rec.get("stamp") == list(stamp) and isinstance(rec.get("sha256"), str):
        _MEMO[key] = (stamp, str(rec["sha256"]))
        return str(rec["sha256"])
    return None


@dataclass(frozen=True)
class Verified:
    """A file that matched its expected size and sha256 (``hashed``: False when an unchanged stamp was trusted)."""

    path: Path
    sha256: str
    hashed: bool


def verify_file(path: str | Path, sha256: str, size: int, *, use_cache: bool = True, what: str = "") -> Verified:
    """Check ``path`` against ``size`` (bytes) and ``sha256`` (hex); :class:`DataIntegrityError` naming the file
    on any mismatch. With ``use_cache`` an unchanged file verified before is not hashed again (module notes)."""
    p = Path(path)
    label = what or str(p)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise DataIntegrityError(f"{label} is missing") from None
    except OSError as exc:
        raise DataIntegrityError(f"{label} cannot be read: {exc.strerror or exc}") from None
    if st.st_size != size:
        raise DataIntegrityError(f"{label} has {st.st_size} bytes; the manifest says {size} (truncated or changed)")
    key = str(p.resolve())
    stamp = _stamp(st)
    if use_cache and _cached_sha(key, stamp) == sha256:
        return Verified(p, sha256, hashed=False)
    try:
        got = sha256_file(p)
    except OSError as exc:
        raise DataIntegrityError(f"{label} cannot be read: {exc.strerror or exc}") from None
    if got != sha256:
        _MEMO.pop(key, None)
        raise DataIntegrityError(f"{label} does not match its sha256 in the manifest (corrupt or changed in place)")
    after = _stamp(p.stat())
    if after == stamp:  # not written while we hashed it
        _MEMO[key] = (stamp, got)
        if use_cache:
            _write_stamp(key, stamp, got)
    return Verified(p, got, hashed=True)


def forget_stamps() -> None:
    """Drop this process's memory of verified files (the cache file stays); for tests and benchmarks."""
    _MEMO.clear()
