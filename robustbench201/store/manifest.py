"""The manifest of a dataset directory, ``manifest.json``: its entries, strict parsing and JSON form. The format
itself is described once, in :mod:`robustbench201.store.dataset` (which re-exports everything here)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataIntegrityError, Rb201Error
from .schema import READABLE_SCHEMA_VERSIONS, SCHEMA_VERSION

__all__ = ["FORMAT", "MANIFEST", "FILE_KINDS", "NOT_DATA", "DATASET_VERSION", "READABLE_DATASET_VERSIONS",
           "FileEntry", "Manifest", "parse_manifest", "read_manifest", "manifest_format"]  # fmt: skip

FORMAT = "rb201-dataset"
MANIFEST = "manifest.json"
FILE_KINDS: tuple[str, ...] = ("results", "arrays", "wide")
#: Files that may sit in a dataset folder without being data: the registry ``rb201 publish`` writes there by
#: default, and the package marker of the embedded table.
NOT_DATA = frozenset({"registry.json", "__init__.py"})
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_KNOWN_KEYS = ("format", "schema_version", "name", "created", "code_version", "specs", "files")
#: The version of a dataset whose arrays are in the packed layout; one without arrays keeps its rows' version.
DATASET_VERSION = "3"
#: Dataset versions this rb201 reads: 1 and 2 (results schema v1 / v2, arrays in a group per cell), 3 (packed arrays).
READABLE_DATASET_VERSIONS: tuple[str, ...] = (*READABLE_SCHEMA_VERSIONS, DATASET_VERSION)


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
    if version not in READABLE_DATASET_VERSIONS:
        raise DataIntegrityError(
            f"{where} has schema version {doc.get('schema_version')!r}; this rb201 reads "
            f"{', '.join(READABLE_DATASET_VERSIONS)}"
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
