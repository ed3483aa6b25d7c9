"""Integrity-first writes: write beside the target under a temporary name, flush and fsync, then rename.

A crash at any moment leaves either the old file or the complete new one, never a partial file under the final
name. Temporary files carry the suffix ``.rb201-tmp`` so readers and validators can ignore (and clean) them.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import Rb201Error

__all__ = ["TMP_SUFFIX", "WriteError", "atomic_path", "write_bytes_atomic", "write_text_atomic",
           "write_parquet_atomic", "clean_stale_temps", "sha256_file"]  # fmt: skip

TMP_SUFFIX = ".rb201-tmp"


class WriteError(Rb201Error):
    """The target directory is missing, unwritable or full; nothing was left under the final name."""


@contextlib.contextmanager
def atomic_path(target: str | Path, make_parents: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success fsync it and rename it to ``target``. ``make_parents``:
    create a missing folder (and its parents); without it a missing folder is a :class:`WriteError` naming it (a
    figure or drawing asked for at a mistyped path)."""
    target = Path(target)
    if not make_parents and not target.parent.is_dir():
        what = "is not a folder" if target.parent.exists() else "does not exist"
        raise WriteError(f"cannot write {target}: the folder {target.parent} {what}; create it first")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TMP_SUFFIX, dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise WriteError(f"cannot write in {target.parent}: {exc.strerror or exc}") from None
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the mode a plain open() would
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        reason = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise WriteError(f"writing {target} failed ({reason}); no partial file was left") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes_atomic(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: str | Path, text: str) -> None:
    write_bytes_atomic(target, text.encode("utf-8"))


def write_parquet_atomic(table, target: str | Path, compression: str = "zstd") -> None:  # type: ignore[no-untyped-def]
    """Write a pyarrow Table to ``target`` atomically."""
    import pyarrow.parquet as pq

    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, compression=compression)


def clean_stale_temps(directory: str | Path) -> list[Path]:
    """Remove leftover temporary files of interrupted writes in ``directory``; return what was removed."""
    removed = []
    for p in Path(directory).glob(f"*{TMP_SUFFIX}"):
        p.unlink(missing_ok=True)
        removed.append(p)
    for p in Path(directory).glob(f".*{TMP_SUFFIX}"):
        if p.exists():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
