"""Integrity and coverage of a dataset directory (the format of :mod:`.dataset`).

:func:`validate_dataset` checks the manifest (format, schema version), every listed file's size, sha256, schema
and row count, files present but not listed (or listed but missing), duplicate keys across result files, and
summarises coverage: which isomorphism representatives x datasets x result columns are missing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import TMP_SUFFIX
from ..errors import DataIntegrityError, Rb201Error
from ..space import NUM_UNIQUE, format_indices, representative_indices, unique_indices
from .dataset import MANIFEST, NOT_DATA, read_manifest
from .integrity import verify_file
from .schema import KEY_COLUMNS, check_table_schema, read_results_columns

__all__ = ["COLUMN_KEYS", "DatasetCoverage", "Coverage", "compute_coverage", "ValidationReport",
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


def compute_coverage(df: Any) -> Coverage:
    """Coverage of a DataFrame holding at least :data:`store.schema.KEY_COLUMNS`."""
    reps = representative_indices()
    unique = set(unique_indices())
    cov = Coverage()
    for dataset, part in df.groupby("dataset", sort=True):
        archs = set(part["arch_index"].unique().tolist())
        per_col = part.groupby(list(COLUMN_KEYS), dropna=False, sort=True)["arch_index"].unique()
        incomplete = []
        reps_here = archs & unique
        for col_key, col_archs in per_col.items():
            have = set(col_archs.tolist())
            # a column held only for isomorphism representatives (one network per class, as the published
            # robustness data) is complete when it covers the representatives; per-cell columns cover every cell
            expected = reps_here if have <= unique else archs
            missing = expected - have
            if missing:
                incomplete.append((_column_label(col_key), len(missing), format_indices(missing, 5)))
        incomplete.sort(key=lambda t: (-t[1], t[0]))
        cov.datasets.append(
            DatasetCoverage(
                dataset=str(dataset),
                archs=len(archs),
                representatives_missing=sorted(unique - archs),
                non_representatives=sum(1 for a in archs if reps[a] != a),
                columns=len(per_col),
                incomplete=incomplete,
            )
        )
    return cov


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


def validate_dataset(path: str | Path, coverage: bool = True) -> ValidationReport:
    """Check a dataset directory, re-hashing every file; never raises for a damaged dataset (problems are listed in
    the report)."""
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
        import pandas as pd

        cols = list(KEY_COLUMNS) + ["spec_hash"]
        df = pd.concat([read_results_columns(p, cols).to_pandas() for p in good_results])
        dup = int(df.duplicated(subset=list(KEY_COLUMNS)).sum())
        report.duplicates = dup
        if dup:
            report.problems.append(f"{dup} duplicate rows (same key columns)")
        unknown = sorted(set(df["spec_hash"].unique()) - set(manifest.specs) - {""})
        if unknown:
            report.problems.append(f"rows carry spec hashes not in the manifest: {unknown[:5]}")
        if coverage:
            report.coverage = compute_coverage(df)
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
