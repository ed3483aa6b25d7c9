"""The record a launch leaves in its output directory, ``OUT/launch-<job id>.json``: the executor, the resources, the
spec and job identity, and each task's job id and shard. ``rb201 status`` reads it to list the shards whose task has
not started yet. Torch-free.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..atomic import write_text_atomic

LAUNCH_RECORD = "launch-{job}.json"
LAUNCH_FORMAT = "rb201-launch"


def launch_record_path(out: str | Path, job_id: str) -> Path:
    return Path(out) / LAUNCH_RECORD.format(job=job_id or "none")


def write_launch_record(path: Path, **fields: Any) -> None:
    """Write the record atomically, stamped with its format and the submission time."""
    now = time.time()
    record = {"format": LAUNCH_FORMAT, "submitted": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now)),
              "submitted_unix": now, **fields}  # fmt: skip
    write_text_atomic(path, json.dumps(record, indent=1, sort_keys=True, default=str))


def read_launch_records(out: str | Path) -> list[dict[str, Any]]:
    """The readable records under ``out``, oldest submission first (unreadable or foreign files are skipped)."""
    records = []
    for p in Path(out).glob(LAUNCH_RECORD.format(job="*")):
        try:
            rec = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(rec, dict) and rec.get("format") == LAUNCH_FORMAT:
            records.append(rec)
    return sorted(records, key=lambda r: float(r.get("submitted_unix") or 0))
