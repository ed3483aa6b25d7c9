"""Dataset directories on disk: ``manifest.json`` plus the files it lists (docs/ARCHITECTURE.md).

Writers put every file in place atomically and list it with its kind, size, sha256 and row count; readers check the
manifest's format and schema version, and (``verify=True``) every listed file's size and sha256.

File kinds: ``results`` (tidy schema v1 rows), ``arrays`` (HDF5 arrays at ``store.schema.array_path`` keys) and
``wide`` (a derived per-dataset matrix for fast lookups, one row per NB201 index; see :mod:`.wide`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataIntegrityError, Rb201Error
from ..store.atomic import sha256_file, write_text_atomic
from ..store.schema import SCHEMA_VERSION

MANIFEST = "manifest.json"
FORMAT = "rb201-dataset"
FILE_KINDS = ("results", "arrays", "wide")


@dataclass(frozen=True)
class FileEntry:
    """One file listed in a manifest (``bytes`` is its size; ``rows`` the number of scalar rows, -1 if none)."""

    path: str
    kind: str
    sha256: str
    bytes: int
    rows: int = -1
    dataset: str = ""


@dataclass(frozen=True)
class Manifest:
    """The parsed ``manifest.json`` of a dataset directory."""

    name: str
    created: str
    code_version: str
    files: tuple[FileEntry, ...]
    specs: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[FileEntry]:
        return [f for f in self.files if f.kind == kind]

    def to_json(self) -> str:
        doc: dict[str, Any] = {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "created": self.created,
            "code_version": self.code_version,
            "specs": self.specs,
            "files": [
                {k: v for k, v in vars(f).items() if not (k == "dataset" and not v)}
                for f in sorted(self.files, key=lambda f: f.path)
            ],
        }
        doc.update(self.extra)
        return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def file_entry(directory: Path, name: str, kind: str, rows: int = -1, dataset: str = "") -> FileEntry:
    """Describe a file already written in ``directory``."""
    if kind not in FILE_KINDS:
        raise Rb201Error(f"unknown file kind {kind!r}; allowed: {', '.join(FILE_KINDS)}")
    p = directory / name
    return FileEntry(name, kind, sha256_file(p), p.stat().st_size, rows, dataset)


def write_manifest(directory: str | Path, manifest: Manifest) -> Path:
    """Write ``manifest.json`` atomically (after every listed file is in place)."""
    target = Path(directory) / MANIFEST
    write_text_atomic(target, manifest.to_json())
    return target


def read_manifest(directory: str | Path, verify: bool = False) -> Manifest:
    """Parse and check a dataset directory's manifest; with ``verify`` also check each file's size and sha256."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.is_dir():
        raise Rb201Error(f"dataset directory {str(directory)!r} does not exist")
    if not path.is_file():
        raise DataIntegrityError(f"{directory} is not an rb201 dataset directory: no {MANIFEST}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataIntegrityError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise DataIntegrityError(f"{path} is not an rb201 dataset manifest (format must be {FORMAT!r})")
    version = str(doc.get("schema_version"))
    if version != SCHEMA_VERSION:
        raise DataIntegrityError(
            f"{path} has schema version {version!r}; this rb201 reads schema version {SCHEMA_VERSION!r}"
        )
    try:
        files = tuple(
            FileEntry(
                str(f["path"]),
                str(f["kind"]),
                str(f["sha256"]),
                int(f["bytes"]),
                int(f.get("rows", -1)),
                str(f.get("dataset", "")),
            )
            for f in doc.get("files", [])
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DataIntegrityError(f"{path} has a malformed file entry: {exc}") from None
    for f in files:
        if "/" in f.path or "\\" in f.path or f.path.startswith("."):
            raise DataIntegrityError(f"{path} lists {f.path!r}; only plain file names inside the directory are allowed")
        target = directory / f.path
        if not target.is_file():
            raise DataIntegrityError(f"{path} lists {f.path!r}, which is missing")
        if target.stat().st_size != f.bytes:
            raise DataIntegrityError(
                f"{target} has {target.stat().st_size} bytes; the manifest says {f.bytes} (truncated or changed)"
            )
        if verify and sha256_file(target) != f.sha256:
            raise DataIntegrityError(f"{target} does not match its sha256 in the manifest (corrupt or changed)")
    known = {"format", "schema_version", "name", "created", "code_version", "specs", "files"}
    return Manifest(
        name=str(doc.get("name", directory.name)),
        created=str(doc.get("created", "")),
        code_version=str(doc.get("code_version", "")),
        files=files,
        specs=dict(doc.get("specs") or {}),
        extra={k: v for k, v in doc.items() if k not in known},
    )
