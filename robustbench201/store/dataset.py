"""The dataset directory: ``manifest.json`` plus the files it lists. The one owner of this format, its layout and its
file names: merge, the importer of the published dataset, the embedded-table build and every reader go through it.

Layout::

    DATASET/
      manifest.json       {"format": "rb201-dataset", "schema_version": "1", "name", "created", "code_version",
                           "specs": {spec_hash: spec}, "files": [{"path", "kind", "sha256", "bytes",
                           "rows"?, "dataset"?, "arrays"?}, ...], ...extra keys kept as they are}
      results-*.parquet   tidy rows, schema v1 or v2 (kind ``results``; :mod:`robustbench201.store.schema`)
      arrays-*.h5         arrays at ``store.schema.array_path`` keys (kind ``arrays``)
      wide-<ds>.parquet   a derived per-dataset matrix for fast lookups (kind ``wide``, :mod:`.wide`)

Writers (:class:`DatasetWriter`) put every file in place atomically and write the manifest last, so a directory
with a manifest is complete. Readers (:class:`DatasetDir`: ``rb201.Dataset``, ``rb201.query(source=...)``, merge,
``--missing-from``) parse the manifest strictly, check every listed file's size on opening and its sha256 before
the file is first used (:func:`robustbench201.store.integrity.verify_file`, cheap on repeated opens), and refuse a
mismatch with an error naming the file; ``rb201 validate`` re-hashes everything and refuses unlisted files. A merged
dataset records the evaluation jobs of its shards (``jobs``: identity, shard folder, failures), from which
``rb201 merge`` prints the command that fills its gaps. The embedded table (``embedded/`` of the repository, shipped
as ``robustbench201._data``) is a dataset directory too. No torch import; pyarrow and h5py only in the writers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..atomic import TMP_SUFFIX, WriteError, atomic_path, sha256_file, write_parquet_atomic, write_text_atomic
from ..errors import DataIntegrityError, Rb201Error
from .integrity import Verified, verify_file
from .schema import (
    COLUMNS,
    META_SCHEMA_VERSION,
    READABLE_SCHEMA_VERSIONS,
    SCHEMA_VERSION,
    SORT_COLUMNS,
    pa_schema,
    storage_table,
    table_metadata,
)

__all__ = ["FORMAT", "MANIFEST", "FILE_KINDS", "NOT_DATA", "FileEntry", "Manifest", "parse_manifest",
           "read_manifest", "manifest_format", "DatasetDir", "results_file", "arrays_file", "wide_file",
           "file_entry", "DatasetWriter", "ArrayFiles", "check_new_dataset_dir", "new_dataset_dir",
           "columns_table", "sort_rows", "write_dataset_dir", "READABLE_SCHEMA_VERSIONS"]  # fmt: skip

log = logging.getLogger(__name__)

FORMAT = "rb201-dataset"
MANIFEST = "manifest.json"
FILE_KINDS: tuple[str, ...] = ("results", "arrays", "wide")
#: Files that may sit in a dataset folder without being data: the registry ``rb201 publish`` writes there by
#: default, and the package marker of the embedded table.
NOT_DATA = frozenset({"registry.json", "__init__.py"})
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_KNOWN_KEYS = ("format", "schema_version", "name", "created", "code_version", "specs", "files")


@dataclass(frozen=True)
class FileEntry:
    """One listed file: ``bytes`` its size, ``rows`` its scalar rows (-1: none), ``arrays`` its arrays (-1: none),
    ``dataset`` the one dataset it holds ("" if several or not applicable)."""

    path: str
    kind: str
    sha256: str
    bytes: int
    rows: int = -1
    dataset: str = ""
    arrays: int = -1

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "kind": self.kind, "sha256": self.sha256, "bytes": self.bytes}
        if self.rows >= 0:
            d["rows"] = self.rows
        if self.dataset:
            d["dataset"] = self.dataset
        if self.arrays >= 0:
            d["arrays"] = self.arrays
        return d


@dataclass(frozen=True)
class Manifest:
    """A parsed ``manifest.json``."""

    name: str
    created: str
    code_version: str
    files: tuple[FileEntry, ...]
    specs: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    schema_version: str = SCHEMA_VERSION

    def of_kind(self, kind: str) -> list[FileEntry]:
        return [f for f in self.files if f.kind == kind]

    def entry(self, path: str) -> FileEntry:
        for f in self.files:
            if f.path == path:
                return f
        raise DataIntegrityError(f"the manifest lists no file {path!r}; it lists {[f.path for f in self.files]}")

    def to_json(self) -> str:
        doc: dict[str, Any] = {
            "format": FORMAT,
            "schema_version": self.schema_version,
            "name": self.name,
            "created": self.created,
            "code_version": self.code_version,
            "specs": self.specs,
            "files": [f.to_dict() for f in sorted(self.files, key=lambda f: f.path)],
        }
        doc.update(self.extra)
        return json.dumps(doc, indent=1, sort_keys=True) + "\n"


# ---- reading ---------------------------------------------------------------------------------------------------
def _int_field(entry: dict[str, Any], key: str, where: str, default: int | None = None) -> int:
    v = entry.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < (0 if default is None else -1):
        raise DataIntegrityError(f"{where}: {key!r} is {v!r}; allowed: a non-negative integer")
    return v


def _file_entry(raw: object, k: int, where: str) -> FileEntry:
    at = f"{where}: files[{k}]"
    if not isinstance(raw, dict):
        raise DataIntegrityError(f"{at} is {raw!r}; allowed: an object with path, kind, sha256 and bytes")
    path = raw.get("path")
    if not isinstance(path, str) or not path or "/" in path or "\\" in path or path.startswith("."):
        raise DataIntegrityError(f"{at}: path {path!r} is not allowed; allowed: a plain file name inside the directory")
    kind = raw.get("kind")
    if kind not in FILE_KINDS:
        raise DataIntegrityError(f"{at} ({path}): kind {kind!r} is unknown; allowed: {', '.join(FILE_KINDS)}")
    sha = raw.get("sha256")
    if not isinstance(sha, str) or not _SHA256.match(sha):
        raise DataIntegrityError(f"{at} ({path}): sha256 {sha!r} is not 64 lowercase hex digits")
    dataset = raw.get("dataset", "")
    if not isinstance(dataset, str):
        raise DataIntegrityError(f"{at} ({path}): dataset {dataset!r} is not a string")
    return FileEntry(
        path,
        kind,
        sha,
        _int_field(raw, "bytes", f"{at} ({path})"),
        _int_field(raw, "rows", f"{at} ({path})", -1),
        dataset,
        _int_field(raw, "arrays", f"{at} ({path})", -1),
    )


def parse_manifest(doc: object, where: str = MANIFEST) -> Manifest:
    """Check a manifest's JSON document strictly; :class:`DataIntegrityError` naming the bad value otherwise."""
    if not isinstance(doc, dict):
        raise DataIntegrityError(f"{where} holds {type(doc).__name__} {doc!r:.60}; allowed: a JSON object")
    if doc.get("format") != FORMAT:
        raise DataIntegrityError(f"{where} has format {doc.get('format')!r}; an rb201 dataset has {FORMAT!r}")
    version = str(doc.get("schema_version"))
    if version not in READABLE_SCHEMA_VERSIONS:
        raise DataIntegrityError(
            f"{where} has schema version {doc.get('schema_version')!r}; this rb201 reads "
            f"{', '.join(READABLE_SCHEMA_VERSIONS)}"
        )
    files = doc.get("files", [])
    if not isinstance(files, list):
        raise DataIntegrityError(f"{where}: 'files' is {type(files).__name__} {files!r:.60}; allowed: a list")
    entries = tuple(_file_entry(f, k, where) for k, f in enumerate(files))
    seen: set[str] = set()
    for e in entries:
        if e.path in seen:
            raise DataIntegrityError(f"{where} lists {e.path!r} twice")
        seen.add(e.path)
    specs = doc.get("specs") or {}
    if not isinstance(specs, dict):
        raise DataIntegrityError(f"{where}: 'specs' is {type(specs).__name__}; allowed: an object spec_hash -> spec")
    return Manifest(
        name=str(doc.get("name", "")),
        created=str(doc.get("created", "")),
        code_version=str(doc.get("code_version", "")),
        files=entries,
        specs=dict(specs),
        extra={k: v for k, v in doc.items() if k not in _KNOWN_KEYS},
        schema_version=version,
    )


def read_manifest(directory: str | Path) -> Manifest:
    """Read and check ``DIRECTORY/manifest.json`` (the files themselves are not looked at)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise Rb201Error(f"dataset directory {str(directory)!r} does not exist")
    path = directory / MANIFEST
    if not path.is_file():
        raise DataIntegrityError(f"{directory} is not an rb201 dataset directory: no {MANIFEST}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataIntegrityError(f"{path} is not valid JSON: {exc}") from None
    except OSError as exc:
        raise DataIntegrityError(f"{path} cannot be read: {exc.strerror or exc}") from None
    m = parse_manifest(doc, str(path))
    return m if m.name else Manifest(**{**vars(m), "name": directory.name})


def manifest_format(directory: str | Path) -> str | None:
    """The ``format`` of ``DIRECTORY/manifest.json`` (dataset or shard), or None if there is none."""
    try:
        doc = json.loads((Path(directory) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc.get("format") if isinstance(doc, dict) else None


class DatasetDir:
    """An opened dataset directory. Opening parses the manifest and checks every listed file's size; :meth:`file`
    checks a file's sha256 before handing out its path (once per change of the file, see
    :mod:`robustbench201.store.integrity`)."""

    def __init__(self, path: str | Path, manifest: Manifest) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self._verified: set[str] = set()

    @classmethod
    def open(cls, path: str | Path, *, verify: bool = False) -> DatasetDir:
        """Open ``path``; with ``verify`` re-hash every listed file now (ignoring earlier verifications)."""
        manifest = read_manifest(path)
        d = cls(path, manifest)
        for e in manifest.files:
            p = d.path / e.path
            try:
                size = p.stat().st_size
            except OSError:
                raise DataIntegrityError(f"{p} is listed in {d.path / MANIFEST} but missing") from None
            if size != e.bytes:
                raise DataIntegrityError(f"{p} has {size} bytes; the manifest says {e.bytes} (truncated or changed)")
        if verify:
            d.verify_all(use_cache=False)
        return d

    def file(self, entry: FileEntry | str, *, use_cache: bool = True) -> Path:
        """The path of a listed file after checking its size and sha256 against the manifest."""
        e = self.manifest.entry(entry) if isinstance(entry, str) else entry
        if e.path not in self._verified:
            verify_file(self.path / e.path, e.sha256, e.bytes, use_cache=use_cache)
            self._verified.add(e.path)
        return self.path / e.path

    def verify_all(self, *, use_cache: bool = False) -> list[Verified]:
        """Check every listed file (re-hashing each unless ``use_cache``)."""
        out = []
        for e in self.manifest.files:
            out.append(verify_file(self.path / e.path, e.sha256, e.bytes, use_cache=use_cache))
            self._verified.add(e.path)
        return out


# ---- writing: the one writer of this format ---------------------------------------------------------------------
def results_file(part: str) -> str:
    """The name of a results file: ``results-<part>.parquet``."""
    return f"results-{part}.parquet"


def arrays_file(number: int) -> str:
    """The name of the ``number``-th arrays file: ``arrays-NNN.h5``."""
    return f"arrays-{number:03d}.h5"


def wide_file(dataset: str) -> str:
    """The name of a dataset's wide matrix: ``wide-<dataset>.parquet``."""
    return f"wide-{dataset}.parquet"


def file_entry(directory: Path, name: str, kind: str, rows: int = -1, dataset: str = "", arrays: int = -1) -> FileEntry:
    """Describe a file already written in ``directory``."""
    if kind not in FILE_KINDS:
        raise Rb201Error(f"unknown file kind {kind!r}; allowed: {', '.join(FILE_KINDS)}")
    p = directory / name
    return FileEntry(name, kind, sha256_file(p), p.stat().st_size, rows, dataset, arrays)


class DatasetWriter:
    """Writes the files of one dataset directory, each atomically and named here, then the manifest last (so a
    directory with a manifest is complete). Every producer of datasets writes through it: merge, the importer of
    the published dataset, the embedded-table build."""

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory)
        self.path.mkdir(parents=True, exist_ok=True)
        self.files: list[FileEntry] = []
        self._versions: list[str] = []
        self._arrays_files = 0

    def _add(self, name: str, kind: str, **counts: Any) -> FileEntry:
        entry = file_entry(self.path, name, kind, **counts)
        self.files.append(entry)
        return entry

    def _next_arrays_file(self) -> str:
        self._arrays_files += 1
        return arrays_file(self._arrays_files - 1)

    def add_results(self, table: Any, part: str, dataset: str = "") -> FileEntry:
        """Write a table of tidy rows (schema v2 in memory, metadata kept) in its storage form as
        ``results-<part>.parquet``; ``dataset``: the one dataset it holds, if so."""
        t = storage_table(table)
        self._versions.append(t.schema.metadata[META_SCHEMA_VERSION.encode()].decode())
        name = results_file(part)
        write_parquet_atomic(t, self.path / name)
        log.info("wrote %s (%d rows)", name, t.num_rows)
        return self._add(name, "results", rows=t.num_rows, dataset=dataset)

    def add_arrays(self, arrays: Mapping[str, np.ndarray]) -> FileEntry:
        """Write ``arrays`` at their ``store.schema.array_path`` keys into one HDF5 file (no timestamps)."""
        import h5py

        name = self._next_arrays_file()
        with atomic_path(self.path / name) as tmp, h5py.File(tmp, "w", track_order=False) as fh:
            for key in sorted(arrays):
                a = arrays[key]
                # small arrays (confusion matrices) are stored contiguously: chunk + filter overhead would dominate
                opts = {"compression": "gzip", "shuffle": True} if a.nbytes > 1 << 14 else {}
                fh.create_dataset(key, data=a, track_times=False, **opts)
        return self._add(name, "arrays", arrays=len(arrays))

    def array_files(self, max_bytes: int) -> ArrayFiles:
        """HDF5 files to copy arrays into, one per dataset at a time, a new one after about ``max_bytes``."""
        return ArrayFiles(self, max_bytes)

    def add_wide(self, table: Any, *, required: bool = True) -> str | None:
        """Per dataset of ``table`` (tidy rows), its wide matrix as ``wide-<dataset>.parquet`` (:mod:`.wide`).
        When rows of different kinds (e.g. two weight sources) would share a column name, raise
        :class:`DataIntegrityError`, or with ``required=False`` write none and return why (queries then pivot the
        tidy rows on opening)."""
        from .wide import pivot, wide_table

        try:
            wides = pivot(table)
        except DataIntegrityError as exc:
            if required:
                raise
            return f"no wide tables written (queries pivot the rows on opening instead): {exc}"
        for ds, wide in wides.items():
            name = wide_file(ds)
            write_parquet_atomic(wide_table(wide), self.path / name)
            self._add(name, "wide", dataset=ds)
        return None

    def finish(
        self,
        name: str,
        created: str,
        code_version: str = __version__,
        specs: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Manifest:
        """Write ``manifest.json`` listing every file written (after all of them are in place); return it. Its
        schema version is the highest of the results files' (version 1 when all are)."""
        manifest = Manifest(
            name,
            created,
            code_version,
            tuple(self.files),
            specs=dict(specs or {}),
            extra=dict(extra or {}),
            schema_version=max(self._versions, key=int) if self._versions else "1",
        )
        write_text_atomic(self.path / MANIFEST, manifest.to_json())
        return manifest


class ArrayFiles:
    """``arrays-NNN.h5`` files filled by copying HDF5 groups and arrays (merge): per dataset one file receives new
    groups, a new one after about ``max_bytes``. Files stay open until the end, so an array of a group met again in a
    later input is compared with, or added to, the file holding that group; each file is put in place atomically
    when the block ends (a context manager: the files of a block that raises are discarded)."""

    def __init__(self, writer: DatasetWriter, max_bytes: int) -> None:
        self._writer, self.max_bytes = writer, max_bytes
        self._files: list[_OpenArrays] = []
        self._current: dict[str, _OpenArrays] = {}  # dataset -> the file receiving its new groups
        self._holder: dict[str, _OpenArrays] = {}  # group path ("dataset/arch_xxxxx") -> the file holding it
        self.total = 0  # arrays copied

    def __enter__(self) -> ArrayFiles:
        return self

    def __exit__(self, *exc: Any) -> None:
        for f in self._files:  # in name order
            if not f.stack.__exit__(*exc) and exc[0] is None:
                self._writer._add(f.name, "arrays", dataset=f.dataset, arrays=f.arrays)

    def has_group(self, group: str) -> bool:
        return group in self._holder

    def copy_group(self, source: Any, group: str, size: int) -> None:
        """Copy the HDF5 group ``source`` (every array of one architecture) to ``group``; ``size``: its share of
        its file's bytes, counted towards ``max_bytes``."""
        dataset = group.split("/", 1)[0]
        f = self._current.get(dataset)
        if f is None or f.bytes >= self.max_bytes:
            f = _OpenArrays.create(self._writer.path, self._writer._next_arrays_file(), dataset)
            self._current[dataset] = f
            self._files.append(f)
        f.bytes += size
        f.fh.copy(source, group)
        n = _count_arrays(source)
        f.arrays += n
        self.total += n
        self._holder[group] = f

    def get(self, group: str, key: str) -> Any:
        """The copied array at ``key`` (below ``group``), or None."""
        return self._holder[group].fh.get(key)

    def copy_array(self, source: Any, group: str, key: str) -> None:
        """Copy one array into the file that holds ``group``."""
        f = self._holder[group]
        f.fh.copy(source, key)
        f.arrays += 1
        self.total += 1


@dataclass
class _OpenArrays:
    """One arrays file being filled under a temporary name (renamed into place when ``stack`` closes)."""

    name: str
    dataset: str
    fh: Any
    stack: contextlib.ExitStack
    bytes: int = 0
    arrays: int = 0

    @classmethod
    def create(cls, directory: Path, name: str, dataset: str) -> _OpenArrays:
        import h5py

        stack = contextlib.ExitStack()
        tmp = stack.enter_context(atomic_path(directory / name))
        fh = h5py.File(tmp, "w")
        stack.callback(fh.close)  # closed before the rename
        return cls(name, dataset, fh, stack)


def _count_arrays(group: Any) -> int:
    """Arrays below an architecture group: ``store.schema.array_path`` keys have a fixed depth (7 levels below
    ``dataset/arch_xxxxx``), so counting names at that depth avoids opening every object."""
    names: list[str] = []
    group.visit(names.append)
    return sum(1 for n in names if n.count("/") == 6)


def check_new_dataset_dir(out: str | Path, *, overwrite: bool = False) -> None:
    """Refuse (:class:`WriteError`) an ``out`` that exists (unless ``overwrite``) or whose parent cannot be written."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise WriteError(f"{out} already exists; choose another output directory or allow overwriting it")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"cannot create {out.parent}: {exc.strerror or exc}") from None
    if not os.access(out.parent, os.W_OK):
        raise WriteError(f"{out.parent} is not writable")


@contextlib.contextmanager
def new_dataset_dir(out: str | Path, *, overwrite: bool = False) -> Iterator[DatasetWriter]:
    """A :class:`DatasetWriter` into a temporary directory beside ``out``, renamed to ``out`` when the block
    succeeds (replacing an existing ``out`` only with ``overwrite``); a block that raises leaves ``out`` as it
    was."""
    out = Path(out)
    check_new_dataset_dir(out, overwrite=overwrite)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=TMP_SUFFIX, dir=out.parent))
    try:
        tmp.chmod(0o755)
        yield DatasetWriter(tmp)
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace_dir(tmp: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old{TMP_SUFFIX}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def columns_table(columns: Mapping[str, Any], spec_json: str = "{}"):  # type: ignore[no-untyped-def]
    """Column arrays (numpy arrays or lists, one per schema column; without ``split`` every row is on the test split)
    -> a pyarrow Table of version-2 rows (in memory; :func:`storage_table` gives the form to write)."""
    import pyarrow as pa

    missing = [c for c in COLUMNS if c not in columns and c != "split"]
    if missing:
        raise DataIntegrityError(f"rows lack schema columns {missing}")
    schema = pa_schema()
    n = len(next(iter(columns.values()))) if columns else 0
    cols = {"split": ["test"] * n, **columns}
    arrays = [pa.array(cols[f.name], type=f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema).replace_schema_metadata(table_metadata(spec_json))


def sort_rows(table):  # type: ignore[no-untyped-def]
    """Sort a results table by the ``SORT_COLUMNS`` it has (stable, deterministic)."""
    return table.sort_by([(c, "ascending") for c in SORT_COLUMNS if c in table.column_names])


def write_dataset_dir(
    out_dir: str | Path,
    parts: Mapping[str, Any],
    name: str,
    created: str,
    arrays: Mapping[str, np.ndarray] | None = None,
    code_version: str = __version__,
    extra: dict[str, Any] | None = None,
    specs: dict[str, Any] | None = None,
) -> Manifest:
    """Write ``results-<part>.parquet`` for each tidy table in ``parts`` (sorted by ``SORT_COLUMNS``), an arrays
    file if ``arrays``, ``wide-<dataset>.parquet`` per dataset, then ``manifest.json``, into ``out_dir`` (files
    already there and not listed are left alone). Returns the manifest."""
    import pyarrow as pa

    writer = DatasetWriter(out_dir)
    tables = []
    for part in sorted(parts):
        t = sort_rows(parts[part])
        if not t.schema.metadata or META_SCHEMA_VERSION.encode() not in t.schema.metadata:
            t = t.replace_schema_metadata(table_metadata())
        tables.append(t)
        writer.add_results(t, part)
    if arrays:
        writer.add_arrays(arrays)
    if tables:
        writer.add_wide(pa.concat_tables(tables))
    return writer.finish(name, created, code_version, specs, extra)
