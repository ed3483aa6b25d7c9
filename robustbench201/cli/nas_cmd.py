"""``rb201 search table``: NAS baselines (random search, regularized evolution, local search) on the results table."""

from __future__ import annotations

import click

from ..vocab import NAS_ALGORITHMS
from . import run_library
from .reader_options import reader_options


def _checkpoints(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a list of query counts, e.g. '10,50,300'") from None


@click.command("table")
@click.option(
    "--algo",
    "algos",
    type=click.Choice(tuple(NAS_ALGORITHMS)),
    multiple=True,
    default=("re",),
    show_default=True,
    help="rs (random search), re (regularized evolution), ls (local search), ga (gradient ascent of the expected "
    "objective over DARTS' architecture weights, no images); repeat to compare.",
)
@click.option("--objective", default=None,
              help="Column or expression; 'min:' minimises; 'valid/' names a validation-split column or group, "
                   "e.g. 'valid/pgd@8' or 'mean(valid/adversarial)' [default: fgsm@1, or the table's first attack "
                   "column near eps 1/255].")  # fmt: skip
@click.option("--constraint", "constraints", multiple=True, help="E.g. 'params<=0.5' (repeatable, all must hold).")
@click.option("--budget", type=int, default=300, show_default=True, help="Distinct cells (classes) queried per run.")
@click.option("--seeds", type=int, default=20, show_default=True, help="Number of independent runs.")
@click.option("--seed", type=int, default=0, show_default=True, help="Base seed of the runs' random generator.")
@reader_options("dataset", "source", source="A wide .parquet/.csv table is read too.")
@click.option(
    "--sample",
    type=click.Choice(["cells", "classes"]),
    default="cells",
    show_default=True,
    help="Random cells uniform over the 15625 cells or over the isomorphism classes.",
)
@click.option("--ga-batch", type=int, default=10, show_default=True, help="ga: cells drawn per gradient step.")
@click.option("--ga-lr", type=float, default=0.2, show_default=True, help="ga: Adam learning rate of the alphas.")
@click.option("--checkpoints", default=None, help="Query counts to report, e.g. '10,50,100,300'.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Write a regret plot (.png, .pdf or .svg by the suffix).")  # fmt: skip
@reader_options("fmt")
def table(
    algos: tuple[str, ...],
    objective: str | None,
    constraints: tuple[str, ...],
    budget: int,
    seeds: int,
    seed: int,
    dataset: str | None,
    source: str | None,
    sample: str,
    ga_batch: int,
    ga_lr: float,
    checkpoints: str | None,
    plot: str | None,
    fmt: str,
) -> None:
    """Search the NB201 space with the table as the surrogate; print the best found value per budget.

    \b
    Examples:
      rb201 search table --algo re --objective fgsm@1 --budget 300 --seeds 20
      rb201 search table --algo rs --algo re --algo ls --plot regret.png
      rb201 search table --objective '0.5*clean + 0.5*fgsm@1' --constraint 'params<=0.5'
      rb201 search table --objective 'mean(corruption)' --constraint 'edgegpu_latency<5'
      rb201 search table --source ds/ --dataset cifar10 --objective 'valid/pgd@8'
      rb201 search table --algo rs --algo re --algo ga --objective pgd@1

    The search warns (on stderr) when the objective or a constraint reads test-split columns that the table also
    holds on the validation split: select on 'valid/...' columns and report the test columns of the result.

    Queries: the budget counts distinct isomorphism classes read per run, for every method. ga reads the cells it
    draws from the architecture distribution and its argmax cell, each counted so; it also prints where the exact
    gradient of the expectation leads, which reads all classes at its first step (the cost of DSRNA's table prior).
    """
    from ..search.nas import TableSurrogate, load_table
    from ..search.objective import default_objective
    from ..search.table_search import render_search, search_table

    points = _checkpoints(checkpoints)
    dataset = _dataset(dataset, source)
    df = run_library(load_table, dataset, source)
    sur = run_library(TableSurrogate, df, objective or default_objective(df.columns), list(constraints))
    found = run_library(search_table, sur, dataset, algos, budget, seeds, seed, sample=sample, ga_batch=ga_batch,
                        ga_lr=ga_lr, checkpoints=points)  # fmt: skip
    for w in found.warnings:
        click.echo(f"warning: {w}", err=True)
    if plot:
        from ..search.plots import regret

        plot = str(run_library(regret, found.results, plot, dataset))
    click.echo(run_library(render_search, found, fmt))
    if plot and fmt in ("text", "markdown"):
        click.echo(f"\nregret plot: {plot}")


def _dataset(dataset: str | None, source: str | None) -> str:
    """``-d`` of the source (a dataset directory or the embedded table: its first dataset by default; a wide file:
    cifar10 by default)."""
    from ..data.info import canonical_dataset

    if source is not None and source.lower().endswith((".parquet", ".csv")):
        return run_library(canonical_dataset, dataset or "cifar10")
    from .reader_options import open_source, pick_dataset

    return pick_dataset(open_source(source), dataset)
