"""Test-only gate for the Slurm tests: a task stops before it commits an architecture until the test releases it, so
a test decides when a task is interrupted, cancelled or overtaken instead of racing it (tests/test_slurm.py puts this
folder first on the tasks' PYTHONPATH; Python imports ``sitecustomize`` at start-up).

Inactive unless the environment names a gate folder, ``RB201_TEST_GATE=DIR``. A shard is gated when ``DIR/<shard
directory name>/limit`` holds an integer N. The commit of an architecture is the rename that makes its
``arch-NNNNN.parquet`` appear in the shard (the commit marker of the shard format); every process of every task sees
the same folder, so across them the first N commits of a gated shard go through, and each later one first writes
``DIR/<shard>/blocked-K`` (K the commit's number), then waits until ``DIR/<shard>/release`` exists. The gate watches
renames through an audit hook (``sys.addaudithook``, event ``os.rename``, which ``os.replace`` raises too): it needs
no knowledge of rb201's modules.
"""

from __future__ import annotations

import os
import sys
import time


def _gate_hook(gate: str):  # type: ignore[no-untyped-def]
    def take_ticket(folder: str) -> int:
        k = 1
        while True:  # the k-th commit of the shard, across processes: the first ticket file this process creates
            try:
                os.close(os.open(os.path.join(folder, f"ticket-{k}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                return k
            except FileExistsError:
                k += 1

    def hook(event: str, args: tuple) -> None:
        if event != "os.rename" or len(args) < 2:
            return
        try:
            dst = os.fsdecode(args[1])
        except TypeError:
            return
        name = os.path.basename(dst)
        if not (name.startswith("arch-") and name.endswith(".parquet")):
            return
        folder = os.path.join(gate, os.path.basename(os.path.dirname(os.path.abspath(dst))))
        try:
            with open(os.path.join(folder, "limit")) as fh:
                limit = int(fh.read())
        except (OSError, ValueError):
            return  # not a gated shard
        k = take_ticket(folder)
        release = os.path.join(folder, "release")
        if k <= limit or os.path.exists(release):
            return
        fd = os.open(os.path.join(folder, f"blocked-{k}"), os.O_CREAT | os.O_WRONLY, 0o644)
        os.write(fd, f"pid {os.getpid()} before {name}\n".encode())
        os.close(fd)
        while not os.path.exists(release):
            time.sleep(0.05)

    return hook


def _chain() -> None:
    """Run the next ``sitecustomize`` on the path, if there is one (this module shadows it)."""
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        candidate = os.path.join(os.path.abspath(entry or os.curdir), "sitecustomize.py")
        if os.path.dirname(candidate) != here and os.path.isfile(candidate):
            with open(candidate) as fh:
                exec(compile(fh.read(), candidate, "exec"), {"__name__": "sitecustomize", "__file__": candidate})
            return


if os.environ.get("RB201_TEST_GATE"):
    sys.addaudithook(_gate_hook(os.environ["RB201_TEST_GATE"]))
_chain()
