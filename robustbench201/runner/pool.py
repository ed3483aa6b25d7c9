"""Local pool: one worker process per device entry pulling architectures from a shared queue (a device listed K
times, see :func:`expand_devices`, runs K workers on it).

Each worker builds its evaluator once (``factory(device)``), then evaluates and writes per-architecture files
straight into the shared shard directory (per-architecture atomic files make concurrent writers safe). The
coordinating process only collects messages, updates the manifest and the progress bar. Workers inherit the shard's
writer lock (:mod:`.lock`): the shard stays locked while any of them may still write, even if the coordinator was
killed first. Workers are started with
the ``spawn`` method (safe with CUDA and with torch's thread pools) and use ``threads`` torch threads each.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import Rb201Error
from .worker import ArchMessage, EvaluatorFactory, Status, process_arch

log = logging.getLogger(__name__)


class WorkerError(Rb201Error):
    """A pool worker could not start (e.g. missing data files) or could not write its results."""


def _worker(
    wid: int,
    device: str,
    factory: EvaluatorFactory,
    tasks: Any,
    results: Any,
    shard_dir: str,
    retries: int,
    threads: int,
    lock: Any = None,  # the shard lock's descriptor, shared with the coordinator: held until this process exits
) -> None:
    parent = os.getppid()

    def alive() -> bool:  # the coordinator still runs (a killed job's workers must not write after it)
        return os.getppid() == parent

    try:
        import torch

        torch.set_num_threads(threads)
        if device.startswith("cuda") and torch.device(device).index is not None:  # plain "cuda": the current one
            torch.cuda.set_device(torch.device(device))
        evaluator = factory(device)
    except Exception as exc:
        results.put(ArchMessage(Status.FATAL, error_type=type(exc).__name__, message=str(exc), worker=wid))
        return
    while True:
        idx = tasks.get()
        if idx is None or not alive():  # sentinel, or the coordinator is gone
            return
        results.put(ArchMessage(Status.START, idx, worker=wid))
        try:
            msg = process_arch(
                evaluator, Path(shard_dir), idx, factory.spec_hash, factory.spec_json, device, retries, alive
            )
        except Exception as exc:  # write errors end the job
            results.put(ArchMessage(Status.FATAL, idx, error_type=type(exc).__name__, message=str(exc), worker=wid))
            return
        results.put(msg.at(device, wid))


def expand_devices(devices: list[str], workers_per_device: int) -> list[str]:
    """``workers_per_device`` pool entries per device, interleaved (``[a, b]``, 2 -> ``[a, b, a, b]``), so that
    several architectures run at once on each device (one small NB201 network leaves most of a large GPU idle)."""
    if isinstance(workers_per_device, bool) or not isinstance(workers_per_device, int) or workers_per_device < 1:
        raise Rb201Error(f"workers per device {workers_per_device!r} not allowed; allowed: an integer >= 1")
    return [d for _ in range(workers_per_device) for d in devices]


def run_pool(
    todo: list[int],
    shard_dir: Path,
    factory: EvaluatorFactory,
    devices: list[str],
    retries: int = 2,
    threads: int = 1,
    lock: Any = None,
) -> Iterator[ArchMessage]:
    """Evaluate ``todo`` with one worker per entry of ``devices``; yield one message per architecture.
    ``lock``: :meth:`robustbench201.runner.lock.ShardLock.for_child` of the shard, shared with every worker.

    A worker that dies mid-architecture (killed, segfault) turns that architecture into a recorded failure
    (``WorkerDied``); the other workers go on. A worker that cannot start raises :class:`WorkerError`."""
    ctx = mp.get_context("spawn")
    tasks = ctx.Queue()
    results = ctx.Queue()
    for idx in todo:
        tasks.put(idx)
    for _ in devices:
        tasks.put(None)
    procs = [
        ctx.Process(
            target=_worker,
            args=(w, dev, factory, tasks, results, str(shard_dir), retries, threads, lock),
            name=f"rb201-worker-{w}-{dev}",
            daemon=True,
        )
        for w, dev in enumerate(devices)
    ]
    for p in procs:
        p.start()
    current: dict[int, int] = {}
    pending = set(todo)
    try:
        while pending:
            try:
                msg = results.get(timeout=1.0)
            except queue.Empty:
                for w, p in enumerate(procs):
                    if not p.is_alive() and w in current:
                        idx = current.pop(w)
                        pending.discard(idx)
                        died = f"worker on {devices[w]} exited with code {p.exitcode}"
                        yield ArchMessage(Status.FAILED, idx, error_type="WorkerDied", message=died, device=devices[w])
                if pending and not any(p.is_alive() for p in procs):
                    raise WorkerError(
                        f"all {len(procs)} workers exited with {len(pending)} architectures left "
                        f"(exit codes {[p.exitcode for p in procs]})"
                    ) from None
                continue
            if msg.status == Status.FATAL:
                raise WorkerError(f"worker on {devices[msg.worker]}: {msg.error_type}: {msg.message}")
            if msg.status == Status.START:
                current[msg.worker] = msg.arch
                continue
            current.pop(msg.worker, None)
            pending.discard(msg.arch)
            yield msg
    finally:
        for p in procs:
            if p.is_alive():
                p.join(timeout=5 if not pending else 0.1)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
        tasks.close()
        results.close()
