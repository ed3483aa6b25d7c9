"""``rb201 evaluate / launch / merge / validate`` in-process (CliRunner), with the small evaluator of the runner
tests plugged in, plus an end-to-end run through the real spec / evaluate / readers when those modules exist."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import cloudpickle
import pyarrow.parquet as pq
import pytest
import test_runner_fixtures
from click.testing import CliRunner
from test_runner_fixtures import CleanEvalFactory

from robustbench201.cli import main
from robustbench201.errors import Rb201Error, RequestError
from robustbench201.runner import batch
from robustbench201.runner.providers import WeightsChoice
from robustbench201.store.shardfile import read_shard_manifest

TESTS = Path(__file__).resolve().parent
BASE = ["--dataset", "mnist5k", "--weights", "init", "--no-progress"]


@pytest.fixture
def small_eval(monkeypatch):
    """Route the CLI's evaluator factory to the small test evaluator; returns a setter for its options."""
    state = {"factory": CleanEvalFactory()}
    monkeypatch.setattr(batch, "job_factory", lambda request: state["factory"])
    return state


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_evaluate_writes_shards_and_resumes(tmp_path, small_eval):
    r = invoke("evaluate", "--arch-range", "0:6", *BASE, "--out", str(tmp_path))
    assert r.exit_code == 0, r.output
    assert "6 evaluated, 0 already done, 0 failed of 6" in r.output
    (shard,) = tmp_path.glob("shard-00000-00006-*")
    assert len(list(shard.glob("arch-*.parquet"))) == 6
    r = invoke("evaluate", "--arch-range", "0:6", *BASE, "--out", str(tmp_path))
    assert "0 evaluated, 6 already done" in r.output


def test_evaluate_arch_list_and_all_cells(tmp_path, small_eval):
    r = invoke("evaluate", "--arch", "1462,3", "--all", *BASE, "--out", str(tmp_path))
    assert r.exit_code == 0, r.output
    (shard,) = tmp_path.glob("shard-list-*")
    assert sorted(p.name for p in shard.glob("*.parquet")) == ["arch-00003.parquet", "arch-01462.parquet"]


def test_evaluate_maps_listed_archs_to_their_representative(tmp_path, small_eval):
    r = invoke("evaluate", "--arch", "1", "--arch", "25", *BASE, "--out", str(tmp_path))  # 25 ~ 3 (isomorphic)
    assert r.exit_code == 0 and "arch 25 is isomorphic to representative 3" in r.output
    (shard,) = tmp_path.glob("shard-list-*")
    assert sorted(p.name for p in shard.glob("*.parquet")) == ["arch-00001.parquet", "arch-00003.parquet"]


def test_evaluate_exit_status_3_when_an_architecture_fails(tmp_path, small_eval):
    small_eval["factory"] = CleanEvalFactory(fail=(2,))
    r = CliRunner().invoke(main, ["evaluate", "--arch-range", "0:4", *BASE, "--out", str(tmp_path)])
    assert r.exit_code == 3
    assert "failed 2: RuntimeError: bad checkpoint for 2" in r.output
    m = read_shard_manifest(next(tmp_path.glob("shard-*")))
    assert m["failures"]["2"]["message"] == "bad checkpoint for 2"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arch-range", "10:5"], "empty or reversed"),
        (["--arch-range", "0:20000"], "out of bounds"),
        (["--arch-range", "0:10", "--arch-range", "5:20"], "overlap"),
        (["--arch", "nope"], "cannot read an architecture"),
        (["--arch-range", "0:3", "--devices", "gpu0"], "not understood"),
        ([], "give --arch-range"),
    ],
)
def test_evaluate_rejects_bad_input(tmp_path, small_eval, args, message):
    r = CliRunner().invoke(main, ["evaluate", *args, *BASE, "--out", str(tmp_path)])
    assert r.exit_code != 0 and message in r.output


def test_evaluate_refuses_unwritable_out_and_another_spec(tmp_path, small_eval):
    afile = tmp_path / "afile"
    afile.write_text("")
    r = CliRunner().invoke(main, ["evaluate", "--arch-range", "0:2", *BASE, "--out", str(afile / "x")])
    assert r.exit_code == 1 and "cannot create output directory" in r.output
    assert invoke("evaluate", "--arch-range", "0:2", *BASE, "--out", str(tmp_path / "o")).exit_code == 0
    small_eval["factory"] = CleanEvalFactory(spec_hash="0123456789abcdef", spec_json="{}")
    r = CliRunner().invoke(main, ["evaluate", "--arch-range", "0:2", *BASE, "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "--force-new-spec" in r.output
    r = invoke("evaluate", "--arch-range", "0:2", *BASE, "--out", str(tmp_path / "o"), "--force-new-spec")
    assert r.exit_code == 0


def test_weights_choice_parsing(tmp_path):
    assert WeightsChoice.parse("train", epochs=12).label == "train-12ep"
    assert WeightsChoice.parse("init").label == "init"
    assert WeightsChoice.parse(str(tmp_path)).kind == "dir"
    with pytest.raises(RequestError, match="trust_pickle"):
        WeightsChoice.parse(f"nats:{tmp_path}")
    assert WeightsChoice.parse(f"nats:{tmp_path}", trust=True).label == "nb201-200ep"
    with pytest.raises(Rb201Error, match="is not 'init'"):
        WeightsChoice.parse(str(tmp_path / "missing"))


def test_merge_and_validate_commands(tmp_path, small_eval):
    invoke("evaluate", "--arch-range", "0:5", *BASE, "--out", str(tmp_path / "a"))
    invoke("evaluate", "--arch-range", "3:9", *BASE, "--out", str(tmp_path / "b"))
    r = invoke("merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "ds"))
    assert r.exit_code == 0, r.output
    assert "dropped 4 identical duplicate rows" in r.output and "mnist5k: 9/6466 representatives" in r.output
    r = invoke("validate", str(tmp_path / "ds"))
    assert r.exit_code == 0 and "OK" in r.output
    f = tmp_path / "ds" / "results-000.parquet"
    f.write_bytes(f.read_bytes()[:-3])
    r = CliRunner().invoke(main, ["validate", str(tmp_path / "ds")])
    assert r.exit_code == 1 and "INVALID" in r.output and "truncated" in r.output
    r = CliRunner().invoke(main, ["merge", str(tmp_path / "a"), "--out", str(tmp_path / "ds")])
    assert r.exit_code == 1 and "already exists" in r.output


def test_launch_with_the_local_executor_matches_a_direct_run(tmp_path, small_eval, monkeypatch):
    cloudpickle.register_pickle_by_value(test_runner_fixtures)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    r = invoke(
        "launch", "--executor", "local", "--shards", "2", "--arch-range", "0:10", "--gpus-per-task", "0",
        "--cpus-per-task", "1",
        "--time", "5", *BASE[:-1], "--out", str(tmp_path / "l"), "--folder", str(tmp_path / "sub"), "--wait",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "submitted 2 local jobs" in r.output and r.output.count(" 0 failed") == 2
    assert len(list((tmp_path / "l").glob("shard-*"))) == 2 and "progress: rb201 status" in r.output
    invoke("evaluate", "--arch-range", "0:10", *BASE, "--out", str(tmp_path / "d"))
    invoke("merge", str(tmp_path / "l"), "--out", str(tmp_path / "ml"))
    invoke("merge", str(tmp_path / "d"), "--out", str(tmp_path / "md"))
    launched = pq.read_table(tmp_path / "ml" / "results-000.parquet").to_pandas()
    direct = pq.read_table(tmp_path / "md" / "results-000.parquet").to_pandas()
    assert len(launched) == 20 and launched.equals(direct)  # NaN epsilons compare equal here
    # re-submitting resumes: nothing is recomputed
    r = invoke(
        "launch", "--executor", "debug", "--shards", "2", "--arch-range", "0:10", "--gpus-per-task", "0",
        "--cpus-per-task", "1",
        *BASE[:-1], "--out", str(tmp_path / "l"), "--folder", str(tmp_path / "sub"), "--wait",
    )  # fmt: skip
    assert r.output.count("0 evaluated") == 2, r.output


def test_launch_on_a_machine_without_slurm_is_a_clear_error(tmp_path, small_eval, monkeypatch):
    bare = tmp_path / "bin"  # a PATH with python but without sbatch / srun
    bare.mkdir()
    (bare / "python").symlink_to(sys.executable)
    monkeypatch.setenv("PATH", str(bare))
    r = CliRunner().invoke(main, ["launch", "--shards", "2", "--arch-range", "0:4", *BASE[:-1], "--out", str(tmp_path)])
    assert r.exit_code == 1 and "--executor local" in r.output and "Traceback" not in r.output


def test_real_pipeline_with_a_spec_file_on_mnist(tmp_path):
    from robustbench201.spec import EvalSpec, attack

    spec = EvalSpec(name="cli-test", attacks=(attack("fgsm", (1, 8)),), batch_size=64)
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(spec.to_json())
    args = ["--dataset", "mnist5k", "--weights", "init", "--spec", str(spec_file), "--channels", "4", "--cells",
            "1", "--n-test", "24", "--no-progress", "--out", str(tmp_path / "s")]  # fmt: skip
    r = CliRunner().invoke(main, ["evaluate", "--arch", "0", "--arch", "7", *args])
    assert r.exit_code == 0, r.output
    again = CliRunner().invoke(main, ["evaluate", "--arch", "0", "--arch", "7", *args])
    assert "0 evaluated, 2 already done" in again.output
    r = CliRunner().invoke(main, ["merge", str(tmp_path / "s"), "--out", str(tmp_path / "ds")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["validate", str(tmp_path / "ds")])
    assert r.exit_code == 0, r.output
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert list(manifest["specs"]) == [spec.hash] and manifest["specs"][spec.hash] == json.loads(spec.to_json())
    table = pq.read_table(tmp_path / "ds" / "results-000.parquet").to_pandas()
    assert set(table["arch_index"]) == {0, 7} and (table["weights"] == "init").all()
    assert {"clean", "fgsm"} <= set(table["key"]) and (table["n"] == 24).all()
    assert any(f["kind"] == "arrays" for f in manifest["files"])


def test_missing_from_evaluates_exactly_what_a_merged_dataset_lacks(tmp_path, small_eval):
    """Pilot with one failing cell -> merge (reports the failure and the fill command) -> --missing-from evaluates
    the failed cell and the rest of the range, nothing twice -> merge gives the rows of one uninterrupted run."""
    small_eval["factory"] = CleanEvalFactory(fail=(2,))
    r = CliRunner().invoke(main, ["evaluate", "--arch-range", "0:4", *BASE, "--out", str(tmp_path / "s")])
    assert r.exit_code == 3
    r = invoke("merge", str(tmp_path / "s"), "--out", str(tmp_path / "d"))
    assert "1 architecture(s) failed in the shards of mnist5k" in r.output and "2: RuntimeError" in r.output
    assert "rb201 evaluate --missing-from" in r.output and "--weights init" in r.output
    small_eval["factory"] = CleanEvalFactory()  # the checkpoint got fixed
    r = invoke("evaluate", "--missing-from", str(tmp_path / "d"), "--arch-range", "0:8", *BASE,
               "--out", str(tmp_path / "s"))  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "5 of 8 cells are missing" in r.output  # 2 (failed) and 4..7
    done = {int(p.stem.split("-")[1]) for p in (tmp_path / "s").glob("shard-list-*/arch-*.parquet")}
    assert done == {2, 4, 5, 6, 7}
    # nothing is missing once merged again; cells finished but not merged are not planned again either
    r = invoke("evaluate", "--missing-from", str(tmp_path / "d"), "--arch-range", "0:8", *BASE,
               "--out", str(tmp_path / "s"))  # fmt: skip
    assert "5 cells are finished in shards under" in r.output and "0 of 8 cells are missing" in r.output
    invoke("merge", str(tmp_path / "s"), "--out", str(tmp_path / "m"))
    invoke("evaluate", "--arch-range", "0:8", *BASE, "--out", str(tmp_path / "u"))
    invoke("merge", str(tmp_path / "u"), "--out", str(tmp_path / "mu"))
    a = pq.read_table(tmp_path / "m" / "results-000.parquet").to_pandas()
    b = pq.read_table(tmp_path / "mu" / "results-000.parquet").to_pandas()
    cols = [c for c in a.columns if c != "code_version"]
    assert a[cols].equals(b[cols])


def test_threads_option_is_validated_and_passed_on(tmp_path, small_eval):
    r = CliRunner().invoke(main, ["evaluate", "--arch-range", "0:2", *BASE, "--threads", "0", "--out", str(tmp_path)])
    assert r.exit_code != 0 and "--threads" in r.output
    r = invoke("evaluate", "--arch-range", "0:2", *BASE, "--threads", "1", "--out", str(tmp_path))
    assert r.exit_code == 0, r.output
