"""The ``rb201`` command line: a thin click group over the library.

Subcommands live in small modules (one owner each) and are imported only when they run, so ``rb201 --help`` is
instant. No subcommand module imports torch or pandas at module level.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

import click

from .._version import __version__

P = ParamSpec("P")
T = TypeVar("T")

# command name -> ("module:attribute", one-line help shown by ``rb201 --help`` without importing the module)
COMMANDS: dict[str, tuple[str, str]] = {
    "arch": ("robustbench201.cli.arch_cmd:arch", "Describe an NB201 cell: index, string, ops, class, params, FLOPs."),
    "query": ("robustbench201.cli.table_cmds:query", "Look up one architecture's robustness results."),
    "table": ("robustbench201.cli.table_cmds:table", "Select columns and rows of the results table."),
    "import-jung": ("robustbench201.cli.table_cmds:import_jung", "Convert the original Jung et al. dataset layout."),
    "download": ("robustbench201.cli.published_cmds:download", "Download published dataset shards (hash-checked)."),
    "publish": ("robustbench201.cli.published_cmds:publish", "Write the shard registry for a built dataset."),
    "fetch-data": ("robustbench201.cli.data_cmds:fetch_data", "Download an official dataset archive (CIFAR)."),
    "train": ("robustbench201.cli.data_cmds:train", "Train NB201 networks with the NB201 protocol."),
    "evaluate": ("robustbench201.cli.build_cmds:evaluate", "Evaluate a range of architectures into shards."),
    "launch": ("robustbench201.cli.launch_cmds:launch", "Submit evaluation shards to Slurm as a job array (submitit)."),
    "status": ("robustbench201.cli.launch_cmds:status", "Progress of the shards under OUT: done, failed, left."),
    "merge": ("robustbench201.cli.build_cmds:merge", "Merge shards into a dataset."),
    "validate": ("robustbench201.cli.build_cmds:validate", "Check a built dataset's integrity and coverage."),
    "compare": ("robustbench201.cli.compare_cmd:compare", "Compare a built dataset with the published table."),
    "demo": ("robustbench201.cli.demo_cmd:demo", "End-to-end CPU demo: query, train, evaluate, merge, query."),
    "search": ("robustbench201.cli.search_cmds:search", "Architecture search: DSRNA or NAS on the table."),
    "analyze": ("robustbench201.cli.analyze_cmds:analyze", "Reproduce the analyses of Jung et al. from a table."),
    "report": ("robustbench201.cli.report_cmd:report", "One self-contained HTML report of a dataset or a build."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands (``commands_map``: name -> ("module:attr", help)) are imported on use."""

    commands_map: dict[str, tuple[str, str]] = COMMANDS

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands_map) | set(super().list_commands(ctx)))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands_map:
            target, _ = self.commands_map[cmd_name]
            module, attr = target.split(":")
            return getattr(importlib.import_module(module), attr)  # a missing module of ours is a bug: it raises
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, self.commands_map[name][1]) for name in self.list_commands(ctx) if name in self.commands_map]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rb201")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """rb201: NAS-Bench-201 robustness dataset builder and query API.

    \b
    Examples:
      rb201 arch 1462
      rb201 query 13433 --dataset cifar10
      rb201 evaluate --arch-range 0:128 --dataset cifar10 --preset jung2023 --out shards/
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def run_library(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Call a library function and turn rb201's user errors into a clean CLI error (no traceback)."""
    with library_errors():
        return fn(*args, **kwargs)


@contextlib.contextmanager
def library_errors() -> Iterator[None]:
    """Turn rb201's user errors raised in the block into a clean CLI error (no traceback); an error about a request's
    field names the current command's flag for it."""
    from ..errors import Rb201Error

    try:
        yield
    except Rb201Error as exc:
        raise click.ClickException(render(exc)) from None


def render(message: object) -> str:
    """A library message for this command: each ``{field}`` named by the flag of the current command's option."""
    from ..errors import RequestError, render_fields
    from .options import flag_names

    ctx = click.get_current_context(silent=True)
    names = flag_names(ctx.command) if ctx is not None else {}
    if isinstance(message, RequestError):
        return message.render(names)
    return render_fields(message, names) if isinstance(message, str) else str(message)
