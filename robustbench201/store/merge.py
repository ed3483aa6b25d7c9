"""Merge evaluation shards (and/or dataset directories) into one compact, validated dataset directory.

Inputs are checked (schema version, per-architecture HDF5 hashes, one spec per dataset unless mixed specs are
allowed); identical duplicate rows are dropped; conflicting duplicates (same key columns, different value) are
refused unless ``on_conflict="first"``. The output is written in a temporary directory beside the target and
renamed into place, so a crash never leaves a half-written dataset under the final name.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._version import code_version
from ..atomic import TMP_SUFFIX, WriteError
from ..errors import DataIntegrityError, Rb201Error, check_choice
from .dataset import (
    FORMAT,
    MANIFEST,
    FileEntry,
    Manifest,
    file_entry,
    manifest_format,
    manifest_schema_version,
    read_manifest,
)
from .schema import (
    KEY_COLUMNS,
    META_SCHEMA_VERSION,
    META_SPEC,
    SORT_COLUMNS,
    conform_table,
    pa_schema,
    storage_table,
    table_metadata,
)
from .validate import Coverage, compute_coverage, validate_dataset

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
    from .shardfile import read_shard_manifest

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
    from .shardfile import verify_arch_file

    sources: list[_Source] = []
    for d in inputs:
        if not d.is_dir():
            raise Rb201Error(f"merge input {d} is not a directory; give shard directories or dataset directories")
        if manifest_format(d) == FORMAT:
            rep = validate_dataset(d, coverage=False)
            rep.raise_if_bad()
            manifest = read_manifest(d)
            specs = manifest.specs
            arrays = [d / f.path for f in manifest.of_kind("arrays")]
            results = [d / f.path for f in manifest.of_kind("results")]
            for job in manifest.extra.get("jobs", []):
                if isinstance(job, dict):
                    _add_job(jobs, job)
            sources += [_Source(p, arrays if i == 0 else [], specs) for i, p in enumerate(results)]
            continue
        files = sorted(d.glob("arch-*.parquet")) + sorted(d.glob("shard-*/arch-*.parquet"))
        shard_dirs = [d] if list(d.glob("arch-*.parquet")) or (d / "manifest.json").is_file() else []
        found = 0
        for sd in shard_dirs + sorted(p for p in d.glob("shard-*") if p.is_dir()):
            job = _shard_job(sd)
            if job is not None:
                _add_job(jobs, job)
                found += 1
        if not files and not found:
            raise Rb201Error(f"merge input {d} holds no shard files (arch-*.parquet) and no dataset manifest")
        for p in files:
            if p.name.endswith(TMP_SUFFIX):
                continue
            try:
                info = verify_arch_file(p)
            except DataIntegrityError as exc:
                raise DataIntegrityError(f"{exc}; re-run the evaluate command of that shard to recompute it") from None
            spec = _file_spec(info.table)
            specs = {h: spec for h in info.spec_hashes if h}
            sources.append(_Source(p, [p.parent / info.arrays_file] if info.arrays_file else [], specs, info.table))
    return sources


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
    """Merge shard directories (``OUT`` of ``rb201 evaluate`` or single ``shard-*`` dirs) and dataset directories
    into the dataset directory ``out``: results split per dataset into files of at most ``max_rows_per_file``
    rows, arrays into HDF5 files of about ``max_array_bytes`` each, a manifest with sha256, bytes and rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    check_choice("on-conflict policy", on_conflict, ON_CONFLICT)
    out = Path(out)
    report = MergeReport(out)
    if out.exists() and not overwrite:
        raise WriteError(f"{out} already exists; choose another --out or allow overwriting it")
    jobs: dict[str, dict[str, Any]] = {}
    sources = _collect([Path(p) for p in inputs], jobs)
    if not sources:
        raise Rb201Error(f"the merge inputs {[str(p) for p in inputs]} hold no finished architecture yet")
    report.jobs = list(jobs.values())
    report.inputs = len(sources)
    tables = []
    specs: dict[str, Any] = {}
    for order, src in enumerate(sources):
        t = src.table if src.table is not None else pq.read_table(src.parquet)
        t = conform_table(t, str(src.parquet)).replace_schema_metadata(None)  # schema v1 rows: test split
        src.table = None
        tables.append(t.append_column("_order", pa.array(np.full(t.num_rows, order, dtype=np.int64))))
        specs.update(src.specs)
    df = pa.concat_tables(tables).to_pandas()
    report.rows_in = len(df)
    used = sorted(set(df["spec_hash"].unique()) - {""})
    for ds, part in df.groupby("dataset"):
        hashes = sorted(set(part["spec_hash"].unique()) - {""})
        if len(hashes) > 1 and not allow_mixed_specs:
            raise MergeConflictError(
                f"dataset {ds!r} mixes evaluation specs {hashes}; merge one spec at a time or allow mixed specs"
            )
    report.specs = used
    _check_corruption_sources(df)
    keys = list(KEY_COLUMNS)
    before = len(df)
    df = df.drop_duplicates(subset=keys + ["value"], keep="first")
    report.identical_dropped = before - len(df)
    clash = df.duplicated(subset=keys, keep=False)
    if clash.any():
        bad = df[clash]
        groups = bad.groupby(keys, dropna=False, sort=True)
        report.conflicts = groups.ngroups
        for k, g in list(groups)[:5]:
            desc = ", ".join(f"{c}={v}" for c, v in zip(keys, k))
            report.conflict_examples.append(f"{desc}: values {sorted(g['value'].tolist())}")
        if on_conflict == "error":
            raise MergeConflictError(
                f"{report.conflicts} keys have conflicting values, e.g. {report.conflict_examples[0]}; "
                "fix the inputs or keep the first occurrence (on-conflict 'first')"
            )
        df = df.drop_duplicates(subset=keys, keep="first")
    sort_cols = list(SORT_COLUMNS) + [c for c in keys if c not in SORT_COLUMNS]
    df = df.sort_values(sort_cols, kind="mergesort", na_position="first").drop(columns="_order")
    report.rows_out = len(df)
    report.coverage = compute_coverage(df)

    array_sources = [p for s in sources for p in s.arrays]
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=TMP_SUFFIX, dir=_make_parent(out)))
    try:
        tmp.chmod(0o755)
        files, versions = _write_results(df, tmp, specs, max_rows_per_file)
        arr_files, report.arrays, n_conf = _write_arrays(array_sources, tmp, on_conflict, max_array_bytes)
        report.conflicts += n_conf
        files += arr_files
        files += _write_wide(df, tmp, report)
        manifest = Manifest(
            name=name or out.name,
            created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            code_version=code_version(),
            files=tuple(files),
            specs={h: specs.get(h, {}) for h in used},
            extra={"jobs": report.jobs} if report.jobs else {},
            schema_version=manifest_schema_version(versions),
        )
        (tmp / MANIFEST).write_text(manifest.to_json())
        report.files = [f.path for f in files]
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def _make_parent(out: Path) -> Path:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"cannot create {out.parent}: {exc.strerror or exc}") from None
    if not os.access(out.parent, os.W_OK):
        raise WriteError(f"{out.parent} is not writable")
    return out.parent


def _replace_dir(tmp: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old{TMP_SUFFIX}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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


def _write_results(df: Any, tmp: Path, specs: dict[str, Any], max_rows: int) -> tuple[list[FileEntry], list[str]]:
    """Results files per dataset (at most ``max_rows`` rows each), each in its storage form; (entries, versions)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = []
    versions: list[str] = []
    meta = table_metadata(json.dumps({h: specs.get(h, {}) for h in sorted(set(df["spec_hash"]) - {""})}))
    n = 0
    for dataset, part in df.groupby("dataset", sort=True):
        for lo in range(0, len(part), max_rows):
            chunk = part.iloc[lo : lo + max_rows]
            schema = pa_schema()
            cols = [pa.array(chunk[f.name].to_numpy(), type=f.type, from_pandas=False) for f in schema]
            table = storage_table(pa.Table.from_arrays(cols, schema=schema).replace_schema_metadata(meta))
            versions.append(table.schema.metadata[META_SCHEMA_VERSION.encode()].decode())
            rel = f"results-{n:03d}.parquet"
            pq.write_table(table, tmp / rel, compression="zstd")
            files.append(file_entry(tmp, rel, "results", rows=len(chunk), dataset=str(dataset)))
            n += 1
    return files, versions


def _write_wide(df: Any, tmp: Path, report: MergeReport) -> list[FileEntry]:
    """The derived per-dataset wide matrices (fast queries); skipped, with a note, when rows of different kinds
    (e.g. two weight sources) would share a column name: the tidy rows stay complete either way."""
    import pyarrow as pa

    from .wide import pivot, write_wide

    cols = [pa.array(df[f.name].to_numpy(), type=f.type, from_pandas=False) for f in pa_schema()]
    try:
        wides = pivot(pa.Table.from_arrays(cols, schema=pa_schema()))
    except DataIntegrityError as exc:
        report.notes.append(f"no wide tables written (queries pivot the rows on opening instead): {exc}")
        return []
    out = []
    for ds, wide in wides.items():
        rel = f"wide-{ds}.parquet"
        write_wide(wide, tmp / rel)
        out.append(file_entry(tmp, rel, "wide", dataset=ds))
    return out


def _dataset_names(group: Any) -> list[str]:
    """Names (relative to ``group``) of the HDF5 datasets below it."""
    import h5py

    names: list[str] = []
    group.visititems(lambda n, obj: names.append(n) if isinstance(obj, h5py.Dataset) else None)
    return names


def _count_arrays(arch_group: Any) -> int:
    """Arrays below an architecture group: ``store.schema.array_path`` keys have a fixed depth (7 levels below
    ``dataset/arch_xxxxx``), so counting names at that depth avoids opening every object."""
    names: list[str] = []
    arch_group.visit(names.append)
    return sum(1 for n in names if n.count("/") == 6)


class _ArrayWriter:
    """Output ``arrays-NNN.h5`` files: one open file per dataset, rotated at about ``max_bytes``."""

    def __init__(self, tmp: Path, max_bytes: int) -> None:
        self.tmp, self.max_bytes = tmp, max_bytes
        self.current: dict[str, list[Any]] = {}  # dataset -> [h5py.File, rel path, bytes, arrays]
        self.closed: list[FileEntry] = []
        self.n = 0

    def file_for(self, dataset: str, size: int) -> Any:
        import h5py

        cur = self.current.get(dataset)
        if cur is not None and cur[2] >= self.max_bytes:
            self._close(dataset)
            cur = None
        if cur is None:
            rel = f"arrays-{self.n:03d}.h5"
            self.n += 1
            cur = self.current[dataset] = [h5py.File(self.tmp / rel, "w"), rel, 0, 0]
        cur[2] += size
        return cur

    def _close(self, dataset: str) -> None:
        fh, rel, _, count = self.current.pop(dataset)
        fh.close()
        self.closed.append(file_entry(self.tmp, rel, "arrays", dataset=dataset, arrays=count))

    def close(self) -> list[FileEntry]:
        for dataset in list(self.current):
            self._close(dataset)
        return sorted(self.closed, key=lambda e: e.path)


def _write_arrays(sources: list[Path], tmp: Path, on_conflict: str, max_bytes: int) -> tuple[list[FileEntry], int, int]:
    """Copy every array once into ``arrays-NNN.h5`` files (per dataset, split by size), keeping the
    ``store.schema.array_path`` keys; whole architecture groups are copied in one HDF5 call. Returns
    (manifest entries, arrays written, conflicting arrays)."""
    if not sources:
        return [], 0, 0
    import h5py

    writer = _ArrayWriter(tmp, max_bytes)
    owner: dict[str, list[Any]] = {}  # "dataset/arch_xxxxx" -> the writer slot holding it
    total = conflicts = 0
    try:
        for src in sources:
            size = src.stat().st_size
            with h5py.File(src, "r") as fh:
                groups = [f"{ds}/{arch}" for ds in fh for arch in fh[ds]]
                for gpath in groups:
                    slot = owner.get(gpath)
                    if slot is None:
                        slot = owner[gpath] = writer.file_for(gpath.split("/", 1)[0], size // max(len(groups), 1))
                        slot[0].copy(fh[gpath], gpath)
                        n = _count_arrays(fh[gpath])
                        slot[3] += n
                        total += n
                        continue
                    out = slot[0]
                    for name in _dataset_names(fh[gpath]):
                        key = f"{gpath}/{name}"
                        if key not in out:
                            out.copy(fh[key], key)
                            slot[3] += 1
                            total += 1
                        elif not np.array_equal(out[key][()], fh[key][()]):
                            conflicts += 1
                            if on_conflict == "error":
                                raise MergeConflictError(
                                    f"array {key} in {src} differs from an earlier input; keep the first with "
                                    "on-conflict 'first'"
                                )
    finally:
        files = writer.close()
    return files, total, conflicts
