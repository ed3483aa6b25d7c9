"""``rb201 analyze``: the analyses of Jung et al. (rank correlations, equal-parameter study, surrogates)."""

from __future__ import annotations

import json

import click

from ..tables.formats import FORMATS
from . import run_library


@click.command("analyze")
@click.argument("which", type=click.Choice(["kendall", "params", "surrogates", "all"]), default="all")
@click.option("--dataset", default="cifar10", show_default=True)
@click.option("--source", type=click.Path(), default=None, help="Dataset directory or wide .parquet/.csv table.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for the figures and the full tables (CSV).")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="Tables as aligned text, Markdown, CSV, or everything as JSON.")  # fmt: skip
@click.option("--figure-format", type=click.Choice(["png", "pdf", "svg"]), default="png", show_default=True)
def analyze(which: str, dataset: str, source: str | None, out: str | None, fmt: str, figure_format: str) -> None:
    """Reproduce the analyses of Jung et al. (ICLR 2023) from a results table, one row per isomorphism class.

    WHICH: kendall (clean vs robust, attacks, corruptions), params (equal parameter count study), surrogates
    (Kendall tau of zero-cost proxies / Jacobian / Hessian with robustness), or all. A summary of the headline
    numbers comes first, then the tables; --out also writes the figures and the full tables.

    \b
    Examples:
      rb201 analyze all --dataset cifar10 --out figures/
      rb201 analyze kendall --format markdown
      rb201 analyze params --format json
    """
    from ..data.info import canonical_dataset
    from ..search.nas import load_table
    from ..search.report import analyze as run_analyze
    from ..tables.formats import render

    name = run_library(canonical_dataset, dataset)
    df = run_library(load_table, name, source)
    rep = run_library(run_analyze, df, out, which, name, figure_format)
    if fmt == "json":
        click.echo(json.dumps(rep.results, indent=2, default=float))
        return
    res = rep.results
    if fmt == "text":
        click.echo(f"{name}: {res['rows']} isomorphism classes (one row each)")
        click.echo("\nsummary")
        for line in rep.summary:
            click.echo(f"  {line}")
    elif fmt == "markdown":
        click.echo(f"## {name}: {res['rows']} isomorphism classes\n")
        click.echo("\n".join(f"- {line}" for line in rep.summary))
    for sec in rep.sections:
        if fmt == "csv":
            click.echo(f"\n# {sec.title}: {sec.note}")
        elif fmt == "markdown":
            click.echo(f"\n### {sec.title}\n\n{sec.note}\n")
        else:
            click.echo(f"\n{sec.note}")
        click.echo(render(sec.headers, sec.rows, fmt, digits=3))
    if rep.files and fmt != "csv":
        click.echo("\nwritten:\n  " + "\n  ".join(rep.files))
