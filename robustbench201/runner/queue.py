"""Waiting for the tasks of a launch (:class:`.slurm.Launch`) and telling how each ended.

On Slurm, a task is done when submitit's result file exists; a task that left the queue without one (cancelled,
killed, node lost) is reported with the state ``scontrol`` gives instead of being waited for forever, whether or not
the cluster keeps accounting for ``sacct``. Requeued tasks are back in the queue and waited for.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .slurm import Launch


@dataclass
class TaskOutcome:
    """How one task ended: its result (``ShardTask``'s dict) or why there is none."""

    job_id: str
    result: dict[str, Any] | None = None
    error: str = ""


def wait_for(launch: Launch, poll: float = 5.0) -> list[TaskOutcome]:
    """Wait until every task of ``launch`` has ended; return their outcomes in task order. Polls every ``poll``
    seconds (more often at first).

    A task is done when submitit's result file exists. On Slurm a task that left the queue without one (cancelled,
    killed, node lost) is reported with the state ``scontrol`` gives, instead of being waited for forever: this works
    whether or not the cluster keeps accounting for ``sacct``. Requeued tasks are back in the queue and waited for."""
    if launch.executor != "slurm":
        return [_local_outcome(job) for job in launch.jobs]
    pending = {str(job.job_id): job for job in launch.jobs}
    outcomes: dict[str, TaskOutcome] = {}
    missing_once: set[str] = set()
    delay = min(0.5, poll)
    while pending:
        for jid, job in list(pending.items()):
            if job.paths.result_pickle.exists():
                outcomes[jid] = _local_outcome(job)
                del pending[jid]
        if not pending:
            break
        queued = squeue_tasks(launch.job_id)
        if queued is not None:
            for jid in [j for j in pending if j not in queued]:
                if jid in missing_once:  # gone from the queue twice in a row, and still no result file
                    state = job_state(jid) or "unknown state"
                    outcomes[jid] = TaskOutcome(jid, None, f"ended ({state}) without a result; see its log")
                    del pending[jid]
                else:
                    missing_once.add(jid)
        if pending:
            time.sleep(delay)
            delay = min(poll, delay * 1.5)
    return [outcomes[str(job.job_id)] for job in launch.jobs]


def _local_outcome(job: Any) -> TaskOutcome:
    try:
        return TaskOutcome(str(job.job_id), job.result())
    except Exception as exc:  # submitit re-raises the task's error (or its own) with the task's traceback
        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
        return TaskOutcome(str(job.job_id), None, f"{type(exc).__name__}: {lines[-1] if lines else exc}")


def squeue_tasks(array_id: str) -> set[str] | None:
    """Ids (``<array>_<task>``) of the tasks of ``array_id`` still pending or running; None if squeue failed."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        res = subprocess.run(["squeue", "-h", "-r", "-j", array_id, "-o", "%i"], capture_output=True, text=True,
                             timeout=60)  # fmt: skip
        if res.returncode == 0:
            return {ln.strip() for ln in res.stdout.splitlines() if ln.strip()}
        if "Invalid job id" in res.stderr:  # the whole array has left the controller's memory
            return set()
    return None


def job_state(job_id: str) -> str | None:
    """The state ``scontrol`` reports for a job that ended recently (``CANCELLED``, ``FAILED``...), if it knows it."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        res = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, timeout=60)
        for word in res.stdout.split():
            if word.startswith("JobState="):
                return word.split("=", 1)[1]
    return None
