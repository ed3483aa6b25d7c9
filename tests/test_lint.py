"""The code base stays ruff-clean (lint and format), checked by the same command CI runs."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]])
def test_ruff(args):
    # the ruff of this Python (the test extra pins its version), not whatever ruff is first on PATH
    assert importlib.util.find_spec("ruff"), "ruff (part of the 'test' extra) is not installed"
    res = subprocess.run([sys.executable, "-m", "ruff", *args], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
