"""Shared test fixtures. Tests may read ../shared/data (the published reference data); the package never does."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Downloads and the verified-file stamps go to a private folder, never the user's cache (set before any test runs).
os.environ["RB201_CACHE"] = tempfile.mkdtemp(prefix="rb201-test-cache-")
atexit.register(shutil.rmtree, os.environ["RB201_CACHE"], True)

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"reference data folder {SHARED_DATA} not present: this test reads the full published files "
            "(README, Testing: what such tests add to the ones that run from tests/fixtures/)"
        )
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests use tiny networks: one torch thread is faster than two there (no contention between the threads and
    with pytest itself) and makes timings steadier. No-op if torch was never imported."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
