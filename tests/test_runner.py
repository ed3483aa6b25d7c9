"""The batch runner: planning, per-architecture files, resume after damage or a kill, failures, the local pool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_runner_fixtures import CleanEvalFactory

from robustbench201.atomic import WriteError
from robustbench201.runner import parse_arch_range, parse_arch_ranges, run_job, select_archs, split_range
from robustbench201.runner.plan import PlanError, parse_arch_list
from robustbench201.runner.shard import ShardConflictError
from robustbench201.runner.worker import ArchOutput
from robustbench201.space import NUM_UNIQUE, format_indices
from robustbench201.store.shardfile import read_shard_manifest

TESTS = Path(__file__).resolve().parent
ARCHS = select_archs([(0, 8)])  # 8 representatives


def shard_rows(out: Path):
    """All rows of all shards under ``out`` as a sorted DataFrame."""
    import pandas as pd

    files = sorted(out.glob("shard-*/arch-*.parquet"))
    df = pd.concat([pq.read_table(p).to_pandas() for p in files], ignore_index=True)
    return df.sort_values(["arch_index", "measure"]).reset_index(drop=True)


# ---- planning ---------------------------------------------------------------------------------------------
def test_parse_arch_range_accepts_half_open_ranges():
    assert parse_arch_range("0:128") == (0, 128)
    assert parse_arch_range(":10") == (0, 10)
    assert parse_arch_range("15000:") == (15000, 15625)


@pytest.mark.parametrize("bad", ["10:5", "5:5", "0:15626", "-1:4", "a:b", "3", "1:2:3"])
def test_parse_arch_range_rejects_reversed_empty_and_out_of_bounds(bad):
    with pytest.raises(PlanError, match="range"):
        parse_arch_range(bad)


def test_overlapping_ranges_are_refused():
    assert parse_arch_ranges(["0:10,20:30", "10:20"]) == [(0, 10), (10, 20), (20, 30)]
    with pytest.raises(PlanError, match="overlap"):
        parse_arch_ranges(["0:10", "5:20"])


def test_select_archs_unique_only_gives_the_6466_representatives():
    assert len(select_archs([(0, 15625)])) == NUM_UNIQUE
    assert len(select_archs([(0, 15625)], unique_only=False)) == 15625
    assert select_archs([], [1462, 5], unique_only=False) == [5, 1462]


def test_parse_arch_list_reads_indices_and_strings():
    s = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    assert parse_arch_list(["3,1", s]) == [1, 3, 1462]
    with pytest.raises(PlanError):
        parse_arch_list(["99999"])


def test_split_range_balances_representatives_and_covers_the_range():
    parts = split_range(0, 15625, 7)
    assert parts[0][0] == 0 and parts[-1][1] == 15625
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
    counts = [len(select_archs([p])) for p in parts]
    assert sum(counts) == NUM_UNIQUE and max(counts) - min(counts) <= 1
    assert format_indices([1, 2, 3, 7, 9, 10]) == "1-3, 7, 9-10"


# ---- shards and resume ----------------------------------------------------------------------------------
def test_run_writes_one_file_pair_per_arch_and_resume_skips_them(tmp_path):
    rep = run_job(ARCHS, tmp_path, CleanEvalFactory(), bounds=(0, 8), progress=False)
    assert rep.ok and sorted(rep.finished) == ARCHS
    (shard,) = tmp_path.glob("shard-00000-00008-*")
    assert len(list(shard.glob("arch-*.parquet"))) == len(ARCHS) == len(list(shard.glob("arch-*.h5")))
    m = read_shard_manifest(shard)
    assert m["spec_hash"] == CleanEvalFactory().spec_hash and set(m["finished"]) == {str(a) for a in ARCHS}
    assert all("seconds" in v for v in m["finished"].values()) and m["code_version"]
    again = run_job(ARCHS, tmp_path, CleanEvalFactory(), bounds=(0, 8), progress=False)
    assert again.finished == [] and again.skipped == len(ARCHS)


def test_failures_are_recorded_and_the_job_continues(tmp_path):
    fac = CleanEvalFactory(fail=(ARCHS[1],), nan=(ARCHS[2],))
    rep = run_job(ARCHS, tmp_path, fac, bounds=(0, 8), progress=False)
    assert set(rep.failures) == {ARCHS[1], ARCHS[2]}
    assert "RuntimeError" in rep.failures[ARCHS[1]] and "non-finite" in rep.failures[ARCHS[2]]
    assert len(rep.finished) == len(ARCHS) - 2
    m = read_shard_manifest(rep.shard_dir)
    assert m["failures"][str(ARCHS[1])]["error_type"] == "RuntimeError"
    # a re-run retries only the failed ones and clears them from the manifest
    fixed = run_job(ARCHS, tmp_path, CleanEvalFactory(), bounds=(0, 8), progress=False)
    assert sorted(fixed.finished) == [ARCHS[1], ARCHS[2]] and read_shard_manifest(rep.shard_dir)["failures"] == {}


class _FlakyFactory(CleanEvalFactory):
    def __call__(self, device):
        inner = super().__call__(device)
        calls: dict[int, int] = {}

        def evaluate(index: int) -> ArchOutput:
            calls[index] = calls.get(index, 0) + 1
            if calls[index] == 1:
                raise MemoryError("CUDA out of memory (simulated)")
            return inner(index)

        return evaluate


def test_out_of_memory_is_retried(tmp_path):
    rep = run_job(ARCHS[:2], tmp_path, _FlakyFactory(), retries=1, progress=False)
    assert rep.ok and len(rep.finished) == 2
    rep0 = run_job(ARCHS[:2], tmp_path / "b", _FlakyFactory(), retries=0, progress=False)
    assert all("MemoryError" in v for v in rep0.failures.values())


def test_damaged_files_are_detected_removed_and_recomputed(tmp_path):
    fac = CleanEvalFactory()
    rep = run_job(ARCHS, tmp_path, fac, bounds=(0, 8), progress=False)
    reference = shard_rows(tmp_path)
    d = rep.shard_dir
    truncated = d / f"arch-{ARCHS[0]:05d}.parquet"
    truncated.write_bytes(truncated.read_bytes()[:100])
    h5 = d / f"arch-{ARCHS[1]:05d}.h5"
    h5.write_bytes(h5.read_bytes()[:-10] + b"0123456789")
    (d / f"arch-{ARCHS[2]:05d}.parquet").unlink()  # orphan arrays: killed between the two writes
    (d / ".arch-00099.parquet.x.rb201-tmp").write_bytes(b"partial")
    again = run_job(ARCHS, tmp_path, fac, bounds=(0, 8), progress=False)
    assert sorted(again.finished) == sorted(ARCHS[:3])
    assert len(again.problems) == 2 and any("cannot be read" in p for p in again.problems)
    assert any("sha256" in p for p in again.problems)
    assert not list(d.glob("*.rb201-tmp"))
    assert shard_rows(tmp_path).equals(reference)


def test_output_dir_of_another_spec_is_refused_unless_forced(tmp_path):
    run_job(ARCHS[:1], tmp_path, CleanEvalFactory(), bounds=(0, 2), progress=False)
    other = CleanEvalFactory(spec_hash="feedbeef" * 2, spec_json='{"other": 1}')
    with pytest.raises(ShardConflictError, match="force_new_spec"):
        run_job(ARCHS[:1], tmp_path, other, bounds=(0, 2), progress=False)
    rep = run_job(ARCHS[:1], tmp_path, other, bounds=(0, 2), force_new_spec=True, progress=False)
    assert rep.ok and len(list(tmp_path.glob("shard-*"))) == 2


def test_overlapping_shard_of_the_same_job_is_refused(tmp_path):
    run_job(select_archs([(0, 6)]), tmp_path, CleanEvalFactory(), bounds=(0, 6), progress=False)
    with pytest.raises(ShardConflictError, match="overlap"):
        run_job(select_archs([(4, 9)]), tmp_path, CleanEvalFactory(), bounds=(4, 9), progress=False)


def test_unwritable_output_is_a_clear_error(tmp_path):
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(WriteError, match="cannot create|not a directory"):
        run_job(ARCHS[:1], afile / "out", CleanEvalFactory(), progress=False)
    if os.geteuid() != 0:  # root ignores permission bits
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(WriteError):
                run_job(ARCHS[:1], ro, CleanEvalFactory(), progress=False)
        finally:
            ro.chmod(0o700)


# ---- pool ---------------------------------------------------------------------------------------------------
def test_two_worker_pool_equals_one_worker(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    fac = CleanEvalFactory(fail=(ARCHS[4],))
    one = run_job(ARCHS, tmp_path / "one", fac, bounds=(0, 8), progress=False)
    two = run_job(ARCHS, tmp_path / "two", fac, bounds=(0, 8), devices=["cpu", "cpu"], progress=False)
    assert sorted(two.finished) == sorted(one.finished) and set(two.failures) == {ARCHS[4]}
    assert shard_rows(tmp_path / "two").equals(shard_rows(tmp_path / "one"))
    m = read_shard_manifest(two.shard_dir)
    assert m["devices"] == ["cpu"] and m["failures"][str(ARCHS[4])]["device"] == "cpu"


# ---- kill -9 and resume -------------------------------------------------------------------------------------
_SCRIPT = """
import sys
from test_runner_fixtures import CleanEvalFactory
from robustbench201.runner import run_job, select_archs
if __name__ == "__main__":
    hold = {"hold_from": int(sys.argv[4]), "release": sys.argv[5]} if len(sys.argv) > 4 else {}
    run_job(select_archs([(0, 24)]), sys.argv[1], CleanEvalFactory(delay=float(sys.argv[2]), **hold), bounds=(0, 24),
            devices=sys.argv[3].split(","), progress=False)
"""


@pytest.mark.parametrize("devices", ["cpu", "cpu,cpu"])
def test_kill_9_mid_shard_then_resume_gives_exactly_the_uninterrupted_rows(tmp_path, devices):
    """The kill lands at a random point among architectures 5 to 12 (inside an evaluation or a write); the job
    cannot get further, since architectures from the 13th on wait for a release file that comes after the kill."""
    script = tmp_path / "job.py"
    script.write_text(_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    out, release, archs = tmp_path / "killed", tmp_path / "release", select_archs([(0, 24)])
    cmd = [sys.executable, str(script), str(out), "0.2", devices, str(archs[12]), str(release)]
    proc = subprocess.Popen(cmd, env=env)
    deadline = time.monotonic() + 600
    while len(list(out.glob("shard-*/arch-*.parquet"))) < 5:
        assert time.monotonic() < deadline and proc.poll() is None, "the job did not finish 5 architectures"
        time.sleep(0.05)
    time.sleep(0.12)  # land the kill at a random point inside an architecture
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(list(out.glob("shard-*/arch-*.parquet")))
    assert 5 <= partial <= 12 < len(archs), "the job should have been killed mid-shard"
    release.touch()  # orphaned pool workers go on, find their coordinator gone and exit without writing
    # resume in one process (the shard does not depend on the devices that computed it)
    subprocess.run([sys.executable, str(script), str(out), "0", "cpu"], env=env, check=True, timeout=600)
    full = tmp_path / "full"
    run_job(select_archs([(0, 24)]), full, CleanEvalFactory(), bounds=(0, 24), progress=False)
    resumed, reference = shard_rows(out), shard_rows(full)
    assert len(resumed) == len(reference) and not resumed.duplicated().any()
    assert resumed.equals(reference)


def test_full_disk_ends_the_job_without_leaving_a_valid_looking_file(tmp_path, monkeypatch):
    import errno

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq, "write_table", no_space)
    with pytest.raises(WriteError, match="disk full"):
        run_job(ARCHS[:2], tmp_path, CleanEvalFactory(), progress=False)
    (shard,) = tmp_path.glob("shard-*")
    assert not list(shard.glob("*.parquet")) and not list(shard.glob("*.rb201-tmp"))
    monkeypatch.undo()
    rep = run_job(ARCHS[:2], tmp_path, CleanEvalFactory(), progress=False)  # the orphan arrays are redone
    assert sorted(rep.finished) == ARCHS[:2]


class _NoDataFactory(CleanEvalFactory):
    def __call__(self, device):
        from robustbench201.errors import Rb201Error

        raise Rb201Error("cifar10 test files missing under /nowhere (test_batch)")


def test_a_pool_worker_that_cannot_start_stops_the_job_with_its_message(tmp_path, monkeypatch):
    from robustbench201.runner.pool import WorkerError

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    with pytest.raises(WorkerError, match="test files missing"):
        run_job(ARCHS[:3], tmp_path, _NoDataFactory(), devices=["cpu", "cpu"], progress=False)


def test_plans_for_missing_cells_split_what_is_missing():
    from robustbench201.runner.plan import plan_evaluate, plan_launch

    shards, notes = plan_evaluate([(0, 40)], [], True, present={0, 1, 2})
    (only,) = shards
    assert only.bounds is None and 0 not in only.archs and set(only.archs) <= set(range(3, 40))
    assert "missing from the dataset" in notes[0]
    parts = plan_launch((0, 40), 3, True, present={0, 1, 2})
    assert sorted(i for p in parts for i in p.archs) == list(only.archs)
    assert len(parts) == 3 and all(p.bounds is None and p.archs for p in parts)
    assert plan_launch((0, 40), 3, True, present=set(range(40))) == []
    ranges = plan_launch((0, 40), 3, True)
    assert [p.bounds for p in ranges][0][0] == 0 and ranges[-1].bounds[1] == 40
    with pytest.raises(PlanError, match="missing_from"):
        plan_evaluate([], [], True)


def test_cpu_array_tasks_run_one_worker_per_cpu_they_were_given():
    import os

    from robustbench201.runner.slurm import task_devices

    have = len(os.sched_getaffinity(0))
    assert task_devices(0, 1) == ["cpu"]
    assert task_devices(0, 64) == ["cpu"] * min(64, have)
    assert task_devices(2, 8) == ["cuda:0", "cuda:1"]
