"""``rb201 search table``: NAS baselines (random search, regularized evolution, local search) on the results table."""

from __future__ import annotations

import json

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
    from ..search.nas import TableSurrogate, load_table, run_search
    from ..search.objective import default_objective

    points = _checkpoints(checkpoints)
    dataset = _dataset(dataset, source)
    df = run_library(load_table, dataset, source)
    objective = objective or default_objective(df.columns)
    sur = run_library(TableSurrogate, df, objective, list(constraints))
    if sur.split_warning:
        click.echo(f"warning: {sur.split_warning}", err=True)
    covered = len(sur.covered)
    warnings = [sur.split_warning] if sur.split_warning else []
    if covered < budget <= sur.n_classes:  # a table holding few classes: search those, and say so
        warnings.append(
            f"only {covered} of {sur.n_classes} classes of {dataset} have a value of {sur.objective.text}: budget "
            f"{budget} cut to {covered}, random cells drawn from those classes only; over so few classes the result "
            "is no finding"
        )
        click.echo(f"warning: {warnings[-1]}", err=True)
        budget = covered
        if points:
            points = [p for p in points if p <= budget] or [budget]
    results = [run_library(run_search, sur, a, budget, seeds, seed, sample=sample, ga_batch=ga_batch, ga_lr=ga_lr,
                           only_covered=budget >= covered)
               for a in dict.fromkeys(algos)]  # fmt: skip
    summaries = [run_library(r.to_dict, points) for r in results]
    if plot:
        from ..search.plots import regret

        plot = str(run_library(regret, results, plot, dataset))
    if fmt == "json":
        doc = {"dataset": dataset, "objective": sur.objective.text, "classes_with_values": covered,
               "warning": sur.split_warning, "warnings": warnings, "results": summaries}  # fmt: skip
        click.echo(json.dumps(doc, indent=2, default=lambda v: None))
        return
    if fmt == "csv":  # one tidy table: a row per algorithm and query count
        from ..tables.formats import render

        heads = ("algo", "queries", "mean", "std", "min", "max", "regret", "runs", "optimum")
        rows = [(s["algo"], c["budget"], c["mean"], c["std"], c["min"], c["max"], c["regret"], s["runs"],
                 s["optimum"]) for s in summaries for c in s["checkpoints"]]  # fmt: skip
        click.echo(render(heads, rows, "csv"))
        return
    from ..space import Arch
    from ..tables.formats import render

    first = results[0]
    opt = Arch.from_index(first.optimum_index)
    cons = f" subject to {' and '.join(first.constraints)}" if first.constraints else ""
    heading = f"objective {'max' if first.maximize else 'min'} {first.objective}{cons} on {dataset}"
    optimum = f"table optimum {first.optimum:.4f} at #{opt.index} {opt.string}"
    headers = ("queries", "mean", "std", "min", "max", "regret")
    if fmt == "text":
        click.echo(heading)
        click.echo(optimum)
    elif fmt == "markdown":
        click.echo(f"**{heading}**; {optimum}")
    for s, r in zip(summaries, results, strict=True):
        rows = [(c["budget"], c["mean"], c["std"], c["min"], c["max"], c["regret"]) for c in s["checkpoints"]]
        title = f"{NAS_ALGORITHMS[s['algo']]} ({s['algo']}), {s['runs']} runs, budget {s['budget']}"
        if fmt == "markdown":
            click.echo(f"\n### {title}\n")
        else:
            click.echo(f"\n{title}")
        click.echo(render(headers, rows, fmt))
        final = r.trajectories[:, -1]
        gap = abs(first.optimum - float(final.mean()))
        hit = int((r.regret[:, -1] == 0).sum())
        click.echo(
            f"after {s['budget']} queries: mean {final.mean():.4f}, {gap:.4f} from the optimum "
            f"({100 * gap / abs(first.optimum):.2f}%); {hit}/{s['runs']} runs found the optimum"
        )
        best = s["most_frequent_best"]
        if best:
            click.echo(f"most often found: #{best['index']} ({best['runs']}/{s['runs']} runs) {best['string']}")
        if "exact" in s["params"]:
            ex = s["params"]["exact"]
            click.echo(
                f"exact gradient (reads all {ex['queries']} classes at its first step): #{ex['index']} "
                f"{Arch.from_index(ex['index']).string}, value {ex['value']:.4f}, regret {ex['regret']:.4f}, "
                f"{ex['steps']} steps"
            )
    if plot:
        click.echo(f"\nregret plot: {plot}")


def _dataset(dataset: str | None, source: str | None) -> str:
    """``-d`` of the source (a dataset directory or the embedded table: its first dataset by default; a wide file:
    cifar10 by default)."""
    from ..data.info import canonical_dataset

    if source is not None and source.lower().endswith((".parquet", ".csv")):
        return run_library(canonical_dataset, dataset or "cifar10")
    from .reader_options import open_source, pick_dataset

    return pick_dataset(open_source(source), dataset)
