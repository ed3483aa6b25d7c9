"""``rb201 search``: a group whose subcommands (``dsrna``, ``table``) live in their own modules."""

from __future__ import annotations

import click

from . import LazyGroup

_SEARCH = {
    "dsrna": ("robustbench201.cli.dsrna_cmd:dsrna", "DSRNA differentiable robust search on a small supernet."),
    "table": ("robustbench201.cli.nas_cmd:table", "NAS baselines (RS, RE, LS) with the table as the surrogate."),
}


class _SearchGroup(LazyGroup):
    commands_map = _SEARCH


@click.group("search", cls=_SearchGroup)
def search() -> None:
    """Architecture search: DSRNA (differentiable, robust) or classic NAS on the table.

    \b
    Examples:
      rb201 search dsrna --dataset mnist5k --metric jacobian --epochs 3
      rb201 search table --algo re --objective fgsm@1 --budget 300 --seeds 20
    """
