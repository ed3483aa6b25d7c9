"""Shared test fixtures. Tests may read ../shared/data (the published reference data); the package never does."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data folder {SHARED_DATA} not present")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _few_threads():
    """Keep torch to 2 threads on the 2-core CI machine (no-op if torch was never imported)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() > 2:
        torch.set_num_threads(2)
    yield
