"""``rb201 demo``: the main job of the README on the embedded default (no torch import at module level)."""

from __future__ import annotations

import click

from . import run_library


@click.command("demo")
@click.option(
    "--out",
    default=None,
    type=click.Path(file_okay=False),
    help="Working folder (re-running resumes the build) [default: demo/ in the rb201 cache, ~/.cache/rb201/demo].",
)
@click.option("--epochs", type=click.IntRange(min=1), default=3, show_default=True, help="Training epochs per cell.")
@click.option("--n-test", type=click.IntRange(min=10), default=200, show_default=True, help="Test digits evaluated.")
@click.option("--table-only", is_flag=True, help="Only query the shipped table (instant).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def demo(out: str | None, epochs: int, n_test: int, table_only: bool, no_progress: bool) -> None:
    """Query the shipped table, then build a small robustness dataset end to end on CPU (a few minutes).

    The build trains four small NB201 cells on MNIST-5k, evaluates them with the 'smoke' preset (attacks,
    generated corruptions, surrogates, certified bounds), merges the shards into a dataset, validates it and
    queries it with the same API as the shipped table. Last, it writes the HTML reports (rb201 report) of the
    shipped table, of the build (while it ran and after) and of the built dataset, and prints their paths.

    \b
    Examples:
      rb201 demo
      rb201 demo --out ./demo-run
      rb201 demo --table-only
    """
    from ..demo import default_out, run_demo
    from .report_cmd import retry_commands

    out = out or str(default_out())

    def show(step) -> None:  # type: ignore[no-untyped-def]
        click.echo(click.style(f"== {step.name} ({step.seconds:.1f} s)", bold=True))
        for line in step.lines:
            click.echo(line)
        click.echo()

    report = run_library(
        run_demo, out, epochs=epochs, n_test=n_test, build=not table_only, progress=not no_progress, on_step=show,
        report_commands=retry_commands,
    )  # fmt: skip
    click.echo(f"done in {report.seconds:.1f} s; outputs in {report.out}")
