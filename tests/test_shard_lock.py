"""The shard writer lock: two jobs running the same shard at once (a requeue racing with a still-running original,
or the same launch submitted twice) never write into it together, and the lock outlives a killed coordinator for as
long as its pool workers may still write. The first job of each test holds after a given number of architectures
until the test releases it, so no test races a job (``CleanEvalFactory.hold_from``)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_runner_fixtures import CleanEvalFactory

from robustbench201.runner import run_job, select_archs
from robustbench201.runner.lock import LOCK_FILE, ShardBusyError, acquire, is_locked, read_holder
from robustbench201.store.shardfile import verify_arch_file

TESTS = Path(__file__).resolve().parent
ARCHS = select_archs([(0, 12)])

_SCRIPT = """
import sys
from test_runner_fixtures import CleanEvalFactory
from robustbench201.runner import run_job, select_archs
if __name__ == "__main__":
    end, hold_from, release = int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
    factory = CleanEvalFactory(delay=float(sys.argv[2]), hold_from=hold_from, release=release)
    rep = run_job(select_archs([(0, end)]), sys.argv[1], factory, bounds=(0, end), devices=sys.argv[3].split(","),
                  progress=False)
    print("evaluated", len(rep.finished), "skipped", rep.skipped, flush=True)
"""


def _start(tmp_path: Path, out: Path, devices: str, end: int, hold: int) -> tuple[subprocess.Popen, Path]:
    """A job over the cells of [0, end) that evaluates the first ``hold`` of them, then waits (holding the shard's
    lock) until the returned release file exists."""
    script, release = tmp_path / "job.py", tmp_path / "release"
    script.write_text(_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    hold_from = select_archs([(0, end)])[hold]
    proc = subprocess.Popen(
        [sys.executable, str(script), str(out), "0", devices, str(end), str(hold_from), str(release)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    return proc, release


def _wait_for_files(out: Path, n: int, proc: subprocess.Popen, timeout: float = 600) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = list(out.glob("shard-*/arch-*.parquet"))
        if len(files) >= n:
            return files[0].parent
        assert proc.poll() is None, "the first job ended before it wrote anything"
        time.sleep(0.05)
    raise AssertionError(f"no {n} finished architectures under {out} within {timeout} s")


class _ReleaseWhenWaiting(logging.Handler):
    """Creates ``release`` once this process logs that it waits for another job's shard lock, then holds on for a
    second more: a wait of 1 s or more is what a job's summary reports."""

    def __init__(self, release: Path) -> None:
        super().__init__()
        self.release_file = release

    def emit(self, record: logging.LogRecord) -> None:
        if "being written by" in record.getMessage() and not self.release_file.exists():
            time.sleep(1.0)
            self.release_file.touch()


def _all_verified(shard: Path) -> list[int]:
    done = sorted(int(p.stem.split("-")[1]) for p in shard.glob("arch-*.parquet"))
    for idx in done:
        verify_arch_file(shard / f"arch-{idx:05d}.parquet", idx)  # raises on a damaged pair
    assert not list(shard.glob("*.rb201-tmp")) and not list(shard.glob(".*.rb201-tmp"))
    return done


def test_a_second_job_on_a_busy_shard_waits_for_the_first_then_finds_everything_done(tmp_path):
    """The first job holds the lock with 2 architectures done until the second is seen waiting for it."""
    out = tmp_path / "out"
    first, release = _start(tmp_path, out, "cpu", end=12, hold=2)
    shard = _wait_for_files(out, 2, first)
    assert is_locked(shard) is True
    holder = read_holder(shard)
    assert holder is not None and holder["pid"] == first.pid
    # fail fast: the error names the job that holds the shard
    with pytest.raises(ShardBusyError, match=f"pid {first.pid} on "):
        run_job(ARCHS, out, CleanEvalFactory(), bounds=(0, 12), progress=False, lock_wait=0)
    # wait (the default): it starts once the first job is done, and has nothing left to do
    lock_log = logging.getLogger("robustbench201.runner.lock")
    handler = _ReleaseWhenWaiting(release)
    lock_log.addHandler(handler)
    try:
        second = run_job(ARCHS, out, CleanEvalFactory(), bounds=(0, 12), progress=False)
    finally:
        lock_log.removeHandler(handler)
    assert first.wait(timeout=600) == 0
    assert f"evaluated {len(ARCHS)} skipped 0" in first.stdout.read()
    assert second.finished == [] and second.skipped == len(ARCHS) and second.lock_wait_s > 0
    assert "waited" in second.summary()
    assert _all_verified(shard) == ARCHS
    assert is_locked(shard) is False and read_holder(shard) is None  # released and cleared


def test_pool_workers_hold_the_lock_after_their_coordinator_is_killed(tmp_path):
    """kill -9 of the coordinating process: its two workers inherited the lock, so the shard stays locked until
    they have stopped (each finishes its architecture, sees the coordinator gone and exits without writing)."""
    out = tmp_path / "out"
    proc, release = _start(tmp_path, out, "cpu,cpu", end=8, hold=2)  # both workers wait after the first two
    shard = _wait_for_files(out, 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert is_locked(shard) is True  # held by the orphaned workers, not by the dead coordinator
    release.touch()
    deadline = time.monotonic() + 600
    while is_locked(shard) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert is_locked(shard) is False, "the orphaned workers should exit after their current architecture"
    archs = select_archs([(0, 8)])
    rep = run_job(archs, out, CleanEvalFactory(), bounds=(0, 8), progress=False, lock_wait=0)
    assert rep.skipped == 2 and rep.skipped + len(rep.finished) == len(archs)  # the orphans wrote nothing
    assert _all_verified(shard) == archs


def test_lock_file_and_holder_record(tmp_path):
    lock = acquire(tmp_path)
    assert (tmp_path / LOCK_FILE).is_file() and read_holder(tmp_path)["pid"] == os.getpid()
    with pytest.raises(ShardBusyError, match="being written by"):
        acquire(tmp_path, wait=0.2, poll=0.05)  # flock locks conflict between open files, even in one process
    lock.release()
    assert read_holder(tmp_path) is None and is_locked(tmp_path) is False
    acquire(tmp_path, wait=0).release()
    assert is_locked(tmp_path / "nowhere") is None
