"""``rb201 launch`` (a job array of shards through submitit) and ``rb201 status`` (progress of the shards under OUT).

No torch or pandas import at module level; ``status`` never imports torch."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import Rb201Error
from ..runner.request import LaunchRequest
from . import library_errors, render, run_library
from .build_cmds import FAILED_EXIT
from .options import request_argv, request_from_params, request_options
from .reader_options import reader_options


@click.command("launch")
@request_options(LaunchRequest)
def launch(**params: Any) -> None:
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
    from ..runner.batch import DryRun, Note, launch_request

    request = request_from_params(LaunchRequest, params)
    with library_errors():
        for event in launch_request(request):
            if isinstance(event, Note):
                click.echo(render(event.text), err=event.warning)
            elif isinstance(event, DryRun):
                for line in event.lines:
                    click.echo(line)
                click.echo("nothing submitted (--dry-run)")
            else:
                _print_launch(event, request.job_name or f"rb201-{request.dataset}", request.out)
                if request.wait:
                    _wait(event)


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
@reader_options("status_fmt")
def status(out: str, fmt: str) -> None:
    """Per-shard progress under OUT: cells done, failed and left, the job writing each shard now; or, when OUT is
    a merged dataset directory, what it holds (classes with values per dataset, columns, semantics, specs).

    Reads the shard manifests and files without locking them, so it is safe while tasks run; shards of a launch
    whose task has not started are listed too. Counts are not verified (rb201 merge verifies every file). A launch
    with cells left and no task running is followed by the command that finishes it.

    \b
    Examples:
      rb201 status shards/
      rb201 status shards/ --format json
      rb201 status nb201rob-v1
    """
    from ..runner.status import progress_json, progress_lines, shard_progress, unfinished_launches

    rows = run_library(shard_progress, out)
    if not rows and (Path(out) / "manifest.json").is_file():
        _describe(out, fmt)
        return
    if fmt == "json":
        click.echo(progress_json(rows))
        return
    for line in progress_lines(rows):
        click.echo(line)
    for job_id, fields in unfinished_launches(out, rows):
        try:
            request = LaunchRequest.from_dict(fields).replace(dry_run=False, wait=False)
        except Rb201Error as exc:  # a record of another rb201 version
            click.echo(f"launch {job_id}: its request cannot be read back ({exc})")
            continue
        click.echo(f"to finish launch {job_id}: {shlex.join(['rb201', 'launch', *request_argv(request, launch)])}")


def _describe(path: str, fmt: str) -> None:
    """``rb201 status`` of a dataset directory: what it holds."""
    from .._query import Dataset
    from ..tables.describe import describe, describe_lines

    d = run_library(describe, run_library(Dataset, path))
    if fmt == "json":
        click.echo(json.dumps(d, indent=1))
        return
    for line in describe_lines(d):
        click.echo(line)
