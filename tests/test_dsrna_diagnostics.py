"""What a DSRNA search reports about itself: per-edge decisions, warnings on the cell and on the regularisers, the
automatic architecture learning rate and the settings' validation (no torch needed)."""

from __future__ import annotations

import numpy as np
import pytest

from robustbench201.errors import Rb201Error
from robustbench201.search.dsrna.config import (
    A_LR_MAX,
    A_STEP_BUDGET,
    DARTS_A_LR,
    NB201_DARTS_ALPHA_STEPS,
    DSRNAConfig,
    auto_a_lr,
    epochs_for_budget,
)
from robustbench201.search.dsrna.diagnostics import (
    UNDECIDED_MARGIN,
    cell_findings,
    edge_decisions,
    movement,
    regularizer_findings,
)
from robustbench201.space import OPS, Arch


def _alphas_for(arch: Arch, lead: float) -> np.ndarray:
    """Softmax-like weights whose argmax is ``arch`` with the top op ``lead`` ahead of the others."""
    a = np.full((6, 5), (1 - (0.2 + lead)) / 4)
    a[np.arange(6), list(arch.ops)] = 0.2 + lead
    return a


def _codes(arch: Arch, lead: float = 0.3, **kw: object) -> list[str]:
    return [f.code for f in cell_findings(arch, edge_decisions(_alphas_for(arch, lead)), **kw)]  # type: ignore[arg-type]


def test_edge_decisions_report_top_op_weight_and_lead() -> None:
    a = np.array(
        [[0.1, 0.5, 0.2, 0.1, 0.1]] * 5 + [[0.3, 0.1, 0.25, 0.15, 0.2]],
    )
    d = edge_decisions(a)
    assert d[0].top == "skip_connect" and d[0].second == "nor_conv_1x1" and d[0].margin == pytest.approx(0.3)
    assert d[5].top == "none" and d[5].weight == pytest.approx(0.3) and d[5].margin == pytest.approx(0.05)
    assert edge_decisions(a, exclude_none=True)[5].top == "nor_conv_1x1"  # the derivation's rule
    with pytest.raises(Rb201Error, match="6 x 5"):
        edge_decisions(a[:5])


def test_uniform_warning_fires_on_a_forced_uniform_with_the_epochs_a_search_needs() -> None:
    rng = np.random.default_rng(0)
    a = 0.2 + rng.normal(0, 1e-4, size=(6, 5))  # as after a search whose alphas did not move
    decisions = edge_decisions(a)
    arch = Arch.from_ops(tuple(int(i) for i in a.argmax(1)))
    found = cell_findings(arch, decisions, a_lr=DARTS_A_LR, steps_per_epoch=7, epochs=10)
    uniform = [f for f in found if f.code == "uniform"]
    assert len(uniform) == 1
    need = epochs_for_budget(DARTS_A_LR, 7)
    assert need == 2793 and f"needs {need} epochs" in uniform[0].message
    assert "--a-lr 0.0838 for 10 epochs" in uniform[0].message  # the rate that gives 10 epochs the budget
    short = cell_findings(arch, decisions, a_lr=DARTS_A_LR, steps_per_epoch=7, epochs=2)[0].message
    assert "--a-lr" not in short and "more search images" in short  # 0.42 would exceed the largest automatic rate
    # one decided edge is enough to lift "uniform", the others are still named as undecided
    a[0] = [0.1, 0.6, 0.1, 0.1, 0.1]
    codes = [f.code for f in cell_findings(arch, edge_decisions(a))]
    assert "uniform" not in codes and "undecided" in codes


def test_cell_warnings_identity_dead_parameter_free_and_no_conv_path() -> None:
    assert "identity" in _codes(Arch.from_index(55))  # the collapse cell: only skips on live paths
    assert "identity" in _codes(Arch.from_ops((1, 0, 0, 1, 0, 0)))
    assert _codes(Arch.from_ops((0, 0, 0, 0, 0, 0))) == ["dead"]
    assert _codes(Arch.from_ops((4, 4, 1, 4, 4, 1))) == ["no_params"]  # pooling and skips
    # a 3x3 conv on 1->2, but node 2 does not reach the output: no path through a convolution
    assert _codes(Arch.from_ops((1, 0, 3, 4, 1, 0))) == ["no_conv_path"]
    assert _codes(Arch.from_index(1462)) == []  # all 3x3 convs, decided
    assert _codes(Arch.from_index(1462), lead=UNDECIDED_MARGIN / 2) == ["uniform"]


def test_movement_measures_how_far_the_weights_moved() -> None:
    start = np.full((6, 5), 0.2)
    end = _alphas_for(Arch.from_index(1462), 0.3)
    m = movement([start, end])
    assert m["max_weight"] == pytest.approx(0.5) and m["max_change"] == pytest.approx(0.3)
    assert m["min_margin"] == pytest.approx(0.5 - 0.125)


def test_regulariser_warnings_below_one_percent_and_above_a_hundred_times_the_loss() -> None:
    def hist(ratios: list[float]) -> list[dict[str, float]]:
        return [{"epoch": float(i), "ratio_jacobian": r, "ratio_certified": 100 * r} for i, r in enumerate(ratios)]

    weak = regularizer_findings(hist([1e-4, 2e-4, 0.5]), ["jacobian"])
    assert [f.code for f in weak] == ["weak_jacobian"] and "2 of 3 epochs" in weak[0].message
    strong = regularizer_findings(hist([2.0, 3.0, 4.0]), ["certified"])
    assert [f.code for f in strong] == ["dominant_certified"] and "R_CB" in strong[0].message
    assert regularizer_findings(hist([0.1, 0.5, 0.3]), ["jacobian", "certified"]) == []
    assert regularizer_findings(hist([1e-4, 0.5]), ["jacobian"]) == []  # half is not most


def test_automatic_architecture_lr_gives_the_nb201_darts_step_budget() -> None:
    assert NB201_DARTS_ALPHA_STEPS == 19550
    assert pytest.approx(5.865) == A_STEP_BUDGET
    assert auto_a_lr(NB201_DARTS_ALPHA_STEPS) == pytest.approx(DARTS_A_LR)  # that search keeps DARTS' rate
    assert auto_a_lr(70) == pytest.approx(5.865 / 70)  # 10 epochs of 1000 MNIST-5k images
    assert auto_a_lr(10) == A_LR_MAX and auto_a_lr(10**6) == DARTS_A_LR
    cfg = DSRNAConfig()
    assert cfg.steps_per_epoch() == 7 and cfg.resolved_a_lr() == pytest.approx(5.865 / 70)
    assert DSRNAConfig(a_lr=0.01).resolved_a_lr() == 0.01
    assert DSRNAConfig(n_train=50000, epochs=50, dataset="cifar10").resolved_a_lr() == pytest.approx(3.008e-4, 1e-3)


def test_gamma_defaults_follow_the_mode_and_can_be_set_per_metric() -> None:
    assert DSRNAConfig(gamma_mode="absolute").gamma("jacobian") == 0.01  # the paper's
    assert DSRNAConfig().gamma("certified") == 0.5  # relative: ours
    cfg = DSRNAConfig(metric="combined", gamma_jacobian=2.0, gamma_certified=0.0)
    assert (cfg.gamma("jacobian"), cfg.gamma("certified"), cfg.terms) == (2.0, 0.0, ("jacobian", "certified"))
    assert DSRNAConfig(metric="none").terms == ()


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"split": 1.0}, "split"),
        ({"split": 0.01, "n_train": 100}, "each side needs >= 2"),
        ({"gamma_mode": "scaled"}, "gamma mode"),
        ({"gamma_certified": -1.0}, "gamma_certified"),
        ({"a_lr": 0.0}, "a_lr"),
        ({"a_betas": (0.5, 1.0)}, "a_betas"),
        ({"w_lr_min": 1.0}, "w_lr_min"),
        ({"metric": "lipschitz"}, "metric"),
        ({"seed": -1}, "seed"),
    ],
)
def test_settings_refuse_bad_values_naming_what_is_allowed(kw: dict, match: str) -> None:
    with pytest.raises(Rb201Error, match=match):
        DSRNAConfig(**kw)


def test_settings_round_trip_and_refuse_unknown_keys() -> None:
    cfg = DSRNAConfig(metric="certified", a_lr=0.03, gamma_jacobian=1.5, w_nesterov=True)
    assert DSRNAConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(Rb201Error, match="gamma_cb"):
        DSRNAConfig.from_json(cfg.to_json() | {"gamma_cb": 1.0})
    assert len(OPS) == 5
