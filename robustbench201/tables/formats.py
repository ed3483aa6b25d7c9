"""Tabular output in the formats a researcher pastes elsewhere: aligned text for the terminal (headers never cut),
Markdown for papers and READMEs, CSV for spreadsheets, JSON for notebooks. One renderer for every command that prints
a table (``rb201 table``, ``rb201 analyze``, ``rb201 search table``)."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from typing import Any

from ..errors import check_choice

FORMATS: tuple[str, ...] = ("text", "markdown", "csv", "json")


def cell(value: Any, digits: int = 4) -> str:
    """A value as table text: floats with ``digits`` significant digits (NaN empty), everything else as is."""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.{digits}g}"
    return "" if value is None else str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return _json_value(value.item())
    return value


def render(headers: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str = "text", digits: int = 4) -> str:
    """``rows`` under ``headers`` in ``fmt`` (one of :data:`FORMATS`); ends without a newline."""
    check_choice("output format", fmt, FORMATS)
    headers = [str(h) for h in headers]
    if fmt == "json":
        return json.dumps([{h: _json_value(v) for h, v in zip(headers, r, strict=True)} for r in rows], indent=1)
    texts = [[cell(v, digits) for v in r] for r in rows]
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(headers)
        w.writerows(texts)
        return buf.getvalue().rstrip("\n")
    widths = [max([len(h), *(len(r[k]) for r in texts)]) for k, h in enumerate(headers)]
    numeric = [all(_is_number(r[k]) for r in texts if r[k]) for k in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return ("| " + " | ".join(parts) + " |") if fmt == "markdown" else "  ".join(parts).rstrip()

    out = [line(headers)]
    if fmt == "markdown":
        out.append(
            "|" + "|".join((("-" * (w + 1)) + ":" if num else "-" * (w + 2)) for w, num in zip(widths, numeric)) + "|"
        )
    out += [line(r) for r in texts]
    return "\n".join(out)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
