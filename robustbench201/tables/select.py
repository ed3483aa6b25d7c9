"""Row selection on a wide table without pandas: a small, safe filter language, sorting and limits, the default
columns of a dataset, and the notes a table needs under it.

Filter language (no code is evaluated): clauses ``COLUMN OP NUMBER`` joined by ``and``, with OP one of
``< <= > >= == !=``, e.g. ``params<0.5 and clean>=0.9 and fgsm@1>0.4``. Columns are wide names (epsilon in 1/255;
a bare ``attack@eps`` reads the semantics the dataset holds, :mod:`.index`) or ``arch_index`` / ``representative``.

Rows are cells with a value in at least one shown column (one per isomorphism class unless asked otherwise); cells
without any are left out and counted, unless ``include_empty``. Sorted tables put dead cells (no path from input to
output, at chance accuracy: PROTOCOL.md section 1) after the live ones whatever the column and direction, and cells
without a value of the sort column last.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from ..errors import Rb201Error
from ..store.schema import format_eps
from .formats import format_value
from .index import Index

_OPS = {"<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt}
_CLAUSE = re.compile(
    r"^\s*(?P<col>[A-Za-z0-9_@:./\-]+?)\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<num>[-+]?[0-9.]+(?:[eE][-+]?\d+)?)\s*$"
)
_SPECIAL = ("arch_index", "representative")
#: Attacks shown by default, in this order of preference (the first two a dataset holds).
_DEFAULT_ATTACKS = ("fgsm", "pgd", "aa_apgd-ce", "aa_square", "autoattack")


@dataclass(frozen=True)
class Selection:
    """Selected rows: ``indices`` (NB201 indices) and ``values[:, k]`` for ``columns[k]`` (each column's display name,
    :attr:`Index.display`). ``notes``: how bare names were read and what a column does not tell; ``with_values``:
    rows that had a value before the limit; ``empty``: rows left out for having none."""

    dataset: str
    columns: tuple[str, ...]
    indices: np.ndarray
    values: np.ndarray
    sort: str | None = None
    descending: bool | None = None  # the direction used when sorted
    notes: tuple[str, ...] = ()
    with_values: int = 0
    empty: int = 0
    matched: int = 0  # rows that passed the filter, before the limit
    classes: int = 0  # classes of the space (6466), when one row per class is shown
    unique: bool = True
    extra: dict[str, object] = field(default_factory=dict)

    def summary(self) -> str:
        """``'4 rows; 4 of 6466 classes of mnist5k have a value in these columns (6462 without one not shown);
        sorted by fgsm@1/cumulative descending, dead cells last'``."""
        what = "classes" if self.unique else "cells"
        total = f" of {self.classes}" if self.unique and self.classes else ""
        out = f"{len(self.indices)} rows"
        if self.matched != len(self.indices) or self.matched != self.with_values:
            out += f" of {self.matched} matching"
        out += f"; {self.with_values}{total} {what} of {self.dataset} have a value in these columns"
        if self.empty:
            out += f" ({self.empty} without one not shown)"
        if self.sort:
            out += f"; sorted by {self.sort} {'descending' if self.descending else 'ascending'}, dead cells last"
        return out


def parse_where(text: str) -> list[tuple[str, str, float]]:
    """``'params<0.5 and clean>0.9'`` -> ``[('params', '<', 0.5), ('clean', '>', 0.9)]``."""
    clauses = []
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        m = _CLAUSE.match(part)
        if not m:
            raise Rb201Error(
                f"cannot read filter clause {part!r}; write COLUMN OP NUMBER joined by 'and', with OP one of "
                f"{', '.join(_OPS)}, e.g. 'params<0.5 and fgsm@1>0.4'"
            )
        try:
            num = float(m.group("num"))
        except ValueError:
            raise Rb201Error(f"{m.group('num')!r} in {part!r} is not a number") from None
        clauses.append((m.group("col"), m.group("op"), num))
    return clauses


def _column(idx: Index, name: str) -> np.ndarray:
    if name == "arch_index":
        return np.arange(len(idx.reps), dtype=np.float64)
    if name == "representative":
        return idx.reps.astype(np.float64)
    return idx.filled[:, idx.column(name)]


@cache
def dead_mask() -> np.ndarray:
    """Per NB201 index: True for the 341 dead cells (no path of non-``none`` edges from input to output)."""
    from ..space import ops_table

    ops = np.asarray(ops_table(), dtype=np.int64) != 0  # edges (0,1) (0,2) (1,2) (0,3) (1,3) (2,3)
    n1 = ops[:, 0]
    n2 = ops[:, 1] | (n1 & ops[:, 2])
    n3 = ops[:, 3] | (n1 & ops[:, 4]) | (n2 & ops[:, 5])
    out = ~n3
    out.setflags(write=False)
    return out


#: Families whose values are better when higher (accuracies, proxies scored higher-is-better); costs, latencies,
#: energies and surrogates (Jacobian norm, Hessian eigenvalue: smaller means smoother) are better when lower.
_HIGHER_IS_BETTER = ("clean", "adversarial", "corruption", "certified", "nb201-training", "zero-cost")


def best_first_descending(idx: Index, column: str) -> bool:
    """Whether "best first" means descending for ``column``: accuracies yes; costs, latencies, surrogates and
    calibration errors no."""
    if column in _SPECIAL:
        return False
    info = idx.info[idx.column(column)]
    if info["measure"] == "ece":
        return False  # a calibration error: smaller is better
    if info["family"] == "certified" and info["measure"] not in ("accuracy", "value"):
        return True  # margin lower bounds: larger is more robust too
    return info["family"] in _HIGHER_IS_BETTER


def default_columns(idx: Index) -> list[str]:
    """The columns a table shows when none are asked for, from what the dataset holds: ``clean``, the first two of
    FGSM, PGD, APGD-CE, Square at the epsilon nearest 1/255 (log scale), the first certified accuracy, ``params``
    (each when held; display names, so a cumulative-only dataset shows ``fgsm@1/cumulative``)."""
    display = idx.display
    plain = [(j, i) for j, i in enumerate(idx.info) if i["measure"] in ("accuracy", "value") and i.get("split", "test")
             in ("", "test")]  # fmt: skip
    out: list[int] = [j for j, i in plain if i["key"] == "clean"][:1]
    attacks = [a for a in _DEFAULT_ATTACKS if any(i["key"] == a and i["epsilon"] for _, i in plain)][:2]
    for a in attacks:
        cols = [(j, i) for j, i in plain if i["key"] == a and i["epsilon"]]
        eps = min({i["epsilon"] for _, i in cols}, key=lambda e: (abs(math.log(e)), e))
        at = [j for j, i in cols if i["epsilon"] == eps]
        per = [j for j in at if (idx.info[j].get("semantics") or "") != "cumulative"]
        out.append((per or at)[0])
    out += [j for j, i in plain if i["family"] == "certified" and i["epsilon"]][:1]
    out += [j for j, i in plain if i["key"] == "params"][:1]
    if not out:  # a dataset of other columns only: its first few
        out = [j for j, _ in plain][:4] or list(range(min(4, len(display))))
    return [display[j] for j in out]


def select(
    idx: Index,
    columns: list[str] | None = None,
    where: str | None = None,
    sort: str | None = None,
    descending: bool | None = None,
    limit: int | None = None,
    unique: bool = True,
    include_empty: bool = False,
) -> Selection:
    """Filter, sort (stable; dead cells after live ones, NaN last) and cut the rows of one dataset's wide table.

    ``columns`` None: :func:`default_columns`. ``descending`` None sorts best first (:func:`best_first_descending`).
    ``unique`` keeps one row per isomorphism class (its representative). Rows without a value in any shown column
    are left out unless ``include_empty``."""
    wanted = list(columns) if columns else default_columns(idx)
    cols: list[str] = []
    notes: list[str] = []
    cumulative: list[str] = []
    for k, c in enumerate([*wanted, *([sort] if sort and sort not in _SPECIAL else [])]):
        name = c
        if c not in _SPECIAL:
            r = idx.resolve(c)  # raises listing what exists
            name = r.name
            if r.read_as_cumulative:
                cumulative.append(r.read_as_cumulative)
            elif r.note and r.note not in notes:
                notes.append(r.note)
        if k < len(wanted):
            cols.append(name)
        else:
            sort = name
    if cumulative:
        asked = ", ".join(dict.fromkeys(cumulative))
        notes.insert(0, f"{asked}: read as the cumulative worst case (/cumulative), the only kind {idx.dataset} holds")
    rows = np.flatnonzero(idx.reps == np.arange(len(idx.reps))) if unique else np.arange(len(idx.reps))
    valued = [c for c in cols if c not in _SPECIAL]
    empty = 0
    if valued and not include_empty:
        has = ~np.isnan(np.column_stack([_column(idx, c)[rows] for c in valued])).all(axis=1)
        empty = int(np.count_nonzero(~has))
        rows = rows[has]
    with_values = len(rows) if valued else 0
    if valued and include_empty:
        with_values = int(np.count_nonzero(~np.isnan(np.column_stack([_column(idx, c)[rows] for c in valued])).all(1)))
    if where:
        for col, op, num in parse_where(where):
            v = _column(idx, col)[rows]
            rows = rows[_OPS[op](v, num)]
    if sort:
        if descending is None:
            descending = best_first_descending(idx, sort)
        key = _column(idx, sort)[rows]
        dead = dead_mask()[rows]
        missing = np.isnan(key)
        order = np.lexsort((-key if descending else key, dead, missing))  # NaN last, then dead, then the value
        rows = rows[order]
    matched = len(rows)
    if limit is not None:
        if limit < 0:
            raise Rb201Error(f"limit must be >= 0, got {limit}")
        rows = rows[:limit]
    values = np.column_stack([_column(idx, c)[rows] for c in cols]) if cols else np.empty((len(rows), 0))
    notes += column_notes(idx, cols, values)
    return Selection(
        idx.dataset,
        tuple(cols),
        rows,
        values,
        sort,
        descending if sort else None,
        tuple(notes),
        with_values,
        empty,
        matched,
        idx.n_classes if unique else 0,
        unique,
    )


def column_notes(idx: Index, columns: list[str] | tuple[str, ...], values: np.ndarray) -> list[str]:
    """A note under each shown column that carries no information: one value in every row (two rows or more). A
    certified accuracy of 0 everywhere says why, with the certified margin lower bounds the dataset holds."""
    out = []
    for k, name in enumerate(columns):
        if name in _SPECIAL:
            continue
        v = values[:, k]
        v = v[~np.isnan(v)]
        if len(v) < 2 or not np.all(v == v[0]):
            continue
        info = idx.info[idx.column(name)]
        shown = format_value(name, float(v[0]))
        if info["family"] == "certified" and info["measure"] in ("accuracy", "value") and v[0] == 0:
            eps = info["epsilon"]
            margin = _margin(idx, name)
            why = f"{name}: {shown} in all {len(v)} rows: {info['key'].upper()} certifies no test point at eps "
            why += f"{format_eps(eps)}/255" if eps is not None else ""
            if margin is not None:
                mname, lo, hi = margin
                why += (
                    f" (the certified margin lower bound {mname} runs from {lo:.3g} to {hi:.3g}: far below 0, the "
                    "bounds are too loose for these networks)"
                )
            out.append(why)
        else:
            out.append(f"{name}: {shown} in all {len(v)} rows: the column carries no information here")
    return out


def _margin(idx: Index, name: str) -> tuple[str, float, float] | None:
    """(name, min, max over the classes with a value) of the certified margin lower bound beside column ``name``."""
    j = idx.col.get(f"{idx.names[idx.column(name)]}/margin_lb")
    if j is None:
        return None
    reps = np.flatnonzero(idx.reps == np.arange(len(idx.reps)))
    m = idx.raw[reps, j]
    m = m[~np.isnan(m)]
    if not len(m):
        return None
    return idx.display[j], float(m.min()), float(m.max())
