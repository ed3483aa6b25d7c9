"""The code base stays ruff-clean (lint and format), checked by the same command CI runs."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import REPO


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]])
def test_ruff(args):
    ruff = shutil.which("ruff")
    assert ruff is not None, "ruff (part of the 'test' extra) is not installed"
    res = subprocess.run([ruff, *args], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
