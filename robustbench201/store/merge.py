"""Merge evaluation shards (and/or dataset directories) into one compact, validated dataset directory, in memory that
does not grow with the number of cells.

Inputs are checked (schema version, per-architecture HDF5 hashes, one spec per dataset unless mixed specs are
allowed); identical duplicate rows are dropped; conflicting duplicates (same key columns, different value) are
refused unless ``on_conflict="first"``. The output is written in a temporary directory beside the target and
renamed into place, so a crash never leaves a half-written dataset under the final name.

The merge streams, in three passes:

1. *scan*: every shard's architecture files are listed and their Parquet footers read (rows, datasets, splits,
   spec); dataset directories given as inputs are validated and their rows partitioned by dataset and block of cells
   into a scratch folder beside the output (Arrow IPC, removed at the end);
2. *rows*: per dataset and split, blocks of :data:`BLOCK` NB201 indices in order: the block's rows are read (each
   architecture file verified as it is read), duplicates dropped and conflicts counted, the rows sorted and
   appended to the results files, and fed to the dataset's wide matrix and to the coverage;
3. *arrays*: per dataset, cell by cell in index order, each architecture's arrays (hash-checked) into the packed
   arrays files.

Memory holds one block of rows, one cell's arrays, one chunk per array kind, and the wide matrix and coverage
bitmaps of the dataset being merged (about 100 MB each for the ``jung2023`` columns), whatever the number of cells.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._version import code_version
from ..atomic import TMP_SUFFIX
from ..errors import DataIntegrityError, Rb201Error, check_choice
from ..space import NUM_ARCHS
from .arrays import ArraysFile
from .dataset import (
    FORMAT,
    DatasetWriter,
    check_new_dataset_dir,
    manifest_format,
    new_dataset_dir,
    no_wide_note,
    read_manifest,
)
from .rowblocks import BLOCK, Duplicates, MergeConflictError, Spool, check_corruption_sources, dedup_sort, unique_rows
from .schema import META_SPEC, check_table_schema, conform_table, pa_schema
from .shardfile import (
    META_ARRAYS_FILE,
    META_ARRAYS_SHA,
    arch_files,
    read_arch_arrays,
    read_shard_manifest,
    shards_in,
    verify_arch_file,
)
from .validate import Coverage, CoverageBuilder, validate_dataset
from .wide import WideBuilder

__all__ = ["ON_CONFLICT", "BLOCK", "MergeConflictError", "MergeReport", "merge_datasets"]

log = logging.getLogger(__name__)

ON_CONFLICT = ("error", "first")
_RECOMPUTE = "re-run the evaluate command of that shard to recompute it"


@dataclass
class MergeReport:
    """What :func:`merge_datasets` read, dropped and wrote."""

    out: Path
    inputs: int = 0
    rows_in: int = 0
    rows_out: int = 0
    identical_dropped: int = 0
    conflicts: int = 0
    conflict_examples: list[str] = field(default_factory=list)
    arrays: int = 0
    specs: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    coverage: Coverage | None = None
    notes: list[str] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)  # identity, out, shards, failures per evaluation job

    def lines(self) -> list[str]:
        out = [
            f"merged {self.inputs} input files ({self.rows_in} rows) into {self.out}: {self.rows_out} rows, "
            f"{self.arrays} arrays in {len(self.files)} files",
            f"  dropped {self.identical_dropped} identical duplicate rows; {self.conflicts} conflicting keys"
            + (" (kept the first)" if self.conflicts else ""),
            f"  specs: {', '.join(self.specs) or '(none)'}",
        ]
        out += [f"  note: {n}" for n in self.notes]
        for job in self.jobs:
            fails = job.get("failures", {})
            if fails:
                ident = job.get("identity") or {}
                shown = "; ".join(f"{k}: {v}" for k, v in sorted(fails.items(), key=lambda kv: int(kv[0]))[:5])
                out.append(
                    f"  {len(fails)} architecture(s) failed in the shards of {ident.get('dataset')} under "
                    f"{job.get('out')} (not in the dataset): {shown}"
                )
        if self.coverage is not None:
            out += self.coverage.lines()
        return out


# ---- scan ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _ArchFile:
    """One architecture's files in a shard, as its Parquet footer describes them (``order``: input position)."""

    parquet: Path
    arch: int
    order: int
    pairs: tuple[tuple[str, str], ...]  # (dataset, split) of its rows
    arrays: Path | None
    arrays_sha: str


@dataclass
class _Plan:
    """What the inputs hold, read without holding their rows."""

    arch_files: list[_ArchFile] = field(default_factory=list)
    by_pair: dict[tuple[str, str], list[_ArchFile]] = field(default_factory=dict)  # sorted by arch
    spool: Spool | None = None
    array_files: list[tuple[int, Path]] = field(default_factory=list)  # arrays files of dataset directories
    specs: dict[str, Any] = field(default_factory=dict)
    dataset_specs: dict[str, set[str]] = field(default_factory=dict)
    rows_in: int = 0
    sources: int = 0
    order: int = 0

    def pairs(self) -> list[tuple[str, str]]:
        spooled = set(self.spool.pairs) if self.spool else set()
        return sorted(set(self.by_pair) | spooled)


def _job_key(job: dict[str, Any]) -> str:
    return json.dumps({"identity": job.get("identity"), "out": job.get("out")}, sort_keys=True, default=str)


def _add_job(jobs: dict[str, dict[str, Any]], job: dict[str, Any]) -> None:
    """Merge one job record (identity, where its shards live, shard count, failures) into ``jobs``."""
    cur = jobs.setdefault(_job_key(job), {"identity": job.get("identity"), "out": job.get("out"), "shards": 0,
                                          "failures": {}})  # fmt: skip
    cur["shards"] += int(job.get("shards", 0))
    cur["failures"].update(job.get("failures", {}))


def _shard_job(shard_dir: Path) -> dict[str, Any] | None:
    """The job record of a shard directory, from its manifest (None if it has none)."""
    m = read_shard_manifest(shard_dir)
    if m is None or not isinstance(m.get("identity"), dict):
        return None
    fails = m.get("failures") if isinstance(m.get("failures"), dict) else {}
    finished = set(m.get("finished", {})) if isinstance(m.get("finished"), dict) else set()
    failures = {
        str(k): f"{v.get('error_type', 'Error')}: {v.get('message', '')}"[:300]
        for k, v in fails.items()
        if str(k) not in finished and isinstance(v, dict)
    }
    return {"identity": m["identity"], "out": str(shard_dir.parent), "shards": 1, "failures": failures}


def _scan(inputs: list[Path], jobs: dict[str, dict[str, Any]], scratch: Path) -> _Plan:
    """The plan of a merge: architecture files (from their footers) and dataset directories (validated, rows
    partitioned into ``scratch``), in input order; the job records of the shards (and those dataset directories
    carry) are gathered in ``jobs``."""
    plan = _Plan()
    spec_cache: dict[bytes, Any] = {}
    for d in inputs:
        if not d.is_dir():
            raise Rb201Error(f"merge input {d} is not a directory; give shard directories or dataset directories")
        if manifest_format(d) == FORMAT:
            _scan_dataset_dir(d, plan, jobs, scratch)
            continue
        shards = shards_in(d)
        found = files = 0
        for sd in shards:
            job = _shard_job(sd)
            if job is not None:
                _add_job(jobs, job)
                found += 1
            for idx, p in arch_files(sd).items():
                _scan_arch_file(p, idx, plan, spec_cache)
                files += 1
        if not files and not found:
            raise Rb201Error(f"merge input {d} holds no shard files (per-architecture files) and no dataset manifest")
    for pair in plan.by_pair.values():
        pair.sort(key=lambda f: (f.arch, f.order))
    if plan.spool is not None:
        plan.spool.close()
    return plan


def _footer_values(meta: Any, column: str) -> set[str] | None:
    """The values of a string column from the row groups' statistics, or None when they do not say."""
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    if column not in names:
        return None
    j = names.index(column)
    out: set[str] = set()
    for g in range(meta.num_row_groups):
        st = meta.row_group(g).column(j).statistics
        if st is None or not st.has_min_max or st.min != st.max:
            return None
        out.add(st.min if isinstance(st.min, str) else st.min.decode())
    return out


def _scan_arch_file(p: Path, idx: int, plan: _Plan, spec_cache: dict[bytes, Any]) -> None:
    """Describe one architecture's files from the footer of its Parquet file (its rows are read in the rows pass)."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(p)
        schema = meta.schema.to_arrow_schema()
        check_table_schema(schema, str(p))
    except DataIntegrityError as exc:
        raise DataIntegrityError(f"{exc}; {_RECOMPUTE}") from None
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError on truncated or garbled files
        raise DataIntegrityError(f"{p} cannot be read ({type(exc).__name__}: {exc}); {_RECOMPUTE}") from None
    kv = meta.metadata or {}
    datasets = _footer_values(meta, "dataset")
    splits = {"test"} if "split" not in schema.names else _footer_values(meta, "split")
    hashes = _footer_values(meta, "spec_hash")
    if datasets is None or splits is None or hashes is None:  # no statistics: read those columns
        with pq.ParquetFile(p) as pf:
            t = pf.read(columns=[c for c in ("dataset", "split", "spec_hash") if c in schema.names])
        datasets = set(t.column("dataset").to_pylist())
        splits = set(t.column("split").to_pylist()) if "split" in t.column_names else {"test"}
        hashes = set(t.column("spec_hash").to_pylist())
    raw_spec = kv.get(META_SPEC.encode(), b"{}")
    if raw_spec not in spec_cache:
        try:
            spec_cache[raw_spec] = json.loads(raw_spec.decode())
        except (json.JSONDecodeError, UnicodeDecodeError):
            spec_cache[raw_spec] = {}
    plan.specs.update({h: spec_cache[raw_spec] for h in sorted(hashes) if h})
    for ds in datasets:
        plan.dataset_specs.setdefault(ds, set()).update(hashes)
    name = kv.get(META_ARRAYS_FILE.encode(), b"").decode()
    f = _ArchFile(p, idx, plan.order, tuple(sorted((ds, sp) for ds in datasets for sp in splits)),
                  p.parent / name if name else None, kv.get(META_ARRAYS_SHA.encode(), b"").decode())  # fmt: skip
    plan.order += 1
    plan.sources += 1
    plan.rows_in += meta.num_rows
    plan.arch_files.append(f)
    for pair in f.pairs:
        plan.by_pair.setdefault(pair, []).append(f)


def _scan_dataset_dir(d: Path, plan: _Plan, jobs: dict[str, dict[str, Any]], scratch: Path) -> None:
    """A (validated) dataset directory: its rows into the spool, its arrays files with its first results file's
    order, its specs and job records."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rep = validate_dataset(d, coverage=False)
    rep.raise_if_bad()
    manifest = read_manifest(d)
    for job in manifest.extra.get("jobs", []):
        if isinstance(job, dict):
            _add_job(jobs, job)
    plan.specs.update(manifest.specs)
    if plan.spool is None:
        plan.spool = Spool(scratch)
    first = plan.order
    for f in manifest.of_kind("results"):
        with pq.ParquetFile(d / f.path) as pf:
            for batch in pf.iter_batches(batch_size=1 << 18):
                t = conform_table(_table([batch], pf.schema_arrow.metadata), str(d / f.path))
                plan.rows_in += t.num_rows
                for ds, h in unique_rows(t, ["dataset", "spec_hash"]):
                    plan.dataset_specs.setdefault(ds, set()).add(h)
                order = pa.array(np.full(t.num_rows, plan.order, dtype=np.int64))
                plan.spool.add(t.replace_schema_metadata(None).append_column("_order", order))
        plan.order += 1
        plan.sources += 1
    plan.array_files += [(first, d / f.path) for f in manifest.of_kind("arrays")]


def _table(batches: list[Any], metadata: Any) -> Any:
    import pyarrow as pa

    return pa.Table.from_batches(batches).replace_schema_metadata(metadata)


# ---- rows -------------------------------------------------------------------------------------------------------
def _check_specs(plan: _Plan, allow_mixed_specs: bool) -> list[str]:
    """The spec hashes the rows use; refuse a dataset evaluated with several unless they are allowed."""
    for ds in sorted(plan.dataset_specs):
        hashes = sorted(plan.dataset_specs[ds] - {""})
        if len(hashes) > 1 and not allow_mixed_specs:
            raise MergeConflictError(
                f"dataset {ds!r} mixes evaluation specs {hashes}; merge one spec at a time or allow mixed specs"
            )
    return sorted(set().union(*plan.dataset_specs.values()) - {""}) if plan.dataset_specs else []


def _arch_rows(f: _ArchFile, dataset: str, split: str) -> Any:
    """The verified rows of one architecture file of ``dataset`` and ``split``, with their input ``_order``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        info = verify_arch_file(f.parquet, f.arch, arrays=False)
    except DataIntegrityError as exc:
        raise DataIntegrityError(f"{exc}; {_RECOMPUTE}") from None
    t = info.table.replace_schema_metadata(None)
    if len(f.pairs) > 1:
        t = t.filter(pc.and_(pc.equal(t.column("dataset"), dataset), pc.equal(t.column("split"), split)))
    return t.append_column("_order", pa.array(np.full(t.num_rows, f.order, dtype=np.int64)))


def _read_block(plan: _Plan, dataset: str, split: str, lo: int) -> Any:
    """Every input row of ``dataset`` and ``split`` with an NB201 index in ``[lo, lo + BLOCK)``, or None."""
    import pyarrow as pa

    files = plan.by_pair.get((dataset, split), [])
    keys = [f.arch for f in files]
    here = files[bisect.bisect_left(keys, lo) : bisect.bisect_left(keys, lo + BLOCK)]
    tables = [_arch_rows(f, dataset, split) for f in here]
    if plan.spool is not None:
        t = plan.spool.read(dataset, lo // BLOCK, split)
        if t is not None and t.num_rows:
            tables.append(t)
    if not tables:
        return None
    schema = pa_schema().append(pa.field("_order", pa.int64(), nullable=False))
    return pa.concat_tables([t.cast(schema) for t in tables]).combine_chunks()


def _write_rows(writer: DatasetWriter, plan: _Plan, max_rows: int, report: MergeReport) -> CoverageBuilder:
    """The rows pass: results files per dataset and split, the wide matrices (none when a dataset's rows of
    different kinds share a column name), the coverage."""
    spec_json = json.dumps({h: plan.specs.get(h, {}) for h in report.specs})
    coverage = CoverageBuilder()
    found = Duplicates()
    pairs = plan.pairs()
    wide_ok = True
    for ds, group in itertools.groupby(pairs, key=lambda p: p[0]):
        wide = WideBuilder(ds) if wide_ok else None
        sources: dict[tuple[str, int], set[str]] = {}
        for _, split in group:
            with writer.results_stream(ds, split, spec_json, max_rows) as out:
                for lo in range(0, NUM_ARCHS, BLOCK):
                    t = _read_block(plan, ds, split, lo)
                    if t is None:
                        continue
                    t = dedup_sort(t, found)
                    check_corruption_sources(t, sources, ds)
                    out.write(t)
                    report.rows_out += t.num_rows
                    coverage.add(t)
                    if wide is not None:
                        wide.add(t)
        if wide is None:
            continue
        try:
            writer.add_wide_matrix(wide.finish())
        except DataIntegrityError as exc:
            writer.discard("wide")
            report.notes.append(no_wide_note(exc))
            wide_ok = False
    report.identical_dropped, report.conflicts, report.conflict_examples = (
        found.identical,
        found.conflicts,
        found.examples,
    )
    return coverage


# ---- arrays -----------------------------------------------------------------------------------------------------
def _dir_cells(order: int, reader: ArraysFile, dataset: str) -> Iterator[tuple[int, int, Any]]:
    for arch, arrays in reader.cells(dataset):
        yield arch, order, arrays


def _write_arrays(writer: DatasetWriter, plan: _Plan, on_conflict: str, max_bytes: int) -> tuple[int, int]:
    """The arrays pass: per dataset, every cell's arrays from every input holding them (compared where several
    do), in index order, into packed arrays files. Returns (arrays written, conflicting arrays)."""
    readers = [(order, ArraysFile(p)) for order, p in plan.array_files]
    try:
        datasets = {ds for f in plan.arch_files if f.arrays for ds, _ in f.pairs}
        datasets.update(ds for _, r in readers for ds in r.datasets())
        total = conflicts = 0
        for ds in sorted(datasets):
            shard_cells = sorted(
                ((f.arch, f.order, f) for f in plan.arch_files if f.arrays and any(d == ds for d, _ in f.pairs)),
                key=lambda x: (x[0], x[1]),
            )
            feeds = [iter(shard_cells), *(_dir_cells(order, r, ds) for order, r in readers)]
            merged = heapq.merge(*feeds, key=lambda x: (x[0], x[1]))
            prefix = f"{ds}/"
            with writer.arrays_stream(ds, max_bytes) as out:
                for arch, items in itertools.groupby(merged, key=lambda x: x[0]):
                    cell: dict[str, np.ndarray] = {}
                    for _, _, item in items:
                        arrays, where = (
                            (_shard_arrays(item), item.arrays) if isinstance(item, _ArchFile) else (item, "")
                        )
                        for key, a in arrays.items():
                            if not key.startswith(prefix):
                                continue
                            held = cell.get(key)
                            if held is None:
                                cell[key] = a
                            elif not np.array_equal(held, a):
                                conflicts += 1
                                if on_conflict == "error":
                                    raise MergeConflictError(
                                        f"array {key}{f' in {where}' if where else ''} differs from an earlier "
                                        "input; keep the first with on-conflict 'first'"
                                    )
                    total += out.add_cell(arch, cell)
        return total, conflicts
    finally:
        for _, r in readers:
            r.close()


def _shard_arrays(f: _ArchFile) -> dict[str, np.ndarray]:
    assert f.arrays is not None
    if not f.arrays.is_file():
        raise DataIntegrityError(f"{f.parquet} names arrays file {f.arrays}, which is missing; {_RECOMPUTE}")
    try:
        return read_arch_arrays(f.arrays, f.arrays_sha)
    except DataIntegrityError as exc:
        raise DataIntegrityError(f"{exc}; {_RECOMPUTE}") from None


# ---- the merge ----------------------------------------------------------------------------------------------------
def merge_datasets(
    inputs: list[str | Path],
    out: str | Path,
    *,
    allow_mixed_specs: bool = False,
    on_conflict: str = "error",
    max_rows_per_file: int = 2_000_000,
    max_array_bytes: int = 1 << 30,
    name: str | None = None,
    overwrite: bool = False,
) -> MergeReport:
    """Merge shard directories (``OUT`` of ``rb201 evaluate`` or single shard dirs) and dataset directories
    into the dataset directory ``out``: results split per dataset and split into files of at most
    ``max_rows_per_file`` rows, arrays into packed HDF5 files of about ``max_array_bytes`` each, a manifest with
    sha256, bytes, rows and arrays."""
    check_choice("on-conflict policy", on_conflict, ON_CONFLICT)
    out = Path(out)
    report = MergeReport(out)
    check_new_dataset_dir(out, overwrite=overwrite)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=f".spool{TMP_SUFFIX}", dir=out.parent))
    try:
        jobs: dict[str, dict[str, Any]] = {}
        plan = _scan([Path(p) for p in inputs], jobs, scratch)
        if not plan.sources:
            raise Rb201Error(f"the merge inputs {[str(p) for p in inputs]} hold no finished architecture yet")
        report.jobs = list(jobs.values())
        report.inputs = plan.sources
        report.rows_in = plan.rows_in
        report.specs = _check_specs(plan, allow_mixed_specs)
        with new_dataset_dir(out, overwrite=overwrite) as writer:
            coverage = _write_rows(writer, plan, max_rows_per_file, report)
            if report.conflicts and on_conflict == "error":
                raise MergeConflictError(
                    f"{report.conflicts} keys have conflicting values, e.g. {report.conflict_examples[0]}; "
                    "fix the inputs or keep the first occurrence (on-conflict 'first')"
                )
            report.coverage = coverage.finish()
            del coverage
            report.arrays, n_conf = _write_arrays(writer, plan, on_conflict, max_array_bytes)
            report.conflicts += n_conf
            writer.finish(
                name or out.name,
                time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                code_version(),
                specs={h: plan.specs.get(h, {}) for h in report.specs},
                extra={"jobs": report.jobs} if report.jobs else {},
            )
            report.files = [f.path for f in writer.files]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return report
