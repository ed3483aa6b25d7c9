"""``rb201 compare``: a built dataset against the published table (or another dataset), column by column."""

from __future__ import annotations

import json

import click

from . import run_library
from .reader_options import reader_options, split_columns


@click.command("compare")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--to",
    "to",
    default="jung2023",
    show_default=True,
    metavar="jung2023|DIR",
    help="jung2023 (the published results inside the embedded table) or another dataset directory.",
)
@reader_options("datasets", "columns")
@click.option(
    "--worst",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Cells listed per column where the two differ most.",
)
@reader_options("fmt")
def compare(dataset_dir: str, to: str, datasets: tuple[str, ...], columns: str | None, worst: int, fmt: str) -> None:
    """Compare DATASET_DIR with the published table: Kendall tau, mean |a-b|, mean a-b and the cells that differ most
    per column (key and epsilon in 1/255 units, or severity), on the isomorphism-class representatives both hold.
    Nothing in common (no dataset or no column with values in both) is an error.

    \b
    Examples:
      rb201 compare nb201rob-v1 --to jung2023
      rb201 compare nb201rob-v1 --to jung2023 -d cifar10 -c clean,fgsm@1,pgd@1 --worst 10
      rb201 compare rebuild-a/ --to rebuild-b/ --format json
    """
    from .._query import Dataset, default_dataset
    from ..tables.compare import PUBLISHED, ROW_HEADERS
    from ..tables.compare import compare as run_compare
    from ..tables.formats import render

    a = run_library(Dataset, dataset_dir)
    if to == PUBLISHED:
        b, b_sources, b_label = run_library(default_dataset), (PUBLISHED,), "jung2023 (published, embedded table)"
    else:
        b, b_sources, b_label = run_library(Dataset, to), None, to
    rep = run_library(
        run_compare, a, b, datasets=list(datasets) or None, columns=split_columns(columns), b_sources=b_sources,
        worst=max(worst, 1), a_label=dataset_dir, b_label=b_label,
    )  # fmt: skip
    if fmt == "json":
        click.echo(json.dumps({**rep.to_dict(), "summary": rep.lines(worst)}, indent=1))
    elif fmt in ("csv", "markdown"):
        click.echo(render(ROW_HEADERS, rep.rows(), fmt))
    else:
        for line in rep.lines(worst):
            click.echo(line)
