"""The alpha-mixed supernet: parameter split, softmax weights, derive(), and equality with the discrete network."""

from __future__ import annotations

import pytest
import torch

from robustbench201.errors import Rb201Error
from robustbench201.models import create_model
from robustbench201.models.supernet import SearchSupernet, create_supernet
from robustbench201.space import NUM_EDGES, NUM_OPS, OPS, Arch


@pytest.fixture(scope="module")
def net() -> SearchSupernet:
    return create_supernet("mnist5k", channels=4, n_cells=1, seed=3)


def test_parameter_split_is_a_partition(net: SearchSupernet) -> None:
    arch = net.arch_parameters()
    weights = net.weight_parameters()
    assert len(arch) == 1 and arch[0].shape == (NUM_EDGES, NUM_OPS)
    ids_w = {id(p) for p in weights}
    assert id(arch[0]) not in ids_w
    assert ids_w | {id(arch[0])} == {id(p) for p in net.parameters()}
    assert len(ids_w) == len(weights)


def test_edge_bn_is_affine_free_and_uses_batch_statistics(net: SearchSupernet) -> None:
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not m.track_running_stats for m in bns)
    edge_bn = net.cells[0].edges[0].ops[OPS.index("nor_conv_3x3")].op[2]
    assert not edge_bn.affine
    assert net.stem[1].affine and net.lastact[0].affine


def test_alphas_softmax_rows_sum_to_one_and_are_detached(net: SearchSupernet) -> None:
    w = net.alphas_softmax()
    assert w.shape == (NUM_EDGES, NUM_OPS)
    assert not w.requires_grad
    torch.testing.assert_close(w.sum(dim=1), torch.ones(NUM_EDGES))


def test_alphas_are_seeded_and_small() -> None:
    a = create_supernet("mnist5k", channels=4, n_cells=1, seed=7).alphas.detach()
    b = create_supernet("mnist5k", channels=4, n_cells=1, seed=7).alphas.detach()
    c = create_supernet("mnist5k", channels=4, n_cells=1, seed=8).alphas.detach()
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.abs().max() < 1e-2


def test_weights_are_seeded_without_touching_global_rng() -> None:
    state = torch.random.get_rng_state()
    a = create_supernet("mnist5k", channels=4, n_cells=1, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = create_supernet("mnist5k", channels=4, n_cells=1, seed=5)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_derive_takes_argmax_per_edge_including_none() -> None:
    net = create_supernet("mnist5k", channels=4, n_cells=1)
    target = (0, 3, 1, 4, 2, 0)
    with torch.no_grad():
        net.alphas.zero_()
        for k, o in enumerate(target):
            net.alphas[k, o] = 1.0
    assert net.derive() == Arch.from_ops(target)


def test_derive_can_exclude_none_as_original_darts() -> None:
    net = create_supernet("mnist5k", channels=4, n_cells=1)
    with torch.no_grad():
        net.alphas.zero_()
        net.alphas[:, 0] = 3.0
        net.alphas[:, 2] = 1.0
    assert net.derive().ops == (0,) * 6 and net.derive().is_dead
    assert net.derive(exclude_none=True).ops == (2,) * 6


def test_derive_breaks_ties_towards_the_first_op_in_nb201_order() -> None:
    net = create_supernet("mnist5k", channels=4, n_cells=1)
    with torch.no_grad():
        net.alphas.fill_(0.5)
        net.alphas[2, 3] = net.alphas[2, 4] = 2.0
    assert net.derive().ops == (0, 0, 3, 0, 0, 0)


def test_logits_shape_and_gradients_reach_alphas(net: SearchSupernet) -> None:
    x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    out = net(x)
    assert out.shape == (6, 10)
    (g,) = torch.autograd.grad(out.square().sum(), net.alphas)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_bad_input_channels_is_a_user_error(net: SearchSupernet) -> None:
    with pytest.raises(Rb201Error, match="1 x H x W"):
        net(torch.rand(2, 3, 28, 28))


def test_bad_sizes_are_user_errors() -> None:
    with pytest.raises(Rb201Error, match="channels"):
        create_supernet("mnist5k", channels=0)
    with pytest.raises(Rb201Error, match="num_classes"):
        create_supernet(None)


@pytest.mark.parametrize("index", [1462, 0, 12645, 655])
def test_discretised_supernet_equals_the_discrete_network(index: int) -> None:
    """One-hot alphas + copied weights == NB201Network of the derived cell.

    Both are compared with batch statistics: the supernet always uses them (track_running_stats=False), the
    discrete network does in train() mode. The supernet's conv biases are removed by the BN mean, and its
    affine-free BN equals an affine BN with weight 1 and bias 0."""
    arch = Arch.from_index(index)
    net = create_supernet("mnist5k", channels=4, n_cells=2, seed=index)
    net.fix_alphas(arch)
    assert net.fixed_arch == arch
    ref = create_model(arch, "mnist5k", channels=4, n_cells=2)
    ref.load_state_dict(net.discrete_state_dict(arch), strict=True)
    ref.train()
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(index))
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref(x), rtol=1e-4, atol=1e-5)
    net.unfix_alphas()
    assert net.fixed_arch is None


def test_fixed_alphas_ignore_the_alpha_values() -> None:
    net = create_supernet("mnist5k", channels=4, n_cells=1, seed=1)
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    net.fix_alphas(1462)
    before = net(x).detach()
    with torch.no_grad():
        net.alphas.normal_(generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(net(x).detach(), before)
