"""The dataset directory: ``manifest.json`` plus the files it lists. The one owner of this format, its layout and its
file names: merge, the importer of the published dataset, the embedded-table build and every reader go through it.

Layout::

    DATASET/
      manifest.json       {"format": "rb201-dataset", "schema_version": "3", "name", "created", "code_version",
                           "specs": {spec_hash: spec}, "files": [{"path", "kind", "sha256", "bytes",
                           "rows"?, "dataset"?, "arrays"?}, ...], ...extra keys kept as they are}
      results-*.parquet   tidy rows, schema v1 or v2 (kind ``results``; :mod:`robustbench201.store.schema`)
      arrays-NNN.h5       arrays of one dataset, packed (kind ``arrays``; below)
      wide-<ds>.parquet   a derived per-dataset matrix for fast lookups (kind ``wide``, :mod:`.wide`)

``schema_version``: 3 when the dataset holds arrays (in the packed layout), else the highest version of its results
files (1: every row on the test split; 2: rows of other splits too). rb201 reads versions 1, 2 and 3. ``rows``
(results files) and ``arrays`` (arrays files) count what the writer wrote.

Arrays files (version 3; root attributes ``rb201.arrays_layout`` = 2 and ``rb201.dataset``). Every array has a
``store.schema.array_path`` (``cifar10/arch_00042/nb201-200ep/seed_777/adversarial/pgd/eps_1/per-epsilon/correct``);
the path without its ``arch_NNNNN`` segment is its *kind*, and all arrays of one kind (the same key in every cell)
are the rows of one 2-D HDF5 dataset::

    /<kind>/data      cells x (array shape): row i is the array of cell cells[i]; chunked (about 16 KiB of rows
                      per chunk), gzip, byte shuffle for multi-byte types, resizable
    /<kind>/cells     int32, the NB201 index of each row, increasing (identical indexes of several kinds are one
                      HDF5 dataset, hard-linked from each kind)
    /<kind>/data.1,   further rows of the kind whose dtype or shape differs from the first (e.g. cells evaluated
    /<kind>/cells.1   on another number of images); .2, ... likewise

``data`` attributes: ``encoding`` "" (stored as they are), "packbits" (boolean per-sample flags packed 8 to a byte
along the last axis, ``numpy.packbits`` bit order; ``length`` their count), "narrow" (integers wider than 16 bits in
the narrowest of uint16, int16, uint32, int32 that holds them, e.g. confusion matrices; ``dtype`` their own type),
"bool" (a 0-d boolean as uint8) or "empty" (an array without elements: one zero byte per cell, its ``shape`` and
``dtype`` in attributes). Reading a
cell reads one row, hence one chunk, of each kind; an analysis of one kind over all cells reads one dataset. Cells go
into a file in increasing index order; a dataset's arrays continue in a new file after about 1 GiB.

Versions 1 and 2 stored every array at its ``array_path`` (a group per cell); :mod:`.arrays` reads both layouts and
``rb201.Dataset.arrays`` returns the same arrays, keyed by ``array_path``, from either.

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
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from .._version import __version__
from ..atomic import TMP_SUFFIX, WriteError, atomic_path, sha256_file, write_parquet_atomic, write_text_atomic
from ..errors import DataIntegrityError, Rb201Error
from .arrays import PackedWriter
from .integrity import Verified, verify_file
from .manifest import (
    DATASET_VERSION,
    FILE_KINDS,
    FORMAT,
    MANIFEST,
    NOT_DATA,
    READABLE_DATASET_VERSIONS,
    FileEntry,
    Manifest,
    manifest_format,
    parse_manifest,
    read_manifest,
)
from .schema import (
    ARRAY_PATH_DEPTH,
    COLUMNS,
    META_SCHEMA_VERSION,
    READABLE_SCHEMA_VERSIONS,
    SORT_COLUMNS,
    V1_COLUMNS,
    array_kind,
    pa_schema,
    storage_table,
    table_metadata,
)

__all__ = ["FORMAT", "MANIFEST", "FILE_KINDS", "NOT_DATA", "FileEntry", "Manifest", "parse_manifest",
           "read_manifest", "manifest_format", "DatasetDir", "results_file", "arrays_file", "wide_file",
           "file_entry", "DatasetWriter", "ResultsStream", "ArraysStream", "check_new_dataset_dir",
           "new_dataset_dir", "no_wide_note", "columns_table", "sort_rows", "write_dataset_dir", "DATASET_VERSION",
           "READABLE_DATASET_VERSIONS", "READABLE_SCHEMA_VERSIONS"]  # fmt: skip

log = logging.getLogger(__name__)


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


class _Stream(Protocol):
    def close(self, discard: bool = False) -> None: ...


_S = TypeVar("_S", bound=_Stream)


@contextlib.contextmanager
def _closing(stream: _S) -> Iterator[_S]:
    """Yield ``stream``; close it when the block ends, discarding its partial file if the block raises."""
    try:
        yield stream
    except BaseException:
        stream.close(discard=True)
        raise
    stream.close()


class DatasetWriter:
    """Writes the files of one dataset directory, each atomically and named here, then the manifest last (so a
    directory with a manifest is complete). Every producer of datasets writes through it: merge, the importer of
    the published dataset, the embedded-table build. The counts the manifest records are those written here."""

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory)
        self.path.mkdir(parents=True, exist_ok=True)
        self.files: list[FileEntry] = []
        self._versions: list[str] = []
        self._arrays_files = 0
        self._results_files = 0

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

    @contextlib.contextmanager
    def results_stream(self, dataset: str, split: str, spec_json: str, max_rows: int) -> Iterator[ResultsStream]:
        """Results files ``results-NNN.parquet`` (numbered in the order they are started) of one dataset and split,
        filled block by block (:meth:`ResultsStream.write`), a new file after ``max_rows`` rows; test-split files are
        schema v1 (no ``split`` column, as :func:`storage_table` stores them), others v2. The file being filled is
        put in place when it is full or the block ends; a block that raises leaves no partial file."""
        with _closing(ResultsStream(self, dataset, split, spec_json, max_rows)) as stream:
            yield stream

    def add_arrays(self, arrays: Mapping[str, np.ndarray]) -> list[FileEntry]:
        """Write ``arrays`` (keyed by ``store.schema.array_path``) in the packed layout, one file per dataset."""
        cells: dict[str, dict[int, dict[str, np.ndarray]]] = {}
        for key, a in arrays.items():
            ds, arch, _ = array_kind(key)
            cells.setdefault(ds, {}).setdefault(arch, {})[key] = a
        before = len(self.files)
        for ds in sorted(cells):
            with self.arrays_stream(ds) as stream:
                for arch in sorted(cells[ds]):
                    stream.add_cell(arch, cells[ds][arch])
        return self.files[before:]

    @contextlib.contextmanager
    def arrays_stream(self, dataset: str, max_bytes: int = 1 << 30) -> Iterator[ArraysStream]:
        """Arrays files of one dataset in the packed layout (:mod:`.arrays`), filled cell by cell in increasing
        NB201 index (:meth:`ArraysStream.add_cell`), a new file after about ``max_bytes`` of packed data. Each file
        is put in place when it is full or the block ends; a block that raises leaves no partial file."""
        with _closing(ArraysStream(self, dataset, max_bytes)) as stream:
            yield stream

    def add_wide(self, table: Any, *, required: bool = True) -> str | None:
        """Per dataset of ``table`` (tidy rows), its wide matrix as ``wide-<dataset>.parquet`` (:mod:`.wide`).
        When rows of different kinds (e.g. two weight sources) would share a column name, raise
        :class:`DataIntegrityError`, or with ``required=False`` write none and return why (queries then pivot the
        tidy rows on opening)."""
        from .wide import pivot

        try:
            wides = pivot(table)
        except DataIntegrityError as exc:
            if required:
                raise
            return no_wide_note(exc)
        for wide in wides.values():
            self.add_wide_matrix(wide)
        return None

    def add_wide_matrix(self, wide: Any) -> FileEntry:
        """One dataset's wide matrix (a :class:`robustbench201.store.wide.Wide`) as ``wide-<dataset>.parquet``."""
        from .wide import wide_table

        name = wide_file(wide.dataset)
        write_parquet_atomic(wide_table(wide), self.path / name)
        return self._add(name, "wide", dataset=wide.dataset)

    def discard(self, kind: str) -> None:
        """Remove the files of ``kind`` written so far (merge drops every wide table when one dataset has none)."""
        for f in [f for f in self.files if f.kind == kind]:
            (self.path / f.path).unlink(missing_ok=True)
            self.files.remove(f)

    def finish(
        self,
        name: str,
        created: str,
        code_version: str = __version__,
        specs: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Manifest:
        """Write ``manifest.json`` listing every file written (after all of them are in place); return it. Its
        schema version is 3 when it holds arrays (the packed layout), else the highest of the results files' (1 when
        all rows are on the test split)."""
        version = max(self._versions, key=int) if self._versions else "1"
        manifest = Manifest(
            name,
            created,
            code_version,
            tuple(self.files),
            specs=dict(specs or {}),
            extra=dict(extra or {}),
            schema_version=DATASET_VERSION if any(f.kind == "arrays" for f in self.files) else version,
        )
        write_text_atomic(self.path / MANIFEST, manifest.to_json())
        return manifest


def no_wide_note(exc: Exception) -> str:
    """What a dataset without wide tables says about them."""
    return f"no wide tables written (queries pivot the rows on opening instead): {exc}"


class ResultsStream:
    """The results files of one dataset and split being written (:meth:`DatasetWriter.results_stream`)."""

    def __init__(self, writer: DatasetWriter, dataset: str, split: str, spec_json: str, max_rows: int) -> None:
        import pyarrow as pa

        self._writer, self.dataset, self.max_rows = writer, dataset, max(1, max_rows)
        version = "1" if split == "test" else "2"
        schema = pa_schema()
        if version == "1":
            schema = pa.schema([schema.field(c) for c in V1_COLUMNS])
        self._schema = schema.with_metadata(table_metadata(spec_json, version))
        self._version = version
        self._stack: contextlib.ExitStack | None = None
        self._pw: Any = None
        self._name = ""
        self._rows = 0
        self.rows = 0  # rows written by this stream

    def write(self, table: Any) -> None:
        """Append rows (version-2 columns in memory, all of this dataset and split), in the order given."""
        lo = 0
        while lo < table.num_rows:
            if self._pw is None:
                self._open()
            take = min(table.num_rows - lo, self.max_rows - self._rows)
            part = table.slice(lo, take).select(self._schema.names).cast(self._schema)
            self._pw.write_table(part)
            self._rows += take
            self.rows += take
            lo += take
            if self._rows >= self.max_rows:
                self._close_file()

    def _open(self) -> None:
        import pyarrow.parquet as pq

        w = self._writer
        self._name = results_file(f"{w._results_files:03d}")
        w._results_files += 1
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_path(w.path / self._name))
        self._pw = pq.ParquetWriter(tmp, self._schema, compression="zstd")
        self._stack.callback(self._pw.close)  # closed before the rename
        self._rows = 0

    def _close_file(self, discard: bool = False) -> None:
        if self._stack is None:
            return
        stack, self._stack, self._pw = self._stack, None, None
        if discard:
            stack.__exit__(DataIntegrityError, DataIntegrityError("discarded"), None)
            return
        stack.close()
        self._writer._versions.append(self._version)
        self._writer._add(self._name, "results", rows=self._rows, dataset=self.dataset)
        log.info("wrote %s (%d rows)", self._name, self._rows)

    def close(self, discard: bool = False) -> None:
        self._close_file(discard)


class ArraysStream:
    """The packed arrays files of one dataset being written (:meth:`DatasetWriter.arrays_stream`)."""

    def __init__(self, writer: DatasetWriter, dataset: str, max_bytes: int) -> None:
        self._writer, self.dataset, self.max_bytes = writer, dataset, max_bytes
        self._stack: contextlib.ExitStack | None = None
        self._packed: PackedWriter | None = None
        self._name = ""
        self.count = 0  # arrays written by this stream

    def add_cell(self, arch: int, arrays: Mapping[str, np.ndarray]) -> int:
        """Add every array of cell ``arch`` (keyed by ``store.schema.array_path``, all of this dataset and cell);
        cells come in increasing index order. Returns the number of arrays added."""
        kinds = {}
        prefix = f"{self.dataset}/arch_{arch:05d}/"
        for key, a in arrays.items():
            if not (key.startswith(prefix) and key.count("/") == ARRAY_PATH_DEPTH - 1):
                ds, idx, _ = array_kind(key)  # names a malformed path
                raise DataIntegrityError(f"array {key!r} is not one of cell {arch} of dataset {self.dataset!r}")
            kinds[f"{self.dataset}/{key[len(prefix) :]}"] = a
        if not kinds:
            return 0
        if self._packed is None:
            self._open()
        n = self._packed.add(arch, kinds)  # type: ignore[union-attr]
        self.count += n
        if self._packed.nbytes >= self.max_bytes:  # type: ignore[union-attr]
            self._close_file()
        return n

    def _open(self) -> None:
        import h5py

        w = self._writer
        self._name = w._next_arrays_file()
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_path(w.path / self._name))
        # every chunk is written whole, once: the chunk cache would only hold memory
        fh = h5py.File(tmp, "w", track_order=False, rdcc_nbytes=0)
        self._stack.callback(fh.close)  # closed before the rename
        self._packed = PackedWriter(fh, self.dataset)

    def _close_file(self, discard: bool = False) -> None:
        if self._stack is None:
            return
        stack, packed = self._stack, self._packed
        self._stack, self._packed = None, None
        if discard:
            stack.__exit__(DataIntegrityError, DataIntegrityError("discarded"), None)
            return
        packed.finish()  # type: ignore[union-attr]
        stack.close()
        self._writer._add(self._name, "arrays", dataset=self.dataset, arrays=packed.count)  # type: ignore[union-attr]
        log.info("wrote %s (%d arrays)", self._name, packed.count)  # type: ignore[union-attr]

    def close(self, discard: bool = False) -> None:
        self._close_file(discard)


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
