"""``rb201 report``: one self-contained HTML file for a dataset, a build in progress, or the published table (no torch
or pandas import at module level)."""

from __future__ import annotations

import shlex
from typing import Any

import click

from . import library_errors, run_library


def retry_commands(plan: Any) -> list[str]:
    """The command lines that retry a :class:`robustbench201.report.RetryPlan`: merge what is committed, then
    evaluate what the merged dataset lacks (``--missing-from``) over ranges that hold exactly the cells to retry;
    and, for a launch, submitting it again."""
    from ..runner.providers import fill_request
    from ..runner.request import LaunchRequest
    from .build_cmds import evaluate
    from .launch_cmds import launch
    from .options import request_argv

    request = fill_request(plan.identity, plan.merged, plan.out)
    request = request.replace(arch_ranges=tuple(f"{a}:{b}" for a, b in plan.ranges))
    lines = [
        shlex.join(["rb201", "merge", plan.out, "--out", plan.merged, "--overwrite"]),
        shlex.join(["rb201", "evaluate", *request_argv(request, evaluate)]),
    ]
    for job_id, fields in plan.launches:
        again = LaunchRequest.from_dict(fields).replace(dry_run=False, wait=False)
        lines += [f"# or submit launch {job_id} again (it skips what is done):",
                  shlex.join(["rb201", "launch", *request_argv(again, launch)])]  # fmt: skip
    return lines


@click.command("report")
@click.argument("source", metavar="SOURCE")
@click.option("-o", "--output", default="report.html", show_default=True, type=click.Path(dir_okay=False),
              help="The HTML file to write (--out, elsewhere, is always a folder).")  # fmt: skip
@click.option("--watch", type=click.FloatRange(min=1), is_flag=False, flag_value=30.0, default=None,
              metavar="[SECONDS]", help="For a build in progress: rewrite the report every SECONDS (30 without a "
              "value) until no task writes and none waits to start; the page reloads itself meanwhile.")  # fmt: skip
def report(source: str, output: str, watch: float | None) -> None:
    """Write one self-contained HTML report of SOURCE: a dataset directory, a shard output folder of a running or
    finished build (rb201 evaluate / launch --out), or jung2023 (the published table embedded in rb201).

    The file loads nothing from anywhere and opens from disk in any current browser. A dataset's report shows its
    provenance (manifest, specs, weights, every file's sha256 verified on reading), figures, a sortable and
    filterable table of every cell with a detail view per cell, and the comparison with jung2023 where datasets
    overlap. A build's report shows tasks and cells done, failed and remaining, throughput and ETA, failures with
    the commands that retry them, and coverage of the 6466 isomorphism classes.

    \b
    Examples:
      rb201 report jung2023 -o jung2023.html
      rb201 report nb201rob-v1 -o nb201rob-v1.html
      rb201 report shards/ -o build.html --watch 60
    """
    from ..report import watch_report, write_report

    if watch is None:
        rep = run_library(write_report, source, output, commands=retry_commands)
        click.echo(f"wrote {rep.describe()}")
        return
    with library_errors():
        try:
            for rep in watch_report(source, output, watch, commands=retry_commands):
                state = "the build is idle: final report" if rep.idle else f"rewriting every {watch:g} s (Ctrl-C stops)"
                click.echo(f"wrote {rep.describe()}; {state}")
        except KeyboardInterrupt:
            click.echo(f"stopped; {output} keeps the last report")
