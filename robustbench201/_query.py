"""The table API behind ``rb201.query``: look up published and computed results of NB201 cells.

The default source is the embedded table shipped in the wheel (``robustbench201._data``, built by
``scripts/build_table.py``): Jung et al. (ICLR 2023) robustness accuracies, NB201 200-epoch test accuracy (NATS-Bench,
mean over training seeds, fraction 0..1), HW-NAS-Bench latency/energy, NAS-Bench-Suite-Zero proxies and analytic
params/FLOPs (millions). Epsilons are in 1/255 units everywhere; severities are 1..5.

Any of the 15625 cells can be asked for. Columns evaluated once per isomorphism class (the published robustness
values) are answered with the class representative's value, and results say so. Lookups read one small wide Parquet
file per dataset with pyarrow into numpy (no torch, no pandas); pandas is imported only when a DataFrame is asked for.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .data.info import canonical_dataset
from .errors import DataIntegrityError, InvalidChoiceError, NoValuesError, Rb201Error
from .space import NUM_ARCHS, Arch
from .store.dataset import DatasetDir, Manifest
from .tables.index import Index

log = logging.getLogger(__name__)

__all__ = ["Dataset", "QueryResult", "query", "query_many", "table", "load", "default_dataset", "resolve_source"]


def _ordered(names: Iterable[str]) -> tuple[str, ...]:
    """Datasets in rb201's canonical order (cifar10, cifar100, ImageNet16-120, ...), unknown names last."""
    from .data.info import DATASETS

    order = list(DATASETS)
    return tuple(sorted(names, key=lambda d: (order.index(d) if d in order else len(order), d)))


def _arch_index(arch: object) -> int:
    """NB201 index of anything :meth:`Arch.parse` accepts (fast path for plain ints)."""
    if type(arch) is int and 0 <= arch < NUM_ARCHS:
        return arch
    return Arch.parse(arch).index


class Dataset:
    """A dataset directory (:mod:`robustbench201.store.dataset`: manifest + schema v1 or v2 Parquet) with the table API.

    Every listed file's size is checked on opening, and each file's sha256 before its first use (a file verified
    earlier and unchanged since is not hashed again: :mod:`robustbench201.store.integrity`); a file that fails is
    refused with an error naming it. ``verify=True`` re-hashes every listed file on opening."""

    def __init__(self, path: str | Path, verify: bool = False) -> None:
        self.path = Path(path)
        self._dir = DatasetDir.open(self.path, verify=verify)
        self.manifest: Manifest = self._dir.manifest
        self._index: dict[str, Index] = {}
        wide = self.manifest.of_kind("wide")
        self._wide_files = {f.dataset: f for f in wide if f.dataset}
        self._datasets: tuple[str, ...] | None = _ordered(self._wide_files) if self._wide_files else None
        self.notes: dict[str, str] = dict(self.manifest.extra.get("column_notes", {}))
        self._arrays: dict[str, Any] = {}  # arrays file name -> its open store.arrays.ArraysFile

    def __repr__(self) -> str:
        return f"Dataset({str(self.path)!r}, name={self.manifest.name!r}, datasets={list(self.datasets)})"

    # ---- loading ----------------------------------------------------------------------------------------------
    def validate(self) -> Manifest:
        """Re-hash every listed file against the manifest; :class:`DataIntegrityError` naming the first that fails."""
        self._dir.verify_all(use_cache=False)
        return self.manifest

    @property
    def datasets(self) -> tuple[str, ...]:
        """Canonical names of the datasets this source has results for."""
        if self._datasets is None:
            self._build_from_results()
        return self._datasets  # type: ignore[return-value]

    def _build_from_results(self) -> None:
        from .store.wide import pivot

        for ds, wide in pivot(self.read_results()).items():
            self._index[ds] = Index(wide)
        self._datasets = _ordered(self._index)

    def index(self, dataset: str) -> Index:
        """The loaded wide index of ``dataset`` (read on first use)."""
        idx = self._index.get(dataset)
        if idx is not None:
            return idx
        ds = self._dataset(dataset)
        idx = self._index.get(ds)
        if idx is None:
            from .store.wide import read_wide

            idx = Index(read_wide(self._dir.file(self._wide_files[ds])))
            self._index[ds] = idx
        return idx

    def _dataset(self, dataset: str) -> str:
        ds = canonical_dataset(dataset)
        if ds not in self.datasets:
            raise InvalidChoiceError(
                f"no results for dataset {ds!r} in {self.path}; available: {', '.join(self.datasets)}"
            )
        return ds

    def _datasets_for(self, dataset: str | Sequence[str] | None) -> tuple[str, ...]:
        if dataset is None:
            return self.datasets
        if isinstance(dataset, str):
            return (self._dataset(dataset),)
        return tuple(self._dataset(d) for d in dataset)

    def read_results(self, dataset: str | None = None, columns: Sequence[str] | None = None):  # type: ignore[no-untyped-def]
        """All tidy rows as schema v2 (a pyarrow Table; v1 files' rows are on the test split), optionally of one
        dataset and of some wide columns only."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        from .store.schema import conform_table

        tables = []
        for f in self.manifest.of_kind("results"):
            path = self._dir.file(f)
            try:
                with pq.ParquetFile(path) as pf:
                    t = pf.read()
            except (OSError, ValueError, pa.ArrowException) as exc:
                raise DataIntegrityError(f"cannot read {path} (corrupt or truncated?): {exc}") from None
            tables.append(conform_table(t, str(path)))
        if not tables:
            raise DataIntegrityError(f"{self.path} lists no results files")
        t = pa.concat_tables(tables)
        if dataset is not None:
            t = t.filter(pc.equal(t.column("dataset"), self._dataset(dataset) if self._datasets else dataset))
        if columns:
            t = t.filter(_columns_filter(t, columns))
        return t

    def arrays(self, arch: object, dataset: str | None = None) -> dict[str, np.ndarray]:
        """Every array stored for one cell (confusion matrices, per-sample flags, ...), on ``dataset`` or on every
        dataset when None, keyed by its :func:`robustbench201.store.schema.array_path`, as it was evaluated: the
        arrays of this very cell ({} when it has none; isomorphs evaluated once per class have them at their
        representative, ``rb201.query(arch).representative``). The same from every dataset layout."""
        from .store.arrays import ArraysFile

        i = _arch_index(arch)
        want = self._dataset(dataset) if dataset is not None else None
        out: dict[str, np.ndarray] = {}
        for f in self.manifest.of_kind("arrays"):
            if want is not None and f.dataset and f.dataset != want:
                continue
            reader = self._arrays.get(f.path)
            if reader is None:
                reader = self._arrays[f.path] = ArraysFile(self._dir.file(f))
            for ds in [want] if want is not None else reader.datasets():
                out.update(reader.cell(ds, i))
        return out

    # ---- queries ----------------------------------------------------------------------------------------------
    def query(self, arch: object, dataset: str | Sequence[str] | None = None) -> QueryResult:
        """All results of one cell (on every dataset when ``dataset`` is None). Datasets that hold no value of the
        cell are left out of the result (its notes say which); :class:`NoValuesError` when none of those asked for
        holds one, naming the cell and what each dataset covers (``'4 of 6466 classes of mnist5k'``)."""
        i = _arch_index(arch)
        dss = self._datasets_for(dataset)
        rows = {ds: self.index(ds).row(i) for ds in dss}
        held = {ds: self.index(ds) for ds, row in rows.items() if not np.isnan(row).all()}
        if not held:
            rep = int(self.index(dss[0]).reps[i])
            cell = f"cell {i}" + (f" (isomorphic to {rep})" if rep != i else "")
            covers = "; ".join(f"it holds {self.index(ds).coverage(examples=8)}" for ds in dss)
            raise NoValuesError(f"{cell} has no values in {self.path}: {covers}")
        return QueryResult(i, held, self, tuple(ds for ds in dss if ds not in held), {ds: rows[ds] for ds in held})

    def value(
        self,
        arch: object,
        column: str,
        dataset: str,
        epsilon: float | None = None,
        severity: int | None = None,
        measure: str | None = None,
        semantics: str | None = None,
    ) -> float:
        """One value: ``column`` is a wide name (``'pgd@1'``, ``'pgd@1/cumulative'``) or a key with ``epsilon``
        (1/255 units) / ``severity`` / ``measure`` / ``semantics`` (``'per-epsilon'`` or ``'cumulative'``)."""
        idx = self.index(dataset)
        return idx.value(_arch_index(arch), idx.column(column, epsilon, severity, measure, semantics))

    def query_many(self, archs: Iterable[object], column: str, dataset: str) -> np.ndarray:
        """Vectorised lookup of one column for many cells (float64 array, NaN where there is no value)."""
        idx = self.index(dataset)
        j = idx.column(column)
        if isinstance(archs, np.ndarray) and archs.dtype.kind in "iu":
            ii = archs.astype(np.int64, copy=False)
        else:
            archs = list(archs)
            try:
                ii = np.fromiter(archs, dtype=np.int64, count=len(archs))
            except (TypeError, ValueError):
                ii = np.fromiter((_arch_index(a) for a in archs), dtype=np.int64, count=len(archs))
        if ii.size and (ii.min() < 0 or ii.max() >= NUM_ARCHS):
            bad = ii[(ii < 0) | (ii >= NUM_ARCHS)][0]
            raise InvalidChoiceError(f"NB201 index {int(bad)} out of range; allowed: 0..{NUM_ARCHS - 1}")
        return idx.take(ii, j)

    def columns(self, dataset: str) -> tuple[str, ...]:
        """Wide column names available on ``dataset``."""
        return self.index(dataset).names

    def table(self, dataset: str | None = None, form: str = "wide", columns: Sequence[str] | None = None):  # type: ignore[no-untyped-def]
        """A pandas DataFrame. ``wide``: one dataset's table (``dataset`` may be omitted when the source holds only
        one), index ``arch_index`` (all 15625), a ``representative`` column and one column per wide name, class-level
        columns filled for isomorphs; columns are named by :attr:`Index.display` (a bare ``pgd@1`` in ``columns``
        comes back under the name of the column it resolved to, e.g. ``pgd@1/cumulative``). ``long``: the tidy rows
        (schema v2, with their ``split``) of every dataset when ``dataset`` is None (a ``dataset`` column says
        which)."""
        import pandas as pd

        if form == "long":
            if columns and dataset is not None:  # bare names resolve to the semantics the dataset holds
                idx = self.index(dataset)
                columns = [idx.names[idx.column(c)] for c in columns]
            return self.read_results(dataset, columns).to_pandas()
        if form != "wide":
            raise InvalidChoiceError(f"unknown table form {form!r}; allowed: 'wide', 'long'")
        if dataset is None and len(self.datasets) != 1:
            raise InvalidChoiceError(
                f"{self.path} holds {len(self.datasets)} datasets ({', '.join(self.datasets)}): the wide table is one "
                "dataset's, pass dataset=...; form='long' has all of them"
            )
        idx = self.index(dataset if dataset is not None else self.datasets[0])
        found = [idx.resolve(c) for c in columns] if columns else None
        for r in found or ():
            if r.note:
                log.info(r.note)
        cols = [r.j for r in found] if found is not None else list(range(len(idx.names)))
        df = pd.DataFrame(idx.filled[:, cols], columns=[idx.display[j] for j in cols])
        df.insert(0, "representative", idx.reps)
        df.index.name = "arch_index"
        return df


def _columns_filter(t, columns: Sequence[str]):  # type: ignore[no-untyped-def]
    """pyarrow boolean mask of the rows that make up the given wide columns."""
    import pyarrow.compute as pc

    from .store.schema import parse_wide_name, split_key

    mask = None
    for name in columns:
        qkey, eps, sev, meas, sem = parse_wide_name(name)
        split, key = split_key(qkey)
        m = pc.and_(pc.equal(t.column("key"), key), pc.equal(t.column("split"), split))
        m = pc.and_(m, pc.is_nan(t.column("epsilon")) if math.isnan(eps) else pc.equal(t.column("epsilon"), eps))
        m = pc.and_(m, pc.equal(t.column("severity"), sev))
        ms = ["accuracy", "value"] if meas is None else [meas]
        m = pc.and_(m, pc.is_in(t.column("measure"), value_set=_pa_strings(ms)))
        sems = ["cumulative"] if sem == "cumulative" else ["", "per-epsilon"]
        m = pc.and_(m, pc.is_in(t.column("semantics"), value_set=_pa_strings(sems)))
        mask = m if mask is None else pc.or_(mask, m)
    return mask


def _pa_strings(values: list[str]):  # type: ignore[no-untyped-def]
    import pyarrow as pa

    return pa.array(values, type=pa.string())


class QueryResult:
    """All results of one NB201 cell from one source, per dataset. Values are floats (accuracies as fractions 0..1,
    epsilons in 1/255 units, params/FLOPs in millions); NaN where the source has no value for this cell.

    Single-value accessors always return a float: pass ``dataset=`` when the result holds several datasets;
    :meth:`values` returns ``{dataset: float}`` over all of them."""

    __slots__ = ("index", "representative", "datasets", "missing", "_idx", "_rows", "_source")

    def __init__(
        self,
        index: int,
        indexes: dict[str, Index],
        source: Dataset,
        missing: tuple[str, ...] = (),
        rows: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.index = index
        self._idx = indexes
        self.datasets = tuple(indexes)
        #: datasets asked for that hold no value of this cell (left out of the result)
        self.missing = missing
        self._source = source
        self.representative = int(next(iter(indexes.values())).reps[index]) if indexes else index
        self._rows = rows if rows is not None else {ds: ix.row(index) for ds, ix in indexes.items()}

    @property
    def arch(self) -> Arch:
        return Arch.from_index(self.index)

    @property
    def is_representative(self) -> bool:
        return self.representative == self.index

    def _one(self, dataset: str | None) -> str:
        """The dataset a single-value accessor answers for: ``dataset``, or the only one this result holds."""
        if dataset is not None:
            ds = canonical_dataset(dataset)
            if ds not in self._idx:
                raise InvalidChoiceError(f"dataset {ds!r} not in this result; available: {', '.join(self.datasets)}")
            return ds
        if len(self.datasets) != 1:
            raise InvalidChoiceError(
                f"this result holds {len(self.datasets)} datasets ({', '.join(self.datasets)}): pass dataset=..., "
                "or use values(...) for a {dataset: value} dict"
            )
        return self.datasets[0]

    def value(
        self,
        column: str,
        eps: float | None = None,
        severity: int | None = None,
        measure: str | None = None,
        dataset: str | None = None,
        semantics: str | None = None,
    ) -> float:
        """One value (a float; NaN where this cell has none) by wide name (``'pgd@1'``, ``'pgd@1/cumulative'``,
        ``'fog:3'``, ``'params'``) or by key with ``eps`` (1/255 units) / ``severity`` (1..5) / ``measure`` /
        ``semantics``, on ``dataset`` (needed when the result holds several)."""
        ds = self._one(dataset)
        r = self._idx[ds].resolve(column, eps, severity, measure, semantics)
        if r.note:
            log.info(r.note)
        return float(self._rows[ds][r.j])

    def column_info(self, column: str, dataset: str | None = None) -> dict[str, Any]:
        """The facts of the column ``column`` resolves to on ``dataset`` (family, key, epsilon, ..., ``name``: its
        display name, ``note``: how a bare name was read, or None)."""
        ds = self._one(dataset)
        ix = self._idx[ds]
        r = ix.resolve(column)
        return {**ix.info[r.j], "name": r.name, "note": r.note}

    def values(
        self,
        column: str,
        eps: float | None = None,
        severity: int | None = None,
        measure: str | None = None,
        semantics: str | None = None,
    ) -> dict[str, float]:
        """The value of one column on every dataset of the result: ``{dataset: value}``."""
        return {
            ds: float(self._rows[ds][ix.column(column, eps, severity, measure, semantics)])
            for ds, ix in self._idx.items()
        }

    def robust(
        self,
        attack: str,
        eps: float,
        measure: str = "accuracy",
        dataset: str | None = None,
        semantics: str | None = None,
    ) -> float:
        """Accuracy (or ``measure``) under ``attack`` (fgsm, pgd, aa_apgd-ce, aa_square, ...) at L-inf ``eps``
        (units of 1/255: ``eps=8`` is 8/255). ``semantics``: ``'per-epsilon'`` (that attack at that epsilon on its
        own, as published), ``'cumulative'`` (a point broken at a smaller epsilon counts as broken), or None: the
        kind the dataset holds (an error asks for a choice when it holds both and they differ)."""
        return self.value(attack, eps=eps, measure=measure, dataset=dataset, semantics=semantics)

    def corruption(self, name: str, severity: int, measure: str = "accuracy", dataset: str | None = None) -> float:
        """Accuracy on corruption ``name`` (e.g. 'fog') at ``severity`` 1..5 (CIFAR-10-C / CIFAR-100-C)."""
        return self.value(name, severity=severity, measure=measure, dataset=dataset)

    @property
    def clean_accuracy(self) -> float:
        """Clean test accuracy (fraction) of the published evaluation (a result of one dataset; else ``values``)."""
        return self.value("clean")

    @property
    def nb201_test_accuracy(self) -> float:
        """NB201 200-epoch test accuracy (fraction), mean over training seeds (NATS-Bench)."""
        return self.value("nb201_test_accuracy")

    def items(self, dataset: str) -> list[tuple[dict[str, Any], float]]:
        """(column info, value) of every column with a value on ``dataset``, in column order; ``info["name"]`` is
        the column's display name (:attr:`Index.display`: the name that resolves back to it)."""
        ix, row = self._idx[dataset], self._rows[dataset]
        return [
            (info if name == info["name"] else {**info, "name": name}, float(v))
            for info, name, v in zip(ix.info, ix.display, row.tolist(), strict=True)
            if v == v
        ]

    def notes(self) -> list[str]:
        """What the numbers are: isomorph resolution and averaging, in plain words."""
        out = []
        if not self.is_representative:
            fams = sorted({i["source"] for ix in self._idx.values() for i, c in zip(ix.info, ix.class_level) if c})
            out.append(
                f"cell {self.index} is isomorphic to {self.representative}; class-level values "
                f"({', '.join(fams) or 'none'}) are those of representative {self.representative}"
            )
        if self.missing:
            out.append(f"no values of cell {self.index} on {', '.join(self.missing)}")
        families = {i["family"] for ix in self._idx.values() for i in ix.info}
        for name, note in self._source.notes.items():
            if name in families or any(name in ix.col for ix in self._idx.values()):
                out.append(f"{name}: {note}")
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready dict: the cell, its representative, notes, and ``values[dataset][column]``."""
        return {
            "arch_index": self.index,
            "arch": self.arch.string,
            "representative": self.representative,
            "datasets": list(self.datasets),
            "notes": self.notes(),
            "values": {ds: {i["name"]: v for i, v in self.items(ds)} for ds in self.datasets},
        }

    def to_frame(self):  # type: ignore[no-untyped-def]
        """A pandas DataFrame, one row per (dataset, column) with its key columns and provenance."""
        import pandas as pd

        keep = ("family", "key", "norm", "epsilon", "severity", "measure", "semantics", "source")
        recs = []
        for ds in self.datasets:
            cls = self._idx[ds].class_level
            for j, (info, v) in enumerate(zip(self._idx[ds].info, self._rows[ds].tolist(), strict=True)):
                if v == v:
                    rec = {"dataset": ds, "column": info["name"], **{k: info[k] for k in keep}, "value": v}
                    rec["from_arch"] = self.representative if cls[j] else self.index
                    recs.append(rec)
        return pd.DataFrame.from_records(recs)

    def summary(self, width: int = 100) -> str:
        """Readable text: per dataset, attacks as a key x epsilon grid, corruptions as key x severity."""
        from .tables.text import format_result

        return format_result(self, width)

    def __repr__(self) -> str:
        head = f"QueryResult(arch {self.index}"
        if not self.is_representative:
            head += f" -> representative {self.representative}"
        parts = []
        for ds in self.datasets:
            ix, row = self._idx[ds], self._rows[ds]
            shown = [f"{n} {row[ix.col[n]]:.4g}" for n in ("clean", "pgd@1", "nb201_test_accuracy") if n in ix.col]
            n = int(np.count_nonzero(~np.isnan(row)))
            parts.append(f"{ds}: {', '.join(shown)} ({n} values)")
        return head + "; " + "; ".join(parts) + ")"

    def _repr_pretty_(self, p, cycle) -> None:  # type: ignore[no-untyped-def]  # IPython
        p.text(self.summary())


# ---- module-level API over a source --------------------------------------------------------------------------
_SOURCES: dict[str, Dataset] = {}
_DEFAULT: list[Dataset] = []


def default_dataset() -> Dataset:
    """The embedded table shipped with rb201 (opened once per process)."""
    if not _DEFAULT:
        from importlib.resources import files

        root = files("robustbench201._data")
        if not isinstance(root, Path):
            root = Path(str(root))
        try:
            _DEFAULT.append(Dataset(root))
        except DataIntegrityError as exc:
            raise DataIntegrityError(f"the embedded table is missing or damaged: {exc}") from None
    return _DEFAULT[0]


def resolve_source(source: str | Path | Dataset | None) -> Dataset:
    """The :class:`Dataset` a ``source`` argument names: None (the embedded table), a dataset directory (opened
    once per process) or a :class:`Dataset`."""
    if source is None:
        return _DEFAULT[0] if _DEFAULT else default_dataset()
    if isinstance(source, Dataset):
        return source
    if isinstance(source, str | Path):
        key = str(Path(source).resolve())
        ds = _SOURCES.get(key)
        if ds is None:
            ds = _SOURCES[key] = Dataset(source)
        return ds
    raise Rb201Error(f"source must be a dataset directory path or an rb201.Dataset, got {type(source).__name__}")


def query(
    arch: object, dataset: str | Sequence[str] | None = None, source: str | Path | Dataset | None = None
) -> QueryResult:
    """Results of one cell (NB201 string, index, op tuple or :class:`Arch`) on ``dataset`` (None: all datasets of
    the source). ``source``: a dataset directory or :class:`Dataset` (default: the embedded table)."""
    return resolve_source(source).query(arch, dataset)


def query_many(
    archs: Iterable[object], column: str, dataset: str, source: str | Path | Dataset | None = None
) -> np.ndarray:
    """One column (wide name, e.g. ``'fgsm@1'``; epsilon in 1/255) for many cells at once, as a float64 array."""
    return resolve_source(source).query_many(archs, column, dataset)


def table(
    dataset: str | None = None,
    form: str = "wide",
    source: str | Path | Dataset | None = None,
    columns: Sequence[str] | None = None,
):  # type: ignore[no-untyped-def]
    """The results as a pandas DataFrame (``form='wide'`` or ``'long'``; see :meth:`Dataset.table`)."""
    return resolve_source(source).table(dataset, form, columns)


def load(source: str | Path | Dataset | None = None, dataset: str | None = None, columns: Sequence[str] | None = None):  # type: ignore[no-untyped-def]
    """All tidy rows (schema v2) of a source (default: the embedded table) as a pandas DataFrame."""
    return resolve_source(source).table(dataset, "long", columns)
