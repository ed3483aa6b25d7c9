"""Soundness and tightness of IBP / CROWN-IBP margin bounds through NB201 networks and mixed cells."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustbench201.errors import Rb201Error
from robustbench201.measures.bounds import ball_box, certify, interval_bounds, margin_bounds, margin_lower_bound
from robustbench201.measures.bounds_ops import (
    BoundContext,
    Mixed,
    backward_cell,
    ibp_cell,
    ibp_forward,
    ibp_mixed,
    linear_backward,
)
from robustbench201.models.network import Normalize, create_model
from robustbench201.models.ops import Pooling, ResNetBasicBlock, make_op
from robustbench201.space import EDGES, OPS

ARCHS = [
    "|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|nor_conv_1x1~0|none~1|avg_pool_3x3~2|",
    "|avg_pool_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|",
    "|none~0|+|none~0|none~1|+|none~0|skip_connect~1|nor_conv_3x3~2|",  # dead cell: outputs a constant
    1462,  # all 3x3 convolutions
]
RANDOM_ARCHS = random.Random(0).sample(range(15625), 6)


def _randomize_bn(model: nn.Module, gen: torch.Generator) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            if m.weight is not None:
                m.weight.data.copy_(torch.rand(c, generator=gen) * 2.5 - 1.0)  # some negative scales
                m.bias.data.copy_(torch.rand(c, generator=gen) - 0.5)


def _tiny(arch: object, seed: int = 0, in_channels: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    model = create_model(
        arch,
        None,
        num_classes=10,
        channels=4,
        n_cells=1,
        in_channels=in_channels,
        mean=[0.4] * in_channels,
        std=[0.25] * in_channels,
    )
    _randomize_bn(model, torch.Generator().manual_seed(seed))
    return model.eval()


def _margins(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    f = model(x)
    others = f.masked_fill(F.one_hot(y, f.shape[1]).bool(), float("-inf"))
    return f.gather(1, y[:, None])[:, 0] - others.max(1).values


def _pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, gen: torch.Generator):
    """Margin-loss PGD (eps in 1/255 units) with a random start; returns the worst iterate's margins."""
    lo, hi = ball_box(x, eps)
    xa = lo + (hi - lo) * torch.rand(x.shape, generator=gen)
    worst = torch.full((x.shape[0],), float("inf"))
    step = 2.5 * eps / 255 / steps
    for _ in range(steps):
        xa.requires_grad_(True)
        m = _margins(model, xa, y)
        worst = torch.minimum(worst, m.detach())
        (g,) = torch.autograd.grad(m.sum(), xa, allow_unused=True)  # unused: the output is constant
        g = torch.zeros_like(xa) if g is None else g
        xa = torch.max(torch.min(xa.detach() - step * g.sign(), hi), lo)
    with torch.no_grad():
        return torch.minimum(worst, _margins(model, xa, y))


def _random_worst(model, x, y, eps, n, gen):
    lo, hi = ball_box(x, eps)
    worst = torch.full((x.shape[0],), float("inf"))
    with torch.no_grad():
        for _ in range(n):
            corner = torch.randint(0, 2, x.shape, generator=gen).bool()  # corners are the hardest points
            xs = torch.where(corner, lo, hi) if _ % 2 else lo + (hi - lo) * torch.rand(x.shape, generator=gen)
            worst = torch.minimum(worst, _margins(model, xs, y))
    return worst


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A tiny network trained briefly on a separable synthetic task (class = brightest of 4 quadrants)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = create_model(ARCHS[0], None, num_classes=4, channels=4, n_cells=1, in_channels=1)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(48, 1, 16, 16, generator=gen) * 0.5
    y = torch.randint(0, 4, (48,), generator=gen)
    for i in range(48):
        r, c = divmod(int(y[i]), 2)
        x[i, 0, r * 8 : r * 8 + 8, c * 8 : c * 8 + 8] += 0.5
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(25):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    torch.set_num_threads(before)
    return model.eval(), x[:16], y[:16]


@pytest.mark.parametrize("arch", ARCHS + RANDOM_ARCHS)
@pytest.mark.parametrize("eps", [0.5, 4.0])
def test_bounds_contain_random_and_pgd_points(arch, eps):
    model = _tiny(arch, seed=hash(str(arch)) % 100)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 12, 12, generator=gen)  # 12 -> 6 -> 3: odd sizes after the reductions
    y = torch.randint(0, 10, (4,), generator=gen)
    lo, hi = ball_box(x, eps)
    l_logit, u_logit = interval_bounds(model, lo, hi)
    with torch.no_grad():
        for _ in range(10):
            f = model(lo + (hi - lo) * torch.rand(x.shape, generator=gen))
            assert bool((f >= l_logit - 1e-4).all()) and bool((f <= u_logit + 1e-4).all())
        lb_ibp = margin_lower_bound(model, x, y, eps, "ibp")
        lb_crown = margin_lower_bound(model, x, y, eps, "crown-ibp")
    worst = torch.minimum(_random_worst(model, x, y, eps, 20, gen), _pgd(model, x, y, eps, 10, gen))
    assert bool((lb_ibp <= worst + 1e-4).all())
    assert bool((lb_crown <= worst + 1e-4).all())
    assert bool((lb_ibp <= lb_crown).all())  # crown-ibp = max(ibp, linear bound)


def test_trained_network_certified_points_resist_pgd(trained):
    model, x, _ = trained
    with torch.no_grad():
        y = model(x).argmax(1)  # the network's own predictions as labels: every clean margin is positive
    # the smallest radius: 0.02, halved until some point certifies; the bounds tend to the clean margins as the
    # radius goes to 0, so this ends whatever the trained weights (the naturally trained bounds are loose)
    small = 0.02
    while not bool(certify(model, x, y, [small], method="crown-ibp")["certified"].any()):
        assert small > 1e-9, "no point certifies however small the radius"
        small /= 2
    eps_list = [small, 0.5, 4.0]
    res = certify(model, x, y, eps_list, method="crown-ibp", batch_size=5)
    ibp = certify(model, x, y, eps_list, method="ibp", batch_size=16)
    assert res["margin_lb"].shape == (3, 16) and res["certified"].dtype == torch.bool
    assert torch.equal(res["certified"], res["margin_lb"] > 0)
    assert bool((ibp["margin_lb"] <= res["margin_lb"] + 1e-6).all())
    assert int(res["certified"][0].sum()) > 0
    gen = torch.Generator().manual_seed(2)
    for e, eps in enumerate(eps_list):
        worst = _pgd(model, x, y, eps, 10, gen)
        assert bool((res["margin_lb"][e] <= worst + 1e-4).all())
        assert not bool((res["certified"][e] & (worst < 0)).any())
    assert bool((ibp["margin_lb"][1:] <= ibp["margin_lb"][:-1] + 1e-6).all())  # IBP is monotone in eps


def test_crown_ibp_is_strictly_tighter_than_ibp_on_average_at_small_eps(trained):
    """At a small radius the ReLUs are stable, so CROWN's linear bound is the margin less eps ||J||_1 (J the input
    Jacobian of the margin), while IBP loses eps times the same path sum taken over |W| layer by layer: strictly more
    wherever weights of both signs meet, as in any trained convolution; the gap is of order eps ||W||, far above
    float32 rounding."""
    model, x, y = trained
    with torch.no_grad():
        lo, hi = ball_box(x, 0.05)
        ibp = margin_bounds(model, lo, hi, y, "ibp")
        crown = margin_bounds(model, lo, hi, y, "crown-ibp")
    assert float((crown - ibp).mean()) > 0


@pytest.mark.parametrize("arch", ARCHS)
def test_bounds_converge_to_clean_margin_as_eps_goes_to_zero(arch):
    model = _tiny(arch, seed=3)
    gen = torch.Generator().manual_seed(4)
    x = torch.rand(4, 3, 12, 12, generator=gen) * 0.8 + 0.1
    y = torch.randint(0, 10, (4,), generator=gen)
    with torch.no_grad():
        clean = _margins(model, x, y)
        for method in ("ibp", "crown-ibp"):
            gaps = [float((clean - margin_lower_bound(model, x, y, e, method)).max()) for e in (1e-1, 1e-3, 0.0)]
            assert gaps[2] == pytest.approx(0.0, abs=1e-4)
            assert gaps[1] <= gaps[0] + 1e-6 and gaps[1] < 1e-2


def _vjp(module: nn.Module, x: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    out = module(x)
    return torch.autograd.grad(out, x, A)[0]


@pytest.mark.parametrize(
    "module",
    [
        Pooling(),  # count_include_pad=False: border divisors 4 and 6
        nn.AvgPool2d(2, 2),
        nn.Conv2d(3, 5, 3, stride=2, padding=1, bias=True),
        nn.Conv2d(3, 5, 1, stride=1, padding=0, bias=False),
        Normalize([0.1, 0.2, 0.3], [0.5, 0.4, 0.2]),
    ],
    ids=["avgpool3x3", "avgpool2x2", "conv3x3s2", "conv1x1", "normalize"],
)
def test_affine_backward_rules_are_exact_transposes(module):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 7, 7)  # odd size: stride-2 output padding matters
    ctx = BoundContext()
    lo, hi = ibp_forward(module, x, x, ctx)
    with torch.no_grad():
        assert torch.allclose(lo, module(x), atol=1e-5) and torch.allclose(hi, module(x), atol=1e-5)
    A = torch.randn(2, 4, *lo.shape[1:])
    A_in, bias = linear_backward(module, A, ctx)
    with torch.no_grad():
        out = module(x)
    val = (A_in * x.unsqueeze(1)).flatten(2).sum(-1) + bias
    assert torch.allclose(val, (A * out.unsqueeze(1)).flatten(2).sum(-1), atol=1e-4)
    for s in range(4):
        assert torch.allclose(A_in[:, s], _vjp(module, x, A[:, s]), atol=1e-5)


def _mixed_cell(channels: int = 3, seed: int = 0) -> tuple[list[nn.ModuleList], torch.Tensor]:
    torch.manual_seed(seed)
    cell = [nn.ModuleList(make_op(name, channels, affine=False) for name in OPS) for _ in EDGES]
    for ops in cell:
        _randomize_bn(ops, torch.Generator().manual_seed(seed))
        ops.eval()
    alphas = torch.randn(len(EDGES), len(OPS), generator=torch.Generator().manual_seed(seed))
    return cell, alphas.requires_grad_(True)


def _mixed_forward(cell, weights, x):
    nodes = [x]
    for j in range(1, 4):
        acc = 0
        for k, (s, d) in enumerate(EDGES):
            if d == j:
                acc = acc + sum(weights[k, o] * op(nodes[s]) for o, op in enumerate(cell[k]))
        nodes.append(acc)
    return nodes[3]


def test_mixed_cell_bounds_are_sound_and_differentiable_in_alpha():
    cell, alphas = _mixed_cell()
    w = torch.softmax(alphas, dim=-1)
    edges = [(s, d, Mixed(list(cell[k]), w[k])) for k, (s, d) in enumerate(EDGES)]
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 6, 6, generator=gen)
    lo, hi = x - 0.05, x + 0.05
    ctx = BoundContext()
    l_out, u_out = ibp_cell(edges, lo, hi, ctx)
    with torch.no_grad():
        for _ in range(20):
            out = _mixed_forward(cell, w, lo + (hi - lo) * torch.rand(x.shape, generator=gen))
            assert bool((out >= l_out - 1e-4).all()) and bool((out <= u_out + 1e-4).all())
    (g,) = torch.autograd.grad((u_out - l_out).sum(), alphas, retain_graph=True)
    assert bool(torch.isfinite(g).all()) and float(g.abs().sum()) > 0
    # linear bound of sum(out) through the mixed cell: sound, and also differentiable in alpha
    A = torch.ones(2, 1, *l_out.shape[1:])
    A_in, bias = backward_cell(edges, A, ctx)
    lin = (A_in.clamp(min=0) * lo.unsqueeze(1) + A_in.clamp(max=0) * hi.unsqueeze(1)).flatten(2).sum(-1) + bias
    with torch.no_grad():
        for _ in range(10):
            out = _mixed_forward(cell, w, lo + (hi - lo) * torch.rand(x.shape, generator=gen))
            assert bool((lin[:, 0] <= out.flatten(1).sum(1) + 1e-3).all())
    (g2,) = torch.autograd.grad(lin.sum(), alphas)
    assert bool(torch.isfinite(g2).all()) and float(g2.abs().sum()) > 0


def test_one_hot_mixed_edge_equals_the_plain_op():
    cell, _ = _mixed_cell(seed=1)
    x = torch.rand(2, 3, 6, 6)
    w = torch.zeros(len(OPS))
    w[3] = 1.0
    single = ibp_forward(cell[0][3], x - 0.1, x + 0.1)
    mixed = ibp_mixed(list(cell[0]), w, x - 0.1, x + 0.1)
    assert all(torch.allclose(a, b) for a, b in zip(single, mixed, strict=True))


def test_resnet_block_bounds_are_sound():
    torch.manual_seed(0)
    block = ResNetBasicBlock(3, 6)
    _randomize_bn(block, torch.Generator().manual_seed(0))
    block.eval()
    x = torch.rand(2, 3, 10, 10)
    lo, hi = ibp_forward(block, x - 0.02, x + 0.02)
    with torch.no_grad():
        for _ in range(10):
            out = block(x + 0.04 * torch.rand(x.shape) - 0.02)
            assert bool((out >= lo - 1e-5).all()) and bool((out <= hi + 1e-5).all())


def test_supernet_margin_bound_is_sound_and_differentiable_in_alpha():
    import robustbench201.models.supernet as supernet_mod

    net = supernet_mod.create_supernet(None, num_classes=5, channels=4, n_cells=1, in_channels=1, resolution=8)
    net.eval()
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 3])
    for method in ("ibp", "crown-ibp"):
        lb = margin_lower_bound(net, x, y, 2.0, method)
        (g,) = torch.autograd.grad(lb.sum(), net.alphas)
        assert bool(torch.isfinite(g).all()) and float(g.abs().sum()) > 0
    with torch.no_grad():  # batch-stat BN: the bound at eps 0 is the clean margin
        assert torch.allclose(margin_lower_bound(net, x, y, 0.0), _margins(net, x, y), atol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "lp"}, "bound method"),
        ({"eps_list": [-1.0]}, "eps"),
        ({"batch_size": 0}, "batch_size"),
        ({"x": torch.full((2, 1, 8, 8), 2.0)}, r"\[0, 1\]"),
    ],
)
def test_certify_rejects_bad_arguments(kwargs, match):
    model = _tiny(ARCHS[0], in_channels=1)
    args = {"x": torch.rand(2, 1, 8, 8), "y": torch.tensor([0, 1]), "eps_list": [1.0]} | kwargs
    with pytest.raises(Rb201Error, match=match):
        certify(model, **args)


def test_cell_edges_hook_with_unit_mixed_edges_reproduces_the_discrete_cell():
    from robustbench201.models.network import InferCell

    model = _tiny(ARCHS[0], seed=5)

    def edges_of(cell):
        if not isinstance(cell, InferCell):
            return None
        return [(s, d, Mixed([cell.layers[k]], torch.ones(1))) for k, (s, d) in enumerate(EDGES)], 4

    x = torch.rand(3, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([1, 2, 3])
    with torch.no_grad():
        for method in ("ibp", "crown-ibp"):
            plain = margin_lower_bound(model, x, y, 1.0, method)
            hooked = margin_lower_bound(model, x, y, 1.0, method, cell_edges=edges_of)
            assert torch.allclose(plain, hooked, atol=1e-5)
