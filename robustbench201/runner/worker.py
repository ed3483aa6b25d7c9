"""One architecture, start to finish: evaluate it (retrying out-of-memory errors), check what may be stored, write
its files, and say what happened in a typed :class:`ArchMessage`. Shared by the in-process runner
(:mod:`.job`) and the pool workers (:mod:`.pool`).

The runner is independent of what is computed: it takes an :class:`EvaluatorFactory`, a picklable object that
states the job identity (spec hash and JSON, dataset, weights, seed, ...) and, called with a device, returns a
function ``arch_index -> ArchOutput``. :mod:`robustbench201.runner.providers` wires the real spec, data readers,
weights and :func:`robustbench201.evaluate`; tests plug in small evaluators.
"""

from __future__ import annotations

import gc
import logging
import math
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..store.schema import Row
from ..store.shardfile import write_arch_files

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


class Status(str, Enum):
    """What a worker reports about an architecture (or itself)."""

    OK = "ok"  # evaluated and written
    FAILED = "failed"  # recorded as a failure (the error is in the message)
    ABANDONED = "abandoned"  # the coordinating job is gone: nothing was written
    START = "start"  # a pool worker took the architecture
    FATAL = "fatal"  # a pool worker cannot go on (could not start, or a write failed): the job stops


@dataclass(frozen=True)
class ArchMessage:
    """One report about architecture ``arch`` (``-1`` for a worker-level ``FATAL``)."""

    status: Status
    arch: int = -1
    rows: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    error_type: str = ""
    message: str = ""
    attempts: int = 1
    device: str = ""
    worker: int = -1

    def at(self, device: str, worker: int = -1) -> ArchMessage:
        """The same message stamped with where it happened."""
        import dataclasses

        return dataclasses.replace(self, device=device, worker=worker)


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
) -> ArchMessage:
    """Evaluate one architecture (retrying out-of-memory errors ``retries`` times) and write its files.

    Returns an :class:`ArchMessage`: ``OK`` (rows, timings), ``FAILED`` (error type, message, attempts), or
    ``ABANDONED`` when ``alive()`` says the job is gone before the write. Write errors (unwritable directory, full
    disk) propagate: they end the job."""
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
            return ArchMessage(Status.FAILED, index, error_type=type(exc).__name__, message=str(exc), attempts=attempts)
        if alive is not None and not alive():
            return ArchMessage(Status.ABANDONED, index)
        timings = {k: float(v) for k, v in out.timings.items()}
        timings["seconds"] = time.perf_counter() - t0
        n = write_arch_files(shard_dir, index, out.rows, out.arrays, spec_json, timings, device)
        return ArchMessage(Status.OK, index, rows=n, timings=timings, attempts=attempts)
