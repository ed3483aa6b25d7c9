"""The HTML report (``rb201 report``): one self-contained file that shows a dataset or a build in progress.

* :mod:`.dataset_view` gathers what a dataset's report shows (provenance, figures, every cell), :mod:`.build_view`
  what a build's report shows (progress, throughput, ETA, failures, coverage): pure data, JSON-ready.
* :mod:`.columns` says how each column is displayed; :mod:`.encode` packs the columns small and exact;
  :mod:`.figures` computes the numbers behind the figures.
* :mod:`.page` writes the HTML around them with the page's own script and stylesheet (``assets/``).

A source is a dataset directory, a shard output folder (or one shard) of ``rb201 evaluate`` / ``launch``, or
``jung2023`` (the published results in the embedded table).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._version import code_version
from ..atomic import atomic_path
from ..errors import Rb201Error
from ..tables.compare import PUBLISHED
from .build_view import RetryCommands, RetryPlan, build_report, is_build
from .dataset_view import dataset_report

__all__ = ["ReportFile", "RetryPlan", "RetryCommands", "source_kind", "write_report", "watch_report"]

SOURCE_KINDS = ("published", "dataset", "build")


@dataclass(frozen=True)
class ReportFile:
    """A written report: its path, what it shows (:data:`SOURCE_KINDS`), its size and how long it took."""

    path: Path
    kind: str
    bytes: int
    seconds: float
    idle: bool  # a build with no task writing and none waiting to start (nothing will change by itself)

    def describe(self) -> str:
        return f"{self.path} ({self.kind} report, {self.bytes / 1e6:.2f} MB, {self.seconds:.1f} s)"


def source_kind(source: str | Path) -> str:
    """``published`` for ``jung2023``, ``dataset`` for a dataset directory, ``build`` for a shard output folder or a
    shard; an error naming the source otherwise."""
    if str(source) == PUBLISHED:
        return "published"
    p = Path(source)
    if not p.is_dir():
        raise Rb201Error(f"report source {str(source)!r} is not a directory; give a dataset directory, a shard output "
                         f"folder of rb201 evaluate / launch, or {PUBLISHED!r}")  # fmt: skip
    fmt = None
    if (p / "manifest.json").is_file():
        try:
            fmt = json.loads((p / "manifest.json").read_text()).get("format")
        except (OSError, json.JSONDecodeError, AttributeError):
            fmt = None
    if fmt == "rb201-dataset":
        return "dataset"
    if is_build(p):
        return "build"
    raise Rb201Error(f"{p} is neither a dataset directory (manifest.json of format 'rb201-dataset'), nor a shard "
                     f"output folder (shard-* directories or launch records), nor {PUBLISHED!r}")  # fmt: skip


def _title(kind: str, source: str | Path, data: dict[str, Any]) -> str:
    if kind == "published":
        return "rb201 report: jung2023, the published robustness results of NB201 cells"
    if kind == "dataset":
        return f"rb201 report: dataset {data['provenance']['name'] or Path(source).name}"
    return f"rb201 report: build in {Path(source).resolve().name}/"


def report_data(
    source: str | Path, *, commands: RetryCommands | None = None, now: float | None = None
) -> tuple[str, str, dict[str, Any], dict[str, tuple[str, int]]]:
    """(kind, title, data, packed blobs) of the report of ``source``."""
    kind = source_kind(source)
    if kind == "build":
        data, blobs = build_report(source, commands=commands, now=now), {}
        from .dataset_view import space_block

        data["space"], blobs["space"] = space_block()
    else:
        data, blobs = dataset_report(source)
    data.update({"format": "rb201-report", "source_kind": kind, "source": str(source),
                 "generated": time.strftime("%Y-%m-%d %H:%M:%S %z"),
                 "generator": f"rb201 {code_version()}"})  # fmt: skip
    return kind, _title(kind, source, data), data, blobs


def _idle(kind: str, data: dict[str, Any]) -> bool:
    if kind != "build":
        return True
    states = data["totals"]["states"]
    return not states["running"] and not states["not started"]


def write_report(
    source: str | Path,
    out: str | Path,
    *,
    commands: RetryCommands | None = None,
    refresh_s: float | None = None,
    now: float | None = None,
) -> ReportFile:
    """Write the report of ``source`` to ``out`` (atomically). ``refresh_s``: the page reloads itself from disk
    that often (for a report rewritten by :func:`watch_report`)."""
    from .page import render_page

    t0 = time.perf_counter()
    path = Path(out)
    with atomic_path(path, make_parents=False) as tmp:  # a missing folder is one line, before any work
        kind, title, data, blobs = report_data(source, commands=commands, now=now)
        idle = _idle(kind, data)
        data["refresh_s"] = refresh_s if refresh_s and not idle else None
        raw = render_page(title, data, blobs, data["refresh_s"]).encode("utf-8")
        tmp.write_bytes(raw)
    return ReportFile(path, kind, len(raw), time.perf_counter() - t0, idle)


def watch_report(
    source: str | Path, out: str | Path, interval_s: float, *, commands: RetryCommands | None = None
) -> Iterator[ReportFile]:
    """Rewrite the report of the build ``source`` every ``interval_s`` seconds while a task writes a shard or a
    launched task has not started, yielding each report; the last one is written once the build is idle (finished,
    or stopped with cells left) and does not reload itself."""
    if source_kind(source) != "build":
        raise Rb201Error(f"watching is for a build in progress; {source} is not a shard output folder")
    while True:
        rep = write_report(source, out, commands=commands, refresh_s=interval_s)
        yield rep
        if rep.idle:
            return
        time.sleep(interval_s)
