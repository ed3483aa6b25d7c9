"""The generator version is part of what generated corruption sets are called, of the identity of shards evaluated
on them and of the source of their result rows, so results of two generator versions never resume or merge."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustbench201.corruptions import GENERATED_ID, GENERATOR_VERSION, CifarCFiles, GeneratedCorruptions, corrupt
from robustbench201.data.base import ImageSet
from robustbench201.evaluation import evaluate
from robustbench201.runner.providers import EvalJob, WeightsChoice
from robustbench201.runner.records import result_rows
from robustbench201.runner.shard import shard_name
from robustbench201.spec import EvalSpec
from robustbench201.store.merge import MergeConflictError, merge_datasets
from robustbench201.store.schema import Row
from robustbench201.store.shardfile import write_arch_files


def _test_set(n: int = 12) -> ImageSet:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 3, 16, 16), dtype=np.uint8)
    return ImageSet("ImageNet16-120", "test", images, rng.integers(0, 10, n).astype(np.int64))


def _linear_model() -> torch.nn.Module:
    g = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(3 * 16 * 16, 10)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) * 0.05)
        lin.bias.zero_()
    return torch.nn.Sequential(torch.nn.Flatten(), lin)


def test_generated_sets_name_the_generator_version() -> None:
    assert f"generated-v{GENERATOR_VERSION}" == GENERATED_ID and GENERATOR_VERSION >= 2
    src = GeneratedCorruptions(_test_set(), seed=3)
    assert src.name == f"{GENERATED_ID}-seed3"
    assert src.row_source == f"rb201-{GENERATED_ID}"
    assert CifarCFiles.row_source == "rb201"  # the published files do not depend on our generator


def test_shards_of_generated_corruptions_carry_the_version_in_identity_and_name() -> None:
    job = EvalJob("{}", "abc123", "ImageNet16-120", WeightsChoice("init"), corruptions="generated")
    ident = job.identity()
    assert ident["corruptions"] == GENERATED_ID
    before = dict(ident, corruptions="generated")  # what the first generator's shards recorded
    assert shard_name("abc123", ident, [1, 2], (1, 2)) != shard_name("abc123", before, [1, 2], (1, 2))
    files = EvalJob("{}", "abc123", "cifar10", WeightsChoice("init"), corruptions="/data/CIFAR-10-C").identity()
    assert files["corruptions"] == "/data/CIFAR-10-C"


def test_rows_evaluated_on_generated_corruptions_name_the_generator_version() -> None:
    data = _test_set()
    spec = EvalSpec(corruptions=("fog", "frost"), severities=(2,), fast_forward=False)
    res = evaluate(_linear_model(), data, spec, corruptions=GeneratedCorruptions(data, seed=0))
    rows = result_rows(res, 5, "ImageNet16-120", 0, "init", "test")
    corr = [r for r in rows if r.family == "corruption"]
    assert {r.key for r in corr} == {"fog", "frost"}
    assert {r.source for r in corr} == {f"rb201-{GENERATED_ID}"}
    assert {r.source for r in rows if r.family != "corruption"} == {"rb201"}
    # and the value is the accuracy on the generated images of this version
    fog = corrupt(data.images, "fog", 2, seed=0)
    with torch.no_grad():
        pred = _linear_model()(torch.from_numpy(fog).float() / 255).argmax(1).numpy()
    assert res.value("fog", severity=2) == pytest.approx(float((pred == data.labels).mean()))


def _corruption_rows(idx: int, source: str, value: float) -> list[Row]:
    common = dict(arch_index=idx, dataset="ImageNet16-120", seed=0, weights="init", spec_hash="aaaa1111", n=100)
    return [Row(family="corruption", key="fog", severity=3, measure="accuracy", value=value, source=source, **common)]


def test_merge_refuses_corruption_rows_of_two_generator_versions(tmp_path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    for d, idx, source in ((old, 1, "rb201"), (new, 2, f"rb201-{GENERATED_ID}")):
        d.mkdir()
        write_arch_files(d, idx, _corruption_rows(idx, source, 0.5), {}, '{"name": "a"}')
    with pytest.raises(MergeConflictError, match=r"corruption 'fog' severity 3 has rows from different sources"):
        merge_datasets([old, new], tmp_path / "mixed")
    same = tmp_path / "same"
    same.mkdir()
    write_arch_files(same, 3, _corruption_rows(3, f"rb201-{GENERATED_ID}", 0.4), {}, '{"name": "a"}')
    report = merge_datasets([new, same], tmp_path / "ok")
    assert report.rows_out == 2
