"""``rb201 query``, ``rb201 table`` and ``rb201 import-jung``: thin commands over :mod:`robustbench201._query` and
:mod:`robustbench201.store.jung` (no torch or pandas)."""

from __future__ import annotations

import json
import math
from typing import Any

import click

from . import run_library
from .reader_options import open_source, pick_dataset, reader_options, split_columns


@click.command("query")
@click.argument("arch")
@reader_options("datasets", "columns", "source", "fmt")
def query(arch: str, datasets: tuple[str, ...], columns: str | None, source: str | None, fmt: str) -> None:
    """Look up ARCH (an index, NB201 string or six op indices) on every dataset of the source, or those of -d;
    epsilons are in 1/255 units. A cell the source holds no value of is an error naming what it covers.

    \b
    Examples:
      rb201 query 13433 --dataset cifar10
      rb201 query 13433 -d cifar10 -c clean,fgsm@1,pgd@8 --format markdown
      rb201 query 3,3,3,3,3,3 --format json
      rb201 query 1462 --source ~/.cache/rb201/demo/dataset
    """
    from .._query import resolve_source
    from ..tables.formats import render

    src = run_library(resolve_source, source)
    r = run_library(src.query, arch, list(datasets) or None)
    cols = split_columns(columns)
    rows = run_library(_value_rows, r, cols)
    if fmt == "json":
        doc = r.to_dict()
        if cols:
            doc["values"] = {ds: {c: v for d, c, *_, v in rows if d == ds} for ds in r.datasets}
        click.echo(json.dumps(doc, indent=1, default=_nan_none))
    elif fmt == "csv":
        click.echo(render(_CSV_HEADERS, [(r.index, r.representative, *row) for row in rows], "csv"))
    elif fmt == "markdown" or cols:
        click.echo(_value_table([(d, c, v) for d, c, *_, v in rows], fmt))
        _echo_notes(r.notes(), fmt)
    else:
        click.echo(r.summary(width=100))


_CSV_HEADERS = ("arch_index", "representative", "dataset", "column", "family", "key", "epsilon", "severity",
                "semantics", "measure", "value")  # fmt: skip


def _value_rows(r: Any, columns: list[str] | None) -> list[tuple[Any, ...]]:
    """(dataset, column, family, key, epsilon, severity, semantics, measure, value) of ``r``: every value it holds,
    or the ``columns`` asked for (bare names resolved per dataset)."""
    out = []
    for ds in r.datasets:
        items = r.items(ds)
        if columns:
            by_name = {i["name"]: (i, v) for i, v in items}
            items = []
            for c in columns:
                info = r.column_info(c, ds)
                items.append(by_name.get(info["name"], (info, math.nan)))
        for info, v in items:
            eps = info["epsilon"]
            out.append((ds, info["name"], info["family"], info["key"], eps, info["severity"] or None,
                        info.get("semantics") or None, info["measure"], v))  # fmt: skip
    return out


def _value_table(rows: list[tuple[str, str, float]], fmt: str) -> str:
    """(dataset, column, value) rows as a table, each value displayed as its column is."""
    from ..tables.formats import format_value, render

    return render(("dataset", "column", "value"), [(d, c, format_value(c, v) or "-") for d, c, v in rows], fmt)


def _nan_none(value: object) -> object:
    return None


def _echo_notes(notes: list[str] | tuple[str, ...], fmt: str) -> None:
    """Notes under a table: ``notes:`` and an indented line each (Markdown: a list)."""
    if not notes:
        return
    click.echo("")
    if fmt == "markdown":
        click.echo("\n".join(f"- {n}" for n in notes))
        return
    click.echo("notes:")
    for n in notes:
        click.echo(f"  {n}")


@click.command("table")
@reader_options("dataset", "columns")
@click.option("--where", "-w", default=None, help="Filter: 'COLUMN OP NUMBER' joined by 'and', e.g. 'params<0.5'.")
@click.option("--sort", "-s", default=None, help="Column to sort by, best first (accuracies descending, costs "
              "ascending; dead cells after live ones, cells without a value last).")  # fmt: skip
@click.option("--asc", "order", flag_value="asc", help="Sort ascending whatever the column.")
@click.option("--desc", "order", flag_value="desc", help="Sort descending whatever the column.")
@click.option("--limit", "-n", type=click.IntRange(min=0), default=20, show_default=True, help="Rows to show (0: all).")
@click.option("--all-cells", is_flag=True, help="All 15625 cells instead of one per isomorphism class.")
@click.option("--include-empty", is_flag=True, help="Also the cells without a value in any shown column.")
@reader_options("fmt", "source")
def table(
    dataset: str | None,
    columns: str | None,
    where: str | None,
    sort: str | None,
    order: str | None,
    limit: int,
    all_cells: bool,
    include_empty: bool,
    fmt: str,
    source: str | None,
) -> None:
    """Select columns and rows of one dataset's results table (epsilon in 1/255, accuracies as fractions): the cells
    with a value, one per isomorphism class; a summary and notes follow the table.

    \b
    Examples:
      rb201 table --dataset cifar10 --columns clean,fgsm@1,params --where 'params<0.5' --sort fgsm@1 --limit 10
      rb201 table -d cifar100 -c clean,fog:3 --where 'clean>0.7 and fog:3>0.4' --format csv --limit 0
      rb201 table -c clean,params,edgegpu_latency --sort edgegpu_latency --format markdown
      rb201 table --source ~/.cache/rb201/demo/dataset
    """
    from ..tables.formats import render
    from ..tables.select import select

    src = open_source(source)
    idx = run_library(src.index, pick_dataset(src, dataset))
    descending = None if order is None else order == "desc"
    sel = run_library(select, idx, split_columns(columns), where, sort, descending, limit or None, not all_cells,
                      include_empty)  # fmt: skip
    headers = ["arch_index", *sel.columns]
    rows = [[int(i), *row] for i, row in zip(sel.indices.tolist(), sel.values.tolist(), strict=True)]
    if fmt == "json":
        records = json.loads(render(headers, rows, "json"))
        doc = {"dataset": sel.dataset, "columns": list(sel.columns), "sort": sel.sort, "descending": sel.descending,
               "rows": records, "summary": sel.summary(), "notes": list(sel.notes)}  # fmt: skip
        click.echo(json.dumps(doc, indent=1))
        return
    click.echo(render(headers, rows, fmt))
    if fmt == "csv":
        return
    click.echo(f"({sel.summary()})" if fmt == "text" else f"\n{sel.summary()}")
    _echo_notes(sel.notes, fmt)


@click.command("import-jung")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output dataset directory.")
def import_jung(path: str, out_dir: str) -> None:
    """Convert the original Jung et al. (ICLR 2023) layout at PATH (meta.json + <dataset>/<key>_<measure>.json).

    \b
    Example:
      rb201 import-jung ../shared/data/nb201-robustness --out jung-dataset/
    """
    from ..store.jung import import_jung as run_import

    s = run_library(run_import, path, out_dir)
    click.echo(f"wrote {s.rows} rows and {s.arrays} arrays to {s.out_dir}")
    for ds, items in s.keys.items():
        click.echo(f"  {ds}: {len(items)} files")
