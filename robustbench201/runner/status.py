"""Progress of the shards under an output directory, read while jobs write them (``rb201 status OUT``).

Counts come from the files alone, cheaply and without locks: a cell is done when its commit marker
(:func:`robustbench201.store.shardfile.arch_file`) exists (merge verifies it later), failed when its shard's
manifest records a failure and it is not done, remaining otherwise. Shards that a launch planned but whose task has
not started yet come from the launch records (:mod:`.launch_record`). No torch, no pyarrow.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import Rb201Error
from ..store.shardfile import arch_files, read_shard_manifest, shard_dirs
from .launch_record import read_launch_records
from .lock import describe_holder, is_locked, read_holder


@dataclass(frozen=True)
class ShardProgress:
    """One shard: its cells done / failed / remaining, who writes it now, and the launch task that owns it."""

    shard: str
    dataset: str
    planned: int
    done: int
    failed: int
    remaining: int
    writer: str  # "" when no job holds the shard's lock
    task: str  # the launch's task id ("123_4"), "" if not launched (or launched without a record)
    updated: str  # the manifest's last write ("" before the task started)
    failures: tuple[tuple[int, str], ...] = ()

    @property
    def state(self) -> str:
        if self.writer:
            return "running"
        if not self.updated:
            return "not started"
        if self.remaining:
            return "incomplete"
        return "failed" if self.failed else "done"


def _launch_tasks(out: Path) -> dict[str, dict[str, Any]]:
    """Shard name -> the newest launch task that planned it."""
    tasks: dict[str, dict[str, Any]] = {}
    for rec in read_launch_records(out):
        for t in rec.get("tasks", []):
            if isinstance(t, dict) and isinstance(t.get("shard"), str):
                tasks[t["shard"]] = {**t, "dataset": rec.get("identity", {}).get("dataset", "")}
    return tasks


def shard_progress(out: str | Path) -> list[ShardProgress]:
    """Per-shard progress under ``out`` (sorted by shard name)."""
    root = Path(out)
    if not root.is_dir():
        raise Rb201Error(f"{root} is not a directory; give the output directory of rb201 evaluate / launch")
    launched = _launch_tasks(root)
    rows = []
    names = {d.name for d in shard_dirs(root)} | set(launched)
    for name in sorted(names):
        d = root / name
        task = launched.get(name, {})
        m = read_shard_manifest(d) if d.is_dir() else None
        if m is None:
            n = int(task.get("cells", 0))
            rows.append(ShardProgress(name, str(task.get("dataset", "")), n, 0, 0, n, "", str(task.get("job_id", "")),
                                      ""))  # fmt: skip
            continue
        planned = {int(a) for a in m.get("archs", [])}
        done = planned & set(arch_files(d))
        fails = m.get("failures") if isinstance(m.get("failures"), dict) else {}
        failed = sorted(int(k) for k in fails if str(k).isdigit() and int(k) in planned and int(k) not in done)
        writer = describe_holder(read_holder(d)) if is_locked(d) else ""
        rows.append(
            ShardProgress(
                shard=name,
                dataset=str(m.get("identity", {}).get("dataset", "")),
                planned=len(planned),
                done=len(done),
                failed=len(failed),
                remaining=len(planned) - len(done) - len(failed),
                writer=writer,
                task=str(task.get("job_id", "")),
                updated=str(m.get("updated", m.get("created", ""))),
                failures=tuple((i, _failure_text(fails[str(i)])) for i in failed),
            )
        )
    return rows


def unfinished_launches(out: str | Path, rows: list[ShardProgress]) -> list[tuple[str, dict[str, Any]]]:
    """(job id, request) of each launch under ``out`` that is the newest to plan a shard with cells left or failed,
    when none of its shards is being written now: submitting its request again finishes them. Launches recorded
    without their request are left out."""
    newest: dict[str, dict[str, Any]] = {}
    for rec in read_launch_records(out):  # oldest first
        for t in rec.get("tasks", []):
            if isinstance(t, dict) and isinstance(t.get("shard"), str):
                newest[t["shard"]] = rec
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    by_shard = {r.shard: r for r in rows}
    for shard, rec in newest.items():
        row = by_shard.get(shard)
        if row is None or not (row.remaining or row.failed) or not isinstance(rec.get("request"), dict):
            continue
        mine = [by_shard.get(t.get("shard")) for t in rec.get("tasks", []) if isinstance(t, dict)]
        if not any(r is not None and r.writer for r in mine):
            job = str(rec.get("job_id", ""))
            found.setdefault(job, (job, rec["request"]))
    return list(found.values())


def _failure_text(entry: Any) -> str:
    if not isinstance(entry, dict):
        return str(entry)
    return f"{entry.get('error_type', 'Error')}: {entry.get('message', '')}"[:200]


def progress_lines(rows: list[ShardProgress], failures: int = 5) -> list[str]:
    """A table of ``rows`` and a total line, then up to ``failures`` failures per shard."""
    if not rows:
        return ["no shards yet (nothing launched or evaluated into this directory)"]
    w = max(len(r.shard) for r in rows)
    lines = [f"{'shard':<{w}}  {'dataset':<14} {'done':>6} {'failed':>6} {'left':>6}  {'task':<12} state"]
    for r in rows:
        state = f"running: {r.writer}" if r.writer else r.state
        counts = f"{r.done:>6} {r.failed:>6} {r.remaining:>6}"
        lines.append(f"{r.shard:<{w}}  {r.dataset:<14} {counts}  {r.task:<12} {state}")
    tot = [sum(getattr(r, k) for r in rows) for k in ("planned", "done", "failed", "remaining")]
    lines.append(f"total: {tot[1]} of {tot[0]} cells done, {tot[2]} failed, {tot[3]} left in {len(rows)} shards "
                 f"({sum(1 for r in rows if r.writer)} being written now)")  # fmt: skip
    for r in rows:
        for idx, text in r.failures[:failures]:
            lines.append(f"  {r.shard}: failed {idx}: {text}")
        if len(r.failures) > failures:
            lines.append(f"  {r.shard}: ... {len(r.failures) - failures} more failures in its manifest.json")
    return lines


def progress_json(rows: list[ShardProgress]) -> str:
    return json.dumps([{**asdict(r), "state": r.state} for r in rows], indent=1)
