"""Published shards: registry, hash-checked resumable download from a local HTTP server, publish."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import pytest_httpserver  # noqa: F401 - part of the test extra
from click.testing import CliRunner
from werkzeug.wrappers import Request, Response  # noqa: E402

from robustbench201.cli import main  # noqa: E402
from robustbench201.errors import DataIntegrityError, Rb201Error  # noqa: E402
from robustbench201.published import DownloadError, download, load_registry, publish, sha256_file  # noqa: E402


@pytest.fixture()
def dataset_dir(tmp_path: Path) -> Path:
    d = tmp_path / "built" / "toy-v1"
    (d / "sub").mkdir(parents=True)
    (d / "manifest.json").write_text(json.dumps({"format": "rb201-dataset", "schema_version": "1"}))
    (d / "results-000.parquet").write_bytes(bytes(range(256)) * 400)
    (d / "sub" / "arrays-000.h5").write_bytes(b"\x89HDF" + b"a" * 5000)
    return d


def _serve(httpserver, root: Path, prefix: str = "/toy-v1/", ranges: list | None = None, truncate: dict | None = None):
    """Serve every file of ``root`` under ``prefix``, honouring Range requests (recorded in ``ranges``)."""
    for p in root.rglob("*"):
        if not p.is_file():
            continue
        rel = p.relative_to(root).as_posix()
        data = p.read_bytes()
        if truncate and rel in truncate:
            data = data[: truncate[rel]]

        def handler(request: Request, data: bytes = data) -> Response:
            rng = request.headers.get("Range")
            if ranges is not None:
                ranges.append(rng)
            if rng:
                start = int(rng.removeprefix("bytes=").split("-")[0])
                return Response(
                    data[start:], status=206, headers={"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
                )
            return Response(data, status=200)

        httpserver.expect_request(prefix + rel).respond_with_handler(handler)


def test_publish_then_download_verifies_every_file(httpserver, dataset_dir, tmp_path):
    reg = publish(dataset_dir, httpserver.url_for("/toy-v1/"), registry=tmp_path / "registry.json", description="toy")
    entry = load_registry(reg)["toy-v1"]
    assert {f.name for f in entry.files} == {"manifest.json", "results-000.parquet", "sub/arrays-000.h5"}
    _serve(httpserver, dataset_dir)
    out = download("toy-v1", tmp_path / "dl", registry=reg, progressbar=False)
    for f in entry.files:
        assert sha256_file(out / f.name) == f.sha256
    assert not list(out.rglob("*.part"))
    # a second call finds verified files and makes no request
    n = len(httpserver.log)
    download("toy-v1", tmp_path / "dl", registry=reg, progressbar=False)
    assert len(httpserver.log) == n


def test_truncated_transfer_leaves_no_valid_file_and_resumes(httpserver, dataset_dir, tmp_path):
    reg = publish(dataset_dir, httpserver.url_for("/toy-v1/"), registry=tmp_path / "registry.json")
    _serve(httpserver, dataset_dir, truncate={"results-000.parquet": 30000})
    with pytest.raises(DownloadError, match="gave 30000 bytes, the registry says 102400; run again to resume"):
        download("toy-v1", tmp_path / "dl", registry=reg, progressbar=False)
    assert not (tmp_path / "dl" / "results-000.parquet").exists()
    assert (tmp_path / "dl" / "results-000.parquet.part").stat().st_size == 30000
    httpserver.clear()
    ranges: list = []
    _serve(httpserver, dataset_dir, ranges=ranges)
    out = download("toy-v1", tmp_path / "dl", registry=reg, progressbar=False)
    assert "bytes=30000-" in ranges
    assert (out / "results-000.parquet").read_bytes() == (dataset_dir / "results-000.parquet").read_bytes()


def test_wrong_hash_is_discarded(httpserver, dataset_dir, tmp_path):
    reg_path = publish(dataset_dir, httpserver.url_for("/toy-v1/"), registry=tmp_path / "registry.json")
    raw = json.loads(reg_path.read_text())
    raw["datasets"]["toy-v1"]["files"][0]["sha256"] = "0" * 64
    reg_path.write_text(json.dumps(raw))
    _serve(httpserver, dataset_dir)
    with pytest.raises(DownloadError, match="sha256 does not match"):
        download("toy-v1", tmp_path / "dl", registry=reg_path, progressbar=False)
    leftovers = [p for p in (tmp_path / "dl").rglob("*") if p.is_file()]
    bad_name = raw["datasets"]["toy-v1"]["files"][0]["name"]
    assert all(p.name != bad_name and not p.name.endswith(".part") for p in leftovers)


def test_unreachable_url_and_http_errors(httpserver, dataset_dir, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    reg = publish(dataset_dir, f"http://127.0.0.1:{port}/toy-v1/", registry=tmp_path / "registry.json")
    with pytest.raises(DownloadError, match="cannot reach"):
        download("toy-v1", tmp_path / "dl", registry=reg, progressbar=False)
    # a mirror override points at the live server, which serves nothing there (HTTP 500 for unexpected requests)
    with pytest.raises(DownloadError, match="answered HTTP 500"):
        download("toy-v1", tmp_path / "dl", registry=reg, base_url=httpserver.url_for("/nothing/"), progressbar=False)
    assert not any(p.is_file() and not p.name.endswith(".part") for p in (tmp_path / "dl").rglob("*"))


def test_mirror_environment_variable(httpserver, dataset_dir, tmp_path, monkeypatch):
    reg = publish(dataset_dir, "http://example.invalid/toy-v1/", registry=tmp_path / "registry.json")
    _serve(httpserver, dataset_dir, prefix="/mirror/")
    monkeypatch.setenv("RB201_MIRROR", httpserver.url_for("/mirror/"))
    monkeypatch.setenv("RB201_CACHE", str(tmp_path / "cache"))
    out = download("toy-v1", registry=reg, progressbar=False)
    assert out == tmp_path / "cache" / "toy-v1" and (out / "manifest.json").is_file()


def test_registry_errors(tmp_path, dataset_dir):
    with pytest.raises(Rb201Error, match="does not exist"):
        load_registry(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataIntegrityError, match="not valid JSON"):
        load_registry(bad)
    bad.write_text(json.dumps({"format": "other", "version": 1}))
    with pytest.raises(DataIntegrityError, match="not an rb201 registry"):
        load_registry(bad)
    reg = publish(dataset_dir, "http://x/", registry=tmp_path / "r.json")
    with pytest.raises(Rb201Error, match="unknown dataset 'nope'; allowed: 'toy-v1'"):
        download("nope", tmp_path / "dl", registry=reg)
    with pytest.raises(Rb201Error, match="no manifest.json"):
        publish(tmp_path, "http://x/")
    assert load_registry() == {} or isinstance(load_registry(), dict)


def test_cli_publish_list_and_download(httpserver, dataset_dir, tmp_path):
    runner = CliRunner()
    reg = tmp_path / "registry.json"
    res = runner.invoke(
        main,
        [
            "publish",
            str(dataset_dir),
            "--base-url",
            httpserver.url_for("/toy-v1/"),
            "--registry",
            str(reg),
            "--description",
            "a toy",
        ],
    )
    assert res.exit_code == 0, res.output
    listed = runner.invoke(main, ["download", "--list", "--registry", str(reg)])
    assert "toy-v1" in listed.output and "3 files" in listed.output
    _serve(httpserver, dataset_dir)
    res = runner.invoke(main, ["download", "toy-v1", "--registry", str(reg), "--dest", str(tmp_path / "d"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "d" / "sub" / "arrays-000.h5").is_file()
    res = runner.invoke(main, ["download", "nope", "--registry", str(reg)])
    assert res.exit_code == 1 and res.output.startswith("Error: unknown dataset 'nope'")


def test_atomic_writes_get_the_umask_mode_and_leave_nothing_on_failure(tmp_path):
    import os

    from robustbench201.atomic import TMP_SUFFIX, atomic_path, write_text_atomic

    target = tmp_path / "a" / "file.txt"
    write_text_atomic(target, "hello")
    mask = os.umask(0)
    os.umask(mask)
    assert target.read_text() == "hello" and (target.stat().st_mode & 0o777) == (0o666 & ~mask)
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert target.read_text() == "hello" and not list(target.parent.glob(f"*{TMP_SUFFIX}"))
