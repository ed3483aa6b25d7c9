"""AutoAttack "standard" in rb201 (APGD-T, FAB-T and the ``autoattack`` cascade) against pyautoattack 0.2.0, a faithful
packaging of the AutoAttack code, at reduced budgets on the same model and the same points (full budgets:
``bench/bench_autoattack.py``).

Rule, as for the other attacks: at every epsilon our robust accuracy is at most the peer's plus 1 percentage point
(1000 MNIST-5k test digits: 1 point = 10 images), with the same budget. FAB-T with one restart draws no random numbers
in either implementation, so there the points it fools must agree one by one; the FAB projection itself is checked
against pyautoattack's and against a linear program (scipy's HiGHS) solving the same problem.
"""

from __future__ import annotations

import numpy as np
import pyautoattack as aa
import pytest
import torch
from scipy.optimize import linprog
from test_attacks_peers import _apgd_budget, _check, _digits, informative_eps, ours, trained_mlp
from torch import nn

from robustbench201.attacks import create_attack
from robustbench201.attacks.cascade import BatchPolicy, run_grid
from robustbench201.attacks.fab import project_linf
from robustbench201.evaluation import evaluate
from robustbench201.spec import EvalSpec, attack
from robustbench201.vocab import AUTOATTACK_STAGES

EPS = (8.0, 16.0, 24.0)  # 1/255 units (MNIST needs larger radii than CIFAR)


@pytest.fixture(scope="module")
def mlp() -> nn.Module:
    return trained_mlp()


@pytest.fixture(scope="module")
def test_set() -> tuple[torch.Tensor, torch.Tensor]:
    return _digits("test")


def _budget_peer(adv, n_iter: int, n_targets: int, n_queries: int) -> None:  # type: ignore[no-untyped-def]
    """pyautoattack fixes its budgets in __init__ and _set_version; set them as ours would run."""
    _apgd_budget(adv, n_iter)
    t = adv.apgd_targeted
    t.n_iter, t.n_restarts, t.n_target_classes = n_iter, 1, n_targets
    t.n_iter_2, t.n_iter_min, t.size_decr = adv.apgd.n_iter_2, adv.apgd.n_iter_min, adv.apgd.size_decr
    adv.fab.n_iter, adv.fab.n_target_classes, adv.fab.n_restarts = n_iter, n_targets, 1
    adv.square.n_queries = n_queries


def peer(model, x, y, version: str, attacks, n_iter: int, n_targets: int, n_queries: int = 100) -> np.ndarray:  # type: ignore[no-untyped-def]
    """pyautoattack, one run per epsilon (1/255 units): robust accuracy of its returned points."""
    accs = []
    for e in EPS:
        kw = {"attacks": attacks} if version == "custom" else {}
        adv = aa.AutoAttack(model, eps=e / 255, norm="Linf", version=version, seed=0, **kw)
        _budget_peer(adv, n_iter, n_targets, n_queries)
        x_adv, _ = adv.run_standard_evaluation(x, y, batch_size=len(x))
        with torch.no_grad():
            accs.append((model(x_adv).argmax(1) == y).float().mean().item())
    return np.array(accs)


# ---- the FAB projection ----------------------------------------------------------------------------------------
def test_fab_projection_is_the_smallest_linf_step_onto_the_hyperplane_in_the_box():
    from pyautoattack.fab_projections import projection_linf

    g = torch.Generator().manual_seed(0)
    r, d = 60, 12
    t = torch.rand(r, d, generator=g)
    w = torch.randn(r, d, generator=g)
    w[torch.rand(r, d, generator=g) < 0.15] = 0  # coordinates the hyperplane does not depend on
    b = (w * torch.rand(r, d, generator=g)).sum(1) + 0.2 * torch.randn(r, generator=g)
    b[:8] = (w[:8] * t[:8]).sum(1) + 100.0  # beyond the box: the step goes to the nearest corner
    step = project_linf(t, w, b)
    torch.testing.assert_close(step, projection_linf(t.clone(), w.clone(), b.clone()), atol=1e-6, rtol=0)
    assert ((t + step) >= -1e-7).all() and ((t + step) <= 1 + 1e-7).all()
    solved = 0
    for i in range(r):
        # minimise lam subject to |d_j| <= lam, 0 <= t_j + d_j <= 1, w . (t + d) = b   (variables d, lam)
        cost = np.r_[np.zeros(d), 1.0]
        eye = np.eye(d)
        a_ub = np.block([[eye, -np.ones((d, 1))], [-eye, -np.ones((d, 1))]])
        bounds = [(-float(t[i, j]), 1.0 - float(t[i, j])) for j in range(d)] + [(0, None)]
        a_eq = np.r_[w[i].numpy().astype(np.float64), 0.0][None]
        b_eq = [float(b[i]) - float((w[i].double() * t[i].double()).sum())]
        lp = linprog(cost, A_ub=a_ub, b_ub=np.zeros(2 * d), A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
        if i < 8:
            assert lp.status == 2  # infeasible: no point of the box lies on the hyperplane
            continue
        assert lp.status == 0
        solved += 1
        assert abs(float(step[i].abs().max()) - lp.x[-1]) < 1e-5
        assert abs(float((w[i] * (t[i] + step[i])).sum() - b[i])) < 1e-4
    assert solved == r - 8


# ---- APGD-T, FAB-T and the cascade against pyautoattack ------------------------------------------------------------
def test_apgd_t_within_one_point_of_pyautoattack(mlp, test_set):
    x, y = test_set
    mine = ours(mlp, x, y, "aa_apgd-t", EPS, n_iter=20, n_target_classes=3)
    _check(mine, peer(mlp, x, y, "custom", ["apgd-t"], 20, 3))


def test_fab_t_fools_the_same_points_as_pyautoattack(mlp, test_set):
    """One restart: both are deterministic, so the fooled points must agree (2 images of slack for float32
    differences between batch sizes, as we drop rows from the batch once they are final)."""
    x, y = test_set
    with torch.no_grad():
        ok = mlp(x).argmax(1) == y
    x, y = x[ok], y[ok]

    def ours(eps: float) -> torch.Tensor:
        attack = create_attack("aa_fab-t", n_iter=10, n_target_classes=3)
        return attack.perturb(mlp, x, y, torch.full((len(x),), eps), torch.Generator()).fooled

    eps, mine = informative_eps(ours, hi=8 / 255)  # where a quarter to three quarters of the points fall
    adv = aa.AutoAttack(mlp, attacks=["fab-t"], eps=eps, norm="Linf", version="custom", seed=0)
    _budget_peer(adv, 10, 3, 100)
    x_adv, _ = adv.run_standard_evaluation(x, y, batch_size=len(x))
    with torch.no_grad():
        peer_fooled = mlp(x_adv).argmax(1) != y
    assert int((mine != peer_fooled).sum()) <= 2, (eps, int(mine.sum()), int(peer_fooled.sum()))


def test_autoattack_cascade_within_one_point_of_pyautoattack_standard(mlp, test_set):
    x, y = test_set
    mine = ours(mlp, x, y, "autoattack", EPS, n_iter=10, n_target_classes=3, n_queries=100)
    _check(mine, peer(mlp, x, y, "standard", None, 10, 3, 100))


# ---- the cascade itself ------------------------------------------------------------------------------------------
def test_cascade_reports_each_stage_and_never_exceeds_any_stage(mlp, test_set):
    x, y = test_set
    x, y = x[:300], y[:300]
    with torch.no_grad():
        clean = mlp(x)
    params = {"n_iter": 5, "n_target_classes": 2, "n_queries": 30}
    res = run_grid(
        create_attack("autoattack", **params),
        mlp,
        x,
        y,
        clean,
        EPS,
        "per-epsilon",
        torch.Generator().manual_seed(0),
        BatchPolicy(4096),
    )
    stages = len(AUTOATTACK_STAGES)
    assert res.stage is not None and res.stage.shape == res.correct.shape
    assert np.array_equal(res.correct, res.stage == stages + 1)
    clean_ok = (clean.argmax(1) == y).numpy()
    assert (res.stage[:, ~clean_ok] == 0).all() and (res.stage[:, clean_ok] >= 1).all()
    after = np.array([[(row > k).mean() for k in range(stages + 1)] for row in res.stage])  # column 0: clean
    assert (np.diff(after, axis=1) <= 0).all()  # each stage can only lower the robust accuracy
    assert np.allclose(after[:, -1], res.correct.mean(1))
    assert (after[:, 2:] < after[:, 1:2]).any()  # the later stages break points APGD-CE left: the cascade matters

    # the stored records: the composite is the last stage's number and at most every earlier one
    spec = EvalSpec(attacks=(attack("autoattack", EPS, **params),), semantics="cumulative", batch_size=4096)
    from robustbench201.data.base import ImageSet

    data = ImageSet("mnist5k", "test", (x * 255).round().to(torch.uint8).numpy(), y.numpy())
    out = evaluate(mlp, data, spec)
    for e in EPS:
        comp = out.value("autoattack", epsilon=e)
        steps = [out.value("autoattack", f"accuracy_after_{s}", epsilon=e) for s in AUTOATTACK_STAGES]
        assert all(a >= b for a, b in zip(steps, steps[1:])) and comp == steps[-1] <= min(steps)
        assert comp <= out.value("clean") + 1e-12
    cum = [out.value("autoattack", epsilon=e) for e in EPS]
    assert cum == sorted(cum, reverse=True)
