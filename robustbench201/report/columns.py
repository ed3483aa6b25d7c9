"""How the report shows one wide column, as per-column metadata for the page.

The display itself (kind, decimals, style, scale, unit) has one owner, :func:`robustbench201.tables.formats.
column_display`, which the command line's tables use too: this module only adds what the page needs beside it (a
title in words, the page's precision fields, and which way is best). The page formats the raw values itself with
the same rules as :func:`robustbench201.tables.formats.format_value` (nothing is pre-formatted per cell). "Best
first" is :func:`robustbench201.tables.select.best_first_descending`'s rule, so the report sorts the way
``rb201 table --sort`` does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..tables import formats
from ..tables.index import Index
from ..tables.select import best_first_descending

__all__ = ["ColumnDisplay", "column_display"]


@dataclass(frozen=True)
class ColumnDisplay:
    """The page's display of one wide column: ``decimals`` fixed decimals after multiplying by ``scale`` (None:
    ``digits`` significant digits, written in scientific notation outside [0.01, 10^4) when ``style`` is
    ``scientific``); ``unit`` printed after the value in headers ("" for fractions 0..1); ``descending``: best first
    means largest first. ``kind`` and ``style`` are those of :class:`robustbench201.tables.formats.ColumnDisplay`."""

    name: str
    label: str
    kind: str
    style: str
    decimals: int | None
    digits: int
    scale: float
    unit: str
    descending: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def column_display(idx: Index, name: str) -> ColumnDisplay:
    """The display of wide column ``name`` of one dataset's index ``idx``."""
    d = formats.column_display(name)
    fixed = d.style in ("fixed", "integer")
    decimals = (0 if d.style == "integer" else d.decimals) if fixed else None
    digits = d.decimals if not fixed else 4
    best = best_first_descending(idx, name)
    return ColumnDisplay(name, formats.column_title(name), d.kind, d.style, decimals, digits, d.scale, d.unit, best)
