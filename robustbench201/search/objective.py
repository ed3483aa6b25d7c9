"""Objectives and constraints over the wide results table, as a small expression language.

Expressions are sums of weighted terms; a term is an optional product of numbers and one atom; an atom is a wide
column name (:func:`robustbench201.store.schema.wide_name`) or ``mean(...)`` over columns and groups::

    fgsm@1                         one column
    0.5*clean + 0.5*fgsm@1         weighted sum (subtraction needs spaces: ``clean - 0.1*params``)
    mean(pgd)                      all ``pgd@eps`` columns
    mean(corruption)               all corruption columns (``key:severity``)
    mean(corruption:3)             all corruptions at severity 3
    mean(adversarial)              all attack columns (``key@eps``); ``mean(adversarial@1)``: all attacks at eps 1
    mean(fgsm@1, pgd@1, fog:3)     mean of the listed columns and groups
    valid/pgd@8                    a column of the validation split (held out of the training set)
    mean(valid/adversarial)        a group on the validation split (groups without ``valid/`` are test columns)

An objective is an expression, maximised unless it starts with ``min:`` (``max:`` is accepted). A constraint is
``EXPRESSION OP NUMBER`` with OP one of ``<=, <, >=, >, ==, !=``; several constraints are joined by ``and``.
Epsilons in column names are in pixel units of 1/255. A row where any value an expression uses is NaN evaluates
to NaN: it never satisfies a constraint and never counts as feasible for an objective.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import Rb201Error
from ..store.schema import WideName, parse_wide_name, qualified_key, split_key
from ..tables.index import resolve_in_names
from ..vocab import CERTIFIED_METHODS

_GROUPS_HELP = "mean(KEY), mean(corruption), mean(corruption:SEV), mean(adversarial), mean(adversarial@EPS)"
_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_CMP_RE = re.compile(r"^(?P<lhs>.+?)\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<rhs>[^<>=!]+)$")
_OPS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
    "==": operator.eq,
    "!=": operator.ne,
}


class ObjectiveError(Rb201Error):
    """An objective or constraint that cannot be read, names unknown columns, or selects nothing."""


def _parse_name(name: str) -> WideName | None:
    try:
        return parse_wide_name(name)
    except Rb201Error:
        return None


def _unknown(name: str, columns: Sequence[str]) -> ObjectiveError:
    close = difflib.get_close_matches(name, list(columns), n=5, cutoff=0.5)
    hint = f"; close matches: {', '.join(close)}" if close else ""
    sample = ", ".join(list(columns)[:12]) + (", ..." if len(columns) > 12 else "")
    return ObjectiveError(
        f"unknown column {name!r}{hint}. The table has {len(columns)} columns ({sample}); groups: {_GROUPS_HELP}"
    )


def resolve_group(name: str, columns: Sequence[str]) -> tuple[str, ...]:
    """Columns a ``mean(...)`` argument stands for: a column itself, or a group (see the module docstring)."""
    name = name.strip()
    if name in columns:
        return (name,)
    found = resolve_in_names(name, columns)
    if found is not None:
        return (found[0],)
    split, name = split_key(name)  # a group of another split than test starts with it: valid/adversarial
    parsed = {c: _parse_name(c) for c in columns}
    # groups hold per-epsilon accuracies (the published protocol) of one split, or the cumulative worst case where
    # the table holds no per-epsilon attack value (a smoke or full build)
    of_split = {c: p for c, p in parsed.items() if p is not None and p.measure is None and split_key(p.key)[0] == split}
    per = any(not p.semantics and not math.isnan(p.epsilon) for p in of_split.values())
    plain = {
        c: p._replace(key=split_key(p.key)[1])
        for c, p in of_split.items()
        if not p.semantics or (not per and p.semantics == "cumulative")
    }
    m = re.fullmatch(r"(corruption)(?::(\d))?|(adversarial)(?:@([0-9.]+))?", name)
    if m and m.group(1):
        sev = int(m.group(2)) if m.group(2) else None
        out = tuple(c for c, p in plain.items() if p[2] > 0 and (sev is None or p[2] == sev))
    elif m and m.group(3):
        eps = float(m.group(4)) if m.group(4) else None
        out = tuple(c for c, p in plain.items() if not math.isnan(p[1]) and (eps is None or p[1] == eps))
    else:
        out = tuple(c for c, p in plain.items() if p[0] == name and (not math.isnan(p[1]) or p[2] > 0))
    if not out:
        raise _unknown(qualified_key(name, split), columns)
    return out


@dataclass(frozen=True)
class Term:
    """``coef * mean(columns)`` (a single column when ``len(columns) == 1``)."""

    coef: float
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Expression:
    """A weighted sum of column means, evaluated row-wise over a wide table."""

    text: str
    terms: tuple[Term, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        """All columns the expression reads, in first-use order."""
        seen: dict[str, None] = {}
        for t in self.terms:
            for c in t.columns:
                seen.setdefault(c, None)
        return tuple(seen)

    def evaluate(self, df) -> np.ndarray:  # type: ignore[no-untyped-def]
        """Row values (float64, aligned with ``df.index``); NaN where a used value is NaN."""
        out = np.zeros(len(df), dtype=np.float64)
        for t in self.terms:
            block = df[list(t.columns)].to_numpy(dtype=np.float64)
            out += t.coef * block.mean(axis=1)
        return out


def _parse_atom(text: str, columns: Sequence[str]) -> tuple[str, ...]:
    m = re.fullmatch(r"mean\((?P<args>.*)\)", text)
    if m:
        args = [a.strip() for a in m.group("args").split(",") if a.strip()]
        if not args:
            raise ObjectiveError(f"empty {text!r}; give columns or groups, e.g. {_GROUPS_HELP}")
        cols: dict[str, None] = {}
        for a in args:
            for c in resolve_group(a, columns):
                cols.setdefault(c, None)
        return tuple(cols)
    if text not in columns:
        found = resolve_in_names(text, columns)  # a bare attack@eps: the semantics the table holds
        if found is None:
            raise _unknown(text, columns)
        return (found[0],)
    return (text,)


def parse_expression(text: str, columns: Iterable[str]) -> Expression:
    """Parse ``text`` against the table's ``columns`` (see the module docstring for the grammar)."""
    cols = [str(c) for c in columns]
    if not isinstance(text, str) or not text.strip():
        raise ObjectiveError(f"empty expression {text!r}; e.g. 'fgsm@1', '0.5*clean + 0.5*fgsm@1', 'mean(pgd)'")
    terms: list[Term] = []
    # split on '+' and on ' - ' (a '-' inside a name such as 'aa_apgd-ce@1' has no spaces around it)
    pieces = re.split(r"(\+|\s-\s)", text.strip())
    sign = 1.0
    for i, piece in enumerate(pieces):
        if i % 2:  # a separator
            sign = -1.0 if piece.strip() == "-" else 1.0
            continue
        body = piece.strip()
        if not body:
            raise ObjectiveError(f"missing term in {text!r}; e.g. '0.5*clean + 0.5*fgsm@1'")
        if body.startswith("-"):
            sign, body = -sign, body[1:].strip()
        coef = sign
        atom: tuple[str, ...] | None = None
        for factor in (f.strip() for f in body.split("*")):
            if _NUMBER_RE.match(factor):
                coef *= float(factor)
            elif atom is None and factor:
                atom = _parse_atom(factor, cols)
            else:
                raise ObjectiveError(
                    f"cannot read term {body!r} in {text!r}: a term is NUMBER*COLUMN (one column or mean(...))"
                )
        if atom is None:
            raise ObjectiveError(f"term {body!r} in {text!r} names no column")
        terms.append(Term(coef, atom))
    if not terms:
        raise ObjectiveError(f"expression {text!r} has no terms")
    return Expression(text.strip(), tuple(terms))


@dataclass(frozen=True)
class Objective:
    """An expression to maximise (``maximize=False``: minimise)."""

    expression: Expression
    maximize: bool = True

    @property
    def text(self) -> str:
        return ("" if self.maximize else "min:") + self.expression.text

    def score(self, df) -> np.ndarray:  # type: ignore[no-untyped-def]
        """Values oriented for maximisation (negated when minimising); NaN stays NaN."""
        v = self.expression.evaluate(df)
        return v if self.maximize else -v


def default_objective(columns: Iterable[str]) -> str:
    """The objective a search uses when none is given, from the table's columns: ``fgsm@1`` (per-epsilon, else the
    cumulative worst case), else the first attack column at the epsilon nearest 1/255, else ``clean``."""
    cols = [str(c) for c in columns]
    for name in ("fgsm@1", "fgsm@1/per-epsilon", "fgsm@1/cumulative"):
        if name in cols:
            return name
    attacks = [(c, p) for c in cols if (p := _parse_name(c)) is not None and p.measure is None
               and not math.isnan(p.epsilon) and "/" not in p.key and p.key not in CERTIFIED_METHODS]  # fmt: skip
    if attacks:
        return min(attacks, key=lambda cp: (abs(math.log(cp[1].epsilon)), cp[1].semantics != ""))[0]
    return "clean"


def parse_objective(text: str, columns: Iterable[str]) -> Objective:
    """``'fgsm@1'``, ``'max:mean(pgd)'``, ``'min:edgegpu_latency'``."""
    if not isinstance(text, str):
        raise ObjectiveError(f"objective must be text, got {text!r}")
    body, maximize = text.strip(), True
    low = body.lower()
    if low.startswith("min:"):
        body, maximize = body[4:], False
    elif low.startswith("max:"):
        body = body[4:]
    return Objective(parse_expression(body, columns), maximize)


@dataclass(frozen=True)
class Constraint:
    """``expression op bound``."""

    expression: Expression
    op: str
    bound: float

    @property
    def text(self) -> str:
        return f"{self.expression.text}{self.op}{self.bound:g}"

    def satisfied(self, df) -> np.ndarray:  # type: ignore[no-untyped-def]
        """Boolean per row; False where the expression is NaN."""
        v = self.expression.evaluate(df)
        with np.errstate(invalid="ignore"):
            return np.asarray(_OPS[self.op](v, self.bound), dtype=bool) & ~np.isnan(v)


def parse_constraints(texts: str | Iterable[str] | None, columns: Iterable[str]) -> tuple[Constraint, ...]:
    """Parse constraints such as ``'params<=0.5'`` or ``'params<=0.5 and edgegpu_latency<5'`` (or a list)."""
    if texts is None:
        return ()
    cols = [str(c) for c in columns]
    items = [texts] if isinstance(texts, str) else list(texts)
    out: list[Constraint] = []
    for item in items:
        for part in re.split(r"\s+and\s+|\s*&&?\s*", item.strip()):
            if not part.strip():
                continue
            m = _CMP_RE.match(part.strip())
            if not m or not _NUMBER_RE.match(m.group("rhs").strip()):
                raise ObjectiveError(
                    f"cannot read constraint {part!r}; expected EXPRESSION OP NUMBER with OP in "
                    f"{', '.join(_OPS)}, e.g. 'params<=0.5' or 'edgegpu_latency<5'"
                )
            expr = parse_expression(m.group("lhs"), cols)
            out.append(Constraint(expr, m.group("op"), float(m.group("rhs"))))
    return tuple(out)


def feasible_mask(constraints: Sequence[Constraint], df) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Rows of ``df`` that satisfy every constraint (all True when there are none)."""
    mask = np.ones(len(df), dtype=bool)
    for c in constraints:
        mask &= c.satisfied(df)
    return mask


def split_selection_warning(used: Iterable[str], columns: Iterable[str]) -> str | None:
    """A warning when expressions read test-split columns that the table also holds on the validation split
    (``valid/...``): selecting on the test set makes the test numbers of the selected cell optimistic. None when
    they read no such column."""
    have = set(columns)
    hits = [c for c in dict.fromkeys(used) if split_key(c)[0] == "test" and f"valid/{c}" in have]
    if not hits:
        return None
    shown = ", ".join(hits[:4]) + (", ..." if len(hits) > 4 else "")
    return (
        f"the search selects on test-split columns ({shown}) while the table holds them on the validation split "
        f"too; name the validation columns instead (e.g. 'valid/{hits[0]}') and report the test columns of the result"
    )
