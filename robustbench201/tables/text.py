"""Plain-text rendering of a query result for terminals and notebooks (fits ``width`` columns)."""

from __future__ import annotations

import math
import textwrap
from typing import Any, Protocol

from ..space import Arch
from ..store.schema import format_eps
from .formats import format_value


class ResultView(Protocol):
    """What :func:`format_result` reads of a result (:class:`robustbench201.QueryResult` has it)."""

    index: int
    representative: int
    datasets: tuple[str, ...]

    @property
    def arch(self) -> Arch: ...

    @property
    def is_representative(self) -> bool: ...

    def items(self, dataset: str) -> list[tuple[dict[str, Any], float]]: ...

    def notes(self) -> list[str]: ...


def _num(v: float, name: str = "clean") -> str:
    """``v`` as column ``name`` is displayed (:func:`.formats.column_display`); ``-`` for NaN."""
    return "-" if math.isnan(v) else format_value(name, v)


def _wrap(pairs: list[str], width: int, indent: str = "  ") -> list[str]:
    lines, cur = [], indent
    for p in pairs:
        if len(cur) + len(p) + 2 > width and cur.strip():
            lines.append(cur.rstrip())
            cur = indent
        cur += p + "  "
    if cur.strip():
        lines.append(cur.rstrip())
    return lines


def _grid(title: str, cells: dict[str, dict[Any, float]], heads: list[Any], label, width: int) -> list[str]:  # type: ignore[no-untyped-def]
    w = max([6, *(len(label(h)) + 1 for h in heads)])
    kw = max([len(title), *(len(k) for k in cells)]) + 1
    lines = [f"  {title:<{kw}}" + "".join(f"{label(h):>{w}}" for h in heads)]
    for k, row in cells.items():
        lines.append(f"  {k:<{kw}}" + "".join(f"{_num(row.get(h, math.nan)):>{w}}" for h in heads))
    return [ln[:width] for ln in lines]


def format_result(r: ResultView, width: int = 100) -> str:
    """Per dataset: scalars, attacks as key x epsilon (1/255), corruptions as key x severity, other families."""
    out = [f"arch {r.index}", f"  {r.arch.string}"]
    if not r.is_representative:
        out.append(f"isomorphic to representative {r.representative} (class-level values are its values)")
    for ds in r.datasets:
        items = r.items(ds)
        out.append(f"\n{ds}")
        scalars, attacks, corr, other = [], {}, {}, {}
        for info, v in items:
            fam, plain = info["family"], info["measure"] in ("accuracy", "value")
            if fam in ("adversarial", "certified") and plain and info["epsilon"] is not None:
                label = info["key"] + (" (cumulative)" if info.get("semantics") == "cumulative" else "")
                attacks.setdefault(label, {})[info["epsilon"]] = v
            elif fam == "corruption" and plain:
                corr.setdefault(info["key"], {})[info["severity"]] = v
            elif fam in ("clean", "nb201-training", "cost"):
                scalars.append(f"{info['name']} {_num(v, info['name'])}")
            else:
                other.setdefault(fam, []).append(f"{info['name']} {_num(v, info['name'])}")
        out += _wrap(scalars, width)
        if attacks:
            heads = sorted({e for row in attacks.values() for e in row})
            out += _grid("eps (1/255)", attacks, heads, format_eps, width)
        if corr:
            keys = list(corr)
            half = (len(keys) + 1) // 2 if width >= 90 else len(keys)
            left = _grid("corruption", {k: corr[k] for k in keys[:half]}, [1, 2, 3, 4, 5], lambda s: f"s{s}", width)
            right = _grid("corruption", {k: corr[k] for k in keys[half:]}, [1, 2, 3, 4, 5], lambda s: f"s{s}", width)
            lw = max(len(x) for x in left)
            for i, ln in enumerate(left):
                extra = right[i].lstrip() if i < len(right) and half < len(keys) else ""
                out.append(f"{ln:<{lw}}   {extra}".rstrip() if extra else ln)
        for fam, pairs in other.items():
            out.append(f"  {fam}:")
            out += _wrap(pairs, width, "    ")
    notes = r.notes()
    if notes:
        out.append("\nnotes:")
        for n in notes:
            out += textwrap.wrap(n, width, initial_indent="  - ", subsequent_indent="    ")
    return "\n".join(out)
