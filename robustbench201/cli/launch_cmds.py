"""``rb201 launch`` (a job array of shards through submitit) and ``rb201 status`` (progress of the shards under OUT).

No torch or pandas import at module level; ``status`` never imports torch."""

from __future__ import annotations

import shlex
import sys
from typing import Any

import click

from ..vocab import EXECUTORS
from . import run_library
from .build_cmds import FAILED_EXIT, _factory_from, _present, eval_options


@click.command("launch")
@eval_options
@click.option(
    "--executor",
    type=click.Choice(EXECUTORS),
    default="slurm",
    show_default=True,
    help="slurm: sbatch job array; local: subprocesses here; debug: in this process.",
)
@click.option("--shards", type=click.IntRange(min=1), required=True, help="Number of array tasks K.")
@click.option("--partition", help="Slurm partition (sbatch --partition).")
@click.option("--account", help="Slurm account to charge (sbatch --account).")
@click.option("--qos", help="Quality of service (sbatch --qos).")
@click.option("--constraint", help="Node features, e.g. 'a100|h100' (sbatch --constraint).")
@click.option(
    "--time",
    "time_limit",
    default="1440",
    show_default=True,
    metavar="MINUTES|HH:MM:SS|D-HH:MM",
    help="Time limit per task; a task that reaches it is requeued and resumes.",
)
@click.option(
    "--gpus-per-task",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="GPUs per task (one worker each); 0: a CPU task.",
)
@click.option(
    "--cpus-per-task",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="CPUs per task; without GPUs the task runs one worker per CPU.",
)
@click.option("--mem-gb", type=click.IntRange(min=1), help="Memory per task in GB (sbatch --mem).")
@click.option(
    "--array-parallelism",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="At most N tasks at once (sbatch --array=0-K%N).",
)
@click.option(
    "--slurm-extra",
    "--slurm-additional-parameters",
    "slurm_extra",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any other sbatch option, e.g. mail-type=END, exclude=node7, reservation=nas (repeatable; "
    "KEY alone for a flag).",
)
@click.option("--job-name", help="Slurm job name [default: rb201-DATASET].")
@click.option(
    "--folder",
    type=click.Path(file_okay=False),
    help="Logs and pickled tasks [default: OUT/submitit]; on a cluster it must be on a shared file system.",
)
@click.option(
    "--dry-run", is_flag=True, help="Print the job array (tasks, shards, resources, sbatch script); submit nothing."
)
@click.option("--wait", is_flag=True, help="Wait for all tasks and print how each ended.")
def launch(executor: str, shards: int, partition: str | None, account: str | None, qos: str | None,
           constraint: str | None, time_limit: str, gpus_per_task: int, cpus_per_task: int, mem_gb: int | None,
           array_parallelism: int, slurm_extra: tuple[str, ...], job_name: str | None, folder: str | None,
           dry_run: bool, wait: bool, **kw: Any) -> None:  # fmt: skip
    """Split --arch-range into K shards and submit them as one job array (submitit); re-submitting resumes.

    With --missing-from DATASET the cells of the range that DATASET lacks are split into K list shards. Progress:
    rb201 status OUT (readable while the tasks run). Exit status 3 with --wait when some architectures failed or a
    task ended without a result (run the same command again to finish).

    \b
    Examples:
      rb201 launch --executor slurm --shards 128 --arch-range 0:15625 --partition gpu --account nas --qos normal \\
          --time 12:00:00 --gpus-per-task 1 --cpus-per-task 8 --mem-gb 32 --array-parallelism 32 \\
          --constraint a100 --slurm-extra mail-type=END --dataset cifar10 --preset jung2023 \\
          --weights nats:/data/NATS-tss-v1_0-3ffb9-full --trust-pickle --out shards/ --dry-run
      rb201 launch --executor slurm --shards 4 --arch-range 0:64 --gpus-per-task 0 --cpus-per-task 4 \\
          --time 60 --dataset mnist5k --weights init --preset smoke --channels 8 --cells 1 --out /scratch/shards
      rb201 launch --executor local --shards 2 --arch-range 0:20 --gpus-per-task 0 --dataset mnist5k \\
          --weights init --preset smoke --channels 8 --cells 1 --out /tmp/shards --wait
    """
    from ..runner.plan import parse_arch_ranges, plan_launch
    from ..runner.resources import TaskResources, parse_extra, parse_time_limit
    from ..space import NUM_ARCHS

    ranges = run_library(parse_arch_ranges, kw["arch_ranges"])
    if len(ranges) > 1 or (not ranges and not kw["missing_from"]):
        raise click.UsageError("launch needs exactly one --arch-range START:END (optional with --missing-from)")
    resources = run_library(
        lambda: TaskResources(
            job_name=job_name or f"rb201-{kw['dataset']}", partition=partition, account=account, qos=qos,
            constraint=constraint, time_min=parse_time_limit(time_limit), gpus_per_task=gpus_per_task,
            cpus_per_task=cpus_per_task, mem_gb=mem_gb, array_parallelism=array_parallelism,
            extra=parse_extra(slurm_extra),
        )
    )  # fmt: skip
    factory = _factory_from(kw)
    arch_range = ranges[0] if ranges else (0, NUM_ARCHS)
    parts = run_library(plan_launch, arch_range, shards, kw["unique_only"], _present(kw, factory))
    if not parts:
        click.echo("nothing to do: no cell is missing")
        return
    out = kw["out"]
    log_folder = folder or f"{out.rstrip('/')}/submitit"
    from ..runner import slurm

    if dry_run:
        for line in run_library(slurm.dry_run, parts, out, factory, resources, log_folder, executor):
            click.echo(line)
        click.echo("nothing submitted (--dry-run)")
        return
    launched = run_library(
        slurm.launch_shards, parts, out, factory, executor=executor, resources=resources, folder=log_folder,
        retries=kw["retries"], force_new_spec=kw["force_new_spec"], threads=kw["threads"],
        allow_overlap=bool(kw["missing_from"]),
    )  # fmt: skip
    _print_launch(launched, resources.job_name, out)
    if wait:
        _wait(launched)


def _print_launch(launched: Any, job_name: str, out: str) -> None:
    n = len(launched.tasks)
    if launched.executor != "slurm":
        what = f"{n} {launched.executor} job{'s' if n != 1 else ''}"
    else:  # submitit submits a single task as a plain job
        what = f"job array {launched.job_id}" if n > 1 else f"job {launched.job_id}"
    click.echo(f"submitted {what} ({job_name}): {n} task{'s' if n != 1 else ''}")
    for t in launched.tasks:
        where = f"range {t['bounds'][0]}:{t['bounds'][1]}" if t["bounds"] else "listed cells"
        click.echo(f"  job {t['job_id']}: {t['shard']} ({where}, {t['cells']} cells)")
    click.echo(f"logs:     {launched.log_hint()}")
    if launched.executor == "slurm":
        first = launched.log_hint().replace("<task>", "0").replace("{out,err}", "err")
        click.echo(f"          e.g. tail -f {shlex.quote(first)}")
        click.echo(f"queue:    squeue -r -j {launched.job_id}")
    click.echo(f"progress: rb201 status {shlex.quote(out)}")


def _wait(launched: Any) -> None:
    from ..runner.queue import wait_for

    incomplete = 0
    for outcome in run_library(wait_for, launched):
        res = outcome.result
        if res is None:
            incomplete += 1
            click.echo(f"job {outcome.job_id}: {outcome.error}")
            continue
        incomplete += len(res["failures"])
        line = f"job {outcome.job_id}: {res['shard']}: {res['finished']} evaluated, {res['skipped']} already done, "
        line += f"{len(res['failures'])} failed"
        if res.get("lock_wait_s", 0) >= 1:
            line += f", waited {res['lock_wait_s']:.0f} s for another job writing this shard"
        click.echo(line)
    if incomplete:
        click.echo("some cells are not done: rb201 status OUT says which; run the same command again to finish them",
                   err=True)  # fmt: skip
        sys.exit(FAILED_EXIT)


@click.command("status")
@click.argument("out", type=click.Path(exists=True, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def status(out: str, fmt: str) -> None:
    """Per-shard progress under OUT: cells done, failed and left, the job writing each shard now.

    Reads the shard manifests and files without locking them, so it is safe while tasks run; shards of a launch
    whose task has not started are listed too. Counts are not verified (rb201 merge verifies every file).

    \b
    Examples:
      rb201 status shards/
      rb201 status shards/ --format json
    """
    from ..runner.status import progress_json, progress_lines, shard_progress

    rows = run_library(shard_progress, out)
    if fmt == "json":
        click.echo(progress_json(rows))
        return
    for line in progress_lines(rows):
        click.echo(line)
