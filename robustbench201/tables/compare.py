"""Compare two results tables column by column: the first check of a rebuilt dataset against the published one.

For every dataset both sources hold and every wide column both hold (same name, so the same key, epsilon in 1/255
units or severity, semantics and measure), on the isomorphism-class representatives that have a value in both:
Kendall's tau-b between the two columns (does the rebuild rank cells the same way?), the mean absolute difference
and the mean signed difference (``a - b``: is the rebuild systematically stronger or weaker?), the largest absolute
difference and the cells where the two differ most. Columns only one side holds are listed, not compared: in
particular the cumulative worst case (``pgd@1/cumulative``) has no counterpart in the published per-epsilon table.

``jung2023`` as a source means the published results of Jung et al. (ICLR 2023) inside the embedded table. No torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidChoiceError, NoValuesError
from .index import IndexedSource

PUBLISHED = "jung2023"
#: Families a comparison looks at by default: the evaluated robustness values, not provenance columns copied from
#: elsewhere (NB201 training accuracy, hardware cost, parameter counts are equal by construction when both hold them).
COMPARED_FAMILIES: tuple[str, ...] = ("clean", "adversarial", "corruption", "certified", "surrogate")


@dataclass(frozen=True)
class ColumnComparison:
    """One column on one dataset. ``worst``: (NB201 index, value in a, value in b) by decreasing |a - b|."""

    dataset: str
    column: str
    family: str
    key: str
    epsilon: float | None
    severity: int
    n: int
    kendall_tau: float
    mean_abs_diff: float
    mean_diff: float
    max_abs_diff: float
    worst: tuple[tuple[int, float, float], ...]

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "worst"}
        d["worst"] = [{"arch_index": i, "a": a, "b": b} for i, a, b in self.worst]
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


@dataclass
class CompareReport:
    """All column comparisons of two sources, plus what only one of them holds."""

    a: str
    b: str
    columns: list[ColumnComparison] = field(default_factory=list)
    only_a: dict[str, list[str]] = field(default_factory=dict)
    only_b: dict[str, list[str]] = field(default_factory=dict)
    datasets_only_a: list[str] = field(default_factory=list)
    datasets_only_b: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "columns": [c.to_dict() for c in self.columns],
            "only_a": self.only_a,
            "only_b": self.only_b,
            "datasets_only_a": self.datasets_only_a,
            "datasets_only_b": self.datasets_only_b,
        }

    def lines(self, worst: int = 3) -> list[str]:
        """Readable report: a summary per dataset, then one line per column."""
        out = [f"comparing {self.a} (a) with {self.b} (b) on the isomorphism-class representatives both hold"]
        for ds in sorted({c.dataset for c in self.columns}):
            cols = [c for c in self.columns if c.dataset == ds]
            taus = np.array([c.kendall_tau for c in cols], dtype=float)
            mads = np.array([c.mean_abs_diff for c in cols], dtype=float)
            out.append(
                f"\n{ds}: {len(cols)} common columns over {max(c.n for c in cols)} cells; median Kendall tau "
                f"{_fmt(float(np.nanmedian(taus)) if np.isfinite(taus).any() else math.nan)}, median mean |a-b| "
                f"{_fmt(float(np.median(mads)))}, largest |a-b| {_fmt(max(c.max_abs_diff for c in cols))}"
            )
            width = max(len(c.column) for c in cols)
            out.append(f"  {'column':<{width}} {'cells':>6} {'tau':>7} {'mean|a-b|':>10} {'mean a-b':>9} {'max':>7}")
            for c in cols:
                cells = ", ".join(f"{i} ({_fmt(a)} vs {_fmt(b)})" for i, a, b in c.worst[:worst] if a != b)
                out.append(
                    f"  {c.column:<{width}} {c.n:>6} {_fmt(c.kendall_tau):>7} {_fmt(c.mean_abs_diff):>10} "
                    f"{_fmt(c.mean_diff):>9} {_fmt(c.max_abs_diff):>7}"
                    + (f"  most different: {cells}" if cells else "")
                )
            same = sum(1 for c in cols if c.max_abs_diff == 0)
            if same:
                out.append(f"  ({same} of {len(cols)} columns equal on every cell)")
        for label, side in (("a", self.only_a), ("b", self.only_b)):
            for ds, names in sorted(side.items()):
                if names:
                    shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
                    out.append(f"only in {label} on {ds}: {shown}")
        for label, dss in (("a", self.datasets_only_a), ("b", self.datasets_only_b)):
            if dss:
                out.append(f"datasets only in {label}: {', '.join(dss)}")
        return out

    def rows(self) -> list[tuple[Any, ...]]:
        """One row per compared column (:data:`ROW_HEADERS`): the tidy table of ``--format csv`` and ``markdown``."""
        return [
            (
                c.dataset,
                c.column,
                c.family,
                c.key,
                c.epsilon,
                c.severity or None,
                c.n,
                c.kendall_tau,
                c.mean_abs_diff,
                c.mean_diff,
                c.max_abs_diff,
            )  # fmt: skip
            for c in self.columns
        ]


#: Columns of :meth:`CompareReport.rows`.
ROW_HEADERS: tuple[str, ...] = ("dataset", "column", "family", "key", "epsilon", "severity", "cells", "tau",
                                "mean_abs_diff", "mean_diff", "max_abs_diff")  # fmt: skip


def _covers(src: IndexedSource) -> str:
    """What a source holds, in one phrase: ``'mnist5k (4 of 6466 classes)'``."""
    parts = []
    for ds in src.datasets:
        idx = src.index(ds)
        parts.append(f"{ds} ({len(idx.covered_classes())} of {idx.n_classes} classes)")
    return ", ".join(parts) or "no datasets"


def _fmt(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.3f}"


def _kendall(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    from scipy.stats import kendalltau

    return float(kendalltau(x, y)[0])


def _columns(src: IndexedSource, ds: str, families: tuple[str, ...], sources: tuple[str, ...] | None) -> dict[str, int]:
    idx = src.index(ds)
    return {
        name: j
        for j, (name, info) in enumerate(zip(idx.names, idx.info, strict=True))
        if info["family"] in families and (sources is None or info.get("source") in sources)
    }


def compare_columns(a: np.ndarray, b: np.ndarray, cells: np.ndarray, worst: int = 10) -> dict[str, Any]:
    """Statistics of two aligned value arrays (NaN = no value) over ``cells`` (their NB201 indices)."""
    ok = ~(np.isnan(a) | np.isnan(b))
    a, b, cells = a[ok], b[ok], cells[ok]
    d = a - b
    order = np.argsort(-np.abs(d), kind="stable")[:worst]
    return {
        "n": int(len(a)),
        "kendall_tau": _kendall(a, b),
        "mean_abs_diff": float(np.abs(d).mean()) if len(d) else math.nan,
        "mean_diff": float(d.mean()) if len(d) else math.nan,
        "max_abs_diff": float(np.abs(d).max()) if len(d) else math.nan,
        "worst": tuple((int(cells[k]), float(a[k]), float(b[k])) for k in order),
    }


def compare(
    a: IndexedSource,
    b: IndexedSource,
    *,
    datasets: list[str] | None = None,
    columns: list[str] | None = None,
    families: tuple[str, ...] = COMPARED_FAMILIES,
    b_sources: tuple[str, ...] | None = None,
    worst: int = 10,
    a_label: str | None = None,
    b_label: str | None = None,
) -> CompareReport:
    """Compare source ``a`` (e.g. a rebuilt dataset) with ``b`` (e.g. the published table).

    ``columns`` restricts to those wide names; ``b_sources`` keeps only ``b``'s columns of those provenance sources
    (``("jung2023",)`` for the published numbers inside the embedded table)."""
    from ..data.info import canonical_dataset
    from ..space import unique_indices

    rep = CompareReport(a_label or str(a.path), b_label or str(b.path))
    common = [d for d in a.datasets if d in b.datasets]
    if datasets:
        wanted = [canonical_dataset(d) for d in datasets]
        missing = [d for d in wanted if d not in common]
        if missing:
            raise InvalidChoiceError(
                f"dataset(s) {missing} are not in both sources; common: {', '.join(common) or '(none)'}"
            )
        common = wanted
    rep.datasets_only_a = [d for d in a.datasets if d not in b.datasets]
    rep.datasets_only_b = [d for d in b.datasets if d not in a.datasets]
    cells = np.asarray(unique_indices(), dtype=np.int64)
    for ds in common:
        ca = _columns(a, ds, families, None)
        cb = _columns(b, ds, families, b_sources)
        names = [n for n in ca if n in cb]
        if columns:
            ia = a.index(ds)
            stored = {c: ia.names[ia.column(c)] for c in columns}  # bare names read as the semantics a holds
            unknown = [c for c, n in stored.items() if n not in names]
            if unknown:
                raise InvalidChoiceError(
                    f"column(s) {unknown} are not in both sources on {ds}; common: {', '.join(names[:20]) or '(none)'}"
                )
            names = [n for n in names if n in stored.values()]
        rep.only_a[ds] = [n for n in ca if n not in cb]
        rep.only_b[ds] = [n for n in cb if n not in ca]
        ia, ib = a.index(ds), b.index(ds)
        for name in names:
            stats = compare_columns(ia.take(cells, ca[name]), ib.take(cells, cb[name]), cells, worst)
            if stats["n"] == 0:
                rep.only_a[ds].append(f"{name} (no cell with values in both)")
                continue
            info = ia.info[ca[name]]
            rep.columns.append(
                ColumnComparison(ds, name, info["family"], info["key"], info["epsilon"], info["severity"], **stats)
            )
    if not rep.columns:
        why = (
            f"no common dataset: {rep.a} holds {_covers(a)}; {rep.b} holds {_covers(b)}"
            if not common
            else f"no common column with values in both on {', '.join(common)}"
            + "".join(f"; only in a on {ds}: {', '.join(v[:6])}" for ds, v in rep.only_a.items() if v)
        )
        raise NoValuesError(f"nothing to compare: {why}")
    return rep
