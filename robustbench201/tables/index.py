"""In-memory index of one dataset's wide matrix: column lookup by what the dataset holds, isomorph filling, coverage,
and error messages that list what exists (keys, epsilons in 1/255 units, severities, measures).

**Semantics by what a dataset holds.** An attack column is either per-epsilon (each epsilon attacked on its own, the
published protocol; stored under the plain name ``pgd@1``) or the cumulative worst case (``pgd@1/cumulative``). A bare
name (``pgd@1``, or ``semantics=None`` in Python) resolves to the kind the dataset holds when it holds one; when it
holds both and their values are equal on every cell, to the per-epsilon one; when it holds both and they differ, the
lookup asks for a choice (``pgd@1/per-epsilon`` or ``pgd@1/cumulative``). Every resolution says which column it used
(:class:`Resolved`), and :attr:`Index.display` gives each column the name that resolves back to it: the stored name,
with ``/per-epsilon`` spelled out where the bare name would be ambiguous.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import InvalidChoiceError
from ..store.schema import format_eps, parse_wide_name, qualified_key, wide_name
from ..store.wide import Wide, fill_isomorphs
from ..vocab import SPLITS

_PLAIN = ("accuracy", "value")
_PER_EPSILON = "per-epsilon"
_CUMULATIVE = "cumulative"
_NUMBER = re.compile(r"^[0-9]+(?:\.[0-9]*)?$")
#: How close (relative) a fraction times 255 must come to a held epsilon to be offered as "did you mean".
_HINT_TOLERANCE = 0.05


class IndexedSource(Protocol):
    """A results source as :mod:`.compare` reads it: a path, its datasets and one :class:`Index` per dataset
    (:class:`robustbench201.Dataset` is one)."""

    path: Path

    @property
    def datasets(self) -> tuple[str, ...]: ...

    def index(self, dataset: str) -> Index: ...


@dataclass(frozen=True)
class Resolved:
    """A column a name resolved to: its position ``j``, the name that shows it (:attr:`Index.display`), and ``note``:
    how a bare name was read (None when the name was taken as written)."""

    j: int
    name: str
    note: str | None = None
    #: the bare name when it was read as the cumulative worst case (the only kind held), else None
    read_as_cumulative: str | None = None


def explicit_semantics(name: str) -> str | None:
    """The semantics a wide name spells out: ``'per-epsilon'``, ``'cumulative'``, or None for a bare name."""
    for seg in name.split("/")[1:]:
        if seg in (_PER_EPSILON, _CUMULATIVE):
            return seg
    return None


def epsilon_hint(eps: float, held: list[float] | tuple[float, ...] = ()) -> str:
    """The hint for an epsilon that looks like a fraction of 1 (``8/255`` written as ``0.0314``): empty when ``eps``
    is not in (0, 1) or is one of the ``held`` epsilons; else ``"; epsilons are in units of 1/255: did you mean 8?"``
    (the held epsilon nearest ``255 * eps``, or ``255 * eps`` itself). One wording for the command line and Python."""
    if not 0 < eps < 1 or any(abs(eps - e) < 1e-12 for e in held):
        return ""
    scaled = eps * 255
    near = min(held, key=lambda e: abs(e - scaled)) if held else None
    if near is not None and abs(near - scaled) <= _HINT_TOLERANCE * near:
        guess = format_eps(near)
    else:
        guess = format_eps(round(scaled, 3))
    return f"; epsilons are in units of 1/255: did you mean {guess}?"


def fraction_error(name: str, held: list[float] | tuple[float, ...] = ()) -> InvalidChoiceError | None:
    """The error for a name whose epsilon is written as a fraction (``'pgd@8/255'``), else None."""
    head, sep, rest = name.partition("@")
    if not sep:
        return None
    parts = rest.split("/")
    if len(parts) < 2 or not (_NUMBER.match(parts[0]) and _NUMBER.match(parts[1])) or float(parts[1]) == 0:
        return None
    eps = float(parts[0]) / float(parts[1])
    hint = epsilon_hint(eps, held) or f"; epsilons are in units of 1/255: did you mean {format_eps(eps * 255)}?"
    return InvalidChoiceError(f"cannot read {name!r}: {parts[0]}/{parts[1]} is a fraction{hint}")


def with_semantics(name: str, semantics: str) -> str:
    """``name`` with its semantics segment set: ``('pgd@1', 'per-epsilon') -> 'pgd@1/per-epsilon'``,
    ``('pgd@1/confidence_pred', 'cumulative') -> 'pgd@1/cumulative/confidence_pred'``."""
    head, *rest = name.split("/")
    if head in SPLITS and rest:  # a split prefix belongs to the head
        head, rest = f"{head}/{rest[0]}", rest[1:]
    rest = [s for s in rest if s not in (_PER_EPSILON, _CUMULATIVE)]
    return "/".join([head, semantics, *rest])


def resolve_in_names(name: str, names: list[str] | tuple[str, ...]) -> tuple[str, str | None] | None:
    """``name`` among the display names ``names`` of a wide table (a DataFrame's columns, :attr:`Index.display`):
    ``(column, note)`` by the rules of the module docstring, read from the names alone (an ambiguous per-epsilon
    column is displayed as ``key@eps/per-epsilon``, so its bare name has no exact match); None when nothing matches.
    Raises the ambiguity error, and the unit hint for an epsilon written as a fraction (``'pgd@8/255'``)."""
    if name in names:
        return name, None
    bad = fraction_error(name)
    if bad is not None:
        raise bad
    sem = explicit_semantics(name)
    if "@" not in name:
        return None
    per, cum = with_semantics(name, _PER_EPSILON), with_semantics(name, _CUMULATIVE)
    plain = "/".join(s for s in name.split("/") if s != _PER_EPSILON)
    if sem == _PER_EPSILON:
        return (plain, None) if plain in names else None
    if sem is None and per in names and cum in names:
        raise InvalidChoiceError(
            f"the table holds both the per-epsilon value ({per!r}, each epsilon attacked on its own, as published) "
            f"and the cumulative worst case ({cum!r}) and they differ: name one"
        )
    if sem is None and cum in names:
        return cum, f"{name} read as {cum}: the table holds the cumulative worst case only"
    return None


class Index:
    """Columns of one dataset. ``raw`` holds each cell's own rows; class-level columns are answered from the
    isomorphism-class representative (``row``, ``take``, ``filled``), so loading stays a plain read."""

    __slots__ = (
        "dataset",
        "names",
        "col",
        "raw",
        "info",
        "reps",
        "class_level",
        "_cls_cols",
        "_keys",
        "_filled",
        "_wide",
        "_display",
        "_display_col",
        "_twins",
    )

    def __init__(self, wide: Wide) -> None:
        self.dataset = wide.dataset
        self.names = wide.names
        self.col = dict(wide.col)
        self.raw = wide.matrix
        self.info = wide.info
        self.reps = wide.reps
        self.class_level = np.array([bool(i.get("class_level")) for i in wide.info], dtype=bool)
        self._cls_cols = np.flatnonzero(self.class_level)
        self._keys: dict[str, list[dict[str, Any]]] | None = None
        self._filled: np.ndarray | None = None
        self._wide = wide
        self._display: tuple[str, ...] | None = None
        self._display_col: dict[str, int] = {}
        self._twins: dict[int, tuple[int, int]] | None = (
            None  # per-epsilon column -> (cumulative twin, cells differing)
        )

    def row(self, index: int) -> np.ndarray:
        """All columns of one NB201 index (class-level columns from its representative)."""
        rep = self.reps[index]
        if rep == index or not self._cls_cols.size:
            return self.raw[index]
        r = self.raw[index].copy()
        r[self._cls_cols] = self.raw[rep, self._cls_cols]
        return r

    def take(self, indices: np.ndarray, j: int) -> np.ndarray:
        """Column ``j`` for many NB201 indices (class-level columns from the representatives)."""
        return self.raw[self.reps[indices] if self.class_level[j] else indices, j]

    def value(self, index: int, j: int) -> float:
        return float(self.raw[self.reps[index] if self.class_level[j] else index, j])

    @property
    def filled(self) -> np.ndarray:
        """The whole matrix with class-level columns filled for every member of each class (cached)."""
        if self._filled is None:
            self._filled = fill_isomorphs(self._wide)
        return self._filled

    # ---- coverage ---------------------------------------------------------------------------------------------
    @property
    def n_classes(self) -> int:
        """Isomorphism classes of the space (6466 for NB201)."""
        return int(np.count_nonzero(self.reps == np.arange(len(self.reps))))

    def covered_classes(self, columns: list[int] | None = None) -> np.ndarray:
        """Representatives (NB201 indices, ascending) with a value in any of ``columns`` (default: any column)."""
        reps = np.flatnonzero(self.reps == np.arange(len(self.reps)))
        m = self.filled[reps] if columns is None else self.filled[np.ix_(reps, columns)]
        return reps[~np.isnan(m).all(axis=1)] if m.shape[1] else reps[:0]

    def coverage(self, columns: list[int] | None = None, examples: int = 0) -> str:
        """``'4 of 6466 classes of mnist5k'``: how many classes have a value (in ``columns``, default any); with
        ``examples``, the representatives too when at most that many classes have one."""
        cov = self.covered_classes(columns)
        out = f"{len(cov)} of {self.n_classes} classes of {self.dataset}"
        if 0 < len(cov) <= examples:
            out += f" (representatives {', '.join(map(str, cov.tolist()))})"
        return out

    def holds(self, index: int) -> bool:
        """Whether NB201 cell ``index`` has any value here (class-level columns through its representative)."""
        return bool((~np.isnan(self.row(index))).any())

    # ---- names ------------------------------------------------------------------------------------------------
    def keys(self) -> dict[str, list[dict[str, Any]]]:
        """key (``valid/pgd`` for another split than test) -> infos of its columns (built on first use)."""
        if self._keys is None:
            keys: dict[str, list[dict[str, Any]]] = {}
            for i in self.info:
                keys.setdefault(qualified_key(i["key"], i.get("split", "test")), []).append(i)
            self._keys = keys
        return self._keys

    def _twin_map(self) -> dict[int, tuple[int, int]]:
        """Per-epsilon column -> (its cumulative twin, number of cells where the two differ)."""
        if self._twins is None:
            twins: dict[int, tuple[int, int]] = {}
            for j, name in enumerate(self.names):
                if explicit_semantics(name) is None and "@" in name:
                    k = self.col.get(with_semantics(name, _CUMULATIVE))
                    if k is not None:
                        a, b = self.raw[:, j], self.raw[:, k]
                        differ = ~((a == b) | (np.isnan(a) & np.isnan(b)))
                        twins[j] = (k, int(np.count_nonzero(differ)))
            self._twins = twins
        return self._twins

    @property
    def display(self) -> tuple[str, ...]:
        """Per column, the name that resolves back to it: the stored name, or ``key@eps/per-epsilon`` for a
        per-epsilon column whose cumulative twin differs (its bare name would be ambiguous)."""
        if self._display is None:
            twins = self._twin_map()
            self._display = tuple(
                with_semantics(n, _PER_EPSILON) if twins.get(j, (0, 0))[1] else n for j, n in enumerate(self.names)
            )
            self._display_col = {n: j for j, n in enumerate(self._display)}
        return self._display

    def semantics_note(self) -> str | None:
        """One line on the attack columns' semantics (None when there are none): which kinds this dataset holds."""
        kinds = {i.get("semantics") or "" for i in self.info if i["family"] in ("adversarial",) and i["epsilon"]}
        if not kinds:
            return None
        if kinds == {_CUMULATIVE}:
            return f"{self.dataset} holds the cumulative worst case only: attack@eps reads attack@eps/cumulative"
        if _CUMULATIVE not in kinds:
            return f"{self.dataset} holds per-epsilon values (each epsilon attacked on its own, as published)"
        return (
            f"{self.dataset} holds per-epsilon values (attack@eps/per-epsilon) and the cumulative worst case "
            "(attack@eps/cumulative)"
        )

    # ---- lookup -----------------------------------------------------------------------------------------------
    def column(
        self,
        name: str,
        epsilon: float | str | None = None,
        severity: int | None = None,
        measure: str | None = None,
        semantics: str | None = None,
    ) -> int:
        """Column position of ``name`` (see :meth:`resolve`)."""
        return self.resolve(name, epsilon, severity, measure, semantics).j

    def resolve(
        self,
        name: str,
        epsilon: float | str | None = None,
        severity: int | None = None,
        measure: str | None = None,
        semantics: str | None = None,
    ) -> Resolved:
        """The column of ``name``: a wide name (``'pgd@1'``, ``'pgd@1/cumulative'``, ``'pgd@1/per-epsilon'``), or a
        key with ``epsilon`` (1/255 units) / ``severity`` / ``measure`` / ``semantics`` (``'per-epsilon'``,
        ``'cumulative'``, or None: what the dataset holds, see the module docstring)."""
        if epsilon is None and severity is None and measure is None and semantics is None:
            display = self.display
            j = self._display_col.get(name)
            if j is not None:
                return Resolved(j, name)
            j = self.col.get(name)
            if j is not None and not self._twin_map().get(j, (0, 0))[1]:
                return Resolved(j, display[j])
            bad = fraction_error(name, self._epsilons(name.partition("@")[0]))
            if bad is not None:
                raise bad
            key, eps, sev, meas, _ = parse_wide_name(name)
            sem = explicit_semantics(name)
            try:
                return self._pick(key, eps, sev, meas, sem)
            except InvalidChoiceError as exc:
                raise InvalidChoiceError(f"column {name!r}: {exc}") from None
        else:
            key = name
            eps = _epsilon(epsilon)
            sev = int(severity or 0)
            meas = measure
            sem = _semantics(semantics)
        return self._pick(key, eps, sev, meas, sem)

    def _epsilons(self, key: str) -> list[float]:
        return sorted({c["epsilon"] for c in self.keys().get(key, []) if c["epsilon"] is not None})

    def _pick(self, key: str, eps: float, sev: int, meas: str | None, sem: str | None) -> Resolved:
        display = self.display
        if sem == _CUMULATIVE and not math.isnan(eps):
            cum = self._find(key, eps, sev, meas, _CUMULATIVE)
            if cum is None:
                raise self._missing(key, eps, sev, meas, _CUMULATIVE)
            return Resolved(cum, display[cum])
        per = self._find(key, eps, sev, meas, "")
        if per is not None:
            twin = self._twin_map().get(per) if sem is None else None
            if twin is None:
                return Resolved(per, display[per])
            if twin[1]:
                raise self._ambiguous(key, eps, sev, meas, twin[1])
            return Resolved(per, display[per], f"{display[per]}: per-epsilon and cumulative values are equal here")
        if sem is None and not math.isnan(eps):
            cum = self._find(key, eps, sev, meas, _CUMULATIVE)
            if cum is not None:
                asked = wide_name(key, eps, sev, meas or "accuracy")
                note = f"{asked} read as {display[cum]}: {self.dataset} holds the cumulative worst case only"
                return Resolved(cum, display[cum], note, asked)
        raise self._missing(key, eps, sev, meas, "")

    def _find(self, key: str, eps: float, sev: int, meas: str | None, sem: str) -> int | None:
        for m in _PLAIN if meas is None or meas in _PLAIN else (meas,):
            j = self.col.get(wide_name(key, eps, sev, m, sem))
            if j is not None:
                return j
        return None

    def _ambiguous(self, key: str, eps: float, sev: int, meas: str | None, n_diff: int) -> InvalidChoiceError:
        base = wide_name(key, eps, sev, meas or "accuracy")
        return InvalidChoiceError(
            f"{self.dataset} holds both the per-epsilon value and the cumulative worst case of {base} (they differ on "
            f"{n_diff} cells): ask for {with_semantics(base, _PER_EPSILON)!r} (each epsilon attacked on its own, as "
            f"published) or {with_semantics(base, _CUMULATIVE)!r} (a point broken at a smaller epsilon counts as "
            "broken); in Python semantics='per-epsilon' or 'cumulative'"
        )

    def _missing(self, key: str, eps: float, sev: int, measure: str | None, sem: str = "") -> InvalidChoiceError:
        ds = self.dataset
        keys = self.keys()
        if key not in keys:
            return InvalidChoiceError(f"unknown key {key!r} on {ds}; available: {', '.join(sorted(keys))}")
        cols = keys[key]
        m = measure or "accuracy"
        measures = sorted({c["measure"] for c in cols})
        epss = self._epsilons(key)
        if m not in measures and not (m in _PLAIN and set(measures) & set(_PLAIN)):
            return InvalidChoiceError(f"no measure {m!r} for {key} on {ds}; available: {', '.join(measures)}")
        sevs = sorted({c["severity"] for c in cols if c["severity"]})
        if epss and math.isnan(eps):
            return InvalidChoiceError(
                f"{key} on {ds} needs an epsilon (1/255 units); available: {', '.join(format_eps(e) for e in epss)}"
            )
        if epss:
            other = "" if sem == _CUMULATIVE else _CUMULATIVE
            j = self._find(key, eps, sev, measure, other)
            if j is not None:
                asked = "per-epsilon value" if other else "cumulative worst case"
                held = "the cumulative worst case" if other else "per-epsilon values"
                return InvalidChoiceError(
                    f"{ds} holds no {asked} of {key} at epsilon {format_eps(eps)}, only {held}: ask for "
                    f"{self.display[j]!r} (semantics={_CUMULATIVE if other else _PER_EPSILON!r})"
                )
            return InvalidChoiceError(
                f"no epsilon {format_eps(eps)} for {key} on {ds}; available: "
                f"{', '.join(format_eps(e) for e in epss)} (units of 1/255){epsilon_hint(eps, epss)}"
            )
        if sevs and not sev:
            return InvalidChoiceError(f"{key} on {ds} needs a severity; available: {', '.join(map(str, sevs))}")
        if sevs:
            return InvalidChoiceError(f"no severity {sev} for {key} on {ds}; available: {', '.join(map(str, sevs))}")
        if not math.isnan(eps) or sev:
            return InvalidChoiceError(f"{key} on {ds} has no epsilon or severity; ask for {key!r} alone")
        return InvalidChoiceError(f"no column for {key!r} on {ds}; available: {', '.join(c['name'] for c in cols)}")


def _epsilon(epsilon: float | str | None) -> float:
    """An epsilon argument in 1/255 units: a number, or a text like ``'8'`` or ``'8/255'`` (a fraction, refused later
    with the unit hint)."""
    if epsilon is None:
        return math.nan
    if isinstance(epsilon, str):
        num, sep, den = epsilon.partition("/")
        try:
            return float(num) / float(den) if sep else float(num)
        except (ValueError, ZeroDivisionError):
            raise InvalidChoiceError(
                f"cannot read epsilon {epsilon!r}; give a number in units of 1/255, e.g. eps=8 for 8/255"
            ) from None
    return float(epsilon)


def _semantics(semantics: str | None) -> str | None:
    """``None`` (what the dataset holds), ``'per-epsilon'`` or ``'cumulative'``; anything else is an error."""
    if semantics in (None, ""):
        return None
    if semantics in (_PER_EPSILON, _CUMULATIVE):
        return semantics
    raise InvalidChoiceError(f"unknown semantics {semantics!r}; allowed: 'per-epsilon', 'cumulative', or None")
