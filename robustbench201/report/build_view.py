"""Everything the report of a build in progress shows, gathered from a shard output folder (no HTML here).

Progress per shard is :func:`robustbench201.runner.status.shard_progress` (the files alone, no locks taken, safe
while tasks write); the shard files are read through :mod:`robustbench201.store.shardfile`. On top of that: the
shards grouped by evaluation job (dataset, spec, weights, seed, network size), the moments cells were committed
(each architecture's commit marker's modification time) as throughput over time and an ETA, the failures with
their messages, the cells that need another run and the commands that retry them, where the time of a cell goes
(the per-phase timings the workers record), and a coverage map of the 6466 isomorphism classes per job.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Rb201Error
from ..runner.launch_record import read_launch_records
from ..runner.status import ShardProgress, shard_progress, unfinished_launches
from ..space import representative_indices, unique_indices
from ..store.shardfile import arch_files, read_shard_manifest, shard_dirs, shards_in

__all__ = ["RetryPlan", "RetryCommands", "is_build", "build_report", "BUCKETS_S", "RATE_WINDOW_S"]

#: Candidate widths of a throughput bar (seconds); the smallest that gives at most 60 bars is used.
BUCKETS_S: tuple[int, ...] = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
                              86400, 172800, 604800)  # fmt: skip
#: The rate behind the ETA: cells committed in the last hour (or since the first commit, if that is sooner).
RATE_WINDOW_S = 3600.0
#: Coverage codes of a class: not planned, remaining (nobody writes its shard), remaining in a shard being written,
#: failed, done (ordered: a class with members in several states shows the highest).
COVERAGE_CODES = ".rwfd"
_TIMING_SKIP = ("rows", "device", "seconds")


@dataclass(frozen=True)
class RetryPlan:
    """Cells of one evaluation job that need another run: failed ones, and remaining ones in shards no task writes
    now. ``out``: the shard folder; ``merged``: a dataset folder to merge the committed cells into first (for
    ``--missing-from``); ``launches``: (job id, request) of the launches that would finish them when submitted
    again (:func:`robustbench201.runner.status.unfinished_launches`)."""

    out: str
    identity: dict[str, Any]
    archs: tuple[int, ...]
    ranges: tuple[tuple[int, int], ...]
    merged: str
    launches: tuple[tuple[str, dict[str, Any]], ...] = field(default=())


#: Turns a :class:`RetryPlan` into shell command lines (the command line owns the flags; see ``rb201 report``).
RetryCommands = Callable[[RetryPlan], list[str]]


def is_build(path: str | Path) -> bool:
    """Whether ``path`` is a shard output folder (or a shard itself): it holds shards or launch records."""
    p = Path(path)
    return p.is_dir() and (bool(shards_in(p)) or bool(read_launch_records(p)))


def _job_key(identity: dict[str, Any]) -> str:
    return "|".join(f"{k}={identity[k]}" for k in sorted(identity))


def _label(identity: dict[str, Any], spec_name: str) -> str:
    size = f", C={identity['channels']} N={identity['n_cells']}" if "channels" in identity else ""
    h = str(identity.get("spec_hash", ""))[:12]
    spec = f"{spec_name} (spec {h})" if spec_name else f"spec {h or '?'}"
    return (f"{identity.get('dataset', '?')}: {spec}, weights {identity.get('weights', '?')} seed "
            f"{identity.get('seed', '?')}{size}")  # fmt: skip


def _unix(stamp: object) -> float | None:
    """A shard manifest's ``created`` (``%Y-%m-%dT%H:%M:%S%z``) as Unix time (None if absent or unreadable)."""
    from datetime import datetime

    try:
        return datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except ValueError:
        return None


def _bucket(span: float) -> int:
    return next((b for b in BUCKETS_S if span / b <= 60), BUCKETS_S[-1])


def _covering_ranges(archs: list[int], skip: set[int]) -> list[tuple[int, int]]:
    """Half-open ranges that hold all of ``archs`` and, in between, only cells a ``--missing-from`` plan skips
    (non-representatives, and the finished cells in ``skip``), so a run over them evaluates exactly ``archs``."""
    reps = representative_indices()
    out: list[tuple[int, int]] = []
    for a in sorted(archs):
        if out and all(reps[i] != i or i in skip for i in range(out[-1][1], a)):
            out[-1] = (out[-1][0], a + 1)
        else:
            out.append((a, a + 1))
    return out


@dataclass
class _Job:
    identity: dict[str, Any]
    spec_name: str
    shards: list[ShardProgress] = field(default_factory=list)
    planned: set[int] = field(default_factory=set)
    done: set[int] = field(default_factory=set)
    failed: set[int] = field(default_factory=set)
    writing: set[int] = field(default_factory=set)  # remaining, in a shard a task holds now
    idle: set[int] = field(default_factory=set)  # remaining, in a shard nobody writes
    commits: list[float] = field(default_factory=list)
    started: float | None = None  # the earliest creation of its shards (Unix time)
    seconds: list[float] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)


def _planned_of_launch(task: dict[str, Any], request: dict[str, Any]) -> set[int]:
    from ..runner.plan import select_archs

    bounds = task.get("bounds")
    if isinstance(bounds, list | tuple) and len(bounds) == 2:
        return set(select_archs([(int(bounds[0]), int(bounds[1]))], unique_only=bool(request.get("unique_only", True))))
    return set()


def _collect(out: Path, rows: list[ShardProgress]) -> tuple[dict[str, _Job], list[dict[str, Any]], list[dict]]:
    """Jobs with their cells, the failures, and the per-shard table."""
    jobs: dict[str, _Job] = {}
    failures: list[dict[str, Any]] = []
    shards: list[dict[str, Any]] = []
    by_name = {r.shard: r for r in rows}
    dirs = {d.name: d for d in shards_in(out)}
    for name, d in dirs.items():
        m = read_shard_manifest(d)
        row = by_name.get(name)
        if m is None or row is None:
            continue
        ident = dict(m.get("identity") or {})
        spec = m.get("spec") if isinstance(m.get("spec"), dict) else {}
        job = jobs.setdefault(_job_key(ident), _Job(ident, str(spec.get("name", ""))))
        job.shards.append(row)
        planned = {int(a) for a in m.get("archs", [])}
        files = arch_files(d)
        done = planned & set(files)
        fails = m.get("failures") if isinstance(m.get("failures"), dict) else {}
        failed = {int(k) for k in fails if str(k).isdigit() and int(k) in planned} - done
        left = planned - done - failed
        job.planned |= planned
        job.done |= done
        job.failed |= failed
        (job.writing if row.writer else job.idle).update(left)
        times = []
        for a in done:
            try:
                times.append(files[a].stat().st_mtime)
            except OSError:  # removed between the listing and now (a damaged file being recomputed)
                continue
        job.commits += times
        created = _unix(m.get("created"))
        if created is not None:
            job.started = created if job.started is None else min(job.started, created)
        for a, rec in (m.get("finished") or {}).items():
            if isinstance(rec, dict) and str(a).isdigit() and int(a) in done:
                if isinstance(rec.get("seconds"), int | float):
                    job.seconds.append(float(rec["seconds"]))
                for k, v in rec.items():
                    if k not in _TIMING_SKIP and isinstance(v, int | float):
                        job.phases[k] = job.phases.get(k, 0.0) + float(v)
        for a in sorted(failed):
            e = fails.get(str(a)) or {}
            e = e if isinstance(e, dict) else {"message": str(e)}
            failures.append({"job": _job_key(ident), "shard": name, "arch": a,
                             "error_type": str(e.get("error_type", "Error")), "message": str(e.get("message", "")),
                             "attempts": e.get("attempts"), "device": str(e.get("device", ""))})  # fmt: skip
        shards.append({"shard": name, "job": _job_key(ident), "state": row.state, "planned": row.planned,
                       "done": row.done, "failed": row.failed, "remaining": row.remaining, "writer": row.writer,
                       "task": row.task, "updated": row.updated, "first_commit": min(times) if times else None,
                       "last_commit": max(times) if times else None})  # fmt: skip
    # shards of a launch whose task has not started: no directory yet, only the launch record
    for rec in read_launch_records(out):
        ident = {**(rec.get("identity") or {})}
        spec = rec.get("spec") if isinstance(rec.get("spec"), dict) else {}
        for t in rec.get("tasks", []):
            if not isinstance(t, dict) or t.get("shard") in dirs or t.get("shard") not in by_name:
                continue
            row = by_name[t["shard"]]
            job = jobs.setdefault(_job_key(ident), _Job(ident, str(spec.get("name", ""))))
            if row in job.shards:
                continue
            job.shards.append(row)
            planned = _planned_of_launch(t, rec.get("request") or {})
            job.planned |= planned
            job.idle |= planned - job.done
            shards.append({"shard": row.shard, "job": _job_key(ident), "state": row.state, "planned": row.planned,
                           "done": 0, "failed": 0, "remaining": row.remaining, "writer": "", "task": row.task,
                           "updated": "", "first_commit": None, "last_commit": None})  # fmt: skip
    for job in jobs.values():  # a cell done in any shard of its job is done (e.g. retried into a new shard)
        job.failed -= job.done
        job.writing -= job.done
        job.idle -= job.done | job.writing
    failures = [f for f in failures if f["arch"] not in jobs[f["job"]].done]
    return jobs, failures, sorted(shards, key=lambda s: s["shard"])


def _coverage(job: _Job) -> str:
    """One character per isomorphism class (in ascending representative order): :data:`COVERAGE_CODES`."""
    reps = representative_indices()
    pos = {r: k for k, r in enumerate(unique_indices())}
    level = np.zeros(len(pos), dtype=np.int8)
    for code, cells in ((1, job.idle), (2, job.writing), (3, job.failed), (4, job.done)):
        for a in cells:
            k = pos[reps[a]]
            level[k] = max(level[k], code)
    return "".join(COVERAGE_CODES[v] for v in level.tolist())


def _rate(commits: np.ndarray, end: float, start: float | None = None) -> tuple[float | None, float]:
    """Cells per second committed over the :data:`RATE_WINDOW_S` before ``end``, or since ``start`` (when the job
    started; default: its first commit, which then does not count) if that is sooner; and that window in seconds.
    None when there is no commit in the window to measure."""
    if start is None:
        if commits.size < 2:
            return None, 0.0
        start = float(commits.min())
    window = min(RATE_WINDOW_S, end - start)
    if window <= 0:
        return None, 0.0
    n = int(((commits > end - window) & (commits <= end)).sum())
    return (n / window if n else None), window


def _eta(remaining: int, rate: float | None, running: bool) -> dict[str, Any]:
    if remaining == 0:
        return {"state": "finished", "seconds": 0.0}
    if not running:
        return {"state": "idle", "seconds": None}  # nothing is being written: no ETA until a task runs again
    if not rate:
        return {"state": "unknown", "seconds": None}
    return {"state": "estimated", "seconds": remaining / rate}


def build_report(out: str | Path, *, commands: RetryCommands | None = None, now: float | None = None) -> dict[str, Any]:
    """The report data of the shard folder ``out`` (JSON-ready). ``commands`` turns each job's :class:`RetryPlan`
    into command lines (none without it); ``now`` (Unix time) is the moment the ETA and the rates refer to."""
    root = Path(out)
    if not is_build(root):
        raise Rb201Error(
            f"{root} holds no shards and no launch record; give the --out folder of rb201 evaluate / launch"
        )
    now = time.time() if now is None else float(now)
    rows = shard_progress(root) if shard_dirs(root) or read_launch_records(root) else []
    if not rows:  # ``out`` is a single shard directory
        rows = [r for r in shard_progress(root.parent) if r.shard == root.name]
    jobs, failures, shards = _collect(root, rows)
    all_commits = np.array(sorted(t for j in jobs.values() for t in j.commits), dtype=np.float64)
    running = sum(1 for r in rows if r.writer)
    # the time axis runs from the first shard's creation (or first commit) to now while a task writes, else to the
    # last commit (an idle folder has no "now" rate)
    starts = [j.started for j in jobs.values() if j.started is not None]
    start = min([*starts, *all_commits[:1].tolist()]) if all_commits.size else now
    end = now if running or not all_commits.size else float(all_commits.max())
    width = _bucket(max(end - start, 1.0))
    nb = int(math.floor((end - start) / width)) + 1 if all_commits.size else 0
    launches = unfinished_launches(root, rows) if rows else []
    records = read_launch_records(root)
    launch_shards = {str(r.get("job_id", "")): {t.get("shard") for t in r.get("tasks", []) if isinstance(t, dict)}
                     for r in records}  # fmt: skip
    groups = []
    for key, job in jobs.items():
        commits = np.array(sorted(job.commits), dtype=np.float64)
        rate, window = _rate(commits, end, job.started if job.started is not None and job.started <= end else None)
        job_running = sum(1 for sh in job.shards if sh.writer)
        remaining = len(job.writing) + len(job.idle)
        counts = np.bincount(((commits - start) // width).astype(np.int64), minlength=nb)[:nb] if nb else []
        retry = sorted(job.failed | job.idle)
        plan = None
        if retry and "spec_hash" in job.identity:
            names = {sh.shard for sh in job.shards}
            mine = tuple((jid, req) for jid, req in launches if launch_shards.get(jid, set()) & names)
            plan = RetryPlan(str(root), job.identity, tuple(retry), tuple(_covering_ranges(retry, job.done)),
                             f"{str(root).rstrip('/')}-merged", mine)  # fmt: skip
        cmds: list[str] = []
        if plan is not None and commands is not None:
            try:
                cmds = commands(plan)
            except Rb201Error as exc:  # a job this version cannot rebuild a command for: say so
                cmds = [f"# no command for this job: {exc}"]
        phases = {k: v / max(len(job.seconds), 1) for k, v in sorted(job.phases.items(), key=lambda kv: -kv[1])}
        groups.append({
            "job": key, "label": _label(job.identity, job.spec_name), "identity": job.identity,
            "spec": job.spec_name, "dataset": job.identity.get("dataset", ""),
            "tasks": {state: sum(1 for s in job.shards if s.state == state)
                      for state in ("running", "not started", "incomplete", "failed", "done")},
            "cells": {"planned": len(job.planned), "done": len(job.done), "failed": len(job.failed),
                      "remaining": remaining, "writing": len(job.writing)},
            "running": job_running, "rate_per_hour": None if rate is None else rate * 3600, "rate_window_s": window,
            "eta": _eta(remaining, rate, job_running > 0), "throughput": [int(c) for c in counts],
            "seconds_per_cell": float(np.mean(job.seconds)) if job.seconds else None,
            "seconds_measured": len(job.seconds), "phases": phases,
            "retry": None if plan is None else {"archs": list(plan.archs), "ranges": [list(r) for r in plan.ranges],
                                                 "failed": len(job.failed), "stranded": len(job.idle),
                                                 "commands": cmds},
            "coverage": _coverage(job),
        })  # fmt: skip
    groups.sort(key=lambda g: g["label"])
    tot = {k: sum(g["cells"][k] for g in groups) for k in ("planned", "done", "failed", "remaining", "writing")}
    rate_all, window_all = _rate(all_commits, end, min(starts) if starts and min(starts) <= end else None)
    return {
        "kind": "build",
        "out": str(root.resolve()),
        "now": now,
        "totals": {
            "cells": tot,
            "tasks": len(rows),
            "running": running,
            "states": {
                s: sum(1 for r in rows if r.state == s)
                for s in ("running", "not started", "incomplete", "failed", "done")
            },
            "rate_per_hour": None if rate_all is None else rate_all * 3600,
            "rate_window_s": window_all,
            "eta": _eta(tot["remaining"], rate_all, running > 0),
        },  # fmt: skip
        "throughput": {"start": start, "end": end, "bucket_s": width, "buckets": nb},
        "groups": groups,
        "shards": shards,
        "failures": failures,
        "launches": [
            {
                "job_id": str(r.get("job_id", "")),
                "executor": r.get("executor", ""),
                "submitted": r.get("submitted", ""),
                "tasks": len(r.get("tasks", [])),
            }
            for r in records
        ],  # fmt: skip
    }
