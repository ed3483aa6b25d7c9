"""``rb201 search table``: NAS baselines (random search, regularized evolution, local search) on the results table."""

from __future__ import annotations

import json

import click

from . import run_library

_ALGOS = ("rs", "re", "ls")
_NAMES = {"rs": "random search", "re": "regularized evolution", "ls": "local search"}


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
    type=click.Choice(_ALGOS),
    multiple=True,
    default=("re",),
    show_default=True,
    help="rs (random search), re (regularized evolution), ls (local search); repeat to compare.",
)
@click.option("--objective", default="fgsm@1", show_default=True, help="Column or expression; 'min:' minimises.")
@click.option("--constraint", "constraints", multiple=True, help="E.g. 'params<=0.5' (repeatable, all must hold).")
@click.option("--budget", type=int, default=300, show_default=True, help="Distinct cells (classes) queried per run.")
@click.option("--seeds", type=int, default=20, show_default=True, help="Number of independent runs.")
@click.option("--seed", type=int, default=0, show_default=True, help="Base seed of the runs' random generator.")
@click.option("--dataset", default="cifar10", show_default=True)
@click.option("--source", type=click.Path(), default=None, help="Dataset directory or wide .parquet/.csv table.")
@click.option(
    "--sample",
    type=click.Choice(["cells", "classes"]),
    default="cells",
    show_default=True,
    help="Random cells uniform over the 15625 cells or over the isomorphism classes.",
)
@click.option("--checkpoints", default=None, help="Query counts to report, e.g. '10,50,100,300'.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Write a regret plot (PNG).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def table(
    algos: tuple[str, ...],
    objective: str,
    constraints: tuple[str, ...],
    budget: int,
    seeds: int,
    seed: int,
    dataset: str,
    source: str | None,
    sample: str,
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
    """
    from ..search.nas import TableSurrogate, load_table, run_search

    points = _checkpoints(checkpoints)
    df = run_library(load_table, dataset, source)
    sur = run_library(TableSurrogate, df, objective, list(constraints))
    results = [run_library(run_search, sur, a, budget, seeds, seed, sample=sample) for a in dict.fromkeys(algos)]
    summaries = [run_library(r.to_dict, points) for r in results]
    if plot:
        from ..search.plots import regret

        run_library(regret, results, plot)
    if fmt == "json":
        click.echo(json.dumps({"dataset": dataset, "results": summaries}, indent=2))
        return
    from ..space import Arch

    first = results[0]
    opt = Arch.from_index(first.optimum_index)
    cons = f" subject to {' and '.join(first.constraints)}" if first.constraints else ""
    click.echo(f"objective {'max' if first.maximize else 'min'} {first.objective}{cons} on {dataset}")
    click.echo(f"table optimum {first.optimum:.4f} at #{opt.index} {opt.string}")
    for s in summaries:
        click.echo(f"\n{_NAMES[s['algo']]} ({s['algo']}), {s['runs']} runs, budget {s['budget']}")
        click.echo(f"{'queries':>8}  {'mean':>7}  {'std':>7}  {'min':>7}  {'max':>7}  {'regret':>7}")
        for c in s["checkpoints"]:
            click.echo(
                f"{c['budget']:>8}  {c['mean']:7.4f}  {c['std']:7.4f}  {c['min']:7.4f}  {c['max']:7.4f}  "
                f"{c['regret']:7.4f}"
            )
        best = s["most_frequent_best"]
        if best:
            click.echo(f"most often found: #{best['index']} ({best['runs']}/{s['runs']} runs) {best['string']}")
    if plot:
        click.echo(f"\nregret plot: {plot}")
