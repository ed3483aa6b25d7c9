"""In-memory index of one dataset's wide matrix: column lookup, isomorph filling, and error messages that list what
exists (keys, epsilons in 1/255 units, severities, measures)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import InvalidChoiceError
from ..store.schema import format_eps, parse_wide_name, qualified_key, wide_name
from ..store.wide import Wide, fill_isomorphs

_PLAIN = ("accuracy", "value")


class IndexedSource(Protocol):
    """A results source as :mod:`.compare` reads it: a path, its datasets and one :class:`Index` per dataset
    (:class:`robustbench201.Dataset` is one)."""

    path: Path

    @property
    def datasets(self) -> tuple[str, ...]: ...

    def index(self, dataset: str) -> Index: ...


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

    def keys(self) -> dict[str, list[dict[str, Any]]]:
        """key (``valid/pgd`` for another split than test) -> infos of its columns (built on first use)."""
        if self._keys is None:
            keys: dict[str, list[dict[str, Any]]] = {}
            for i in self.info:
                keys.setdefault(qualified_key(i["key"], i.get("split", "test")), []).append(i)
            self._keys = keys
        return self._keys

    def column(
        self,
        name: str,
        epsilon: float | None = None,
        severity: int | None = None,
        measure: str | None = None,
        semantics: str | None = None,
    ) -> int:
        """Column position of ``name``: a wide name (``'pgd@1'``, ``'pgd@1/cumulative'``), or a key with
        ``epsilon`` (1/255 units) / ``severity`` / ``measure`` / ``semantics`` (``'per-epsilon'``, the default, or
        ``'cumulative'``)."""
        if epsilon is None and severity is None and measure is None and semantics is None:
            j = self.col.get(name)
            if j is not None:
                return j
            key, eps, sev, meas, sem = parse_wide_name(name)
        else:
            key = name
            eps = math.nan if epsilon is None else float(epsilon)
            sev = int(severity or 0)
            meas = measure
            sem = _semantics(semantics)
        j = self._find(key, eps, sev, meas, sem)
        if j is None:
            raise self._missing(key, eps, sev, meas, sem)
        return j

    def _find(self, key: str, eps: float, sev: int, meas: str | None, sem: str) -> int | None:
        for m in _PLAIN if meas is None or meas in _PLAIN else (meas,):
            j = self.col.get(wide_name(key, eps, sev, m, sem))
            if j is not None:
                return j
        return None

    def _missing(self, key: str, eps: float, sev: int, measure: str | None, sem: str = "") -> InvalidChoiceError:
        ds = self.dataset
        keys = self.keys()
        if key not in keys:
            return InvalidChoiceError(f"unknown key {key!r} on {ds}; available: {', '.join(sorted(keys))}")
        cols = keys[key]
        m = measure or "accuracy"
        measures = sorted({c["measure"] for c in cols})
        if m not in measures and not (m in _PLAIN and set(measures) & set(_PLAIN)):
            return InvalidChoiceError(f"no measure {m!r} for {key} on {ds}; available: {', '.join(measures)}")
        epss = sorted({c["epsilon"] for c in cols if c["epsilon"] is not None})
        sevs = sorted({c["severity"] for c in cols if c["severity"]})
        if epss and math.isnan(eps):
            return InvalidChoiceError(
                f"{key} on {ds} needs an epsilon (1/255 units); available: {', '.join(format_eps(e) for e in epss)}"
            )
        if epss:
            other = "" if sem == "cumulative" else "cumulative"
            j = self._find(key, eps, sev, measure, other)
            if j is not None:
                asked = "per-epsilon value" if other else "cumulative worst case"
                held = "the cumulative worst case" if other else "per-epsilon values"
                return InvalidChoiceError(
                    f"{ds} holds no {asked} of {key} at epsilon {format_eps(eps)}, only {held}: ask for "
                    f"{self.names[j]!r} (semantics={'cumulative' if other else 'per-epsilon'!r})"
                )
            hint = ""
            if 0 < eps < 1 and any(abs(eps * 255 - e) < 1e-3 for e in epss):
                hint = f"; epsilons are in units of 1/255: did you mean {format_eps(round(eps * 255, 3))}?"
            return InvalidChoiceError(
                f"no epsilon {format_eps(eps)} for {key} on {ds}; available: "
                f"{', '.join(format_eps(e) for e in epss)} (units of 1/255){hint}"
            )
        if sevs and not sev:
            return InvalidChoiceError(f"{key} on {ds} needs a severity; available: {', '.join(map(str, sevs))}")
        if sevs:
            return InvalidChoiceError(f"no severity {sev} for {key} on {ds}; available: {', '.join(map(str, sevs))}")
        if not math.isnan(eps) or sev:
            return InvalidChoiceError(f"{key} on {ds} has no epsilon or severity; ask for {key!r} alone")
        return InvalidChoiceError(f"no column for {key!r} on {ds}; available: {', '.join(c['name'] for c in cols)}")


def _semantics(semantics: str | None) -> str:
    """``None`` / ``'per-epsilon'`` -> ``''`` (the plain name), ``'cumulative'`` -> ``'cumulative'``."""
    if semantics in (None, "", "per-epsilon"):
        return ""
    if semantics == "cumulative":
        return "cumulative"
    raise InvalidChoiceError(f"unknown semantics {semantics!r}; allowed: 'per-epsilon', 'cumulative'")
