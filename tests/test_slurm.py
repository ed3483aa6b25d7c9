"""``rb201 launch --executor slurm`` against a real single-node Slurm cluster (tests/slurm/start-cluster.sh): job
arrays through sbatch, a requeued and a signalled (preempted) task, a cancelled task, a failing architecture, and the
same launch submitted twice. Every run is compared with a single-process ``rb201 evaluate`` of the same cells.

The tests never race the tasks: where a task must be interrupted, cancelled or overtaken part-way, its shard is
gated (tests/slurm/gate/sitecustomize.py): the task commits a given number of architectures, then waits before the
next commit until the test releases it. So the outcome is the same on a fast or a slow, idle or loaded machine.

All tests of this module run in one test process (``--dist loadscope``), on the cluster started once for it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from robustbench201.cli import main
from robustbench201.space import representative_indices
from robustbench201.store.schema import SORT_COLUMNS

REPO = Path(__file__).resolve().parent.parent
RANGE = (0, 60)  # 57 representatives
JOB = ["--dataset", "mnist5k", "--weights", "init", "--channels", "4", "--cells", "1", "--n-test", "64"]
# a time limit above 10 minutes: below, submitit counts any USR2 as a time-out (it guarantees min(80%, limit - 10 min))
TASK = ["--executor", "slurm", "--gpus-per-task", "0", "--cpus-per-task", "1", "--time", "30"]
pytestmark = [pytest.mark.slurm, pytest.mark.slow]
CELLS = [i for i in range(*RANGE) if representative_indices()[i] == i]


def invoke(*args: str, code: int | None = 0):
    r = CliRunner().invoke(main, list(args))
    if code is not None:
        assert r.exit_code == code, r.output + repr(r.exception)
    return r


def rows(dataset_dir: Path):
    """The tidy rows of a merged dataset, sorted, without the code version column."""
    df = pq.read_table(dataset_dir / "results-000.parquet").to_pandas()
    by = [c for c in SORT_COLUMNS if c in df.columns]  # "split" only in tables that hold more than the test split
    return df.drop(columns=["code_version"]).sort_values(by).reset_index(drop=True)


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory) -> str:
    from robustbench201.spec import EvalSpec, attack

    spec = EvalSpec(name="slurm-test", attacks=(attack("fgsm", (8,)), attack("pgd", (8,), steps=10)), batch_size=64)
    path = tmp_path_factory.mktemp("spec") / "spec.json"
    path.write_text(spec.to_json())
    return str(path)


@pytest.fixture(scope="module")
def reference(spec_file, tmp_path_factory):
    """The rows of one uninterrupted single-process ``rb201 evaluate`` of RANGE."""
    d = tmp_path_factory.mktemp("reference")
    invoke("evaluate", "--arch-range", f"{RANGE[0]}:{RANGE[1]}", *JOB, "--spec", spec_file, "--no-progress",
           "--out", str(d / "shards"))  # fmt: skip
    invoke("merge", str(d / "shards"), "--out", str(d / "ds"))
    df = rows(d / "ds")
    assert sorted(set(df["arch_index"])) == CELLS
    return df


class Slurm:
    """Submits through the CLI, watches the queue and gates shards; records the sbatch job ids in the test's report."""

    def __init__(self, node: pytest.Item, spec: str, gate: Path) -> None:
        self.node, self.spec, self.gate, self.ids = node, spec, gate, []

    def record(self, job_id: str) -> None:
        self.ids.append(job_id)
        props = [p for p in self.node.user_properties if p[0] != "sbatch_job_ids"]
        self.node.user_properties[:] = [*props, ("sbatch_job_ids", ", ".join(self.ids))]

    def launch(self, *args: str, code: int | None = 0) -> tuple[str, str]:
        r = invoke("launch", *TASK, *args, code=code)
        m = re.search(r"submitted job(?: array)? (\d+)", r.output)
        assert m, r.output
        self.record(m.group(1))
        return r.output, m.group(1)

    @staticmethod
    def shards(*args: str) -> list[str]:
        """The shard of each task that ``launch *args`` submits (its --dry-run plan), in task order."""
        out = invoke("launch", *TASK, *args, "--dry-run").output
        return re.findall(r"^  task \d+: (shard-\S+) ", out, re.M)

    def hold(self, shard: str, commits: int) -> None:
        """Gate ``shard``: its first ``commits`` architectures are committed, every later commit waits for release."""
        (self.gate / shard).mkdir(parents=True)
        (self.gate / shard / "limit").write_text(str(commits))

    def wait_held(self, out: Path, shard: str, commits: int, timeout: float = 600) -> None:
        """Until a task waits at the gate of ``shard`` with exactly ``commits`` architectures committed (then no
        task of it can commit another one before :meth:`release`)."""
        deadline = time.monotonic() + timeout
        while not (list((self.gate / shard).glob("blocked-*")) and len(list((out / shard).glob("arch-*.parquet")))
                   == commits):  # fmt: skip
            assert time.monotonic() < deadline, f"no task of {shard} waits at the gate after {commits} architectures"
            time.sleep(0.1)

    def release(self, shard: str | None = None) -> None:
        for folder in [self.gate / shard] if shard else self.gate.glob("shard-*"):
            (folder / "release").touch()

    @staticmethod
    def wait_log(log: Path, pattern: str, count: int = 1, timeout: float = 600) -> float:
        """Until ``pattern`` (a regular expression) occurs ``count`` times in ``log``; returns when it was seen
        (``time.monotonic``)."""
        deadline = time.monotonic() + timeout
        while len(re.findall(pattern, log.read_text() if log.is_file() else "")) < count:
            assert time.monotonic() < deadline, f"{pattern!r} not {count} times in {log}"
            time.sleep(0.1)
        return time.monotonic()

    @staticmethod
    def queued(job_id: str) -> list[str]:
        out = subprocess.run(["squeue", "-h", "-r", "-j", job_id, "-o", "%i %T"], capture_output=True, text=True)
        return out.stdout.split("\n") if out.stdout.strip() else []

    def wait_gone(self, *job_ids: str, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while any(self.queued(j) for j in job_ids):
            assert time.monotonic() < deadline, f"jobs {job_ids} still queued: {[self.queued(j) for j in job_ids]}"
            time.sleep(0.5)

    @staticmethod
    def scontrol(job_id: str) -> dict[str, str]:
        out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True).stdout
        return dict(w.split("=", 1) for w in out.split() if "=" in w)


@pytest.fixture
def slurm(slurm_cluster, spec_file, monkeypatch, request, tmp_path):
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.conf)
    # the tasks' Python imports this tree (an installed rb201 needs nothing of the kind), and the gate first
    path = [str(REPO / "tests" / "slurm" / "gate"), str(REPO), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path))
    gate = tmp_path / "gate"
    gate.mkdir()
    monkeypatch.setenv("RB201_TEST_GATE", str(gate))
    request.node.user_properties.append(("slurm", slurm_cluster.describe()))
    s = Slurm(request.node, spec_file, gate)
    yield s
    s.release()
    for job_id in s.ids:  # nothing of a failed test keeps running
        subprocess.run(["scancel", job_id], capture_output=True)


def test_launch_submits_one_job_array_whose_merge_equals_a_single_process_evaluate(slurm, reference, tmp_path):
    out = tmp_path / "shards"
    # every cluster option, as sbatch options the controller records (no accounting database: --qos is not kept)
    options = ["--partition", "rb201", "--account", "nas", "--qos", "normal", "--constraint", "rb201test",
               "--mem-gb", "1", "--array-parallelism", "2", "--slurm-extra", "comment=rb201-e2e"]  # fmt: skip
    output, job = slurm.launch("--shards", "3", "--arch-range", "0:60", *JOB, "--spec", slurm.spec, *options,
                               "--out", str(out), "--wait")  # fmt: skip
    slurm.wait_gone(job)
    assert f"submitted job array {job} (rb201-mnist5k): 3 tasks" in output
    assert [f"{job}_{i}" for i in range(3)] == re.findall(rf"^  job ({job}_\d+):", output, re.M)
    assert output.count(" 0 failed") == 3 and f"progress: rb201 status {out}" in output
    log = out / "submitit" / f"{job}_1" / f"{job}_1_0_log.err"  # where launch said the logs are
    assert f"logs:     {out}/submitit/{job}_<task>/{job}_<task>_0_log.{{out,err}}" in output and log.is_file()
    info = slurm.scontrol(f"{job}_2")
    assert info["ArrayJobId"] == job and info["JobName"] == "rb201-mnist5k" and info["JobState"] == "COMPLETED"
    assert (info["Partition"], info["Account"], info["Features"], info["Comment"]) == (
        "rb201", "nas", "rb201test", "rb201-e2e"
    )  # fmt: skip
    assert (info["NumCPUs"], info["MinMemoryNode"], info["TimeLimit"]) == ("1", "1G", "00:30:00"), info
    assert info["ArrayTaskThrottle"] == "2"  # --array=0-2%2: at most two tasks at once
    status = invoke("status", str(out)).output
    assert f"total: {len(CELLS)} of {len(CELLS)} cells done, 0 failed, 0 left in 3 shards" in status
    invoke("merge", str(out), "--out", str(tmp_path / "ds"))
    assert "OK" in invoke("validate", str(tmp_path / "ds")).output
    assert rows(tmp_path / "ds").equals(reference)


@pytest.mark.parametrize("interrupt", ["scontrol-requeue", "preempt-signal"])
def test_an_interrupted_task_is_requeued_and_resumes_from_its_finished_architectures(
    slurm, reference, tmp_path, interrupt
):
    """``scontrol requeue`` (what the scheduler does on preemption with PreemptMode=REQUEUE or a node failure), or
    submitit's preemption / time-limit signal (USR2: ``ShardTask.checkpoint``, then submitit requeues the task). The
    signalled task runs a pool of two workers that share the shard lock. The task is interrupted while it waits at
    the gate with 3 architectures committed, and released once its requeued run has started."""
    out = tmp_path / "shards"
    cpus = "2" if interrupt == "preempt-signal" else "1"
    args = ["--shards", "1", "--arch-range", "0:60", *JOB, "--spec", slurm.spec, "--out", str(out),
            "--cpus-per-task", cpus]  # fmt: skip
    (shard,) = slurm.shards(*args)
    slurm.hold(shard, 3)
    _, job = slurm.launch(*args)
    slurm.wait_held(out, shard, 3)
    if interrupt == "scontrol-requeue":
        subprocess.run(["scontrol", "requeue", job], check=True)
    else:
        subprocess.run(["scancel", "--signal=USR2", job], check=True)
    log = out / "submitit" / job / f"{job}_0_log.err"
    start = r"(\d+) to evaluate, (\d+) already finished"
    slurm.wait_log(log, start, count=2)  # the requeued run holds the shard lock: the first run is gone
    slurm.release(shard)
    slurm.wait_gone(job)
    info = slurm.scontrol(job)
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", info
    text = log.read_text()
    assert re.findall(start, text) == [(str(len(CELLS)), "0"), (str(len(CELLS) - 3), "3")], text
    if interrupt == "preempt-signal":
        assert "Caught signal SIGUSR2 on" in text and "this job is preempted" in text and "Calling checkpoint" in text
    invoke("merge", str(out), "--out", str(tmp_path / "ds"))
    assert rows(tmp_path / "ds").equals(reference)


def test_a_cancelled_task_is_reported_and_the_missing_from_launch_completes_it(slurm, reference, tmp_path):
    """Task 1 is cancelled while it waits at the gate with 2 architectures committed; task 0 runs to its end."""
    out = tmp_path / "shards"
    args = ["--shards", "2", "--arch-range", "0:60", *JOB, "--spec", slurm.spec, "--out", str(out)]
    shard0, shard1 = slurm.shards(*args)
    slurm.hold(shard1, 2)
    cmd = [sys.executable, "-m", "robustbench201.cli", "launch", *TASK, *args, "--wait"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ})
    lines = [proc.stdout.readline()]
    while lines[-1] and not lines[-1].startswith("submitted"):
        lines.append(proc.stdout.readline())
    m = re.search(r"submitted job array (\d+)", lines[-1])
    assert m, "".join(lines) + proc.communicate(timeout=60)[0]
    job = m.group(1)
    slurm.record(job)
    slurm.wait_held(out, shard1, 2)
    subprocess.run(["scancel", f"{job}_1"], check=True)
    rest = "".join(lines) + proc.stdout.read()  # to the end (the lines readline buffered included)
    assert proc.wait(timeout=60) == 3, rest
    assert f"  job {job}_0: {shard0} " in rest and f"  job {job}_1: {shard1} " in rest, rest
    assert re.search(rf"job {job}_1: ended \(CANCELLED\) without a result", rest), rest
    n0 = sum(1 for c in CELLS if c < int(shard1.split("-")[1]))
    assert re.search(rf"job {job}_0: .*: {n0} evaluated, 0 already done, 0 failed", rest), rest
    finished = {int(p.stem[5:]) for p in out.glob("shard-*/arch-*.parquet")}
    missing = sorted(set(CELLS) - finished)
    assert len(missing) == len(CELLS) - n0 - 2
    status = invoke("status", str(out)).output
    assert re.search(rf"{shard1}\s+mnist5k\s+2\s+0\s+{len(missing)}\s+{job}_1\s+incomplete", status), status
    # the coverage report names the missing cells, and the command that fills them
    merged = invoke("merge", str(out), "--out", str(tmp_path / "pilot")).output
    assert f"{len(finished)}/6466 representatives" in merged and "rb201 evaluate --missing-from" in merged
    assert str(missing[0]) in merged.split("missing representatives:")[1]
    output, job2 = slurm.launch("--shards", "2", "--arch-range", "0:60", "--missing-from", str(tmp_path / "pilot"),
                                *JOB, "--spec", str(tmp_path / "pilot"), "--out", str(out), "--wait")  # fmt: skip
    assert output.count(" 0 failed") == 2
    invoke("merge", str(out), "--out", str(tmp_path / "ds"))
    assert rows(tmp_path / "ds").equals(reference)


def test_a_failing_architecture_is_recorded_the_array_finishes_and_merge_reports_it(slurm, tmp_path):
    import torch

    from robustbench201.models.network import create_model
    from robustbench201.train import checkpoint_file, save_trained

    weights = tmp_path / "weights"
    cells = [i for i in range(8) if representative_indices()[i] == i]
    for i in cells:
        torch.manual_seed(i)
        save_trained(weights, create_model(i, "mnist5k", channels=4, n_cells=1), "mnist5k", seed=777, epochs=1)
    bad = cells[3]
    checkpoint_file(weights, "mnist5k", bad, 777, 1).write_bytes(b"not a checkpoint")  # a corrupt file
    out = tmp_path / "shards"
    job_args = ["--dataset", "mnist5k", "--weights", str(weights), "--epochs", "1", "--channels", "4", "--cells", "1",
                "--n-test", "64"]  # fmt: skip
    output, job = slurm.launch("--shards", "2", "--arch-range", "0:8", *job_args, "--spec", slurm.spec,
                               "--out", str(out), "--wait", code=3)  # fmt: skip
    assert sorted(re.findall(r"\d+ evaluated, 0 already done, (\d+) failed", output)) == ["0", "1"], output
    slurm.wait_gone(job)
    assert slurm.scontrol(f"{job}_0")["JobState"] == slurm.scontrol(f"{job}_1")["JobState"] == "COMPLETED"
    status = invoke("status", str(out)).output
    assert re.search(rf"failed {bad}: CheckpointError", status), status
    merged = invoke("merge", str(out), "--out", str(tmp_path / "ds")).output
    assert "1 architecture(s) failed in the shards of mnist5k" in merged
    assert re.search(rf"\b{bad}: CheckpointError", merged) and "rb201 evaluate --missing-from" in merged
    assert set(rows(tmp_path / "ds")["arch_index"]) == set(cells) - {bad}


def test_the_same_launch_submitted_twice_never_writes_a_shard_twice(slurm, reference, tmp_path):
    """Two copies of one task run at once (2 CPUs): the second waits for the shard's writer lock, then finds every
    cell done. This is what a requeued copy racing its still-running original goes through. The first copy waits at
    the gate (3 architectures committed, the lock held) until the second is seen waiting for the lock."""
    out = tmp_path / "shards"
    args = ["--shards", "1", "--arch-range", "0:60", *JOB, "--spec", slurm.spec, "--out", str(out)]
    (shard,) = slurm.shards(*args)
    slurm.hold(shard, 3)
    _, first = slurm.launch(*args)
    slurm.wait_held(out, shard, 3)
    _, second = slurm.launch(*args)
    logs = {j: out / "submitit" / j / f"{j}_0_log.err" for j in (first, second)}
    seen = slurm.wait_log(logs[second], rf"is being written by Slurm job {first} \(pid ")
    # its summary reports a wait of 1 s or more: keep the first copy at the gate that long after the second waits
    while time.monotonic() < seen + 1.0:
        time.sleep(0.05)
    slurm.release(shard)
    slurm.wait_gone(first, second)
    summaries = {j: re.findall(r": (\d+) evaluated, (\d+) already done", p.read_text()) for j, p in logs.items()}
    assert summaries == {first: [(str(len(CELLS)), "0")], second: [("0", str(len(CELLS)))]}, summaries
    assert "waited" in logs[second].read_text()
    invoke("merge", str(out), "--out", str(tmp_path / "ds"))
    assert rows(tmp_path / "ds").equals(reference)
