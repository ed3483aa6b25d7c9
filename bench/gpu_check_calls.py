"""Per-call records of ``bench/gpu_check.py``: every forward (and forward + input-gradient backward) call a part
makes through :class:`CallRecorder`, with its rows and the wall time it took, kept per section (an attack, a batch
size...) as a compact histogram and, where a part asks for it, as the run-length-encoded sequence of row counts
(Square's active rows per iteration, PGD's and APGD's per step).

What a call's time is: the wall time from its start to the start of the next call of the same section (the last
call ends when the section closes, after a device synchronisation). So a call is charged with the attack's own
work of that iteration (proposals, margins, bookkeeping, the synchronisation its row compaction forces) and no
synchronisation is added between calls: on a GPU, kernels stay asynchronous as in a real run. Rows are the rows
sent to the network (bucket padding included where a lever pads).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from typing import Any

import torch
from gpu_check_budget import Deadline, flags
from torch import nn

KINDS = ("fwd", "fwd_bwd")


def row_bin(rows: int) -> int:
    """Histogram bin of a call: ``floor(log2(rows))`` (bin ``b`` holds ``2**b <= rows < 2**(b + 1)``)."""
    return int(math.floor(math.log2(max(1, rows))))


class Histogram:
    """Calls of one section and kind, binned by rows: per bin the call count, the rows and seconds summed, and the
    fastest and slowest call."""

    def __init__(self) -> None:
        self.bins: dict[int, list[float]] = {}  # bin -> [calls, rows, seconds, min_s, max_s]

    def add(self, rows: int, seconds: float) -> None:
        b = self.bins.get(row_bin(rows))
        if b is None:
            self.bins[row_bin(rows)] = [1, rows, seconds, seconds, seconds]
            return
        b[0] += 1
        b[1] += rows
        b[2] += seconds
        b[3] = min(b[3], seconds)
        b[4] = max(b[4], seconds)

    def as_list(self) -> list[dict[str, float]]:
        """Bins in ascending rows: ``rows_lo``, ``rows_hi`` (exclusive), ``calls``, ``rows``, ``seconds``,
        ``min_s``, ``max_s``, and the mean rows and seconds per call."""
        return [
            {
                "rows_lo": 2**k,
                "rows_hi": 2 ** (k + 1),
                "calls": int(c),
                "rows": int(r),
                "seconds": s,
                "min_s": lo,
                "max_s": hi,
                "mean_rows": r / c,
                "mean_s": s / c,
            }  # fmt: skip
            for k, (c, r, s, lo, hi) in sorted(self.bins.items())
        ]

    @property
    def calls(self) -> int:
        return int(sum(b[0] for b in self.bins.values()))

    @property
    def rows(self) -> int:
        return int(sum(b[1] for b in self.bins.values()))

    @property
    def seconds(self) -> float:
        return float(sum(b[2] for b in self.bins.values()))


def run_lengths(seq: list[tuple[int, str]]) -> list[list[Any]]:
    """``[(rows, kind), ...]`` as ``[[rows, kind, repeat], ...]``."""
    out: list[list[Any]] = []
    for rows, kind in seq:
        if out and out[-1][0] == rows and out[-1][1] == kind:
            out[-1][2] += 1
        else:
            out.append([rows, kind, 1])
    return out


def expand_runs(runs: list[list[Any]]) -> list[tuple[int, str]]:
    """The inverse of :func:`run_lengths`."""
    return [(int(r), str(k)) for r, k, n in runs for _ in range(int(n))]


class CallRecorder(nn.Module):
    """Wraps a model; records each call's rows, kind (``fwd``, or ``fwd_bwd`` when the input requires a gradient)
    and wall time into the open section (:meth:`section`), keeps each distinct set of arithmetic flags in force at a
    section's calls (read at its first call and whenever autocast turns on or off: inside ``rb201.evaluate``, which
    sets TF32 on entry, its data check runs before its precision wrapper and the attacks inside it), and checks
    the part's deadline cooperatively (:class:`gpu_check_budget.Deadline`). Also counts forward and backward images
    like ``robustbench201.attacks.PassCounter``."""

    def __init__(self, model: nn.Module, device: torch.device, deadline: Deadline | None = None) -> None:
        super().__init__()
        self.model = model
        self.device = device
        self.deadline = deadline
        self.label = "default"
        self.keep_sequence = False
        self.hist: dict[str, dict[str, Histogram]] = {}
        self.sequences: dict[str, list[tuple[int, str]]] = {}
        self.flags_seen: dict[str, list[dict[str, Any]]] = {}  # section -> each distinct set of flags at its calls
        self.forward_images = 0
        self.backward_images = 0
        self._open: tuple[int, str, float] | None = None
        self._first_in_section, self._autocast = True, False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        now = time.perf_counter()
        self._close_call(now)
        if self.deadline is not None:
            self.deadline.check()
        rows = int(x.shape[0])
        kind = "fwd_bwd" if x.requires_grad and torch.is_grad_enabled() else "fwd"
        self.forward_images += rows
        if kind == "fwd_bwd":
            self.backward_images += rows
        if self.keep_sequence:
            self.sequences.setdefault(self.label, []).append((rows, kind))
        autocast = torch.is_autocast_enabled(self.device.type)
        if self._first_in_section or autocast != self._autocast:  # reading every switch costs ~20 us: only then
            f, seen = flags(), self.flags_seen.setdefault(self.label, [])
            if f not in seen:
                seen.append(f)
            self._first_in_section, self._autocast = False, autocast
        self._open = (rows, kind, now)
        return self.model(x)

    def _close_call(self, now: float) -> None:
        if self._open is not None:
            rows, kind, t0 = self._open
            self.hist.setdefault(self.label, {}).setdefault(kind, Histogram()).add(rows, now - t0)
            self._open = None

    def close(self) -> None:
        """End the open call after a device synchronisation."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self._close_call(time.perf_counter())

    @contextlib.contextmanager
    def section(self, label: str, sequence: bool = False) -> Iterator[CallRecorder]:
        """Record the calls made inside under ``label`` (``sequence``: also keep their row counts in order)."""
        self.close()
        self.label, self.keep_sequence, self._first_in_section = label, sequence, True
        try:
            yield self
        finally:
            self.close()
            self.label, self.keep_sequence = "default", False

    def report(self) -> dict[str, Any]:
        """Per section and kind: the histogram; per section with a sequence: its run-length encoding."""
        out: dict[str, Any] = {
            label: {kind: {"calls": h.calls, "rows": h.rows, "seconds": h.seconds, "bins": h.as_list()}
                    for kind, h in kinds.items()}
            for label, kinds in self.hist.items()
        }  # fmt: skip
        for label, seq in self.sequences.items():
            out.setdefault(label, {})["sequence"] = run_lengths(seq)
        return out


def mean_seconds_by_rows(hist: dict[str, Any], kind: str) -> list[tuple[float, float]]:
    """``(mean rows, mean seconds)`` per bin of one kind of a recorded section (empty if none)."""
    return [(b["mean_rows"], b["mean_s"]) for b in hist.get(kind, {}).get("bins", [])]
