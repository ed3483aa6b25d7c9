"""Merge evaluation shards (and/or dataset directories) into one compact, validated dataset directory.

Inputs are checked (schema version, per-architecture HDF5 hashes, one spec per dataset unless mixed specs are
allowed); identical duplicate rows are dropped; conflicting duplicates (same key columns, different value) are
refused unless ``on_conflict="first"``. The output is written in a temporary directory beside the target and
renamed into place, so a crash never leaves a half-written dataset under the final name.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._version import code_version
from ..errors import DataIntegrityError, Rb201Error, check_choice
from .dataset import FORMAT, DatasetWriter, check_new_dataset_dir, manifest_format, new_dataset_dir, read_manifest
from .schema import KEY_COLUMNS, META_SPEC, SORT_COLUMNS, conform_table, pa_schema, table_metadata
from .shardfile import arch_files, read_shard_manifest, shards_in, verify_arch_file
from .validate import Coverage, compute_coverage, validate_dataset

__all__ = ["ON_CONFLICT", "MergeConflictError", "MergeReport", "merge_datasets"]

log = logging.getLogger(__name__)

ON_CONFLICT = ("error", "first")


class MergeConflictError(Rb201Error):
    """Rows or arrays with the same key but different values, or shards of different specs."""


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


@dataclass
class _Source:
    parquet: Path
    arrays: list[Path]
    specs: dict[str, Any]
    table: Any = None  # already read (and checked) pyarrow Table


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


def _collect(inputs: list[Path], jobs: dict[str, dict[str, Any]]) -> list[_Source]:
    """Per-architecture shard files (verified) and dataset-directory files, in input order; the job records of the
    shards (and those dataset directories carry) are gathered in ``jobs``."""
    sources: list[_Source] = []
    for d in inputs:
        if not d.is_dir():
            raise Rb201Error(f"merge input {d} is not a directory; give shard directories or dataset directories")
        if manifest_format(d) == FORMAT:
            sources += _dataset_sources(d, jobs)
            continue
        shards = shards_in(d)
        files = [p for sd in shards for p in arch_files(sd).values()]
        found = 0
        for sd in shards:
            job = _shard_job(sd)
            if job is not None:
                _add_job(jobs, job)
                found += 1
        if not files and not found:
            raise Rb201Error(f"merge input {d} holds no shard files (per-architecture files) and no dataset manifest")
        for p in files:
            try:
                info = verify_arch_file(p)
            except DataIntegrityError as exc:
                raise DataIntegrityError(f"{exc}; re-run the evaluate command of that shard to recompute it") from None
            spec = _file_spec(info.table)
            specs = {h: spec for h in info.spec_hashes if h}
            sources.append(_Source(p, [p.parent / info.arrays_file] if info.arrays_file else [], specs, info.table))
    return sources


def _dataset_sources(d: Path, jobs: dict[str, dict[str, Any]]) -> list[_Source]:
    """The results files of a (validated) dataset directory, its arrays files with the first; its job records are
    gathered in ``jobs``."""
    rep = validate_dataset(d, coverage=False)
    rep.raise_if_bad()
    manifest = read_manifest(d)
    arrays = [d / f.path for f in manifest.of_kind("arrays")]
    results = [d / f.path for f in manifest.of_kind("results")]
    for job in manifest.extra.get("jobs", []):
        if isinstance(job, dict):
            _add_job(jobs, job)
    return [_Source(p, arrays if i == 0 else [], manifest.specs) for i, p in enumerate(results)]


def _file_spec(table: Any) -> Any:
    meta = table.schema.metadata or {}
    try:
        return json.loads(meta.get(META_SPEC.encode(), b"{}").decode())
    except json.JSONDecodeError:
        return {}


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
    into the dataset directory ``out``: results split per dataset into files of at most ``max_rows_per_file``
    rows, arrays into HDF5 files of about ``max_array_bytes`` each, a manifest with sha256, bytes and rows."""
    check_choice("on-conflict policy", on_conflict, ON_CONFLICT)
    out = Path(out)
    report = MergeReport(out)
    check_new_dataset_dir(out, overwrite=overwrite)
    jobs: dict[str, dict[str, Any]] = {}
    sources = _collect([Path(p) for p in inputs], jobs)
    if not sources:
        raise Rb201Error(f"the merge inputs {[str(p) for p in inputs]} hold no finished architecture yet")
    report.jobs = list(jobs.values())
    report.inputs = len(sources)
    array_sources = [p for s in sources for p in s.arrays]
    df, specs = _read_rows(sources)
    report.rows_in = len(df)
    report.specs = _check_specs(df, allow_mixed_specs)
    _check_corruption_sources(df)
    df = _drop_duplicates(df, on_conflict, report)
    sort_cols = list(SORT_COLUMNS) + [c for c in KEY_COLUMNS if c not in SORT_COLUMNS]
    df = df.sort_values(sort_cols, kind="mergesort", na_position="first").drop(columns="_order")
    report.rows_out = len(df)
    report.coverage = compute_coverage(df)
    with new_dataset_dir(out, overwrite=overwrite) as writer:
        _write_results(writer, df, specs, max_rows_per_file)
        report.arrays, n_conf = _write_arrays(writer, array_sources, on_conflict, max_array_bytes)
        report.conflicts += n_conf
        note = writer.add_wide(_rows_table(df), required=False)
        report.notes += [note] if note else []
        writer.finish(
            name or out.name,
            time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            code_version(),
            specs={h: specs.get(h, {}) for h in report.specs},
            extra={"jobs": report.jobs} if report.jobs else {},
        )
        report.files = [f.path for f in writer.files]
    return report


def _read_rows(sources: list[_Source]) -> tuple[Any, dict[str, Any]]:
    """Every source's rows as one DataFrame (schema v1 rows on the test split; ``_order``: the source's position,
    which decides what "first" means) and the specs they name."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    specs: dict[str, Any] = {}
    for order, src in enumerate(sources):
        t = src.table if src.table is not None else pq.read_table(src.parquet)
        t = conform_table(t, str(src.parquet)).replace_schema_metadata(None)
        src.table = None
        tables.append(t.append_column("_order", pa.array(np.full(t.num_rows, order, dtype=np.int64))))
        specs.update(src.specs)
    return pa.concat_tables(tables).to_pandas(), specs


def _check_specs(df: Any, allow_mixed_specs: bool) -> list[str]:
    """The spec hashes the rows use; refuse a dataset evaluated with several unless they are allowed."""
    for ds, part in df.groupby("dataset"):
        hashes = sorted(set(part["spec_hash"].unique()) - {""})
        if len(hashes) > 1 and not allow_mixed_specs:
            raise MergeConflictError(
                f"dataset {ds!r} mixes evaluation specs {hashes}; merge one spec at a time or allow mixed specs"
            )
    return sorted(set(df["spec_hash"].unique()) - {""})


def _drop_duplicates(df: Any, on_conflict: str, report: MergeReport) -> Any:
    """Drop identical duplicate rows; refuse rows with the same key and another value, or keep the first."""
    keys = list(KEY_COLUMNS)
    before = len(df)
    df = df.drop_duplicates(subset=keys + ["value"], keep="first")
    report.identical_dropped = before - len(df)
    clash = df.duplicated(subset=keys, keep=False)
    if not clash.any():
        return df
    groups = df[clash].groupby(keys, dropna=False, sort=True)
    report.conflicts = groups.ngroups
    for k, g in list(groups)[:5]:
        desc = ", ".join(f"{c}={v}" for c, v in zip(keys, k))
        report.conflict_examples.append(f"{desc}: values {sorted(g['value'].tolist())}")
    if on_conflict == "error":
        raise MergeConflictError(
            f"{report.conflicts} keys have conflicting values, e.g. {report.conflict_examples[0]}; "
            "fix the inputs or keep the first occurrence (on-conflict 'first')"
        )
    return df.drop_duplicates(subset=keys, keep="first")


def _check_corruption_sources(df: Any) -> None:
    """Refuse corruption rows of one result column that come from different sources: their ``source`` says which
    corruption set they were measured on (the published files, or a version of the generator), and numbers from
    two sets must not share a column."""
    cols = ["dataset", "key", "severity"]
    corr = df.loc[df["family"] == "corruption", [*cols, "source"]].drop_duplicates()
    clash = corr[corr.duplicated(cols, keep=False)]
    if not clash.empty:
        ds, key, sev = clash.iloc[0][cols]
        same = (clash["dataset"] == ds) & (clash["key"] == key) & (clash["severity"] == sev)
        found = sorted(clash.loc[same, "source"])
        raise MergeConflictError(
            f"dataset {ds!r}: corruption {key!r} severity {sev} has rows from different sources {found} (e.g. "
            "two versions of the corruption generator); merge results of one corruption source at a time"
        )


def _rows_table(rows: Any, meta: dict[bytes, bytes] | None = None) -> Any:
    """A DataFrame of tidy rows as a pyarrow Table of the schema's columns."""
    import pyarrow as pa

    schema = pa_schema()
    cols = [pa.array(rows[f.name].to_numpy(), type=f.type, from_pandas=False) for f in schema]
    return pa.Table.from_arrays(cols, schema=schema).replace_schema_metadata(meta)


def _write_results(writer: DatasetWriter, df: Any, specs: dict[str, Any], max_rows: int) -> None:
    """Results files per dataset, at most ``max_rows`` rows each."""
    meta = table_metadata(json.dumps({h: specs.get(h, {}) for h in sorted(set(df["spec_hash"]) - {""})}))
    n = 0
    for dataset, part in df.groupby("dataset", sort=True):
        for lo in range(0, len(part), max_rows):
            writer.add_results(_rows_table(part.iloc[lo : lo + max_rows], meta), f"{n:03d}", dataset=str(dataset))
            n += 1


def _dataset_names(group: Any) -> list[str]:
    """Names (relative to ``group``) of the HDF5 datasets below it."""
    import h5py

    names: list[str] = []
    group.visititems(lambda n, obj: names.append(n) if isinstance(obj, h5py.Dataset) else None)
    return names


def _write_arrays(writer: DatasetWriter, sources: list[Path], on_conflict: str, max_bytes: int) -> tuple[int, int]:
    """Copy every array once into the dataset's arrays files (per dataset, split by size), keeping the
    ``store.schema.array_path`` keys; whole architecture groups are copied in one HDF5 call. Returns (arrays
    written, conflicting arrays)."""
    if not sources:
        return 0, 0
    import h5py

    conflicts = 0
    with writer.array_files(max_bytes) as files:
        for src in sources:
            size = src.stat().st_size
            with h5py.File(src, "r") as fh:
                groups = [f"{ds}/{arch}" for ds in fh for arch in fh[ds]]
                for gpath in groups:
                    if not files.has_group(gpath):
                        files.copy_group(fh[gpath], gpath, size // max(len(groups), 1))
                        continue
                    for name in _dataset_names(fh[gpath]):
                        key = f"{gpath}/{name}"
                        held = files.get(gpath, key)
                        if held is None:
                            files.copy_array(fh[key], gpath, key)
                        elif not np.array_equal(held[()], fh[key][()]):
                            conflicts += 1
                            if on_conflict == "error":
                                raise MergeConflictError(
                                    f"array {key} in {src} differs from an earlier input; keep the first with "
                                    "on-conflict 'first'"
                                )
    return files.total, conflicts
