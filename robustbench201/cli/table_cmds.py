"""``rb201 query``, ``rb201 table`` and ``rb201 import-jung``: thin commands over :mod:`robustbench201._query` and
:mod:`robustbench201.store.jung` (no torch or pandas)."""

from __future__ import annotations

import csv
import io
import json
import math

import click

from ..tables.formats import FORMATS
from . import run_library

QUERY_FORMATS = click.Choice(["text", "json", "csv"])


def _num(v: float) -> str:
    return "" if math.isnan(v) else f"{v:.6g}"


@click.command("query")
@click.argument("arch")
@click.option("--dataset", "-d", default=None, help="cifar10, cifar100 or ImageNet16-120 (default: all).")
@click.option("--format", "fmt", type=QUERY_FORMATS, default="text", show_default=True)
@click.option(
    "--source", type=click.Path(file_okay=False), default=None, help="A dataset directory (default: embedded)."
)
def query(arch: str, dataset: str | None, fmt: str, source: str | None) -> None:
    """Look up ARCH (an index, NB201 string or six op indices); epsilons are in 1/255 units.

    \b
    Examples:
      rb201 query 13433 --dataset cifar10
      rb201 query 3,3,3,3,3,3 --format json
    """
    from .._query import query as run_query

    r = run_library(run_query, arch, dataset, source)
    if fmt == "json":
        click.echo(json.dumps(r.to_dict(), indent=1))
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["arch_index", "representative", "dataset", "column", "family", "epsilon", "severity", "value"])
        for ds in r.datasets:
            for info, v in r.items(ds):
                eps = "" if info["epsilon"] is None else f"{info['epsilon']:g}"
                w.writerow(
                    [r.index, r.representative, ds, info["name"], info["family"], eps, info["severity"] or "", v]
                )
        click.echo(buf.getvalue(), nl=False)
    else:
        click.echo(r.summary(width=100))


@click.command("table")
@click.option("--dataset", "-d", default="cifar10", show_default=True)
@click.option(
    "--columns", "-c", default="clean,fgsm@1,pgd@1,params", show_default=True, help="Comma-separated wide names."
)
@click.option("--where", "-w", default=None, help="Filter: 'COLUMN OP NUMBER' joined by 'and', e.g. 'params<0.5'.")
@click.option("--sort", "-s", default=None, help="Column to sort by, best first (accuracies descending, costs "
              "ascending; NaN last).")  # fmt: skip
@click.option("--asc", "order", flag_value="asc", help="Sort ascending whatever the column.")
@click.option("--desc", "order", flag_value="desc", help="Sort descending whatever the column.")
@click.option("--limit", "-n", type=int, default=20, show_default=True, help="Rows to show (0: all).")
@click.option("--all-cells", is_flag=True, help="All 15625 cells instead of one per isomorphism class.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option(
    "--source", type=click.Path(file_okay=False), default=None, help="A dataset directory (default: embedded)."
)
def table(
    dataset: str,
    columns: str,
    where: str | None,
    sort: str | None,
    order: str | None,
    limit: int,
    all_cells: bool,
    fmt: str,
    source: str | None,
) -> None:
    """Select columns and rows of one dataset's results table (epsilon in 1/255, accuracies as fractions).

    \b
    Examples:
      rb201 table --dataset cifar10 --columns clean,fgsm@1,params --where 'params<0.5' --sort fgsm@1 --limit 10
      rb201 table -d cifar100 -c clean,fog:3 --where 'clean>0.7 and fog:3>0.4' --format csv --limit 0
      rb201 table -c clean,params,edgegpu_latency --sort edgegpu_latency --format markdown
    """
    from .._query import resolve_source
    from ..tables.formats import render
    from ..tables.select import select

    src = run_library(resolve_source, source)
    idx = run_library(src.index, dataset)
    cols = [c.strip() for c in columns.split(",") if c.strip()]
    descending = None if order is None else order == "desc"
    sel = run_library(select, idx, cols, where, sort, descending, limit or None, not all_cells)
    rows = [[int(i), *row] for i, row in zip(sel.indices.tolist(), sel.values.tolist())]
    if fmt == "json":
        records = json.loads(render(["arch_index", *sel.columns], rows, "json"))
        doc = {"dataset": sel.dataset, "sort": sel.sort, "descending": sel.descending, "rows": records}
        click.echo(json.dumps(doc, indent=1))
        return
    click.echo(render(["arch_index", *sel.columns], rows, fmt, digits=6))
    if fmt == "text":
        how = f", sorted by {sel.sort} {'descending' if sel.descending else 'ascending'}" if sel.sort else ""
        click.echo(f"({len(rows)} rows, {sel.dataset}{how})")


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
