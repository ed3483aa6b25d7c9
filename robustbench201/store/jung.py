"""Importer of the published NB201 robustness dataset (Jung, Lukasik & Keuper, ICLR 2023) in its original layout.

Original layout (the helper repository's data root)::

    meta.json                          {"ids": {"0": {"nb201-string": ..., "isomorph": "0"}, ...},
                                        "epsilons": {"fgsm@Linf": [0.1, ...], ...}}   (epsilons in 1/255 units)
    <dataset>/<key>_<measure>.json     {dataset: {key: {measure: {id: value}}}}

with ``measure`` in accuracy | confidence | cm and keys ``clean``, ``<attack>@<norm>`` (fgsm, pgd, aa_apgd-ce,
aa_square) or a corruption name. Values: a scalar for clean, a list aligned with ``meta["epsilons"][key]`` for
attacks, a list of 5 (severity 1..5) for corruptions; ``cm`` holds confusion matrices in the same shapes.

Output: an rb201 dataset directory (schema v1 rows, confusion matrices keyed by ``array_path`` in the packed arrays
files of :mod:`.dataset`). Rows carry
``arch_index`` = the published id (an isomorphism-class representative), seed -1, weights ``nb201-200ep``,
source ``jung2023``, semantics ``per-epsilon`` for attacks (PROTOCOL.md section 6).
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..data.info import canonical_dataset, dataset_info
from ..errors import DataIntegrityError, InvalidChoiceError, Rb201Error
from ..space import NUM_ARCHS, Arch, representative_indices
from ..vocab import CORRUPTIONS, NORMS
from .schema import array_path

log = logging.getLogger(__name__)

SOURCE = "jung2023"
WEIGHTS = "nb201-200ep"
ATTACKS: tuple[str, ...] = ("fgsm", "pgd", "aa_apgd-ce", "aa_square")
#: original measure name -> our measure name
MEASURES = {"accuracy": "accuracy", "confidence": "confidence", "cm": "confusion_matrix"}
_FILE_RE = re.compile(r"^(?P<key>.+)_(?P<measure>accuracy|confidence|cm)\.json$")


@dataclass(frozen=True)
class JungMeta:
    """``meta.json``: NB201 ids present, their representatives, and epsilon grids per original attack key."""

    ids: dict[int, int]  # id -> isomorph id
    epsilons: dict[str, tuple[float, ...]]  # e.g. "pgd@Linf" -> (0.1, 0.5, 1.0, 2.0, 3.0, 4.0, 8.0), 1/255 units


@dataclass
class ImportSummary:
    """What :func:`import_jung` wrote: rows per dataset and key, arrays, and the output directory."""

    out_dir: str
    rows: int
    arrays: int
    keys: dict[str, list[str]] = field(default_factory=dict)  # dataset -> "key/measure" items imported
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"out_dir": self.out_dir, "rows": self.rows, "arrays": self.arrays, "keys": self.keys}


def _load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise DataIntegrityError(f"{path} is not valid JSON ({exc})") from None


def read_meta(root: str | Path) -> JungMeta:
    """Read and check ``meta.json`` (every id's NB201 string and isomorph must match rb201's space)."""
    path = Path(root) / "meta.json"
    if not Path(root).is_dir():
        raise Rb201Error(f"{str(root)!r} is not a directory; expected the robustness dataset's root with meta.json")
    if not path.is_file():
        raise DataIntegrityError(f"{root} has no meta.json; expected the original layout meta.json + <dataset>/")
    doc = _load_json(path)
    if not isinstance(doc, dict) or "ids" not in doc or "epsilons" not in doc:
        raise DataIntegrityError(f"{path} lacks 'ids' or 'epsilons'")
    reps = representative_indices()
    ids: dict[int, int] = {}
    for sid, rec in doc["ids"].items():
        try:
            i, iso = int(sid), int(rec["isomorph"])
            string = rec["nb201-string"]
        except (KeyError, TypeError, ValueError):
            raise DataIntegrityError(f"{path}: malformed entry for id {sid!r}") from None
        if not 0 <= i < NUM_ARCHS:
            raise DataIntegrityError(f"{path}: id {i} out of range 0..{NUM_ARCHS - 1}")
        if Arch.from_index(i).string != string:
            raise DataIntegrityError(f"{path}: id {i} has string {string!r}; NB201 index {i} is {Arch.from_index(i)}")
        if reps[i] != iso:
            raise DataIntegrityError(f"{path}: id {i} has isomorph {iso}; its class representative is {reps[i]}")
        ids[i] = iso
    eps = {k: tuple(float(e) for e in v) for k, v in doc["epsilons"].items()}
    return JungMeta(ids, eps)


def parse_key(original: str) -> tuple[str, str, str, str]:
    """Original key -> (family, key, norm, semantics): ``'pgd@Linf' -> ('adversarial', 'pgd', 'Linf', ...)``."""
    if original == "clean":
        return "clean", "clean", "", ""
    if "@" in original:
        attack, norm = original.split("@", 1)
        if attack not in ATTACKS or norm not in NORMS:
            raise InvalidChoiceError(
                f"unknown attack key {original!r}; allowed: {', '.join(a + '@Linf' for a in ATTACKS)}"
            )
        return "adversarial", attack, norm, "per-epsilon"
    if original in CORRUPTIONS:
        return "corruption", original, "", ""
    raise InvalidChoiceError(
        f"unknown key {original!r}; allowed: clean, {', '.join(a + '@Linf' for a in ATTACKS)}, {', '.join(CORRUPTIONS)}"
    )


def _grid(family: str, original: str, meta: JungMeta, path: Path) -> tuple[list[float], list[int]]:
    """(epsilons, severities) that the value lists of one file are aligned with (scalars: ([nan], [0]))."""
    if family == "adversarial":
        if original not in meta.epsilons:
            raise DataIntegrityError(f"{path}: meta.json has no epsilon grid for {original!r}")
        eps = list(meta.epsilons[original])
        return eps, [0] * len(eps)
    if family == "corruption":
        return [math.nan] * 5, [1, 2, 3, 4, 5]
    return [math.nan], [0]


def read_file(path: Path, dataset: str, meta: JungMeta) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """One ``<key>_<measure>.json`` -> (schema v1 columns for scalar measures, {array_path: array} for cm)."""
    m = _FILE_RE.match(path.name)
    if not m:
        raise DataIntegrityError(f"{path}: file name is not <key>_<accuracy|confidence|cm>.json")
    original, measure = m.group("key"), m.group("measure")
    family, key, norm, semantics = parse_key(original)
    eps, sevs = _grid(family, original, meta, path)
    doc = _load_json(path)
    folder = path.parent.name
    try:
        values = doc[folder][original][measure]
    except (KeyError, TypeError):
        raise DataIntegrityError(
            f"{path}: expected {{{folder!r}: {{{original!r}: {{{measure!r}: {{id: value}}}}}}}}"
        ) from None
    scalar = family == "clean"
    ids = []
    for sid in values:
        try:
            i = int(sid)
        except ValueError:
            raise DataIntegrityError(f"{path}: id {sid!r} is not an integer") from None
        if i not in meta.ids:
            raise DataIntegrityError(f"{path}: unknown id {i}; meta.json lists {len(meta.ids)} ids")
        ids.append(i)
    k = len(eps)
    rows: list[list[Any]] = []
    for sid, v in values.items():
        item = [v] if scalar else v
        if not isinstance(item, list) or len(item) != k:
            got = len(item) if isinstance(item, list) else type(item).__name__
            what = f"epsilons {eps}" if family == "adversarial" else "severities 1..5"
            raise DataIntegrityError(f"{path}: id {sid} has {got} values; expected {k} (one per {what})")
        rows.append(item)
    n_test = dataset_info(dataset).n_test
    if measure == "cm":
        arrays = {}
        for i, item in zip(ids, rows, strict=True):
            for e, s, mat in zip(eps, sevs, item, strict=True):
                a = np.asarray(mat, dtype=np.int32)
                if a.ndim != 2 or a.shape[0] != a.shape[1]:
                    raise DataIntegrityError(f"{path}: id {i} has a confusion matrix of shape {a.shape}; expected KxK")
                key_path = array_path(dataset, i, family, key, MEASURES[measure], e, s, -1, WEIGHTS, semantics)
                arrays[key_path] = a
        return {}, arrays
    try:
        vals = np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataIntegrityError(f"{path}: values are not all numbers") from None
    n = len(ids) * k
    cols = {
        "arch_index": np.repeat(np.asarray(ids, dtype=np.int32), k),
        "dataset": [dataset] * n,
        "seed": np.full(n, -1, dtype=np.int32),
        "weights": [WEIGHTS] * n,
        "family": [family] * n,
        "key": [key] * n,
        "norm": [norm] * n,
        "epsilon": np.tile(np.asarray(eps, dtype=np.float64), len(ids)),
        "severity": np.tile(np.asarray(sevs, dtype=np.int8), len(ids)),
        "semantics": [semantics] * n,
        "measure": [MEASURES[measure]] * n,
        "value": vals.reshape(-1),
        "n": np.full(n, n_test, dtype=np.int32),
        "source": [SOURCE] * n,
        "spec_hash": [""] * n,
        "code_version": [f"rb201-{__version__}-import-jung"] * n,
    }
    return cols, {}


def read_jung(root: str | Path) -> tuple[JungMeta, dict[str, Any], dict[str, np.ndarray], dict[str, list[str]]]:
    """Read the whole original layout -> (meta, {dataset: pyarrow Table}, arrays, {dataset: imported items})."""
    from .dataset import columns_table

    root = Path(root)
    meta = read_meta(root)
    tables: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    items: dict[str, list[str]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            dataset = canonical_dataset(folder.name)
        except InvalidChoiceError:
            log.warning("skipping %s: not a known dataset folder", folder)
            continue
        parts = []
        for f in sorted(folder.glob("*.json")):
            cols, arr = read_file(f, dataset, meta)
            if cols:
                parts.append(columns_table(cols))
            arrays.update(arr)
            items.setdefault(dataset, []).append(f.stem)
        if parts:
            import pyarrow as pa

            tables[dataset] = pa.concat_tables(parts)
    if not items:
        raise DataIntegrityError(f"{root} has no <dataset>/<key>_<measure>.json files")
    return meta, tables, arrays, items


def import_jung(path: str | Path, out_dir: str | Path, created: str | None = None) -> ImportSummary:
    """Convert the original layout at ``path`` into an rb201 dataset directory ``out_dir``.

    ``created`` is the manifest timestamp (default: now, UTC); pass a fixed one for byte-identical output."""
    from .dataset import write_dataset_dir

    meta, tables, arrays, items = read_jung(path)
    created = created or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    extra = {"source": SOURCE, "epsilons_1_255": {k: list(v) for k, v in sorted(meta.epsilons.items())}}
    manifest = write_dataset_dir(out_dir, tables, name=SOURCE, created=created, arrays=arrays, extra=extra)
    rows = sum(t.num_rows for t in tables.values())
    log.info("imported %d rows and %d arrays from %s into %s", rows, len(arrays), path, out_dir)
    return ImportSummary(str(out_dir), rows, len(arrays), items, [f.path for f in manifest.files])
