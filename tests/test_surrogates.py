"""Jacobian and Hessian surrogates against closed forms."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustbench201.errors import Rb201Error
from robustbench201.measures.surrogates import (
    hessian_max_eigenvalue,
    hessian_trace,
    hutchinson_trace,
    jacobian_frobenius,
    power_iteration,
)
from robustbench201.models.network import create_model


def _linear_model(d: int = 16, k: int = 5, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, k))


def _spd(eigs: list[float], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), generator=g, dtype=torch.float64))
    return q @ torch.diag(torch.tensor(eigs, dtype=torch.float64)) @ q.T


def test_jacobian_of_linear_model_is_weight_frobenius_norm():
    model = _linear_model()
    x = torch.rand(7, 1, 4, 4)
    res = jacobian_frobenius(model, x, batch_size=3)
    expected = float(model[1].weight.detach().norm())
    assert res["n"] == 7 and res["n_batches"] == 3 and len(res["per_batch"]) == 3
    assert res["mean"] == pytest.approx(expected, rel=1e-5)
    assert all(v == pytest.approx(expected, rel=1e-5) for v in res["per_batch"])


def test_jacobian_matches_per_sample_jacrev_on_nb201_cell():
    torch.manual_seed(1)
    model = create_model(1462, None, num_classes=10, channels=4, n_cells=1, in_channels=1).eval()
    x = torch.rand(3, 1, 8, 8)
    res = jacobian_frobenius(model, x, batch_size=2)
    ref = [float(torch.autograd.functional.jacobian(lambda t: model(t[None])[0], xi).norm()) for xi in x]
    assert res["mean"] == pytest.approx(sum(ref) / len(ref), rel=1e-4)
    assert res["per_batch"][-1] == pytest.approx(ref[-1], rel=1e-4)


def test_power_iteration_finds_top_eigenvalue_of_explicit_quadratic():
    m = _spd([5.0, 2.0, 1.0, 0.5, -0.3, 0.1])
    g = torch.Generator().manual_seed(0)
    eig = power_iteration(lambda v: m @ v, (6,), iters=200, generator=g, tol=1e-10, dtype=torch.float64)
    assert eig == pytest.approx(5.0, rel=1e-6)
    mf = m.float()
    again = power_iteration(lambda v: mf @ v, (6,), iters=5, generator=torch.Generator().manual_seed(3), tol=0)
    same = power_iteration(lambda v: mf @ v, (6,), iters=5, generator=torch.Generator().manual_seed(3), tol=0)
    assert again == same  # deterministic given the generator


def test_hutchinson_is_exact_on_diagonal_and_close_on_dense_matrix():
    d = torch.diag(torch.tensor([3.0, -1.0, 0.5, 2.0]))
    assert hutchinson_trace(lambda v: d @ v, (4,), n_samples=3) == pytest.approx(4.5)
    m = _spd([4.0, 3.0, 2.0, 1.0, 1.0, 0.5, 0.25, 0.25]).float()
    est = hutchinson_trace(lambda v: m @ v, (8,), n_samples=4000, generator=torch.Generator().manual_seed(0))
    assert est == pytest.approx(float(torch.trace(m)), rel=0.05)


def _ce_hessian_linear(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Closed form for f(x) = W x + b: per-sample block W^T (diag p - p p^T) W / B of the batch-mean CE."""
    w = model[1].weight.double()
    blocks = []
    for xi in x:
        p = torch.softmax(model(xi[None]).double()[0], 0)
        blocks.append(w.T @ (torch.diag(p) - torch.outer(p, p)) @ w / len(x))
    return torch.block_diag(*blocks)


def test_hessian_eigenvalue_and_trace_of_cross_entropy_match_closed_form():
    model = _linear_model(d=9, k=4, seed=2)
    model[1].weight.data *= 3
    x = torch.rand(3, 1, 3, 3)
    y = torch.tensor([0, 2, 3])
    h = _ce_hessian_linear(model, x).detach()
    top = float(torch.linalg.eigvalsh(h.detach()).max())
    res = hessian_max_eigenvalue(model, x, y, batch_size=3, iters=300, tol=0.0, generator=torch.Generator())
    assert res["mean"] == pytest.approx(top, rel=1e-3)
    tr = hessian_trace(model, x, y, batch_size=3, n_samples=800, generator=torch.Generator().manual_seed(1))
    assert tr["mean"] == pytest.approx(float(torch.trace(h)), rel=0.1)


def test_hessian_on_nb201_is_positive_deterministic_and_restores_mode():
    torch.manual_seed(0)
    model = create_model(
        "|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|",
        None,
        num_classes=10,
        channels=4,
        n_cells=1,
        in_channels=1,
    )
    model.train()
    x = torch.rand(6, 1, 8, 8)
    y = torch.arange(6) % 10
    a = hessian_max_eigenvalue(model, x, y, batch_size=4, iters=4, generator=torch.Generator().manual_seed(5))
    b = hessian_max_eigenvalue(model, x, y, batch_size=4, iters=4, generator=torch.Generator().manual_seed(5))
    assert a == b and a["n_batches"] == 2 and a["n"] == 6
    assert a["mean"] > 0
    tr = hessian_trace(model, x, y, batch_size=6, n_samples=2, generator=torch.Generator().manual_seed(0))
    assert tr["mean"] > 0
    assert model.training and all(m.training for m in model.modules())


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"batch_size": True}, {"iters": 0}])
def test_bad_arguments_raise_rb201_error(kwargs):
    model = _linear_model()
    x, y = torch.rand(2, 1, 4, 4), torch.tensor([0, 1])
    with pytest.raises(Rb201Error):
        hessian_max_eigenvalue(model, x, y, **kwargs)
    with pytest.raises(Rb201Error, match="N x C x H x W"):
        jacobian_frobenius(model, torch.rand(4, 16))


def test_registry_names_every_surrogate():
    from robustbench201.measures import SURROGATES
    from robustbench201.vocab import SURROGATES as NAMES

    assert set(SURROGATES) == {"jacobian", "hessian", "hessian_trace"} == set(NAMES)
    x, y = torch.rand(2, 1, 4, 4), torch.tensor([0, 1])
    for name, fn in SURROGATES.items():
        res = fn(_linear_model(), x, y, batch_size=2, iters=3, generator=torch.Generator().manual_seed(0))
        assert set(res) == {"mean", "per_batch", "n_batches", "n"}, name
