"""Row selection on a wide table without pandas: a small, safe filter language, sorting and limits.

Filter language (no code is evaluated): clauses ``COLUMN OP NUMBER`` joined by ``and``, with OP one of
``< <= > >= == !=``, e.g. ``params<0.5 and clean>=0.9 and fgsm@1>0.4``. Columns are wide names (epsilon in 1/255)
or ``arch_index`` / ``representative``.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

import numpy as np

from ..errors import Rb201Error
from .index import Index

_OPS = {"<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt}
_CLAUSE = re.compile(
    r"^\s*(?P<col>[A-Za-z0-9_@:./\-]+?)\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<num>[-+]?[0-9.]+(?:[eE][-+]?\d+)?)\s*$"
)
_SPECIAL = ("arch_index", "representative")


@dataclass(frozen=True)
class Selection:
    """Selected rows: ``indices`` (NB201 indices) and ``values[:, k]`` for ``columns[k]``."""

    dataset: str
    columns: tuple[str, ...]
    indices: np.ndarray
    values: np.ndarray
    sort: str | None = None
    descending: bool | None = None  # the direction used when sorted


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


#: Families whose values are better when higher (accuracies, proxies scored higher-is-better); costs, latencies,
#: energies and surrogates (Jacobian norm, Hessian eigenvalue: smaller means smoother) are better when lower.
_HIGHER_IS_BETTER = ("clean", "adversarial", "corruption", "certified", "nb201-training", "zero-cost")


def best_first_descending(idx: Index, column: str) -> bool:
    """Whether "best first" means descending for ``column``: accuracies yes; costs, latencies, surrogates no."""
    if column in _SPECIAL:
        return False
    info = idx.info[idx.column(column)]
    if info["family"] == "certified" and info["measure"] not in ("accuracy", "value"):
        return True  # margin lower bounds: larger is more robust too
    return info["family"] in _HIGHER_IS_BETTER


def select(
    idx: Index,
    columns: list[str] | None = None,
    where: str | None = None,
    sort: str | None = None,
    descending: bool | None = None,
    limit: int | None = None,
    unique: bool = True,
) -> Selection:
    """Filter, sort (stable; NaN last) and cut the rows of one dataset's wide table.

    ``descending`` None sorts best first (:func:`best_first_descending`). ``unique`` keeps one row per isomorphism
    class (its representative)."""
    cols = list(columns) if columns else list(idx.names)
    for c in cols:
        if c not in _SPECIAL:
            idx.column(c)  # raises listing what exists
    rows = np.flatnonzero(idx.reps == np.arange(len(idx.reps))) if unique else np.arange(len(idx.reps))
    if where:
        for col, op, num in parse_where(where):
            v = _column(idx, col)[rows]
            rows = rows[_OPS[op](v, num)]
    if sort:
        if descending is None:
            descending = best_first_descending(idx, sort)
        key = _column(idx, sort)[rows]
        order = np.argsort(-key if descending else key, kind="stable")  # NaN sorts last either way
        rows = rows[order]
    if limit is not None:
        if limit < 0:
            raise Rb201Error(f"limit must be >= 0, got {limit}")
        rows = rows[:limit]
    values = np.column_stack([_column(idx, c)[rows] for c in cols]) if cols else np.empty((len(rows), 0))
    return Selection(idx.dataset, tuple(cols), rows, values, sort, descending if sort else None)
