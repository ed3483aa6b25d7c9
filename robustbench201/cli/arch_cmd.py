"""``rb201 arch``: describe one NB201 cell (no torch import)."""

from __future__ import annotations

import json

import click

from ..tables.formats import render
from . import run_library
from .reader_options import reader_options


@click.command("arch")
@click.argument("arch")
@click.option("--draw", "draw_path", type=click.Path(dir_okay=False),
              help="Write a picture of the cell (PNG, PDF or SVG by the suffix) into an existing folder.")  # fmt: skip
@reader_options("status_fmt")
@click.option("--json", "as_json", is_flag=True, hidden=True, help="The same as --format json.")
def arch(arch: str, draw_path: str | None, fmt: str, as_json: bool) -> None:
    """Describe ARCH: an NB201 string, an index 0..15624, or six op indices like 3,3,0,1,2,3.

    \b
    Examples:
      rb201 arch 1462
      rb201 arch '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|'
      rb201 arch 3,3,3,3,3,3 --draw cell.png
    """
    from ..data.info import PUBLISHED_DATASETS
    from ..models.counting import model_info
    from ..space import Arch

    a = run_library(Arch.parse, arch)
    rep = a.representative
    info = {
        "index": a.index,
        "string": a.string,
        "ops": list(a.ops),
        "op_names": list(a.op_names),
        "representative": rep.index,
        "is_representative": rep.index == a.index,
        "dead": a.is_dead,
        "per_dataset": {ds: model_info(a, ds) for ds in PUBLISHED_DATASETS},
    }
    if draw_path:
        from ..draw import draw_cell

        run_library(draw_cell, a, draw_path)
        info["drawing"] = draw_path
    if as_json or fmt == "json":
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"index           {a.index}")
    click.echo(f"string          {a.string}")
    click.echo(f"ops             {a.ops}  ({', '.join(a.op_names)})")
    same = " (this cell)" if info["is_representative"] else f" (isomorphic to {rep.string})"
    click.echo(f"representative  {rep.index}{same}")
    click.echo(f"dead            {'yes: no path from input to output' if a.is_dead else 'no'}")
    rows = [(ds, v["params_m"], v["flops_m"]) for ds, v in info["per_dataset"].items()]
    click.echo(render(("dataset", "params", "flops"), rows))
    if draw_path:
        click.echo(f"drawing         {draw_path}")
