"""Submit shards as a job array through submitit (Slurm, or its local / debug executors without Slurm).

Each array task runs :func:`robustbench201.runner.job.run_job` on one shard. Tasks are requeue-safe: a
preempted or timed-out task is resubmitted by submitit (``checkpoint`` returns the same task), and the shard
resumes from its finished per-architecture files, so nothing is computed twice and nothing is lost.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import Rb201Error, check_choice
from .job import run_job
from .plan import PlannedShard
from .worker import EvaluatorFactory

log = logging.getLogger(__name__)

EXECUTORS = ("slurm", "local", "debug")


class LaunchError(Rb201Error):
    """The cluster executor is unavailable or refused the submission."""


@dataclass
class ShardTask:
    """One array task: evaluate ``archs`` (named after ``bounds``, or a list shard when None) into ``out``."""

    archs: tuple[int, ...]
    bounds: tuple[int, int] | None
    out: str
    factory: EvaluatorFactory
    devices: list[str] | None = None  # None: decided on the node (task_devices)
    retries: int = 2
    force_new_spec: bool = False
    threads: int | None = None
    allow_overlap: bool = False
    gpus_per_task: int = 1
    cpus_per_task: int = 1

    def __call__(self) -> dict[str, Any]:
        rep = run_job(
            list(self.archs),
            self.out,
            self.factory,
            bounds=self.bounds,
            devices=self.devices or task_devices(self.gpus_per_task, self.cpus_per_task),
            retries=self.retries,
            force_new_spec=self.force_new_spec,
            progress=False,
            threads=self.threads,
            allow_overlap=self.allow_overlap,
        )
        log.info("%s", rep.summary())
        return {
            "shard": str(rep.shard_dir),
            "finished": len(rep.finished),
            "skipped": rep.skipped,
            "failures": {str(k): v for k, v in rep.failures.items()},
        }

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Called by submitit on preemption / timeout: requeue the same task (it resumes from its files)."""
        import submitit

        return submitit.helpers.DelayedSubmission(self)


def task_devices(gpus_per_task: int, cpus_per_task: int = 1) -> list[str]:
    """Devices of one array task: one worker per GPU, or without GPUs one CPU worker per CPU of the task (each with
    one torch thread: architectures are independent, so processes scale better than threads on small networks).
    The CPU count is capped at run time by the CPUs the scheduler actually gave the task."""
    if gpus_per_task <= 0:
        return ["cpu"] * max(1, min(int(cpus_per_task), _cpus_available()))
    if gpus_per_task == 1:
        return ["cuda:0"]
    return [f"cuda:{i}" for i in range(gpus_per_task)]


def _cpus_available() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def launch_shards(
    shards: list[PlannedShard],
    out: str | Path,
    factory: EvaluatorFactory,
    *,
    executor: str = "slurm",
    folder: str | Path | None = None,
    partition: str | None = None,
    time_min: int = 24 * 60,
    gpus_per_task: int = 1,
    cpus_per_task: int = 8,
    mem_gb: int | None = None,
    array_parallelism: int = 64,
    retries: int = 2,
    force_new_spec: bool = False,
    slurm_extra: dict[str, Any] | None = None,
    threads: int | None = None,
    allow_overlap: bool = False,
) -> list[Any]:
    """Submit one task per planned shard as a submitit job array; return the submitit jobs.

    ``executor``: ``slurm`` (needs ``sbatch``), ``local`` (subprocesses on this machine) or ``debug`` (in
    this process). Logs and pickled tasks go to ``folder`` (default ``OUT/submitit``)."""
    check_choice("executor", executor, EXECUTORS)
    try:
        import submitit
    except ImportError:
        raise LaunchError("rb201 launch needs submitit: pip install 'robustbench201[cluster]'") from None
    out = Path(out)
    folder = Path(folder) if folder is not None else out / "submitit"
    try:
        ex = submitit.AutoExecutor(folder=folder / "%j", cluster=executor)
    except RuntimeError as exc:  # submitit: no srun / sbatch here
        raise LaunchError(
            f"the {executor!r} executor is not available on this machine ({exc}); run on the cluster's login node, "
            "or use --executor local to run the shards here"
        ) from None
    params: dict[str, Any] = {
        "timeout_min": int(time_min),
        "name": "rb201-eval",
        "gpus_per_node": int(gpus_per_task),
        "tasks_per_node": 1,
        "cpus_per_task": int(cpus_per_task),
    }
    if mem_gb is not None:
        params["mem_gb"] = int(mem_gb)
    if executor == "slurm":
        params["slurm_array_parallelism"] = int(array_parallelism)
        params["slurm_additional_parameters"] = dict(slurm_extra or {})
        if partition:
            params["slurm_partition"] = partition
    ex.update_parameters(**params)
    tasks = [
        ShardTask(
            tuple(s.archs),
            s.bounds,
            str(out),
            factory,
            None,
            retries,
            force_new_spec,
            threads,
            allow_overlap,
            gpus_per_task,
            cpus_per_task,
        )  # fmt: skip
        for s in shards
        if s.archs
    ]
    try:
        with ex.batch():
            jobs = [ex.submit(t) for t in tasks]
    except Exception as exc:
        if isinstance(exc, Rb201Error):
            raise
        raise LaunchError(f"submitting {len(tasks)} tasks with the {executor!r} executor failed: {exc}") from None
    log.info("submitted %d shard tasks (%s): %s", len(jobs), executor, [j.job_id for j in jobs])
    return jobs
