"""The reference fixtures in tests/fixtures/: derived from the published data, small, and documented."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from published import FIXTURES, make_fixtures

#: every folder here says where its data came from; the whole set stays a small part of a clone
BUDGET_BYTES = 2 * 2**20


def test_every_fixture_folder_has_a_source_note() -> None:
    folders = sorted(p for p in FIXTURES.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert len(folders) >= 5
    for folder in folders:
        source = (folder / "SOURCE.md").read_text()
        assert "licen" in source.lower() or "Apache" in source, folder.name


def test_fixtures_stay_small() -> None:
    total = sum(p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert total < BUDGET_BYTES, f"tests/fixtures holds {total} bytes"


def _npy(data: bytes) -> np.ndarray:
    return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)


@pytest.mark.slow
def test_make_fixtures_regenerates_the_committed_fixtures(shared_data: Path, tmp_path: Path) -> None:
    """Every fixture is what ``make_fixtures.py`` writes from ``../shared/data`` (contents compared after
    decompression; the JPEG photographs within the two levels by which libjpeg builds may differ)."""
    mf = make_fixtures()
    mf.make_all(shared_data, tmp_path)
    made = mf.contents(tmp_path)
    folders = {k.split("/")[0] for k in made}
    committed = {k: v for k, v in mf.contents(FIXTURES).items() if k.split("/")[0] in folders}
    jpegs = sorted(k for k in made if k.startswith("hendrycks-frost/shrunk_jpegs.npz/"))
    assert jpegs and sorted(k for k in committed if k in jpegs) == jpegs
    for k in jpegs:
        a, b = _npy(made.pop(k)), _npy(committed.pop(k))
        assert a.shape == b.shape and np.abs(a.astype(int) - b).max() <= 2, k
    assert sorted(made) == sorted(committed)
    assert [k for k in made if made[k] != committed[k]] == []
