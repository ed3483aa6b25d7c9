"""Published dataset shards: a registry of files (name, URL, sha256, size), hash-checked downloads into a cache.

Downloads go through pooch (hash check before use, temporary file then atomic rename) with a downloader of ours
that resumes an interrupted transfer from a ``.part`` file with an HTTP Range request. A file is only ever placed
under its final name after its size and sha256 match the registry, so a failed or truncated download never leaves
a file that later passes as valid.

Registry format (JSON)::

    {"format": "rb201-registry", "version": 1,
     "datasets": {"NAME": {"base_url": "https://host/path/NAME/", "description": "...",
                           "files": [{"name": "manifest.json", "url": "manifest.json",
                                      "sha256": "...", "size": 1234}, ...]}}}

``url`` is resolved against ``base_url`` unless absolute. A mirror (``--base-url``, ``$RB201_MIRROR``; ``http(s)://``
or ``file://``) holds the dataset's layout: each file is fetched as its ``name`` under the mirror. Environment:
``RB201_CACHE`` moves the cache folder, ``RB201_REGISTRY`` names a registry file to use instead of the one shipped
with the package (which lists ``jung2023-original``, the published accuracy files of Jung et al.). Downloaded files
get the mode a plain ``open()`` gives (0644 under the usual umask).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse
from urllib.request import url2pathname

from .atomic import sha256_file, write_text_atomic
from .errors import DataIntegrityError, Rb201Error, choice_error
from .store.integrity import ENV_CACHE as INTEGRITY_ENV_CACHE
from .store.integrity import user_cache_dir

__all__ = ["REGISTRY_FORMAT", "REGISTRY_VERSION", "ENV_CACHE", "ENV_MIRROR", "ENV_REGISTRY", "DownloadError",
           "RegistryFile", "RegistryEntry", "cache_dir", "load_registry", "ResumableDownloader", "download",
           "publish"]  # fmt: skip

log = logging.getLogger(__name__)

REGISTRY_FORMAT = "rb201-registry"
REGISTRY_VERSION = 1
ENV_CACHE = INTEGRITY_ENV_CACHE  # one cache folder for downloads and verified stamps
ENV_MIRROR = "RB201_MIRROR"
ENV_REGISTRY = "RB201_REGISTRY"
_CHUNK = 1 << 20


class DownloadError(Rb201Error):
    """A download failed (unreachable URL, HTTP error, size or hash mismatch); nothing was left as valid."""


@dataclass(frozen=True)
class RegistryFile:
    name: str  # path inside the dataset directory
    url: str  # absolute, or relative to the dataset's base_url
    sha256: str
    size: int


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    base_url: str
    files: tuple[RegistryFile, ...]
    description: str = ""

    def url_of(self, f: RegistryFile, mirror: str | None = None) -> str:
        """The file's URL: its ``url`` resolved against ``base_url``; with a ``mirror`` (a copy of the dataset's
        layout elsewhere), the file's ``name`` under the mirror, whatever its original URL."""
        if mirror:
            return urljoin(mirror if mirror.endswith("/") else mirror + "/", f.name)
        base = self.base_url if self.base_url.endswith("/") else self.base_url + "/"
        return urljoin(base, f.url)


def cache_dir() -> Path:
    """Where downloads go: ``$RB201_CACHE`` or the OS cache folder (e.g. ``~/.cache/rb201``)."""
    return user_cache_dir()


def _shipped_registry() -> dict[str, Any]:
    from importlib.resources import files

    res = files("robustbench201._data").joinpath("registry.json")
    return json.loads(res.read_text()) if res.is_file() else {"format": REGISTRY_FORMAT, "version": 1, "datasets": {}}


def load_registry(source: str | Path | None = None) -> dict[str, RegistryEntry]:
    """Read a registry (a path; default ``$RB201_REGISTRY`` or the registry shipped with the package)."""
    source = source or os.environ.get(ENV_REGISTRY)
    if source is None:
        raw = _shipped_registry()
        where = "the shipped registry"
    else:
        p = Path(source)
        if not p.is_file():
            raise Rb201Error(f"registry file {p} does not exist")
        try:
            raw = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataIntegrityError(f"registry {p} is not valid JSON: {exc}") from None
        where = str(p)
    if not isinstance(raw, dict):
        raise DataIntegrityError(
            f"{where} holds a JSON {type(raw).__name__}; an rb201 registry is an object "
            f'{{"format": "{REGISTRY_FORMAT}", "version": {REGISTRY_VERSION}, "datasets": {{...}}}}'
        )
    if raw.get("format") != REGISTRY_FORMAT or raw.get("version") != REGISTRY_VERSION:
        raise DataIntegrityError(
            f"{where} is not an rb201 registry version {REGISTRY_VERSION} "
            f"(format={raw.get('format')!r}, version={raw.get('version')!r})"
        )
    datasets = raw.get("datasets", {})
    if not isinstance(datasets, dict):
        raise DataIntegrityError(f"{where}: 'datasets' is a {type(datasets).__name__}; allowed: an object")
    out = {}
    for name, d in datasets.items():
        try:
            if not isinstance(d, dict) or not isinstance(d.get("files"), list):
                raise TypeError("an entry is an object with 'base_url' and a list 'files'")
            files = tuple(_registry_file(f) for f in d["files"])
            out[name] = RegistryEntry(name, str(d["base_url"]), files, str(d.get("description", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataIntegrityError(f"{where}: dataset {name!r} has a malformed entry ({exc})") from None
    return out


def _registry_file(f: object) -> RegistryFile:
    if not isinstance(f, dict):
        raise TypeError(f"file entry {f!r:.40} is not an object with name, sha256 and size")
    size = f["size"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"size {size!r} of {f.get('name')!r} is not a non-negative integer")
    return RegistryFile(str(f["name"]), str(f.get("url", f["name"])), str(f["sha256"]), size)


class ResumableDownloader:
    """A pooch downloader that resumes from ``<final>.part`` with an HTTP Range request.

    Pooch calls it with a temporary output file; the bytes are accumulated in the ``.part`` file beside the final
    target (kept across interruptions) and copied to pooch's temporary file only once the expected size is reached.
    """

    def __init__(self, part_path: Path, expected_size: int, progressbar: bool = True, timeout: float = 30.0) -> None:
        self.part_path = part_path
        self.expected_size = expected_size
        self.progressbar = progressbar
        self.timeout = timeout

    def __call__(self, url: str, output_file: str, pooch: object) -> None:  # noqa: ARG002 - pooch protocol
        have = self.part_path.stat().st_size if self.part_path.exists() else 0
        if have > self.expected_size:
            self.part_path.unlink()
            have = 0
        if have < self.expected_size:
            if urlparse(url).scheme == "file":
                self._copy_local(url, have)
            else:
                self._get_http(url, have)
        got = self.part_path.stat().st_size
        if got != self.expected_size:
            if got > self.expected_size:
                self.part_path.unlink()
            raise DownloadError(
                f"{url} gave {got} bytes, the registry says {self.expected_size}"
                + ("; run again to resume" if got < self.expected_size else "")
            )
        with open(self.part_path, "rb") as src, open(output_file, "wb") as dst:
            for chunk in iter(lambda: src.read(_CHUNK), b""):
                dst.write(chunk)

    def _copy_local(self, url: str, have: int) -> None:
        """A ``file://`` URL (a mirror on a shared file system): append the missing bytes to the ``.part`` file."""
        src_path = Path(url2pathname(urlparse(url).path))
        try:
            with open(src_path, "rb") as src, open(self.part_path, "ab" if have else "wb") as dst:
                src.seek(have)
                for chunk in iter(lambda: src.read(_CHUNK), b""):
                    dst.write(chunk)
        except FileNotFoundError:
            raise DownloadError(f"{url}: no such file {src_path}") from None
        except OSError as exc:
            raise DownloadError(f"{url} cannot be read: {exc.strerror or exc}") from None

    def _get_http(self, url: str, have: int) -> None:
        import requests

        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            resp = requests.get(url, headers=headers, stream=True, timeout=self.timeout)
        except requests.exceptions.RequestException as exc:
            raise DownloadError(f"cannot reach {url}: {type(exc).__name__}: {exc}") from None
        with resp:
            if resp.status_code == 200 and have:
                log.info("server ignored the Range request for %s; restarting from byte 0", url)
                have = 0
            elif resp.status_code not in (200, 206):
                raise DownloadError(f"{url} answered HTTP {resp.status_code} {resp.reason}")
            mode = "ab" if have else "wb"
            bar = self._bar(have)
            try:
                with open(self.part_path, mode) as fh:
                    for chunk in resp.iter_content(chunk_size=_CHUNK):
                        fh.write(chunk)
                        if bar is not None:
                            bar.update(len(chunk))
            except requests.exceptions.RequestException as exc:
                raise DownloadError(f"download of {url} broke off: {exc}; run again to resume") from None
            finally:
                if bar is not None:
                    bar.close()

    def _bar(self, initial: int):  # type: ignore[no-untyped-def]
        if not self.progressbar:
            return None
        from tqdm import tqdm

        return tqdm(
            total=self.expected_size,
            initial=initial,
            unit="B",
            unit_scale=True,
            desc=self.part_path.name.removesuffix(".part"),
            leave=False,
        )


def download(
    name: str,
    dest: str | Path | None = None,
    *,
    registry: str | Path | None = None,
    base_url: str | None = None,
    progressbar: bool = True,
) -> Path:
    """Download every file of dataset ``name`` into ``dest`` (default ``cache_dir()/name``) and return the folder.

    Files already present with the right sha256 are not downloaded again; interrupted transfers resume. ``base_url``
    (or ``$RB201_MIRROR``) is a mirror holding the dataset's layout (files fetched by name under it).
    """
    import pooch

    entries = load_registry(registry)
    if name not in entries:
        if not entries:
            raise Rb201Error(
                f"no dataset {name!r}: the registry lists no datasets; pass --registry FILE (or set "
                f"{ENV_REGISTRY}) to use a registry written by 'rb201 publish'"
            )
        raise choice_error("dataset", name, sorted(entries))
    entry = entries[name]
    target = Path(dest) if dest is not None else cache_dir() / name
    target.mkdir(parents=True, exist_ok=True)
    mirror = base_url or os.environ.get(ENV_MIRROR)
    logging.getLogger("pooch").setLevel(logging.WARNING)
    for f in entry.files:
        final = (target / f.name).resolve()
        if target.resolve() not in final.parents:
            raise DataIntegrityError(f"registry file name {f.name!r} escapes the dataset folder")
        final.parent.mkdir(parents=True, exist_ok=True)
        part = final.with_name(final.name + ".part")
        downloader = ResumableDownloader(part, f.size, progressbar=progressbar)
        url = entry.url_of(f, mirror)
        try:
            pooch.retrieve(
                url,
                known_hash=f"sha256:{f.sha256}",
                fname=final.name,
                path=final.parent,
                downloader=downloader,
                progressbar=False,
            )
        except ValueError as exc:
            if isinstance(exc, Rb201Error):  # ours: unreachable or short; the .part file is kept for a resume
                raise
            # pooch: sha256 mismatch (its temporary file is already deleted); the bytes are bad, drop them too
            part.unlink(missing_ok=True)
            raise DownloadError(f"{url}: sha256 does not match the registry; the download was discarded") from None
        part.unlink(missing_ok=True)
        final.chmod(0o666 & ~_umask())  # the mode a plain open() gives, like every other file rb201 writes
        log.info("verified %s", final)
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish(
    dataset_dir: str | Path,
    base_url: str,
    *,
    name: str | None = None,
    registry: str | Path | None = None,
    description: str = "",
) -> Path:
    """Write (or update) a registry entry for a built dataset directory; returns the registry path.

    Every regular file of the folder (manifest, Parquet, HDF5) is listed with its sha256 and size. The registry is
    written atomically to ``registry`` (default ``DATASET_DIR/registry.json``)."""
    root = Path(dataset_dir)
    if not (root / "manifest.json").is_file():
        raise Rb201Error(f"{root} is not a dataset folder (no manifest.json); build one with 'rb201 merge'")
    name = name or root.name
    files = []
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name == "registry.json" or p.name.endswith((".part", ".rb201-tmp")):
            continue
        rel = p.relative_to(root).as_posix()
        files.append({"name": rel, "url": rel, "sha256": sha256_file(p), "size": p.stat().st_size})
    out = Path(registry) if registry is not None else root / "registry.json"
    raw: dict[str, Any] = {"format": REGISTRY_FORMAT, "version": REGISTRY_VERSION, "datasets": {}}
    if out.is_file():
        load_registry(out)  # refuse to extend a malformed registry
        raw = json.loads(out.read_text())
    raw["datasets"][name] = {"base_url": base_url, "description": description, "files": files}
    write_text_atomic(out, json.dumps(raw, indent=2, sort_keys=True) + "\n")
    return out
