"""The real single-node Slurm cluster of the Slurm tests (``tests/slurm/start-cluster.sh``), as a pytest fixture.

As root the cluster is installed if needed and started (or an already running one reused); a failure to start fails
the tests with the script's own words. Without root the tests use a cluster that is already up; otherwise they fail
in CI (the environment variable ``CI`` is set) and skip, saying why, in a local run.
Every test session holds a shared lock on ``$RB201_SLURM_DIR/users.lock`` while it uses the cluster; at the end
``stop-cluster.sh --if-unused`` stops the daemons unless another session still holds it (``RB201_SLURM_KEEP=1``
leaves them running).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent / "slurm"
STATE = Path(os.environ.get("RB201_SLURM_DIR", "/tmp/rb201-slurm"))


@dataclass(frozen=True)
class Cluster:
    conf: str
    version: str
    started_s: float  # the daemons, until the node is idle (0 when reused)
    install_s: float  # apt-get (0 when installed already)
    total_s: float  # the whole start script, as seen from here
    reused: bool

    def describe(self) -> str:
        how = "reused a running cluster" if self.reused else f"daemons up in {self.started_s:.1f} s"
        return f"Slurm {self.version}: {how}, install {self.install_s:.1f} s, start script {self.total_s:.1f} s"


def _cluster_up(conf: Path) -> bool:
    if not conf.is_file():
        return False
    env = {**os.environ, "SLURM_CONF": str(conf)}
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20, env=env)
    except (OSError, subprocess.SubprocessError):
        return False
    return ping.returncode == 0 and "UP" in ping.stdout


def _parse(stdout: str, total_s: float) -> Cluster:
    fields = dict(kv.split("=", 1) for line in stdout.splitlines() if line.startswith("started_s=")
                  for kv in line.split())  # fmt: skip
    conf = next(line.split("=", 1)[1] for line in stdout.splitlines() if line.startswith("SLURM_CONF="))
    return Cluster(conf, fields["version"], float(fields["started_s"]), float(fields["install_s"]), total_s,
                   fields["reused"] == "1")  # fmt: skip


def start() -> tuple[Cluster, int | None]:
    """Start (or reuse) the cluster; returns it and the users-lock descriptor to hold (None without root)."""
    conf = STATE / "slurm.conf"
    if os.geteuid() != 0:
        if _cluster_up(conf):
            return Cluster(str(conf), "(running)", 0.0, 0.0, 0.0, True), None
        if os.environ.get("CI"):
            pytest.fail(
                f"CI is set but the tests run as {os.environ.get('USER', 'uid ' + str(os.geteuid()))}, not root: the "
                "Slurm tests cannot install and start slurmctld/slurmd/munge (tests/slurm/start-cluster.sh needs root)"
            )
        pytest.skip(
            "the Slurm tests need root to install and start slurmctld/slurmd/munge (CI runs as root), or a test "
            f"cluster already up: start it with `sudo bash {SCRIPTS / 'start-cluster.sh'}`"
        )
    STATE.mkdir(parents=True, exist_ok=True)
    fd = os.open(STATE / "users.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_SH)  # this session uses the cluster until the fd is closed
    t0 = time.monotonic()
    try:
        res = subprocess.run(["bash", str(SCRIPTS / "start-cluster.sh")], capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired as exc:
        os.close(fd)
        pytest.fail(f"the Slurm test cluster did not start within 900 s: {(exc.stderr or b'')[-2000:]!r}")
    if res.returncode != 0:
        os.close(fd)
        pytest.fail(
            f"the Slurm test cluster could not be started (tests/slurm/start-cluster.sh):\n{res.stderr[-3000:]}"
        )
    return _parse(res.stdout, time.monotonic() - t0), fd


def stop(fd: int | None) -> None:
    """Give up this session's use; stop the daemons unless another session uses them or RB201_SLURM_KEEP=1."""
    if fd is None:
        return
    os.close(fd)
    if os.environ.get("RB201_SLURM_KEEP") == "1":
        return
    subprocess.run(["bash", str(SCRIPTS / "stop-cluster.sh"), "--if-unused"], capture_output=True, timeout=300)
