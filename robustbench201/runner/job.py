"""Run a shard: evaluate each architecture (in this process, or a local pool of workers), write its files as soon
as it finishes, record failures, resume. What one architecture goes through is :mod:`.worker`."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import Rb201Error
from .pool import run_pool
from .shard import Shard
from .worker import ArchMessage, EvaluatorFactory, Status, process_arch

log = logging.getLogger(__name__)


@dataclass
class JobReport:
    """Outcome of one :func:`run_job` call."""

    shard_dir: Path
    planned: int
    skipped: int = 0
    finished: list[int] = field(default_factory=list)
    failures: dict[int, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    lock_wait_s: float = 0.0  # time spent waiting for another job to leave the shard

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        text = (
            f"{self.shard_dir}: {len(self.finished)} evaluated, {self.skipped} already done, "
            f"{len(self.failures)} failed of {self.planned} in {self.seconds:.1f} s"
        )
        if self.problems:
            text += f"; {len(self.problems)} damaged file(s) recomputed"
        if self.lock_wait_s >= 1:
            text += f"; waited {self.lock_wait_s:.0f} s for another job writing this shard"
        return text


def run_job(
    archs: list[int],
    out: str | Path,
    factory: EvaluatorFactory,
    *,
    bounds: tuple[int, int] | None = None,
    devices: list[str] | None = None,
    retries: int = 2,
    force_new_spec: bool = False,
    progress: bool = True,
    threads: int | None = None,
    allow_overlap: bool = False,
    lock_wait: float | None = None,
) -> JobReport:
    """Evaluate ``archs`` into their shard under ``out``, skipping those already finished there.

    ``bounds`` is the ``(start, end)`` range the shard is named after (None for an explicit list). With more
    than one device in ``devices`` (e.g. ``["cuda:0", "cuda:1"]``, or ``["cpu", "cpu"]``) a local pool of one
    worker process per device pulls architectures from a shared queue; otherwise they run in this process.
    ``threads``: torch intra-op threads per worker (default :func:`default_threads`). ``allow_overlap``: accept
    cells planned by another shard of the same job (``--missing-from``, which re-plans the cells that failed).
    ``lock_wait``: seconds to wait while another job writes the same shard (None: until it ends; see :mod:`.lock`)."""
    t_start = time.perf_counter()
    devices = list(devices or ["cpu"])
    threads = default_threads(devices) if threads is None else check_threads(threads)
    identity = factory.identity()
    shard = Shard.open(
        out, factory.spec_hash, factory.spec_json, identity, archs, bounds, force_new_spec, allow_overlap, lock_wait
    )
    try:
        report = _run_shard(shard, archs, factory, devices, retries, threads, progress)
    finally:
        shard.close()
    report.seconds = time.perf_counter() - t_start
    return report


def _run_shard(
    shard: Shard,
    archs: list[int],
    factory: EvaluatorFactory,
    devices: list[str],
    retries: int,
    threads: int,
    progress: bool,
) -> JobReport:
    """Evaluate what is not finished in an opened (locked) shard."""
    done = shard.scan()
    shard.add_devices(devices)
    todo = [a for a in archs if a not in done]
    report = JobReport(shard.path, len(archs), skipped=len(done), problems=list(shard.problems))
    report.lock_wait_s = shard.lock.waited_s if shard.lock is not None else 0.0
    log.info("%s: %d to evaluate, %d already finished", shard.path.name, len(todo), len(done))
    if todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), file=sys.stderr, disable=not progress, unit="arch", desc=shard.path.name[:24])
        try:
            if len(devices) > 1:
                lock = shard.lock.for_child() if shard.lock is not None else None
                messages = run_pool(todo, shard.path, factory, devices, retries, threads, lock)
            else:
                messages = _run_inline(todo, shard.path, factory, devices[0], retries, threads)
            for msg in messages:
                _record(shard, report, msg)
                bar.update(1)
        finally:
            bar.close()
            shard.save(force=True)
    return report


def _run_inline(
    todo: list[int], shard_dir: Path, factory: EvaluatorFactory, device: str, retries: int, threads: int
) -> Iterator[ArchMessage]:
    with torch_threads(threads):
        evaluator = factory(device)
        for idx in todo:
            msg = process_arch(evaluator, shard_dir, idx, factory.spec_hash, factory.spec_json, device, retries)
            yield msg.at(device)


def check_threads(threads: int) -> int:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise Rb201Error(f"threads {threads!r} out of range; allowed: an integer >= 1 (torch threads per worker)")
    return threads


def default_threads(devices: list[str]) -> int:  # noqa: ARG001 - the policy may depend on the devices later
    """Torch intra-op threads per worker when none are given: one. Measured on the 2-core development machine
    (BENCHMARKS.md), two threads per worker made the same evaluation 3x (C=8, N=1) to 5x (C=16, N=5) slower as soon
    as anything else ran on the cores; architectures are independent, so more cores are used by more workers
    (``--devices cpu,cpu,...``; a CPU array task runs one worker per CPU it was given)."""
    return 1


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run with ``threads`` torch intra-op threads in this process (restored afterwards)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _record(shard: Shard, report: JobReport, msg: ArchMessage) -> None:
    if msg.status == Status.ABANDONED:
        return
    if msg.status == Status.OK:
        shard.record_success(msg.arch, msg.rows, msg.device, msg.timings)
        report.finished.append(msg.arch)
    else:
        shard.record_failure(msg.arch, msg.error_type, msg.message, msg.device, msg.attempts)
        report.failures[msg.arch] = f"{msg.error_type}: {msg.message}"
