"""``rb201 launch``'s cluster options (time limits, sbatch extras, resources), ``--dry-run`` and ``rb201 status``,
without a cluster: what reaches sbatch is read from the script submitit would write. The same options against real
daemons are in tests/test_slurm.py."""

from __future__ import annotations

import json
import shlex

import pytest
from click.testing import CliRunner
from test_runner_fixtures import CleanEvalFactory

from robustbench201.cli import main
from robustbench201.runner import batch
from robustbench201.runner.resources import (
    ResourceError,
    TaskResources,
    format_time_limit,
    parse_extra,
    parse_time_limit,
    slurm_parameters,
)

BASE = ["--dataset", "mnist5k", "--weights", "init"]


@pytest.fixture
def small_eval(monkeypatch):
    state = {"factory": CleanEvalFactory()}
    monkeypatch.setattr(batch, "job_factory", lambda request: state["factory"])
    return state


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("720", 720), ("12:00:00", 720), ("90:30", 91), ("1-12", 2160), ("1-00:30", 1470), ("2-00:00:01", 2881)],
)
def test_time_limits_in_slurm_notation(text, minutes):
    assert parse_time_limit(text) == minutes


@pytest.mark.parametrize("text", ["", "12h", "1-", "0", "00:00", "-5"])
def test_bad_time_limits_name_the_allowed_forms(text):
    with pytest.raises(ResourceError, match="HH:MM:SS|zero"):
        parse_time_limit(text)


def test_time_limit_is_printed_the_way_slurm_prints_it():
    assert format_time_limit(90) == "01:30:00" and format_time_limit(2880 + 61) == "2-01:01:00"


def test_extra_sbatch_options():
    assert parse_extra(["mail-type=END", "--exclude=node[1-3]", "requeue"]) == (
        ("exclude", "node[1-3]"),
        ("mail-type", "END"),
        ("requeue", ""),
    )
    with pytest.raises(ResourceError, match="use partition"):
        parse_extra(["partition=gpu"])
    with pytest.raises(ResourceError, match="submitit uses it to requeue"):
        parse_extra(["signal=USR1@60"])
    with pytest.raises(ResourceError, match="not a long option name"):
        parse_extra(["Mail_Type=END"])
    with pytest.raises(ResourceError, match="empty value"):
        parse_extra(["mail-type="])


def test_resources_become_submitit_slurm_parameters():
    extra = (("mail-type", "END"), ("requeue", ""))
    res = TaskResources(partition="gpu", account="nas", qos="high", constraint="a100", time_min=90, gpus_per_task=2,
                        cpus_per_task=16, mem_gb=64, array_parallelism=8, extra=extra)  # fmt: skip
    params = slurm_parameters(res)
    assert params["time"] == 90 and params["gpus_per_node"] == 2 and params["mem"] == "64GB"
    assert (params["partition"], params["account"], params["qos"], params["constraint"]) == ("gpu", "nas", "high",
                                                                                             "a100")  # fmt: skip
    assert params["array_parallelism"] == 8 and params["cpus_per_task"] == 16
    assert params["additional_parameters"] == {"mail_type": "END", "requeue": True}
    cpu = slurm_parameters(TaskResources(gpus_per_task=0))  # no --gpus-per-node=0 (refused without GPUs)
    assert "gpus_per_node" not in cpu and "mem" not in cpu and "partition" not in cpu
    with pytest.raises(ResourceError, match="allowed: an integer >= 1"):
        TaskResources(cpus_per_task=0)
    with pytest.raises(ResourceError, match="without spaces"):
        TaskResources(job_name="my job")


def test_dry_run_prints_the_job_array_and_its_sbatch_script_and_submits_nothing(tmp_path, small_eval):
    out = tmp_path / "shards"
    r = invoke(
        "launch", "--executor", "slurm", "--shards", "3", "--arch-range", "0:60", "--partition", "gpu",
        "--account", "nas", "--qos", "normal", "--time", "12:00:00", "--gpus-per-task", "1", "--cpus-per-task", "8",
        "--mem-gb", "32", "--array-parallelism", "2", "--constraint", "a100", "--slurm-extra", "mail-type=END",
        *BASE, "--out", str(out), "--dry-run",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "job array rb201-mnist5k: 3 tasks, at most 2 at once" in r.output
    assert (
        "each task: partition gpu, account nas, qos normal, constraint a100, time 12:00:00, 1 GPU, 8 CPUs" in r.output
    )
    assert len([ln for ln in r.output.splitlines() if ln.startswith("  task ")]) == 3
    expected = ["--array=0-2%2", "--partition=gpu", "--account=nas", "--qos=normal", "--constraint=a100",
                "--time=720", "--gpus-per-node=1", "--cpus-per-task=8", "--mem=32GB", "--mail-type=END",
                "--job-name=rb201-mnist5k", f"--output={out}/submitit/%A_%a/%A_%a_0_log.out",
                "--signal=USR2@90"]  # fmt: skip
    for line in expected:
        assert f"#SBATCH {line}\n" in r.output, line
    assert r.output.rstrip().endswith("nothing submitted (--dry-run)")
    assert not out.exists()


def test_dry_run_of_one_task_is_a_plain_job_and_of_the_local_executor_has_no_sbatch_script(tmp_path, small_eval):
    args = ["--shards", "1", "--arch-range", "0:8", *BASE, "--out", str(tmp_path / "o"), "--dry-run"]
    r = invoke("launch", "--executor", "slurm", "--gpus-per-task", "0", *args)
    assert r.exit_code == 0 and "job rb201-mnist5k: 1 task\n" in r.output and "no GPU" in r.output, r.output
    assert "--array" not in r.output and "#SBATCH --gpus" not in r.output
    assert f"#SBATCH --output={tmp_path}/o/submitit/%j/%j_0_log.out" in r.output
    r = invoke("launch", "--executor", "local", *args)
    assert r.exit_code == 0 and "1 local task (subprocesses on this machine)" in r.output and "#SBATCH" not in r.output


def test_bad_cluster_options_are_clear_errors(tmp_path, small_eval):
    args = ["launch", "--shards", "2", "--arch-range", "0:4", *BASE, "--out", str(tmp_path), "--dry-run"]
    r = invoke(*args, "--time", "12h")
    assert r.exit_code == 1 and "time limit '12h' not understood" in r.output and "Traceback" not in r.output
    r = invoke(*args, "--slurm-extra", "time=10")
    assert r.exit_code == 1 and "has its own rb201 launch option: use --time" in r.output
    r = invoke(*args, "--array-parallelism", "0")
    assert r.exit_code == 2 and "--array-parallelism" in r.output


def test_status_lists_launched_shards_before_they_start_then_done_and_failed(tmp_path, small_eval):
    out = tmp_path / "shards"
    common = ["--shards", "2", "--arch-range", "0:10", "--gpus-per-task", "0", "--cpus-per-task", "1", *BASE,
              "--out", str(out)]  # fmt: skip
    # the debug executor runs a task only when its result is asked for: without --wait nothing has started yet
    r = invoke("launch", "--executor", "debug", *common)
    assert r.exit_code == 0 and f"progress: rb201 status {out}" in r.output, r.output
    (record,) = out.glob("launch-*.json")
    rec = json.loads(record.read_text())
    assert rec["format"] == "rb201-launch" and len(rec["tasks"]) == 2 and rec["resources"]["cpus_per_task"] == 1
    s = invoke("status", str(out))
    assert s.exit_code == 0 and s.output.count("not started") == 2, s.output
    assert "total: 0 of 10 cells done, 0 failed, 10 left in 2 shards" in s.output
    small_eval["factory"] = CleanEvalFactory(fail=(7,))
    r = invoke("launch", "--executor", "debug", *common, "--wait")
    assert r.exit_code == 3 and "1 failed" in r.output, r.output
    s = invoke("status", str(out))
    assert "total: 9 of 10 cells done, 1 failed, 0 left in 2 shards (0 being written now)" in s.output, s.output
    assert "failed 7: RuntimeError: bad checkpoint for 7" in s.output
    # the newest launch of the unfinished shard is followed by the command that finishes it (its request, kept in
    # the launch record)
    (again,) = [ln for ln in s.output.splitlines() if ln.startswith("to finish launch ")]
    argv = shlex.split(again.split(": ", 1)[1])
    assert argv[:2] == ["rb201", "launch"] and "--wait" not in argv
    assert invoke(*argv[1:], "--dry-run").exit_code == 0
    rows = json.loads(invoke("status", str(out), "--format", "json").output)
    assert sorted(r["state"] for r in rows) == ["done", "failed"]
    assert invoke("status", str(tmp_path)).output.startswith("no shards yet")


def test_dry_run_says_so_when_submitits_private_script_writer_changed(monkeypatch):
    from submitit.slurm import slurm as submitit_slurm

    from robustbench201.errors import Rb201Error
    from robustbench201.runner.resources import sbatch_script

    script = sbatch_script(TaskResources(gpus_per_task=0, cpus_per_task=1), 3, "/tmp/x")
    assert "#SBATCH --array=0-2%" in script and "#SBATCH --cpus-per-task=1" in script

    def changed(**kwargs):  # a later release with another signature
        raise TypeError("_make_sbatch_string() got an unexpected keyword argument 'map_count'")

    monkeypatch.setattr(submitit_slurm, "_make_sbatch_string", changed)
    with pytest.raises(Rb201Error, match=r"dry_run cannot render the sbatch script with submitit .*1\.5\.x"):
        sbatch_script(TaskResources(gpus_per_task=0), 3, "/tmp/x")
    monkeypatch.delattr(submitit_slurm, "_make_sbatch_string")
    with pytest.raises(Rb201Error, match="is gone"):
        sbatch_script(TaskResources(gpus_per_task=0), 3, "/tmp/x")
