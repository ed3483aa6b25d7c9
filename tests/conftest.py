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


def beyond_chance(labels, delta: float = 1e-6) -> float:  # type: ignore[no-untyped-def]
    """An accuracy on ``labels`` that a classifier whose prediction does not depend on the image exceeds with
    probability below ``delta``: its expected accuracy is at most the largest class frequency, and by Hoeffding's
    inequality its accuracy on n points exceeds that by more than sqrt(ln(1 / delta) / 2n) with probability below
    delta. A test that a network learned something compares its accuracy with this, not with a number seen in a run
    (accuracies differ between float paths)."""
    import math

    import numpy as np

    counts = np.bincount(np.asarray(labels).ravel())
    return float(counts.max() / counts.sum() + math.sqrt(math.log(1 / delta) / (2 * counts.sum())))


def population_batch_norm(model, x, batch_size: int = 500):  # type: ignore[no-untyped-def]
    """Recompute the running statistics of every BatchNorm of ``model`` as averages over the images ``x`` with its
    final weights (train-mode passes without gradients); return it in eval mode, without gradients.

    The tests' briefly trained networks need this: after one or two short epochs the running averages lag far behind
    the weights, and how far depends on the float path, so eval-mode accuracy came out anywhere from 0.10 (chance)
    to 0.9 while the same weights scored 0.55 to 0.95 with batch statistics."""
    import torch

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below
    model.train()
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            model(x[i : i + batch_size])
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    return model.eval().requires_grad_(False)


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real single-node Slurm cluster (tests/slurm/start-cluster.sh), started once per test process that needs it
    and stopped at the end unless another test session still uses it (tests/slurm_cluster.py)."""
    import slurm_cluster as sc

    cluster, fd = sc.start()
    yield cluster
    sc.stop(fd)


def pytest_report_header(config):
    """The float path the numeric tests run on (their expected values must hold on every one: README, Testing)."""
    import torch

    isa, cbwr = (os.environ.get(k, "unset") for k in ("ONEDNN_MAX_CPU_ISA", "MKL_CBWR"))
    return (
        f"float path: torch {torch.__version__}, ATen CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"oneDNN {'on' if torch.backends.mkldnn.is_available() else 'absent'} (ONEDNN_MAX_CPU_ISA {isa}), "
        f"MKL_CBWR {cbwr}"
    )


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
