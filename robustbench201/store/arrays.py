"""Arrays inside a dataset's ``arrays-*.h5`` files: the packed layout :class:`~.dataset.DatasetWriter` writes, and the
reading of it and of the layout before it. The format itself is described once, in :mod:`robustbench201.store.dataset`.

:class:`PackedWriter` fills an open HDF5 file cell by cell (cells in increasing NB201 index): each array joins the
2-D dataset of its kind (:func:`robustbench201.store.schema.array_kind`), one row per cell, buffered until whole
chunks are full; per-sample flags are bit-packed first. :class:`ArraysFile` reads one cell's arrays
(:meth:`ArraysFile.cell`) or every cell in index order (:meth:`ArraysFile.cells`, what merge streams), from either
layout, keyed by ``store.schema.array_path`` as they were written. Memory: a writer holds about ``WRITE_BYTES`` (or
one array, if larger) per kind and the cell list of each kind (4 bytes per cell); a streaming reader one chunk per
kind. No torch import.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataIntegrityError
from .schema import ARRAY_PATH_DEPTH, kind_array_path

__all__ = ["LAYOUT_ATTR", "DATASET_ATTR", "PACKED_LAYOUT", "CHUNK_BYTES", "PackedWriter", "ArraysFile", "narrow",
           "read_datasets"]  # fmt: skip

LAYOUT_ATTR = "rb201.arrays_layout"  # root attribute: 2 for the packed layout; absent in layout 1 (a group per cell)
DATASET_ATTR = "rb201.dataset"  # root attribute: the dataset the file holds
PACKED_LAYOUT = 2
#: Target raw size of one chunk (rows of one kind): reading one cell decompresses one chunk per kind.
CHUNK_BYTES = 1 << 14
MAX_CHUNK_ROWS = 1024
#: Bytes of whole chunks a kind buffers before they are written in one call (fewer, larger HDF5 writes).
WRITE_BYTES = 8 * CHUNK_BYTES
_ENCODING, _LENGTH, _SHAPE, _DTYPE = "encoding", "length", "shape", "dtype"
#: Integers wider than 16 bits are stored in the narrowest of these that holds an array's values (the image counts of
#: a confusion matrix fit 16 bits): a quarter of the bytes to compress and read; readers get the original type back.
_NARROW = (np.uint16, np.int16, np.uint32, np.int32)


# ---- encoding of one array ------------------------------------------------------------------------------------
def narrow(a: np.ndarray) -> tuple[np.ndarray, str]:
    """(``a`` in the narrowest of ``uint16``, ``int16``, ``uint32``, ``int32`` narrower than its own integer type that
    holds its values, its original dtype), or (``a``, "") for anything else."""
    if a.dtype.kind not in "iu" or a.dtype.itemsize <= 2 or a.size == 0:
        return a, ""
    lo, hi = int(a.min()), int(a.max())
    for t in _NARROW:
        info = np.iinfo(t)
        if info.bits < 8 * a.dtype.itemsize and info.min <= lo and hi <= info.max:
            return a.astype(t), a.dtype.str
    return a, ""


def _encode(a: np.ndarray) -> tuple[np.ndarray, str, int, str]:
    """(stored row, encoding, length, original dtype): booleans with an axis are bit-packed along the last one
    (``packbits``, ``length`` its unpacked size), a 0-d boolean is stored as uint8 (``bool``), an array with no
    element as one zero byte (``empty``; its shape and dtype in attributes), integers narrowed (``narrow``, see
    :func:`narrow`), anything else as it is (``""``)."""
    a = np.asarray(a)
    if a.size == 0:
        return np.zeros(1, np.uint8), "empty", 0, a.dtype.str
    if a.dtype == np.bool_:
        if a.ndim == 0:
            return a.astype(np.uint8), "bool", 0, ""
        return np.packbits(a, axis=-1), "packbits", a.shape[-1], ""
    stored, orig = narrow(a)
    return (stored, "narrow", 0, orig) if orig else (a, "", 0, "")


def _decode(row: Any, encoding: str, length: int, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    if encoding == "packbits":
        return np.unpackbits(np.asarray(row), axis=-1, count=length).astype(bool)
    if encoding == "bool":
        return np.asarray(row).astype(bool)
    if encoding == "empty":
        return np.empty(shape, dtype=np.dtype(dtype))
    if encoding == "narrow":
        return np.asarray(row).astype(np.dtype(dtype))
    return np.asarray(row)


# ---- writing ----------------------------------------------------------------------------------------------------
@dataclass
class _Variant:
    """The rows of one kind that share a stored dtype and shape (almost always the only one of its kind)."""

    group: Any  # h5py Group of the kind
    suffix: str  # "" for the first variant, ".1", ".2", ... for others
    dtype: np.dtype
    row_shape: tuple[int, ...]
    encoding: str
    length: int
    orig: str  # the dtype of the arrays when stored in another (narrowed or empty), else ""
    empty: tuple[int, ...] | None  # the shape of an empty array
    chunk_rows: int
    write_rows: int  # rows buffered before a write: whole chunks, about WRITE_BYTES
    buffer: list[np.ndarray] = field(default_factory=list)
    cells: array = field(default_factory=lambda: array("i"))
    rows: int = 0
    data: Any = None


class PackedWriter:
    """Writes cells into an open, empty HDF5 file in the packed layout; :meth:`finish` before closing it."""

    def __init__(self, fh: Any, dataset: str) -> None:
        self.fh = fh
        self.dataset = dataset
        self.count = 0  # arrays written
        self.nbytes = 0  # their stored (packed) bytes before compression
        self._kinds: dict[str, list[_Variant]] = {}
        self._last = -1
        fh.attrs[LAYOUT_ATTR] = PACKED_LAYOUT
        fh.attrs[DATASET_ATTR] = dataset

    def add(self, arch: int, arrays: Mapping[str, np.ndarray]) -> int:
        """Add the arrays of cell ``arch`` (keyed by kind, all of this file's dataset); cells come in increasing index
        order. Returns the number of arrays added."""
        if arch <= self._last:
            raise DataIntegrityError(f"arrays of cell {arch} come after cell {self._last}; cells go in index order")
        self._last = arch
        for kind in sorted(arrays):
            if kind.split("/", 1)[0] != self.dataset or kind.count("/") != ARRAY_PATH_DEPTH - 2:
                raise DataIntegrityError(f"array kind {kind!r} is not one of dataset {self.dataset!r}")
            a = np.asarray(arrays[kind])
            stored, encoding, length, orig = _encode(a)
            v = self._variant(kind, a, stored, encoding, length, orig)
            v.buffer.append(stored)
            v.cells.append(arch)
            self.nbytes += stored.nbytes
            if len(v.buffer) >= v.write_rows:
                self._flush(v)
        self.count += len(arrays)
        return len(arrays)

    def _variant(self, kind: str, a: np.ndarray, stored: np.ndarray, encoding: str, length: int, orig: str) -> _Variant:
        variants = self._kinds.setdefault(kind, [])
        empty = a.shape if encoding == "empty" else None
        for v in variants:
            if (v.dtype, v.row_shape, v.encoding, v.length, v.orig, v.empty) == (
                stored.dtype, stored.shape, encoding, length, orig, empty
            ):  # fmt: skip
                return v
        group = variants[0].group if variants else self.fh.create_group(kind)
        rows = max(1, min(MAX_CHUNK_ROWS, CHUNK_BYTES // max(stored.nbytes, 1)))
        write = rows * max(1, WRITE_BYTES // (rows * max(stored.nbytes, 1)))
        suffix = f".{len(variants)}" if variants else ""
        v = _Variant(group, suffix, stored.dtype, stored.shape, encoding, length, orig, empty, rows, write)
        variants.append(v)
        return v

    def _flush(self, v: _Variant) -> None:
        if not v.buffer:
            return
        block = np.stack(v.buffer)
        if v.data is None:
            v.data = v.group.create_dataset(
                "data" + v.suffix,
                shape=(0, *v.row_shape),
                maxshape=(None, *v.row_shape),
                chunks=(v.chunk_rows, *v.row_shape),
                dtype=v.dtype,
                compression="gzip",
                shuffle=v.dtype.itemsize > 1,
                track_times=False,
            )
            v.data.attrs[_ENCODING] = v.encoding
            if v.encoding == "packbits":
                v.data.attrs[_LENGTH] = v.length
            if v.orig:
                v.data.attrs[_DTYPE] = v.orig
            if v.empty is not None:
                v.data.attrs[_SHAPE] = np.asarray(v.empty, dtype=np.int64)
        v.data.resize(v.rows + len(block), axis=0)
        v.data[v.rows : v.rows + len(block)] = block
        v.rows += len(block)
        v.buffer = []

    def finish(self) -> None:
        """Write the last partial chunks and every kind's cell index (identical indexes are one dataset, hard-linked
        from each kind)."""
        seen: dict[bytes, Any] = {}
        for kind in self._kinds:
            for v in self._kinds[kind]:
                self._flush(v)
                cells = np.frombuffer(v.cells, dtype=np.int32)
                digest = hashlib.sha256(cells.tobytes()).digest()
                name = "cells" + v.suffix
                if digest in seen:
                    v.group[name] = seen[digest]  # a hard link to the same index
                    continue
                opts = {"compression": "gzip", "shuffle": True} if cells.nbytes > CHUNK_BYTES else {}
                seen[digest] = v.group.create_dataset(name, data=cells, track_times=False, **opts)


# ---- reading ----------------------------------------------------------------------------------------------------
def read_datasets(group: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """Every HDF5 dataset below ``group`` (an h5py Group or File) as ``{prefix + relative path: array}``, through
    h5py's low-level calls (a group per cell of the old layout holds ~300 small datasets; the high-level API spends
    several times longer per dataset than the read itself)."""
    from h5py import h5d, h5o, h5s

    names: list[bytes] = []

    def visit(name: bytes, info: Any) -> None:
        if info.type == h5o.TYPE_DATASET:
            names.append(name)

    h5o.visit(group.id, visit, info=True)
    out = {}
    for name in names:
        d = h5d.open(group.id, name)
        a = np.empty(d.shape, dtype=d.dtype)
        if a.size:
            d.read(h5s.ALL, h5s.ALL, a)
        out[prefix + name.decode()] = a
    return out


@dataclass
class _Stored:
    kind: str
    data: Any  # h5py Dataset
    cells: np.ndarray
    encoding: str
    length: int
    shape: tuple[int, ...]
    dtype: str

    def decode(self, row: Any) -> np.ndarray:
        return _decode(row, self.encoding, self.length, self.shape, self.dtype)


class ArraysFile:
    """An ``arrays-*.h5`` file of either layout, opened for reading (close it, or use it as a context manager)."""

    def __init__(self, path: str | Path) -> None:
        import h5py

        self.path = Path(path)
        try:
            self.fh = h5py.File(self.path, "r")
        except OSError as exc:
            raise DataIntegrityError(f"cannot read {self.path} as HDF5 ({exc})") from None
        self.layout = int(self.fh.attrs.get(LAYOUT_ATTR, 1))
        if self.layout not in (1, PACKED_LAYOUT):
            self.fh.close()
            raise DataIntegrityError(f"{self.path} has arrays layout {self.layout}; this rb201 reads 1 and 2")
        self._index: dict[str, list[_Stored]] = {}

    def __enter__(self) -> ArraysFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.fh.close()

    def datasets(self) -> list[str]:
        """The datasets whose arrays the file holds."""
        return sorted(self.fh)

    def _stored(self, dataset: str) -> list[_Stored]:
        """The packed kinds of ``dataset`` with their cell indexes (read once; a shared index is read once)."""
        got = self._index.get(dataset)
        if got is not None:
            return got
        import h5py

        found: list[tuple[str, Any]] = []
        group = self.fh.get(dataset)
        if isinstance(group, h5py.Group):
            group.visititems(lambda n, o: found.append((n, o)) if isinstance(o, h5py.Dataset) else None)
        indexes: dict[Any, np.ndarray] = {}
        out = []
        for name, data in sorted(found, key=lambda t: t[0]):
            head, _, base = name.rpartition("/")
            if base != "data" and not base.startswith("data."):
                continue
            cells_ds = group[f"{head}/cells{base[4:]}"]
            cells = indexes.get(cells_ds.id)
            if cells is None:
                cells = indexes[cells_ds.id] = np.asarray(cells_ds[()], dtype=np.int64)
            if len(cells) != data.shape[0]:
                raise DataIntegrityError(f"{self.path}: {dataset}/{name} has {data.shape[0]} rows, {len(cells)} cells")
            a = data.attrs
            shape = tuple(int(x) for x in a.get(_SHAPE, ()))
            out.append(_Stored(f"{dataset}/{head}", data, cells, str(a.get(_ENCODING, "")), int(a.get(_LENGTH, 0)),
                               shape, str(a.get(_DTYPE, "u1"))))  # fmt: skip
        self._index[dataset] = out
        return out

    def cell(self, dataset: str, arch: int) -> dict[str, np.ndarray]:
        """Every array of cell ``arch`` of ``dataset`` in this file, keyed by its ``array_path`` ({} if none)."""
        if self.layout == 1:
            return self._group(dataset, arch)
        out = {}
        for s in self._stored(dataset):
            pos = int(np.searchsorted(s.cells, arch))
            if pos < len(s.cells) and s.cells[pos] == arch:
                out[kind_array_path(s.kind, arch)] = s.decode(s.data[pos])
        return out

    def _group(self, dataset: str, arch: int) -> dict[str, np.ndarray]:
        import h5py

        base = f"{dataset}/arch_{arch:05d}"
        group = self.fh.get(base)
        return read_datasets(group, base + "/") if isinstance(group, h5py.Group) else {}

    def cells(self, dataset: str) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """(NB201 index, its arrays keyed by ``array_path``) for every cell of ``dataset`` in this file, in index
        order, reading one chunk of each kind at a time."""
        if self.layout == 1:
            group = self.fh.get(dataset)
            names = sorted(k for k in group if k.startswith("arch_")) if group is not None else []
            for name in names:
                yield int(name[5:]), self._group(dataset, int(name[5:]))
            return
        stored = self._stored(dataset)
        if not stored:
            return
        cursors = [_Cursor(s) for s in stored]
        for arch in np.unique(np.concatenate([s.cells for s in stored])).tolist():
            out = {}
            for c in cursors:
                row = c.take(arch)
                if row is not None:
                    out[kind_array_path(c.stored.kind, arch)] = c.stored.decode(row)
            yield arch, out


class _Cursor:
    """Walks one kind's rows in order, reading a chunk's worth at a time."""

    def __init__(self, stored: _Stored) -> None:
        self.stored = stored
        self.i = 0
        self.step = stored.data.chunks[0] if stored.data.chunks else MAX_CHUNK_ROWS
        self.start = -1
        self.block: np.ndarray | None = None

    def take(self, arch: int) -> np.ndarray | None:
        s = self.stored
        if self.i >= len(s.cells) or s.cells[self.i] != arch:
            return None
        start = (self.i // self.step) * self.step
        if start != self.start:
            self.block = s.data[start : start + self.step]
            self.start = start
        row = self.block[self.i - start]  # type: ignore[index]
        self.i += 1
        return row
