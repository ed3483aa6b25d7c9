"""Schema v2 of rb201 results (and how v1 files are read): the single source of truth for every Parquet and HDF5
file rb201 writes or reads.

Scalars are tidy rows (one value per row) with explicit columns. Version 2 adds one key column to version 1,
``split``: the images a row was computed on, ``test`` (the test set; every v1 row) or ``valid`` (a split held out of
the training set). Readers accept both versions and give v1 rows ``split = "test"`` (:func:`conform_table`). Writers
store the lowest version that holds the rows (:func:`storage_table`): a table whose rows are all on the test split is
written as v1, byte for byte what rb201 wrote before version 2 (so older readers still read it); any other as v2.

Units: ``epsilon`` is in pixel units of 1/255 (so ``epsilon=1.0`` means an L-inf radius of 1/255 on [0, 1] images;
``255.0`` is the whole box); NaN where the row has no epsilon. ``severity`` is 1..5 for corruptions, 0 otherwise.
Arrays (confusion matrices, per-sample flags) are keyed by the path :func:`array_path` builds from the same key
columns; :func:`array_kind` drops the cell from it (the kind of array; how files lay them out is their owners' matter:
:mod:`.shardfile`, :mod:`.dataset`).

Wide form: per dataset, one row per architecture and one column per (key, epsilon/severity, semantics, measure),
named by :func:`wide_name`: ``clean``, ``fgsm@1``, ``pgd@0.5``, ``fog:3``, ``jacobian``, ``nb201_test_accuracy``;
the cumulative worst case of an attack carries ``/cumulative`` (``pgd@1/cumulative``; the plain name is the
per-epsilon value of the published protocol), and a measure other than ``accuracy`` (or ``value``) comes last,
e.g. ``pgd@1/confidence_pred``. A row of another split than ``test`` prefixes its split: ``valid/pgd@8``,
``valid/clean`` (:func:`wide_name`; the prefixed name is the "key" a wide table knows the column by).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

from ..errors import DataIntegrityError, Rb201Error, check_choice
from ..vocab import NORMS as VOCAB_NORMS
from ..vocab import SEMANTICS as VOCAB_SEMANTICS
from ..vocab import SPLITS

__all__ = ["SCHEMA_VERSION", "READABLE_SCHEMA_VERSIONS", "META_SCHEMA_VERSION", "META_SPEC", "META_KIND",
           "FAMILIES", "NORMS", "SEMANTICS", "COLUMNS", "V1_COLUMNS", "KEY_COLUMNS", "SORT_COLUMNS", "Row",
           "pa_schema", "rows_to_table", "table_metadata", "storage_table", "check_table_schema",
           "conform_table", "read_results_columns", "CUMULATIVE_SEGMENT", "format_eps", "qualified_key",
           "split_key", "wide_name", "WideName", "parse_wide_name", "array_path", "ARRAY_PATH_DEPTH", "array_kind",
           "kind_array_path", "with_split"]  # fmt: skip

SCHEMA_VERSION = "2"
#: Versions this rb201 reads (v1: the same columns without ``split``, all rows on the test split).
READABLE_SCHEMA_VERSIONS: tuple[str, ...] = ("1", "2")
#: Parquet key-value metadata keys.
META_SCHEMA_VERSION = "rb201.schema_version"
META_SPEC = "rb201.spec"  # JSON of the evaluation spec(s) the file holds (may be "{}")
META_KIND = "rb201.kind"  # "results" for tidy rows

FAMILIES: tuple[str, ...] = (
    "clean",
    "adversarial",
    "corruption",
    "surrogate",
    "certified",
    "nb201-training",
    "hardware",
    "cost",
    "zero-cost",
)
#: The ``norm`` column: a threat model of :data:`robustbench201.vocab.NORMS`, "" for rows without one.
NORMS: tuple[str, ...] = ("", *VOCAB_NORMS)
#: How a per-epsilon value was obtained (PROTOCOL.md section 6). "" for rows without an epsilon.
SEMANTICS: tuple[str, ...] = ("", *VOCAB_SEMANTICS)

#: Column name -> pyarrow type name, in file order. ``key`` columns identify a value; the rest is provenance.
COLUMNS: dict[str, str] = {
    "arch_index": "int32",  # NB201 index of the evaluated architecture (the isomorphism representative for Jung data)
    "dataset": "string",  # canonical dataset name (cifar10, cifar100, ImageNet16-120, mnist5k, ...)
    "split": "string",  # images the value is computed on: test, or valid (held out of the training set); v2
    "seed": "int32",  # training seed of the weights; -1 = not a single seed (mean over seeds or unknown)
    "weights": "string",  # weights source: e.g. 'nb201-200ep' (official), 'train-200ep', 'init', 'unknown'
    "family": "string",  # one of FAMILIES
    "key": "string",  # attack / corruption / measure name: clean, fgsm, pgd, aa_apgd-ce, aa_square, fog, jacobian...
    "norm": "string",  # one of NORMS
    "epsilon": "float64",  # in 1/255 units; NaN if not applicable
    "severity": "int8",  # 1..5 for corruptions; 0 if not applicable
    "semantics": "string",  # one of SEMANTICS
    "measure": "string",  # accuracy, confidence_pred, confidence_true, value, margin_lb, ...
    "value": "float64",
    "n": "int32",  # number of samples the value is computed over; -1 if unknown
    "source": "string",  # who produced the number: jung2023, nats-bench, hw-nas-bench, nb-suite-zero, rb201
    "spec_hash": "string",  # hash of the evaluation spec ('' for imported data)
    "code_version": "string",  # rb201 version that wrote the row (or the importer's version)
}
#: The columns of schema version 1 (version 2 without ``split``).
V1_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMNS if c != "split")
#: Columns that identify one value; two rows with equal key columns are duplicates (conflicting if values differ).
KEY_COLUMNS: tuple[str, ...] = (
    "arch_index",
    "dataset",
    "split",
    "seed",
    "weights",
    "family",
    "key",
    "norm",
    "epsilon",
    "severity",
    "semantics",
    "measure",
)
#: Sort order of a merged dataset.
SORT_COLUMNS: tuple[str, ...] = ("dataset", "split", "arch_index", "family", "key", "epsilon", "severity", "measure")


@dataclass(frozen=True)
class Row:
    """One scalar result (see the module docstring for units)."""

    arch_index: int
    dataset: str
    family: str
    key: str
    measure: str
    value: float
    seed: int = -1
    weights: str = "unknown"
    norm: str = ""
    epsilon: float = math.nan
    severity: int = 0
    semantics: str = ""
    n: int = -1
    source: str = "rb201"
    spec_hash: str = ""
    code_version: str = ""
    split: str = "test"
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        check_choice("result family", self.family, FAMILIES)
        check_choice("split", self.split, SPLITS)
        check_choice("norm", self.norm, NORMS)
        check_choice("semantics", self.semantics, SEMANTICS)
        if not 0 <= self.severity <= 5:
            raise Rb201Error(f"severity {self.severity} out of range; allowed: 0 (none) or 1..5")
        if not (math.isnan(self.epsilon) or 0.0 <= self.epsilon <= 255.0):
            raise Rb201Error(f"epsilon {self.epsilon} out of range; allowed: 0..255 (units of 1/255) or NaN")

    def as_dict(self) -> dict[str, Any]:
        """The schema columns (``dataclasses.asdict`` deep-copies every field: 50x slower for these scalars)."""
        return {name: getattr(self, name) for name in _ROW_FIELDS}


_ROW_FIELDS = tuple(f.name for f in fields(Row) if f.name != "extra")


def pa_schema():  # type: ignore[no-untyped-def]
    """The pyarrow schema of tidy result rows in memory (version 2; imports pyarrow)."""
    import pyarrow as pa

    types = {"int32": pa.int32(), "int8": pa.int8(), "float64": pa.float64(), "string": pa.string()}
    return pa.schema([pa.field(name, types[t], nullable=False) for name, t in COLUMNS.items()])


def rows_to_table(rows: list[Row] | list[dict[str, Any]], spec_json: str = "{}"):  # type: ignore[no-untyped-def]
    """Rows (``Row`` objects or dicts with all columns; a dict without ``split`` is a test-split row) -> a pyarrow
    Table in its storage form (:func:`storage_table`) with its metadata."""
    import pyarrow as pa

    dicts = [r.as_dict() if isinstance(r, Row) else {"split": "test", **r} for r in rows]
    columns = {name: [d[name] for d in dicts] for name in COLUMNS}
    return storage_table(pa.Table.from_pydict(columns, schema=pa_schema()), spec_json)


def table_metadata(spec_json: str = "{}", version: str = SCHEMA_VERSION) -> dict[str, str]:
    return {META_SCHEMA_VERSION: version, META_SPEC: spec_json, META_KIND: "results"}


def storage_table(table, spec_json: str | None = None):  # type: ignore[no-untyped-def]
    """The form a table of version-2 rows is written in: version 1 (no ``split`` column) when every row is on the test
    split, else version 2. ``spec_json`` replaces the spec metadata (kept from ``table`` when None)."""
    import pyarrow.compute as pc

    old = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    spec = spec_json if spec_json is not None else old.get(META_SPEC, "{}")
    only_test = "split" not in table.column_names or bool(pc.all(pc.equal(table.column("split"), "test")).as_py())
    if table.num_rows == 0 or only_test:
        out = table.select([c for c in V1_COLUMNS])
        return out.replace_schema_metadata({**old, **table_metadata(spec, "1")})
    return table.select(list(COLUMNS)).replace_schema_metadata({**old, **table_metadata(spec, "2")})


def check_table_schema(table_schema, path: str) -> None:  # type: ignore[no-untyped-def]
    """Raise :class:`DataIntegrityError` unless a file's arrow schema is rb201 schema v1 or v2 (version and columns)."""
    meta = {k.decode(): v.decode() for k, v in (table_schema.metadata or {}).items()}
    version = meta.get(META_SCHEMA_VERSION)
    if version is None:
        raise DataIntegrityError(f"{path} is not an rb201 results file (no {META_SCHEMA_VERSION} metadata)")
    if version not in READABLE_SCHEMA_VERSIONS:
        raise DataIntegrityError(
            f"{path} has rb201 schema version {version!r}; this rb201 reads versions "
            f"{', '.join(READABLE_SCHEMA_VERSIONS)}"
        )
    names = list(table_schema.names)
    want = V1_COLUMNS if version == "1" else tuple(COLUMNS)
    missing = [c for c in want if c not in names]
    if missing:
        raise DataIntegrityError(f"{path} lacks schema v{version} columns {missing}")


def with_split(table):  # type: ignore[no-untyped-def]
    """``table`` with a ``split`` column: a table without one (schema v1) holds test-split rows only."""
    import pyarrow as pa

    if "split" in table.column_names:
        return table
    return table.append_column("split", pa.array(["test"] * table.num_rows, type=pa.string()))


def conform_table(table, path: str):  # type: ignore[no-untyped-def]
    """A results file's table (v1 or v2, checked) as version-2 rows in memory: the :func:`pa_schema` columns in order,
    v1 rows on the ``test`` split; the file's metadata is kept."""
    check_table_schema(table.schema, path)
    meta = table.schema.metadata
    table = with_split(table)
    return table.select(list(pa_schema().names)).cast(pa_schema()).replace_schema_metadata(meta)


def read_results_columns(path, columns: list[str]):  # type: ignore[no-untyped-def]
    """Some columns of a results file (v1 or v2) as version-2 columns: ``split`` is ``test`` in a v1 file."""
    import pyarrow.parquet as pq

    have = set(pq.read_schema(path).names)
    t = pq.read_table(path, columns=[c for c in columns if c in have])
    return (with_split(t) if "split" in columns else t).select(columns)


# ---- names ---------------------------------------------------------------------------------------------------
_PLAIN_MEASURES = ("accuracy", "value")
#: The semantics segment of a wide name: per-epsilon rows (the published protocol) carry none, the cumulative worst
#: case carries ``/cumulative``; ``/per-epsilon`` is accepted when reading a name, as an explicit spelling.
CUMULATIVE_SEGMENT = "cumulative"


def format_eps(epsilon: float) -> str:
    """``1.0 -> '1'``, ``0.5 -> '0.5'``, ``255.0 -> '255'`` (epsilon in 1/255 units)."""
    return f"{epsilon:g}"


def qualified_key(key: str, split: str = "test") -> str:
    """The key a wide table knows a row by: ``key`` on the test split, ``{split}/{key}`` on another (``valid/pgd``)."""
    return key if split in ("", "test") else f"{split}/{key}"


def split_key(key: str) -> tuple[str, str]:
    """Inverse of :func:`qualified_key`: ``'valid/pgd' -> ('valid', 'pgd')``, ``'pgd' -> ('test', 'pgd')``."""
    head, sep, rest = key.partition("/")
    return (head, rest) if sep and head in SPLITS else ("test", key)


def wide_name(
    key: str,
    epsilon: float = math.nan,
    severity: int = 0,
    measure: str = "accuracy",
    semantics: str = "",
    split: str = "test",
) -> str:
    """Column name in the wide form: ``[split/]key[@eps|:severity][/cumulative][/measure]`` (epsilon in 1/255 units).

    Per-epsilon values (each attack at each epsilon on its own, the published protocol) have the plain name
    (``pgd@1``); the cumulative worst case of the same attack has ``/cumulative`` (``pgd@1/cumulative``); a measure
    other than accuracy / value comes last (``pgd@1/cumulative/confidence_pred``). Rows of the test split have no
    split segment; others start with it (``valid/pgd@8``). ``key`` may already be qualified (``valid/pgd``)."""
    key = qualified_key(key, split) if split not in ("", "test") else key
    if not math.isnan(epsilon):
        base = f"{key}@{format_eps(epsilon)}"
    elif severity:
        base = f"{key}:{severity}"
    else:
        base = key
    if semantics == "cumulative":
        base = f"{base}/{CUMULATIVE_SEGMENT}"
    return base if measure in _PLAIN_MEASURES else f"{base}/{measure}"


class WideName(NamedTuple):
    """A parsed wide column name; ``measure`` None means the plain one (accuracy or value), ``semantics`` is
    ``""`` for a name without a semantics segment (per-epsilon values, or rows without an epsilon)."""

    key: str
    epsilon: float
    severity: int
    measure: str | None
    semantics: str


_WIDE_RE = re.compile(
    r"^(?P<key>(?:(?:" + "|".join(s for s in SPLITS if s != "test") + r")/)?[^@:/]+)"
    r"(?:@(?P<eps>[0-9.]+)|:(?P<sev>[1-5]))?(?:/(?P<rest>.+))?$"
)


def parse_wide_name(name: str) -> WideName:
    """Inverse of :func:`wide_name`: ``'pgd@1' -> WideName('pgd', 1.0, 0, None, '')``,
    ``'pgd@1/cumulative/confidence_pred' -> WideName('pgd', 1.0, 0, 'confidence_pred', 'cumulative')``; the key of
    another split than ``test`` keeps its split (``'valid/pgd@8' -> WideName('valid/pgd', 8.0, ...)``, see
    :func:`split_key`)."""
    m = _WIDE_RE.match(name.strip())
    if not m:
        raise Rb201Error(
            f"cannot read column name {name!r}; expected 'key', 'key@eps' (eps in 1/255), 'key:severity' "
            "with an optional '/cumulative' and '/measure' and an optional 'valid/' in front, e.g. 'fgsm@1', "
            "'fog:3', 'pgd@1/cumulative', 'pgd@2/confidence_pred', 'valid/pgd@8'"
        )
    eps = float(m.group("eps")) if m.group("eps") else math.nan
    sev = int(m.group("sev")) if m.group("sev") else 0
    semantics, measure = "", None
    rest = m.group("rest")
    if rest:
        head, _, tail = rest.partition("/")
        if head in ("cumulative", "per-epsilon"):
            semantics = "cumulative" if head == "cumulative" else ""
            measure = tail or None
        elif tail:
            raise Rb201Error(
                f"cannot read column name {name!r}: {head!r} is not a semantics; allowed after the key: "
                "'/cumulative' or '/per-epsilon', then an optional '/measure'"
            )
        else:
            measure = head
    if semantics == "cumulative" and math.isnan(eps):
        raise Rb201Error(f"column name {name!r}: '/cumulative' needs an epsilon, e.g. 'pgd@1/cumulative'")
    return WideName(m.group("key"), eps, sev, measure, semantics)


def array_path(
    dataset: str,
    arch_index: int,
    family: str,
    key: str,
    measure: str,
    epsilon: float = math.nan,
    severity: int = 0,
    seed: int = -1,
    weights: str = "unknown",
    semantics: str = "",
    split: str = "test",
) -> str:
    """HDF5 dataset path of an array keyed like a scalar row, e.g.
    ``cifar10/arch_00042/nb201-200ep/seed_-1/adversarial/pgd/eps_1/per-epsilon/correct``. On another split than
    ``test`` the family segment carries the split (``valid-adversarial``), so every path keeps the same depth and
    test-split paths are those of schema v1."""
    where = f"eps_{format_eps(epsilon)}" if not math.isnan(epsilon) else (f"sev_{severity}" if severity else "none")
    sem = semantics or "none"
    fam = family if split in ("", "test") else f"{split}-{family}"
    parts = [dataset, f"arch_{arch_index:05d}", weights, f"seed_{seed}", fam, key, where, sem, measure]
    return "/".join(p.replace("/", "-") for p in parts)


#: Segments of an :func:`array_path` (dataset, ``arch_NNNNN``, weights, seed, family, key, epsilon/severity,
#: semantics, measure).
ARRAY_PATH_DEPTH = 9


def array_kind(path: str) -> tuple[str, int, str]:
    """``array_path`` -> (dataset, NB201 index, kind): the kind is the path without its ``arch_NNNNN`` segment, what
    the arrays of one key share across cells (``cifar10/nb201-200ep/seed_-1/adversarial/pgd/eps_1/per-epsilon/
    correct``). :class:`DataIntegrityError` for a path :func:`array_path` does not build."""
    parts = path.split("/")
    arch = parts[1] if len(parts) == ARRAY_PATH_DEPTH else ""
    if not (arch.startswith("arch_") and arch[5:].isdigit() and all(parts)):
        raise DataIntegrityError(
            f"array key {path!r} is not an rb201 array path ({ARRAY_PATH_DEPTH} segments dataset/arch_NNNNN/weights/"
            "seed_S/family/key/eps_E|sev_S|none/semantics/measure)"
        )
    return parts[0], int(arch[5:]), "/".join(parts[:1] + parts[2:])


def kind_array_path(kind: str, arch_index: int) -> str:
    """Inverse of :func:`array_kind`: the array path of ``kind`` for cell ``arch_index``."""
    dataset, _, rest = kind.partition("/")
    return f"{dataset}/arch_{arch_index:05d}/{rest}"
