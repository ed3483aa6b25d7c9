"""The request of ``rb201 evaluate`` / ``rb201 launch``: a command line parses into it, a request turns back into a
command line that parses into the same request, the merge's fill command rebuilds the job it fills, and errors name
fields in the library and flags on the command line."""

from __future__ import annotations

import shlex

import pytest
from click.testing import CliRunner

from robustbench201.cli import main
from robustbench201.cli.build_cmds import evaluate
from robustbench201.cli.launch_cmds import launch
from robustbench201.cli.options import flag_names, request_argv, request_from_params
from robustbench201.errors import RequestError
from robustbench201.recipe import TrainRecipe
from robustbench201.runner.providers import EvalJob, WeightsChoice, fill_request
from robustbench201.runner.request import EvaluateRequest, LaunchRequest


def parse(command, argv: list[str]):  # type: ignore[no-untyped-def]
    cls = EvaluateRequest if command is evaluate else LaunchRequest
    return request_from_params(cls, command.make_context(command.name, list(argv)).params)


def requests(tmp_path) -> list:  # type: ignore[no-untyped-def]
    ds = tmp_path / "ds"
    ds.mkdir(exist_ok=True)
    return [
        EvaluateRequest(weights="init", out="o"),
        EvaluateRequest(weights="train", out="shards/a b", dataset="mnist5k", arch_ranges=("0:8", "10:12"),
                        archs=("1462", "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|none~2|"),
                        unique_only=False, recipe="wu2024", epochs=3, adv_eps=4.0, adv_step=0.5, adv_steps=2,
                        holdout="seeded", splits="test,valid", n_valid=100, per_sample=True, seed=0, channels=4,
                        n_cells=1, devices="cpu,cpu", workers_per_gpu=2, progress=False, threads=1, retries=0),
        EvaluateRequest(weights="nats:/data/x", trust_pickle=True, epochs=12, out="o", missing_from=str(ds),
                        spec_file=str(ds), spec_hash="abc", corruptions="generated", force_new_spec=True),
        LaunchRequest(weights="init", out="o", shards=3, arch_ranges=("0:60",), executor="local", partition="gpu",
                      time_limit="12:00:00", gpus_per_task=0, cpus_per_task=2, mem_gb=4, array_parallelism=2,
                      slurm_extra=("mail-type=END", "requeue"), job_name="x", folder="logs", dry_run=True, wait=True),
    ]  # fmt: skip


def test_a_request_turns_into_a_command_line_that_parses_into_the_same_request(tmp_path):
    for request in requests(tmp_path):
        command = evaluate if isinstance(request, EvaluateRequest) else launch
        argv = request_argv(request, command)
        assert parse(command, argv) == request, argv
        assert parse(command, shlex.split(shlex.join(argv))) == request  # as printed for a shell


def test_the_defaults_of_a_request_are_its_commands_defaults():
    assert parse(evaluate, ["--weights", "init", "--out", "o"]) == EvaluateRequest(weights="init", out="o")
    assert parse(launch, ["--weights", "x", "--out", "o", "--shards", "2"]) == LaunchRequest(
        weights="x", out="o", shards=2
    )
    # the shown fields name the rows a command makes, even at their defaults
    assert request_argv(EvaluateRequest(weights="init", out="o"), evaluate) == [
        "--dataset", "cifar10", "--weights", "init", "--seed", "777", "--out", "o"
    ]  # fmt: skip


@pytest.mark.parametrize(
    "weights",
    [
        lambda p: WeightsChoice.parse("init"),
        lambda p: WeightsChoice.parse("train", epochs=12),
        lambda p: WeightsChoice.parse(str(p), recipe=TrainRecipe.of("wu2024", epochs=3, adv_steps=2)),
        lambda p: WeightsChoice.parse("train", recipe=TrainRecipe.of("nb201", epochs=2, adversarial="pgd")),
        lambda p: WeightsChoice.parse(f"nats:{p}", epochs=12, trust=True),
    ],
)
def test_the_fill_request_of_a_job_rebuilds_that_job(tmp_path, weights):
    """What merge prints to fill a dataset's gaps evaluates the same job: same identity, same shard names."""
    from robustbench201.spec import preset

    spec = preset("smoke")
    job = EvalJob.build(spec, "mnist5k", weights(tmp_path), seed=3, channels=4, n_cells=1, n_test=50,
                        corruptions="generated")  # fmt: skip
    from robustbench201.store.dataset import write_dataset_dir
    from robustbench201.store.schema import rows_to_table

    ds = tmp_path / "merged"
    write_dataset_dir(ds, {"x": rows_to_table([])}, name="m", created="now", specs={spec.hash: spec.to_dict()})
    request = fill_request(job.identity(), str(ds), str(tmp_path / "shards"))
    again = parse(evaluate, request_argv(request, evaluate))
    assert again == request and again.missing_from == str(ds)
    assert EvalJob.from_request(again).identity() == job.identity()


def test_a_weights_label_reads_back_as_its_weights(tmp_path):
    for w in (
        WeightsChoice.parse("init"),
        WeightsChoice.parse("train", epochs=7),
        WeightsChoice.parse(str(tmp_path), recipe=TrainRecipe.of("wu2024")),
        WeightsChoice.parse(f"nats:{tmp_path}", trust=True),
    ):
        job = EvalJob("{}", "abc", "mnist5k", w)
        assert WeightsChoice.of_identity(job.identity()) == w
    with pytest.raises(RequestError, match="cannot rebuild the weights of weights 'mystery'"):
        WeightsChoice.of_identity({"weights": "mystery"})


def test_errors_name_fields_in_the_library_and_flags_on_the_command_line(tmp_path):
    with pytest.raises(RequestError) as err:
        WeightsChoice.parse(f"nats:{tmp_path}")
    assert err.value.fields == ("weights", "trust_pickle") and "set trust_pickle only" in str(err.value)
    assert err.value.render(flag_names(evaluate)).startswith(f"--weights 'nats:{tmp_path}' loads pickles")
    r = CliRunner().invoke(main, ["evaluate", "--arch", "1", "--weights", f"nats:{tmp_path}", "--out", str(tmp_path)])
    assert r.exit_code == 1 and "set --trust-pickle only for files" in r.output
    # a flag that turns a default off is named by the flag that does so
    assert flag_names(evaluate)["unique_only"] == "--all" and flag_names(evaluate)["progress"] == "--no-progress"
    assert flag_names(evaluate)["n_cells"] == "--cells" and flag_names(launch)["time_limit"] == "--time"


def test_a_request_survives_its_launch_record(tmp_path):
    for request in requests(tmp_path):
        assert type(request).from_dict(request.to_dict()) == request
    with pytest.raises(RequestError, match="no field"):
        EvaluateRequest.from_dict({"weights": "init", "out": "o", "colour": 1})
