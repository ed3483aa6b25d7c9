"""Cells of every kind through every preset: dead cells (no path from input to output: the network outputs a
constant), a cell with no parameterised op (skip and pooling only), and a cell whose only path runs through a node
fed by ``none`` edges. Each preset runs through ``evaluate`` with every kind of output: clean, attacks (both
semantics where the preset stores both, the worst-case key), corruptions, surrogates and certified bounds.

Budgets are scaled down through ``spec.replace`` (the code paths are the presets' own): PGD 2 steps, APGD 4
iterations, Square 8 queries, the first two of the preset's corruptions at severities 1 and 5, surrogates on 16
training images with 3 power iterations, certified bounds on 4 test images; epsilon grids are the presets'. The
network is one cell per stage, C=4, untrained (a dead cell outputs a constant whatever the weights), on 16
MNIST-5k test images.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from test_attacks import mnist5k

from robustbench201.attacks import ATTACKS, create_attack
from robustbench201.attacks.base import dlr_loss
from robustbench201.data.base import ImageSet
from robustbench201.evaluation import ArrayKey, EvalResult, evaluate
from robustbench201.measures.bounds import certify
from robustbench201.measures.surrogates import hessian_max_eigenvalue, hessian_trace, jacobian_frobenius
from robustbench201.models.network import create_model
from robustbench201.space import Arch
from robustbench201.spec import EvalSpec, attack, preset

DEAD = [10, 12, 74, 172, 879]  # class representatives of dead cells named in the issue
NO_PARAMETERS = "|skip_connect~0|+|avg_pool_3x3~0|none~1|+|none~0|avg_pool_3x3~1|skip_connect~2|"
# the only path, 0 -> 2 -> 3, runs through node 2, which also receives a constant: a conv of node 1, fed by none
NONE_FED = "|none~0|+|skip_connect~0|nor_conv_3x3~1|+|none~0|none~1|nor_conv_1x1~2|"
SMALL = {
    "pgd": {"steps": 2},
    "aa_apgd-ce": {"n_iter": 4},
    "aa_apgd-dlr": {"n_iter": 4},
    "aa_square": {"n_queries": 8},
    "aa_apgd-t": {"n_iter": 4, "n_target_classes": 2},
    "aa_fab-t": {"n_iter": 4, "n_target_classes": 2},
    "autoattack": {"n_iter": 4, "n_target_classes": 2, "n_queries": 8},
}


def _scaled(name: str) -> EvalSpec:
    spec = preset(name)
    attacks = tuple(attack(a.name, a.epsilons, **{**a.kwargs(), **SMALL.get(a.name, {})}) for a in spec.attacks)
    return spec.replace(
        attacks=attacks,
        corruptions=spec.corruptions[:2],
        severities=(1, 5),
        surrogate_n=16,
        hessian_iters=3,
        certified_n=4,
        batch_size=64,
    )


def _data() -> tuple[ImageSet, ImageSet]:
    images, labels = mnist5k()
    return (
        ImageSet("mnist5k", "test", images[4000:4016], labels[4000:4016]),
        ImageSet("mnist5k", "train", images[:16], labels[:16]),
    )


def _model(arch: object, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)  # initialization of the test model only
    model = create_model(arch, "mnist5k", channels=4, n_cells=1)
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():  # BN statistics away from the identity, as in a trained network
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5, generator=gen)
            m.running_var.uniform_(0.5, 2.0, generator=gen)
            m.bias.data.uniform_(-0.5, 0.5, generator=gen)
    return model.eval()


def test_the_cells_are_of_the_kind_they_are_named():
    assert all(Arch.parse(i).is_dead for i in DEAD)
    arch = Arch.parse(NO_PARAMETERS)
    assert not arch.is_dead and arch.num_conv_edges == 0
    arch = Arch.parse(NONE_FED)
    assert not arch.is_dead and arch.live_edges() == (False, True, False, False, False, True)


def _expected(spec: EvalSpec) -> set[tuple]:
    """(family, key, measure, epsilon, severity, semantics) of every record the spec must produce."""
    sems = [spec.semantics] + (["cumulative"] if spec.semantics == "per-epsilon" else [])
    acc = ("accuracy", "confidence_pred", "confidence_true")
    calibrated = (*acc, "ece")  # the expected calibration error: clean and corrupted images only
    out = {("clean", "clean", m, math.nan, 0, "") for m in calibrated}
    for a in spec.attacks:
        out |= {("adversarial", a.name, m, e, 0, s) for e in a.epsilons for s in sems for m in acc}
    shared = [
        e for e in {e for a in spec.attacks for e in a.epsilons} if sum(e in a.epsilons for a in spec.attacks) > 1
    ]
    out |= {("adversarial", "worst_case", "accuracy", e, 0, s) for e in shared for s in sems}
    out |= {
        ("corruption", c, m, math.nan, v, "") for c in spec.corruptions for v in spec.severities for m in calibrated
    }
    out |= {("surrogate", s, "value", math.nan, 0, "") for s in spec.surrogates}
    out |= {
        ("certified", c, m, e, 0, "")
        for c in spec.certified
        for e in spec.certified_epsilons
        for m in ("accuracy", "margin_lb")
    }
    return out


def _key(family: str, key: str, measure: str, eps: float, sev: int, sem: str) -> tuple:
    return family, key, measure, "nan" if math.isnan(eps) else eps, sev, sem


def _check_complete(res: EvalResult, spec: EvalSpec) -> None:
    got = [_key(r.family, r.key, r.measure, r.epsilon, r.severity, r.semantics) for r in res.records]
    assert len(got) == len(set(got))
    assert set(got) == {_key(*k) for k in _expected(spec)}
    assert all(math.isfinite(r.value) for r in res.records)
    clean = res.value("clean")
    for r in res.records:
        if r.family == "adversarial" and r.measure == "accuracy":
            assert r.value <= clean
            if r.semantics == "cumulative" and r.key != "worst_case":
                flags = res.arrays[ArrayKey("adversarial", r.key, "correct", r.epsilon, 0, "cumulative")]
                assert not (flags & ~res.arrays[ArrayKey("clean", "clean", "correct")]).any()


def _sources(test: ImageSet, spec: EvalSpec):  # type: ignore[no-untyped-def]
    if not spec.corruptions:
        return None
    import robustbench201.corruptions.sources as sources

    return sources.GeneratedCorruptions(test, seed=0)


@pytest.mark.parametrize("name", ["smoke", "jung2023", "full"])
@pytest.mark.parametrize("arch", DEAD)
def test_every_preset_completes_on_dead_cells_with_exact_values(name, arch):
    spec = _scaled(name)
    test, train = _data()
    model = _model(arch)
    res = evaluate(model, test, spec, corruptions=_sources(test, spec), train_data=train)
    _check_complete(res, spec)
    clean_ok = res.arrays[ArrayKey("clean", "clean", "correct")]
    # a constant network: every input gives the clean prediction, so no attack or corruption changes anything
    for r in res.records:
        if r.family in ("adversarial", "corruption") and r.measure == "accuracy":
            assert r.value == res.value("clean")
    for s in spec.surrogates:
        assert res.value(s, "value") == 0.0  # Jacobian norm and Hessian eigenvalue of a constant function
    # its bounds are exact: certified exactly where the clean prediction is right, at every epsilon
    for method in spec.certified:
        for e in spec.certified_epsilons:
            assert np.array_equal(res.arrays[ArrayKey("certified", method, "correct", e)], clean_ok[:4])


@pytest.mark.parametrize("name", ["smoke", "jung2023", "full"])
@pytest.mark.parametrize("arch", [NO_PARAMETERS, NONE_FED], ids=["no-parameters", "none-fed"])
def test_every_preset_completes_on_cells_without_parameters_or_through_none_fed_nodes(name, arch):
    spec = _scaled(name)
    test, train = _data()
    res = evaluate(_model(arch), test, spec, corruptions=_sources(test, spec), train_data=train)
    _check_complete(res, spec)
    for s in spec.surrogates:
        assert res.value(s, "value") != 0.0  # the output depends on the input
    for method in spec.certified:
        for e in spec.certified_epsilons:
            cert = res.arrays[ArrayKey("certified", method, "correct", e)]
            assert not (cert & ~res.arrays[ArrayKey("clean", "clean", "correct")][:4]).any()


def _margins(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        f = model(x)
    other = f.scatter(1, y[:, None], -math.inf).amax(1)
    return f.gather(1, y[:, None])[:, 0] - other


@pytest.mark.parametrize("arch", DEAD[:3])
def test_bounds_of_a_constant_network_equal_its_margin(arch):
    model = _model(arch, seed=1)
    test, _ = _data()
    x = torch.from_numpy(test.images[:8]).float() / 255
    y = torch.from_numpy(test.labels[:8])
    with torch.no_grad():
        y[::2] = model(x[::2]).argmax(1)  # half the labels agree with the constant prediction: margins of both signs
    margin = _margins(copy.deepcopy(model).double(), x.double(), y).float()
    assert (margin > 0).any() and (margin < 0).any()
    for method in ("ibp", "crown-ibp"):
        res = certify(model, x, y, [0.1, 8.0, 255.0], method)
        lb = res["margin_lb"]
        assert (lb <= margin).all()  # sound
        torch.testing.assert_close(lb, margin.expand_as(lb), atol=1e-5, rtol=1e-6)  # and exact
        assert torch.equal(res["certified"], (margin > 0).expand_as(lb))


@pytest.mark.parametrize("arch", DEAD[:2])
def test_surrogates_of_a_constant_network_are_exactly_zero(arch):
    model = _model(arch)
    x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    y = torch.arange(6)
    gen = torch.Generator().manual_seed(0)
    assert jacobian_frobenius(model, x, batch_size=4)["mean"] == 0.0
    assert hessian_max_eigenvalue(model, x, y, batch_size=4, iters=3, generator=gen)["mean"] == 0.0
    assert hessian_trace(model, x, y, batch_size=4, n_samples=2, generator=gen)["mean"] == 0.0
    model.requires_grad_(False)  # also when no parameter requires grad (the output then needs no graph at all)
    assert jacobian_frobenius(model, x)["mean"] == 0.0
    assert hessian_max_eigenvalue(model, x, y, iters=3, generator=gen)["mean"] == 0.0


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attacks_on_a_constant_network_stay_finite_and_change_nothing(name):
    model = _model(DEAD[0])
    test, _ = _data()
    x = torch.from_numpy(test.images).float() / 255
    with torch.no_grad():
        clean = model(x)
    y = clean.argmax(1)  # the constant prediction as label: every row starts correctly classified
    for norm in ATTACKS[name].norms:
        adv = create_attack(name, norm=norm, **SMALL.get(name, {}))
        out = adv.perturb_grid(model, x, y, [1 / 255, 8 / 255], torch.Generator().manual_seed(0))
        assert torch.isfinite(out.x_adv).all() and torch.isfinite(out.logits).all()
        assert not out.fooled.any()
        torch.testing.assert_close(out.logits, clean.repeat(2, 1))


def test_dlr_loss_is_finite_when_logits_tie():
    assert torch.isfinite(dlr_loss(torch.zeros(3, 10), torch.tensor([0, 4, 9]))).all()
