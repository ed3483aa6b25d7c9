"""Run a shard: evaluate each architecture, write its files as soon as it finishes, record failures, resume.

The runner is independent of what is computed: it takes an :class:`EvaluatorFactory`, a picklable object that
states the job identity (spec hash and JSON, dataset, weights, seed, ...) and, called with a device, returns a
function ``arch_index -> ArchOutput``. :mod:`robustbench201.runner.providers` wires the real spec, data readers,
weights and :func:`robustbench201.evaluate.evaluate`; tests plug in small evaluators.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import Rb201Error
from ..store.schema import Row
from ..store.shardfile import write_arch_files
from .shard import Shard

log = logging.getLogger(__name__)


@dataclass
class ArchOutput:
    """What evaluating one architecture produced: tidy rows, arrays keyed by ``store.schema.array_path``, and
    timings in seconds."""

    rows: list[Row]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


ArchEvaluator = Callable[[int], ArchOutput]


class EvaluatorFactory(Protocol):
    """Picklable description of what to compute; ``factory(device)`` builds the per-device evaluator."""

    spec_hash: str
    spec_json: str

    def identity(self) -> dict[str, Any]: ...

    def __call__(self, device: str) -> ArchEvaluator: ...


class ArchFailure(Exception):
    """An architecture whose result cannot be stored (non-finite values, wrong rows)."""


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
        return text


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc)


def _release_memory() -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def check_output(index: int, out: ArchOutput, spec_hash: str) -> None:
    """Refuse outputs that must not be stored: no rows, rows of another architecture or spec, non-finite values."""
    if not out.rows:
        raise ArchFailure(f"architecture {index}: the evaluator returned no rows")
    for r in out.rows:
        if r.arch_index != index:
            raise ArchFailure(f"architecture {index}: the evaluator returned a row of architecture {r.arch_index}")
        if r.spec_hash != spec_hash:
            raise ArchFailure(f"architecture {index}: row spec hash {r.spec_hash!r} is not the job's {spec_hash!r}")
        if not math.isfinite(r.value):
            raise ArchFailure(f"architecture {index}: non-finite value {r.value} for {r.family}/{r.key}/{r.measure}")


def process_arch(
    evaluator: ArchEvaluator,
    shard_dir: Path,
    index: int,
    spec_hash: str,
    spec_json: str,
    device: str,
    retries: int,
    alive: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Evaluate one architecture (retrying out-of-memory errors ``retries`` times) and write its files.

    Returns a message dict: ``{"status": "ok", rows, timings}`` or ``{"status": "failed", error_type, message,
    attempts}``, or ``{"status": "abandoned"}`` when ``alive()`` says the job is gone before the write. Write
    errors (unwritable directory, full disk) propagate: they end the job."""
    attempts = 0
    while True:
        attempts += 1
        t0 = time.perf_counter()
        try:
            out = evaluator(index)
            check_output(index, out, spec_hash)
        except Exception as exc:
            if _is_oom(exc) and attempts <= retries:
                log.warning("architecture %d: out of memory on %s (attempt %d); retrying", index, device, attempts)
                _release_memory()
                continue
            _release_memory()
            log.error("architecture %d failed: %s: %s", index, type(exc).__name__, exc)
            log.debug("%s", traceback.format_exc())
            return {
                "status": "failed",
                "arch": index,
                "error_type": type(exc).__name__,
                "message": str(exc),
                "attempts": attempts,
            }
        if alive is not None and not alive():
            return {"status": "abandoned", "arch": index}
        timings = {k: float(v) for k, v in out.timings.items()}
        timings["seconds"] = time.perf_counter() - t0
        n = write_arch_files(shard_dir, index, out.rows, out.arrays, spec_json, timings, device)
        return {"status": "ok", "arch": index, "rows": n, "timings": timings}


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
) -> JobReport:
    """Evaluate ``archs`` into their shard under ``out``, skipping those already finished there.

    ``bounds`` is the ``(start, end)`` range the shard is named after (None for an explicit list). With more
    than one device in ``devices`` (e.g. ``["cuda:0", "cuda:1"]``, or ``["cpu", "cpu"]``) a local pool of one
    worker process per device pulls architectures from a shared queue; otherwise they run in this process.
    ``threads``: torch intra-op threads per worker (default :func:`default_threads`). ``allow_overlap``: accept
    cells planned by another shard of the same job (``--missing-from``, which re-plans the cells that failed)."""
    t_start = time.perf_counter()
    devices = list(devices or ["cpu"])
    threads = default_threads(devices) if threads is None else check_threads(threads)
    identity = factory.identity()
    shard = Shard.open(
        out, factory.spec_hash, factory.spec_json, identity, archs, bounds, force_new_spec, allow_overlap
    )
    done = shard.scan()
    shard.add_devices(devices)
    todo = [a for a in archs if a not in done]
    report = JobReport(shard.path, len(archs), skipped=len(done), problems=list(shard.problems))
    log.info("%s: %d to evaluate, %d already finished", shard.path.name, len(todo), len(done))
    if todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), file=sys.stderr, disable=not progress, unit="arch", desc=shard.path.name[:24])
        try:
            if len(devices) > 1:
                from .pool import run_pool

                messages = run_pool(todo, shard.path, factory, devices, retries, threads)
            else:
                messages = _run_inline(todo, shard.path, factory, devices[0], retries, threads)
            for msg in messages:
                _record(shard, report, msg)
                bar.update(1)
        finally:
            bar.close()
            shard.save(force=True)
    report.seconds = time.perf_counter() - t_start
    return report


def _run_inline(
    todo: list[int], shard_dir: Path, factory: EvaluatorFactory, device: str, retries: int, threads: int
) -> Iterator[dict[str, Any]]:
    with torch_threads(threads):
        evaluator = factory(device)
        for idx in todo:
            msg = process_arch(evaluator, shard_dir, idx, factory.spec_hash, factory.spec_json, device, retries)
            msg["device"] = device
            yield msg


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


def _record(shard: Shard, report: JobReport, msg: dict[str, Any]) -> None:
    idx = int(msg["arch"])
    if msg["status"] == "abandoned":
        return
    if msg["status"] == "ok":
        shard.record_success(idx, msg["rows"], msg.get("device", ""), msg["timings"])
        report.finished.append(idx)
    else:
        shard.record_failure(idx, msg["error_type"], msg["message"], msg.get("device", ""), msg.get("attempts", 1))
        report.failures[idx] = f"{msg['error_type']}: {msg['message']}"
