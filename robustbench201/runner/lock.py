"""The writer lock of a shard directory: at most one job writes into a shard at a time.

A scheduler may run the same array task twice at once: a requeue racing with an original that still runs on a node
the controller lost contact with, or the same ``rb201 launch`` submitted again while the first array runs. Two
writers in one shard would break it: opening a shard removes temporary files and HDF5 files without a commit
marker (another writer's work in progress), and two writers of one architecture can leave a Parquet file naming
the other writer's HDF5 hash. So the process that runs a shard holds an exclusive advisory lock (``flock``) on
``SHARD/.writer.lock`` from before it cleans the directory until its last write, and a second writer waits for it.

* The lock belongs to the open file, not to a process: the pool workers of a shard inherit it (see
  :meth:`ShardLock.for_child`), so it stays held while any process that may still write into the shard lives, even
  when the coordinating process was killed first.
* The kernel releases it when the last of those processes exits, however it ends (killed, node reboot; on NFS when
  the client's lease expires), so there is no stale lock to clean up.
* The holder writes who it is (host, pid, Slurm job) into the lock file, so the one who waits, and
  ``rb201 status``, can say which job holds a shard.
* ``flock`` works on local file systems and on NFS (Linux maps it to NFS byte-range locks); Lustre needs the
  ``flock`` mount option. Where the file system refuses locks, the shard is written without one and a warning says
  that requeue safety is off.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from multiprocessing import reduction
from pathlib import Path
from typing import Any

from ..errors import Rb201Error

try:
    import fcntl
except ImportError:  # not POSIX: no advisory locks
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

LOCK_FILE = ".writer.lock"
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class ShardBusyError(Rb201Error):
    """Another job holds the writer lock of a shard and the wait for it ran out."""


def holder_info() -> dict[str, Any]:
    """Who this process is, as written into a lock it holds: host, pid, start time, and the Slurm job if any."""
    since = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    info: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(), "since": since}
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    job = f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID")
    if job:
        info["slurm_job"] = job
    return info


def describe_holder(info: dict[str, Any] | None) -> str:
    """``job 12_3 (pid 4711 on node7, since ...)`` or ``pid 4711 on node7 ...``; "an unknown process" if empty."""
    if not info:
        return "an unknown process"
    where = f"pid {info.get('pid', '?')} on {info.get('host', '?')}, since {info.get('since', '?')}"
    return f"Slurm job {info['slurm_job']} ({where})" if info.get("slurm_job") else where


def read_holder(shard_dir: str | Path) -> dict[str, Any] | None:
    """What the current (or last, if it was killed before clearing it) holder wrote into the lock file."""
    try:
        text = (Path(shard_dir) / LOCK_FILE).read_text()
    except OSError:
        return None
    try:
        data = json.loads(text) if text.strip() else None
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


class _InheritedFd:
    """Pickles to the same open file in a ``spawn``-ed child (multiprocessing passes the descriptor along), so the
    child shares the lock; unpickled, it is the descriptor number."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple[Any, ...]:
        return (_detach, (reduction.DupFd(self.fd),))


def _detach(dup: Any) -> int:
    return int(dup.detach())


@dataclass
class ShardLock:
    """A held writer lock (``fd`` -1: the file system does not support locks, nothing is held)."""

    path: Path
    fd: int
    waited_s: float = 0.0

    @property
    def held(self) -> bool:
        return self.fd >= 0

    def for_child(self) -> _InheritedFd | None:
        """Pass this to a ``spawn``-ed worker process (as an argument) and keep it there: the worker then holds the
        lock too, until it exits."""
        return _InheritedFd(self.fd) if self.held else None

    def release(self) -> None:
        """Clear the holder record and close this process's handle (the lock is free once inheriting workers are
        gone too)."""
        if not self.held:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self.fd, 0)
        os.close(self.fd)
        self.fd = -1


def acquire(shard_dir: str | Path, wait: float | None = None, poll: float = 0.5) -> ShardLock:
    """Take the writer lock of ``shard_dir``, waiting up to ``wait`` seconds (None: as long as it takes) while
    another job holds it; raise :class:`ShardBusyError` naming the holder when the wait runs out."""
    path = Path(shard_dir) / LOCK_FILE
    if fcntl is None:
        log.warning("no advisory locks on this platform: writing %s without the shard lock", shard_dir)
        return ShardLock(path, -1)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    t0 = time.monotonic()
    next_note = t0
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                os.close(fd)
                raise
            os.close(fd)
            log.warning("the file system of %s does not support locks (%s): writing without the shard lock, so two "
                        "jobs running the same shard at once could damage it", shard_dir, exc.strerror)  # fmt: skip
            return ShardLock(path, -1)
        now = time.monotonic()
        holder = describe_holder(read_holder(shard_dir))
        if wait is not None and now - t0 >= wait:
            os.close(fd)
            raise ShardBusyError(
                f"shard {Path(shard_dir).name} is being written by {holder}; wait for that job to end (or stop it), "
                "then run again: it resumes from the finished architectures"
            )
        if now >= next_note:
            log.warning("shard %s is being written by %s: waiting for it to end, then resuming from its files",
                        Path(shard_dir).name, holder)  # fmt: skip
            next_note = now + 60
        time.sleep(poll)
    lock = ShardLock(path, fd, waited_s=time.monotonic() - t0)
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(holder_info(), sort_keys=True) + "\n").encode(), 0)
    return lock


def is_locked(shard_dir: str | Path) -> bool | None:
    """Whether a writer holds the lock of ``shard_dir`` now (None: no lock file, or locks unsupported). Probes with
    a shared non-blocking lock that it drops at once; a writer that starts in that instant waits one poll longer."""
    path = Path(shard_dir) / LOCK_FILE
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)
    return False
