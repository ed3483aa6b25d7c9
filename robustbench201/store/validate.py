"""Integrity and coverage of a dataset directory (the format of :mod:`.dataset`).

:func:`validate_dataset` checks the manifest (format, schema version), every listed file's size, sha256, schema
and row count, files present but not listed (or listed but missing), duplicate keys across result files, and
summarises coverage: which isomorphism representatives x datasets x result columns are missing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import TMP_SUFFIX
from ..errors import DataIntegrityError, Rb201Error
from ..space import NUM_ARCHS, NUM_UNIQUE, format_indices, representative_indices
from .dataset import MANIFEST, NOT_DATA, read_manifest
from .integrity import verify_file
from .schema import KEY_COLUMNS, check_table_schema, with_split
from .wide import ColumnCodes

__all__ = ["COLUMN_KEYS", "DatasetCoverage", "Coverage", "CoverageBuilder", "compute_coverage", "ValidationReport",
           "validate_dataset", "archs_present", "specs_of_dataset"]  # fmt: skip

log = logging.getLogger(__name__)

#: Columns that together name one result column of the wide table (with dataset and architecture as the rows).
COLUMN_KEYS: tuple[str, ...] = tuple(c for c in KEY_COLUMNS if c not in ("arch_index", "dataset"))


# ---- coverage -----------------------------------------------------------------------------------------------
@dataclass
class DatasetCoverage:
    """Coverage of one dataset: architectures present, representatives missing, incomplete result columns."""

    dataset: str
    archs: int
    representatives_missing: list[int]
    non_representatives: int
    columns: int
    incomplete: list[tuple[str, int, str]] = field(default_factory=list)  # (column, n missing, indices text)


@dataclass
class Coverage:
    datasets: list[DatasetCoverage] = field(default_factory=list)

    def lines(self, max_columns: int = 8) -> list[str]:
        """Human-readable summary (a few lines per dataset)."""
        out = []
        for d in self.datasets:
            have = NUM_UNIQUE - len(d.representatives_missing)
            out.append(
                f"{d.dataset}: {have}/{NUM_UNIQUE} representatives, {d.columns} result columns"
                + (f", {d.non_representatives} non-representative archs" if d.non_representatives else "")
            )
            if d.representatives_missing:
                out.append(f"  missing representatives: {format_indices(d.representatives_missing, 8)}")
            for col, n, where in d.incomplete[:max_columns]:
                out.append(f"  column {col}: missing for {n} of its dataset's archs ({where})")
            if len(d.incomplete) > max_columns:
                out.append(f"  ... {len(d.incomplete) - max_columns} more incomplete columns")
        return out


def _column_label(values: tuple[Any, ...]) -> str:
    d = dict(zip(COLUMN_KEYS, values))
    where = f"@{d['epsilon']:g}" if d["epsilon"] == d["epsilon"] else (f":{d['severity']}" if d["severity"] else "")
    sem = f"[{d['semantics']}]" if d["semantics"] else ""
    split = "" if d.get("split", "test") == "test" else f"{d['split']}/"
    return f"{d['weights']}/s{d['seed']}/{d['family']}/{split}{d['key']}{where}{sem}/{d['measure']}"


class CoverageBuilder:
    """Coverage of tidy rows fed in blocks of any order and size (:meth:`add`), and the rows whose key columns were
    seen before: per dataset one bitmap of cells for each result column (:data:`COLUMN_KEYS`), so memory does not
    grow with the rows."""

    def __init__(self) -> None:
        self._codes: dict[str, ColumnCodes] = {}
        self._present: dict[str, np.ndarray] = {}  # dataset -> columns x NUM_ARCHS bool
        self._archs: dict[str, np.ndarray] = {}  # dataset -> NUM_ARCHS bool

    def add(self, table: Any) -> int:
        """Add rows (a pyarrow Table with :data:`store.schema.KEY_COLUMNS`; without ``split`` all on the test
        split); return how many of them repeat the key columns of a row added before (or earlier in ``table``)."""
        import pyarrow.compute as pc

        table = with_split(table)
        repeated = 0
        for ds in pc.unique(table.column("dataset")).to_pylist():
            t = table.filter(pc.equal(table.column("dataset"), ds))
            codes = self._codes.setdefault(ds, ColumnCodes(COLUMN_KEYS))
            ids = codes.encode(t)
            present = self._present.get(ds, np.zeros((0, NUM_ARCHS), dtype=bool))
            if len(codes) > len(present):
                grow = max(len(codes), 2 * len(present), 16) - len(present)
                present = np.concatenate([present, np.zeros((grow, NUM_ARCHS), dtype=bool)])
            self._present[ds] = present
            arch = t.column("arch_index").to_numpy().astype(np.int64)
            flat = present.reshape(-1)
            lin = np.unique(ids * NUM_ARCHS + arch)
            repeated += len(ids) - int(np.count_nonzero(~flat[lin]))
            flat[lin] = True
            self._archs.setdefault(ds, np.zeros(NUM_ARCHS, dtype=bool))[arch] = True
        return repeated

    def finish(self) -> Coverage:
        reps = np.asarray(representative_indices(), dtype=np.int64)
        unique = reps == np.arange(NUM_ARCHS)
        cov = Coverage()
        for ds in sorted(self._codes):
            codes, archs = self._codes[ds], self._archs[ds]
            incomplete = []
            for g in range(len(codes)):
                have = self._present[ds][g]
                # a column held only for isomorphism representatives (one network per class, as the published
                # robustness data) is complete when it covers the representatives; per-cell columns cover every cell
                expected = archs & unique if not (have & ~unique).any() else archs
                missing = np.flatnonzero(expected & ~have)
                if len(missing):
                    label = _column_label(tuple(codes.values(g)[c] for c in COLUMN_KEYS))
                    incomplete.append((label, len(missing), format_indices(missing.tolist(), 5)))
            incomplete.sort(key=lambda t: (-t[1], t[0]))
            cov.datasets.append(
                DatasetCoverage(
                    dataset=str(ds),
                    archs=int(archs.sum()),
                    representatives_missing=np.flatnonzero(unique & ~archs).tolist(),
                    non_representatives=int((archs & ~unique).sum()),
                    columns=len(codes),
                    incomplete=incomplete,
                )
            )
        return cov


def compute_coverage(rows: Any) -> Coverage:
    """Coverage of tidy rows holding at least :data:`store.schema.KEY_COLUMNS` (a pyarrow Table or a DataFrame)."""
    import pyarrow as pa

    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pandas(rows, preserve_index=False)
    builder = CoverageBuilder()
    builder.add(table)
    return builder.finish()


# ---- validation ---------------------------------------------------------------------------------------------
@dataclass
class ValidationReport:
    """Outcome of :func:`validate_dataset`; ``ok`` when ``problems`` is empty."""

    path: Path
    problems: list[str] = field(default_factory=list)
    files: int = 0
    rows: int = 0
    duplicates: int = 0
    coverage: Coverage | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        head = f"{self.path}: {'OK' if self.ok else 'INVALID'} ({self.files} files, {self.rows} rows)"
        out = [head] + [f"  problem: {p}" for p in self.problems]
        if self.coverage is not None:
            out += self.coverage.lines()
        return out

    def raise_if_bad(self) -> None:
        if self.problems:
            raise DataIntegrityError(f"{self.path} failed validation: " + "; ".join(self.problems[:5]))


def _key_batches(path: Path, rows: int = 1 << 18) -> Iterator[Any]:
    """The key columns and ``spec_hash`` of a results file (v1 or v2) in tables of at most ``rows`` rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as pf:
        have = set(pf.schema_arrow.names)
        cols = [c for c in (*KEY_COLUMNS, "spec_hash") if c in have]
        for batch in pf.iter_batches(batch_size=rows, columns=cols):
            yield pa.Table.from_batches([batch])


def validate_dataset(path: str | Path, coverage: bool = True) -> ValidationReport:
    """Check a dataset directory, re-hashing every file; never raises for a damaged dataset (problems are listed in
    the report). Rows are read in blocks: memory does not grow with the dataset."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    root = Path(path)
    report = ValidationReport(root)
    try:
        manifest = read_manifest(root)
    except Rb201Error as exc:
        report.problems.append(str(exc))
        return report
    listed: set[str] = set()
    good_results: list[Path] = []
    for entry in manifest.files:
        rel = entry.path
        listed.add(rel)
        p = root / rel
        if not p.is_file():
            report.problems.append(f"{rel} is listed in the manifest but missing")
            continue
        report.files += 1
        try:
            verify_file(p, entry.sha256, entry.bytes, use_cache=False, what=rel)
        except DataIntegrityError as exc:
            report.problems.append(str(exc))
            continue
        if entry.kind == "results":
            try:
                meta = pq.ParquetFile(p).metadata
                check_table_schema(pq.read_schema(p), rel)
            except DataIntegrityError as exc:
                report.problems.append(str(exc))
                continue
            except Exception as exc:
                report.problems.append(f"{rel} cannot be read as Parquet: {exc}")
                continue
            if entry.rows >= 0 and meta.num_rows != entry.rows:
                report.problems.append(f"{rel} has {meta.num_rows} rows, the manifest says {entry.rows}")
                continue
            report.rows += meta.num_rows
            good_results.append(p)
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if rel in NOT_DATA or "__pycache__" in p.parts:
            continue
        if p.is_file() and rel != MANIFEST and rel not in listed:
            why = "a leftover temporary file" if rel.endswith(TMP_SUFFIX) else "not listed in the manifest"
            report.problems.append(f"{rel} is {why}")
    if good_results:
        builder = CoverageBuilder()
        specs: set[str] = set()
        for p in good_results:
            for t in _key_batches(p):
                report.duplicates += builder.add(t)
                specs.update(pc.unique(t.column("spec_hash")).to_pylist())
        if report.duplicates:
            report.problems.append(f"{report.duplicates} duplicate rows (same key columns)")
        unknown = sorted(specs - set(manifest.specs) - {""})
        if unknown:
            report.problems.append(f"rows carry spec hashes not in the manifest: {unknown[:5]}")
        if coverage:
            report.coverage = builder.finish()
    return report


def archs_present(path: str | Path, *, dataset: str, weights: str, seed: int, spec_hash: str) -> set[int]:
    """NB201 indices with rows of one evaluation job (dataset, weights label, seed, spec hash) in the dataset
    directory ``path`` (each results file is verified against the manifest before it is read)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from .dataset import DatasetDir

    d = DatasetDir.open(path)
    out: set[int] = set()
    for f in d.manifest.of_kind("results"):
        if f.dataset and f.dataset != dataset:
            continue
        t = pq.read_table(d.file(f), columns=["arch_index", "dataset", "weights", "seed", "spec_hash"])
        m = pc.and_(
            pc.and_(pc.equal(t.column("dataset"), dataset), pc.equal(t.column("weights"), weights)),
            pc.and_(pc.equal(t.column("seed"), seed), pc.equal(t.column("spec_hash"), spec_hash)),
        )
        out.update(pc.unique(t.filter(m).column("arch_index")).to_pylist())
    return out


def specs_of_dataset(path: str | Path, dataset: str) -> list[str]:
    """Spec hashes the rows of ``dataset`` carry in the dataset directory ``path`` (sorted, imported rows' '' left
    out)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from .dataset import DatasetDir

    d = DatasetDir.open(path)
    out: set[str] = set()
    for f in d.manifest.of_kind("results"):
        if f.dataset and f.dataset != dataset:
            continue
        t = pq.read_table(d.file(f), columns=["dataset", "spec_hash"])
        out.update(pc.unique(t.filter(pc.equal(t.column("dataset"), dataset)).column("spec_hash")).to_pylist())
    return sorted(out - {""})
