"""Submit shards as a job array through submitit (Slurm, or its local / debug executors without Slurm).

Each array task runs :func:`robustbench201.runner.job.run_job` on one shard. Tasks are requeue-safe:

* a task that reaches its time limit gets submitit's signal (``--signal=USR2@90``), ``checkpoint`` hands submitit
  the same task, and submitit requeues it (``scontrol requeue``); a task the scheduler preempts or requeues itself
  (``scontrol requeue``, ``PreemptMode=REQUEUE``, a node failure) is started again from the same pickled task;
* either way the shard resumes from its finished per-architecture files, so nothing is computed twice;
* if a requeued copy starts while the original still runs, the copy waits for the shard's writer lock
  (:mod:`.lock`) and then resumes, so the two never write into the shard together.

Every launch leaves a record in ``OUT`` (:mod:`.launch_record`), so ``rb201 status OUT`` lists shards that have not
started yet too; :mod:`.queue` waits for the tasks.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Rb201Error, RequestError, check_choice
from ..store.shardfile import shard_name
from ..vocab import EXECUTORS
from .job import run_job
from .launch_record import launch_record_path, write_launch_record
from .plan import PlannedShard
from .resources import TaskResources, local_parameters, sbatch_script, slurm_parameters
from .worker import EvaluatorFactory

log = logging.getLogger(__name__)


class LaunchError(RequestError):
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
    lock_wait: float | None = None  # None: wait for a copy of this task that still writes the shard

    def __call__(self) -> dict[str, Any]:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
            lock_wait=self.lock_wait,
        )
        log.info("%s", rep.summary())
        return {
            "shard": str(rep.shard_dir),
            "finished": len(rep.finished),
            "skipped": rep.skipped,
            "failures": {str(k): v for k, v in rep.failures.items()},
            "lock_wait_s": rep.lock_wait_s,
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


@dataclass
class Launch:
    """A submitted array: ``job_id`` is the array's id (Slurm) or the first task's id (local executors)."""

    executor: str
    job_id: str
    folder: Path
    record: Path
    tasks: list[dict[str, Any]]  # task job id, shard directory name, cells, bounds
    jobs: list[Any] = field(default_factory=list, repr=False)  # submitit jobs, in task order

    def log_hint(self) -> str:
        """Where the logs of the tasks are (submitit's layout: an array's task ``i`` is ``<array id>_<i>``; a
        single task is submitted as a plain job)."""
        if self.executor == "slurm" and len(self.tasks) > 1:
            return str(self.folder / f"{self.job_id}_<task>" / f"{self.job_id}_<task>_0_log.{{out,err}}")
        if self.executor == "slurm":
            return str(self.folder / self.job_id / f"{self.job_id}_0_log.{{out,err}}")
        return str(self.folder / "<job id>" / "<job id>_0_log.{out,err}")


def planned_tasks(shards: list[PlannedShard], factory: EvaluatorFactory) -> list[dict[str, Any]]:
    """The shard directory each planned shard writes (named as :class:`.shard.Shard` names it)."""
    ident = factory.identity()
    return [
        {
            "shard": shard_name(factory.spec_hash, ident, list(s.archs), s.bounds),
            "cells": len(s.archs),
            "bounds": list(s.bounds) if s.bounds else None,
        }
        for s in shards
        if s.archs
    ]


def dry_run(
    shards: list[PlannedShard],
    out: str | Path,
    factory: EvaluatorFactory,
    resources: TaskResources,
    folder: str | Path,
    executor: str = "slurm",
) -> list[str]:
    """What ``launch_shards`` would submit, as lines: the array, the resources per task, each task's shard, and
    (Slurm) the sbatch script submitit would write. Submits nothing."""
    check_choice("executor", executor, EXECUTORS)
    tasks = planned_tasks(shards, factory)
    n = len(tasks)
    s = "s" if n != 1 else ""
    if executor != "slurm":
        lines = [
            f"{n} {executor} task{s} ({'subprocesses on this machine' if executor == 'local' else 'in this process'})"
        ]
    elif n > 1:
        lines = [f"job array {resources.job_name}: {n} tasks, at most {min(n, resources.array_parallelism)} at once"]
    else:  # submitit submits a single task as a plain job
        lines = [f"job {resources.job_name}: 1 task"]
    logs = f"{folder}/<array id>_<task>/" if executor == "slurm" and n > 1 else f"{folder}/<job id>/"
    lines += [f"each task: {resources.describe()}", f"output: {out}   logs: {logs}"]
    for i, t in enumerate(tasks):
        where = f"range {t['bounds'][0]}:{t['bounds'][1]}" if t["bounds"] else "listed cells"
        lines.append(f"  task {i}: {t['shard']} ({where}, {t['cells']} cells)")
    if executor != "slurm":
        return lines
    try:
        script = sbatch_script(resources, n, str(folder))
    except ImportError:
        raise LaunchError("rb201 launch needs submitit: pip install 'robustbench201[cluster]'") from None
    except ValueError as exc:  # submitit refuses a parameter
        raise LaunchError(f"submitit refuses these resources: {exc}") from None
    lines += ["sbatch script (submitit writes it and the pickled tasks into the log folder):", script.rstrip()]
    return lines


def launch_shards(
    shards: list[PlannedShard],
    out: str | Path,
    factory: EvaluatorFactory,
    *,
    executor: str = "slurm",
    resources: TaskResources | None = None,
    folder: str | Path | None = None,
    retries: int = 2,
    force_new_spec: bool = False,
    threads: int | None = None,
    allow_overlap: bool = False,
    request: dict[str, Any] | None = None,
) -> Launch:
    """Submit one task per planned shard as a submitit job array; record it in ``OUT/launch-<job id>.json``.

    ``executor``: ``slurm`` (needs ``sbatch``), ``local`` (subprocesses on this machine) or ``debug`` (in
    this process, when the results are asked for). Logs and pickled tasks go to ``folder`` (default
    ``OUT/submitit``): a Slurm task's log is ``FOLDER/<array id>_<task>/<array id>_<task>_0_log.{out,err}``.
    ``request``: the launch request (:meth:`.request.EvalRequest.to_dict`), kept in the record."""
    check_choice("executor", executor, EXECUTORS)
    res = resources or TaskResources()
    try:
        import submitit
    except ImportError:
        raise LaunchError("rb201 launch needs submitit: pip install 'robustbench201[cluster]'") from None
    out = Path(out)
    folder = Path(folder) if folder is not None else out / "submitit"
    ex: Any
    try:
        if executor == "slurm":
            ex = submitit.SlurmExecutor(folder=folder / "%j")
            ex.update_parameters(**slurm_parameters(res))
        else:
            ex = submitit.AutoExecutor(folder=folder / "%j", cluster=executor)
            ex.update_parameters(**local_parameters(res))
    except RuntimeError as exc:  # submitit: no srun / sbatch here
        raise LaunchError(
            f"the {executor!r} executor is not available on this machine ({exc}); run on the cluster's login node, "
            "or use {executor} local to run the shards here"
        ) from None
    except ValueError as exc:
        raise LaunchError(f"submitit refuses these resources: {exc}") from None
    kept = [s for s in shards if s.archs]
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
            res.gpus_per_task,
            res.cpus_per_task,
        )  # fmt: skip
        for s in kept
    ]
    try:
        with ex.batch():
            jobs = [ex.submit(t) for t in tasks]
    except Exception as exc:
        if isinstance(exc, Rb201Error):
            raise
        raise LaunchError(f"submitting {len(tasks)} tasks with the {executor!r} executor failed: {exc}") from None
    planned = planned_tasks(kept, factory)
    for job, t in zip(jobs, planned):
        t["job_id"] = str(job.job_id)
    job_id = str(jobs[0].job_id).split("_")[0] if jobs else ""
    launch = Launch(executor, job_id, folder, launch_record_path(out, job_id), planned, jobs)
    write_launch_record(
        launch.record, executor=executor, job_id=job_id, folder=folder, resources=asdict(res),
        spec_hash=factory.spec_hash, identity=factory.identity(), tasks=planned, request=request,
    )  # fmt: skip
    log.info("submitted %d shard tasks (%s): %s", len(jobs), executor, [j.job_id for j in jobs])
    return launch
