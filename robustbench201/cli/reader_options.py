"""The options of the commands that read results (``rb201 query``, ``table``, ``analyze``, ``search table``,
``compare``, ``status``): one definition each, so a flag means the same thing, with the same choices and default,
in every command (the request options of ``evaluate`` / ``launch`` live in :mod:`.options`, which re-exports these).

``-d/--dataset`` the dataset of the source (repeatable where a command shows several); ``-c/--columns`` wide names,
comma-separated (a bare ``attack@eps`` reads the semantics the dataset holds); ``--source`` a dataset directory
(default: the embedded table); ``--format`` text, markdown, csv or json wherever a table is printed (``status``:
text or json); ``--out`` the folder files are written to (created when missing). Also the small helpers every
reader command shares: opening the source and choosing its dataset. No torch import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..tables.formats import FORMATS

F = TypeVar("F", bound=Callable[..., Any])

#: ``rb201 status`` describes rather than tabulates: text or JSON.
STATUS_FORMATS: tuple[str, ...] = ("text", "json")

_DATASET_HELP = (
    "Dataset of the source: cifar10, cifar100, ImageNet16-120, mnist5k, ... [default: every dataset the source "
    "holds where the command shows several, else its first: cifar10 in the embedded table]."
)

#: Option name -> (flags, click keywords). The name is the parameter the command receives.
READER_OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "dataset": (("-d", "--dataset"), dict(default=None, metavar="NAME", help=_DATASET_HELP)),
    "datasets": (("-d", "--dataset"), dict(multiple=True, metavar="NAME", help=_DATASET_HELP + " Repeatable.")),
    "columns": (("-c", "--columns"), dict(default=None, metavar="NAME,...",
                help="Comma-separated wide names, epsilon in units of 1/255 (a bare attack@eps reads the semantics "
                     "the dataset holds) [default: from the dataset].")),
    "source": (("--source",), dict(type=click.Path(exists=True), default=None, metavar="DIR",
               help="A dataset directory (rb201 merge, import-jung, download) [default: the embedded table].")),
    "fmt": (("--format",), dict(type=click.Choice(FORMATS), default="text", show_default=True,
            help="Aligned text, Markdown, CSV (one tidy table pandas.read_csv reads) or JSON (everything the text "
                 "shows).")),
    "status_fmt": (("--format",), dict(type=click.Choice(STATUS_FORMATS), default="text", show_default=True,
                   help="Text, or JSON (everything the text shows).")),
    "out": (("--out",), dict(type=click.Path(file_okay=False), default=None, metavar="DIR",
            help="Folder to write into (created when missing).")),
}  # fmt: skip
#: The parameter each option reaches the command as.
_PARAMS = {"status_fmt": "fmt"}


def reader_options(*names: str, **help_extra: str) -> Callable[[F], F]:
    """Decorate a command with the reader options ``names`` (in that order); ``help_extra[name]`` is appended to an
    option's help (what it does in this command), never changing its flags, choices or default."""

    def decorate(fn: F) -> F:
        for name in reversed(names):
            flags, kw = READER_OPTIONS[name]
            kw = dict(kw)
            if name in help_extra:
                kw["help"] = f"{kw['help']} {help_extra[name]}"
            fn = click.option(*flags, _PARAMS.get(name, name), **kw)(fn)
        return fn

    return decorate


def split_columns(text: str | None) -> list[str] | None:
    """``'clean, fgsm@1'`` -> ``['clean', 'fgsm@1']``; None or blank -> None (the command's default)."""
    if not text:
        return None
    cols = [c.strip() for c in text.split(",") if c.strip()]
    return cols or None


def open_source(source: str | None) -> Any:
    """The :class:`robustbench201.Dataset` of ``--source`` (the embedded table when None), errors as one line."""
    from .._query import resolve_source
    from . import run_library

    return run_library(resolve_source, source)


def pick_dataset(src: Any, dataset: str | None) -> str:
    """The canonical name of ``-d`` in ``src`` (an error listing what it holds), or its first dataset when None."""
    from . import run_library

    if dataset is None:
        return src.datasets[0]
    return run_library(src.index, dataset).dataset
