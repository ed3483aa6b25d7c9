"""The shipped registry: ``jung2023-original`` lists the published accuracy files of Jung et al. with their sizes
and sha256; downloading them from a mirror and importing them gives exactly the embedded table's robustness rows."""

from __future__ import annotations

import json
import os
import re
import stat
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest_httpserver  # noqa: F401 - part of the test extra
from click.testing import CliRunner
from published import assert_robustness_equals_embedded

from robustbench201.cli import main
from robustbench201.published import load_registry, sha256_file


def _entry():  # type: ignore[no-untyped-def]
    return load_registry(str(files("robustbench201._data").joinpath("registry.json")))["jung2023-original"]


def test_the_shipped_registry_pins_every_published_file(shared_data):
    """Offline: names, sizes and sha256 of the entry equal the published files; URLs are raw files of fixed
    commits (their bytes never change)."""
    root = shared_data / "nb201-robustness"
    entry = _entry()
    published = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.json"))
    assert sorted(f.name for f in entry.files) == published and len(published) == 47
    for f in entry.files:
        local = root / f.name
        assert local.stat().st_size == f.size and sha256_file(local) == f.sha256, f.name
        assert re.fullmatch(r"https://raw\.githubusercontent\.com/[\w.-]+/[\w.-]+/[0-9a-f]{40}/.+", f.url), f.url
        assert f.url.endswith("/" + f.name)


def test_the_shipped_registry_is_what_the_build_script_writes(shared_data, tmp_path):
    import runpy

    script = Path(__file__).resolve().parents[1] / "scripts" / "build_registry.py"
    out = tmp_path / "registry.json"
    runpy.run_path(str(script), run_name="build_registry")["main"](["--shared", str(shared_data), "--out", str(out)])
    shipped = json.loads(files("robustbench201._data").joinpath("registry.json").read_text())
    assert json.loads(out.read_text()) == shipped


def test_download_from_a_mirror_then_import_gives_the_embedded_values(shared_data, httpserver, tmp_path):
    root = shared_data / "nb201-robustness"
    for p in root.rglob("*.json"):
        httpserver.expect_request("/mirror/" + p.relative_to(root).as_posix()).respond_with_data(p.read_bytes())
    dest = tmp_path / "jung-original"
    runner = CliRunner()
    res = runner.invoke(
        main,
        [
            "download",
            "jung2023-original",
            "--dest",
            str(dest),
            "--base-url",
            httpserver.url_for("/mirror/"),
            "--quiet",
        ],  # fmt: skip
    )
    assert res.exit_code == 0, res.output
    assert "rb201 import-jung" in res.output
    umask = os.umask(0)
    os.umask(umask)
    for f in _entry().files:
        p = dest / f.name
        assert sha256_file(p) == f.sha256
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask, (f.name, oct(p.stat().st_mode))  # not 0600
    res = runner.invoke(main, ["import-jung", str(dest), "--out", str(tmp_path / "jung")])
    assert res.exit_code == 0, res.output
    assert_robustness_equals_embedded(tmp_path / "jung", np.arange(15625))
