"""``rb201 analyze``: the analyses of Jung et al. (rank correlations, equal-parameter study, surrogates)."""

from __future__ import annotations

import json

import click

from . import run_library
from .reader_options import reader_options


@click.command("analyze")
@click.argument("which", type=click.Choice(["kendall", "params", "surrogates", "all"]), default="all")
@reader_options("dataset", "source", "out", "fmt", source="A wide .parquet/.csv table is read too.",
                out="Figures and the full tables (CSV) go there.")  # fmt: skip
@click.option("--figure-format", type=click.Choice(["png", "pdf", "svg"]), default="png", show_default=True)
def analyze(which: str, dataset: str | None, source: str | None, out: str | None, fmt: str, figure_format: str) -> None:
    """Reproduce the analyses of Jung et al. (ICLR 2023) from a results table, one row per isomorphism class with
    values (attack columns: per-epsilon values where the dataset holds them, else the cumulative worst case).

    WHICH: kendall (clean vs robust, attacks, corruptions), params (equal parameter count study), surrogates
    (Kendall tau of zero-cost proxies / Jacobian / Hessian with robustness), or all. A heading says how many classes
    have values, the summary of the headline numbers follows (each with the classes it used, and a warning below 30),
    then the tables; --out also writes the figures and the full tables. CSV is one long table of every number.

    \b
    Examples:
      rb201 analyze all --dataset cifar10 --out figures/
      rb201 analyze kendall --format markdown
      rb201 analyze params --format json
      rb201 analyze --source ~/.cache/rb201/demo/dataset
    """
    from ..search.nas import load_table
    from ..search.report import LONG_HEADERS, heading, long_rows
    from ..search.report import analyze as run_analyze
    from ..tables.formats import render
    from .reader_options import open_source, pick_dataset

    if source is None or not source.lower().endswith((".parquet", ".csv")):
        name = pick_dataset(open_source(source), dataset)
    else:
        from ..data.info import canonical_dataset

        name = run_library(canonical_dataset, dataset or "cifar10")
    df = run_library(load_table, name, source)
    rep = run_library(run_analyze, df, out, which, name, figure_format)
    res = rep.results
    if fmt == "json":
        doc = {"heading": heading(res), "summary": rep.summary, **res,
               "sections": [{"title": s.title, "note": s.note, "headers": list(s.headers),
                             "rows": [list(r) for r in s.rows]} for s in rep.sections]}  # fmt: skip
        click.echo(json.dumps(doc, indent=1, default=_plain))
        return
    if fmt == "csv":
        click.echo(render(LONG_HEADERS, long_rows(res), "csv"))
        return
    if fmt == "text":
        click.echo(heading(res))
        click.echo("\nsummary")
        for line in rep.summary:
            click.echo(f"  {line}")
    else:
        click.echo(f"## {heading(res)}\n")
        click.echo("\n".join(f"- {line}" for line in rep.summary))
    for sec in rep.sections:
        if fmt == "markdown":
            click.echo(f"\n### {sec.title}\n\n{sec.note}\n")
        else:
            click.echo(f"\n{sec.note}")
        click.echo(render(sec.headers, sec.rows, fmt, kinds=sec.kinds))
    if rep.files:
        click.echo("\nwritten:\n  " + "\n  ".join(rep.files))


def _plain(value: object) -> object:
    """JSON for numpy scalars and NaN (as null)."""
    if hasattr(value, "item"):
        value = value.item()  # type: ignore[union-attr]
    if isinstance(value, float) and value != value:
        return None
    return value
