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


def _torch_one_thread():
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


@pytest.fixture(autouse=True, scope="module")
def _one_thread_module():
    """One thread also while module-scoped fixtures train their models (they are set up before any test's own)."""
    yield from _torch_one_thread()


@pytest.fixture(autouse=True)
def _one_thread():
    """One thread in every test, restored after it (a test may set another count, e.g. through --threads)."""
    yield from _torch_one_thread()


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real single-node Slurm cluster (tests/slurm/start-cluster.sh), started once per test process that needs it
    and stopped at the end unless another test session still uses it (tests/slurm_cluster.py)."""
    import slurm_cluster as sc

    cluster, fd = sc.start()
    yield cluster
    sc.stop(fd)


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium driven through Selenium (tests/browser.py), one per test process."""
    from browser import Browser

    b = Browser()
    yield b
    b.close()


def pytest_terminal_summary(terminalreporter):
    """Print what the Slurm tests recorded (cluster version and start time, sbatch job ids) and where the report
    tests saved their screenshots, also under xdist."""
    lines = []
    for reports in terminalreporter.stats.values():
        for rep in reports:
            props = dict(getattr(rep, "user_properties", ()) or ())
            if getattr(rep, "when", "") == "call" and "sbatch_job_ids" in props:
                lines.append(f"{rep.nodeid}: sbatch job ids {props['sbatch_job_ids']} ({props.get('slurm', '')}; "
                             f"{rep.duration:.1f} s)")  # fmt: skip
    if lines:
        terminalreporter.section("Slurm jobs")
        for line in sorted(set(lines)):
            terminalreporter.write_line(line)
    shots = sorted({dict(getattr(rep, "user_properties", ()) or ()).get("screenshots") for reports in
                    terminalreporter.stats.values() for rep in reports} - {None})  # fmt: skip
    if shots:
        terminalreporter.section("Report screenshots (for a person to look at)")
        for folder in shots:
            terminalreporter.write_line(str(folder))
