"""DSRNA search: regularisers, determinism, resume, second order, the bound on mixed edges, table scoring."""

from __future__ import annotations

import inspect
import json
import sys

import numpy as np
import pytest
import torch
from dsrna_data import tiny_digits

from robustbench201.errors import CheckpointError, Rb201Error
from robustbench201.models import create_model
from robustbench201.models.supernet import create_supernet
from robustbench201.search.dsrna import RESULT, DSRNAConfig, DSRNAResult, search
from robustbench201.search.dsrna.regularizers import certified_regularizer, jacobian_regularizer
from robustbench201.search.dsrna.summary import score_on_table
from robustbench201.space import Arch

DATA = tiny_digits()


BASE = {"epochs": 1, "channels": 4, "n_cells": 1, "batch_size": 16, "n_train": 64, "reg_batch": 8}


def _cfg(**kw: object) -> DSRNAConfig:
    return DSRNAConfig(**(BASE | kw))  # type: ignore[arg-type]


@pytest.mark.parametrize("metric", ["none", "jacobian", "certified", "combined"])
def test_short_search_is_deterministic_and_moves_alphas(metric: str) -> None:
    cfg = _cfg(metric=metric)
    a = search(cfg, data=DATA)
    b = search(cfg, data=DATA)
    assert a.alpha_history == b.alpha_history
    assert a.history[0]["train_loss"] == b.history[0]["train_loss"]
    assert len(a.alpha_history) == 2 and a.history[0]["steps"] == 2
    first, last = np.array(a.alpha_history[0]), np.array(a.alpha_history[-1])
    assert np.abs(first - last).max() > 1e-5
    np.testing.assert_allclose(last.sum(axis=1), 1.0, rtol=1e-6)
    assert a.arch == Arch.from_ops(tuple(int(i) for i in last.argmax(axis=1)))
    assert {k for k in a.history[0] if k.startswith("R_")} == {f"R_{t}" for t in cfg.terms}


def test_regularisers_pull_alphas_apart_from_plain_darts() -> None:
    plain = np.array(search(_cfg(metric="none"), data=DATA).alpha_history[-1])
    jac = np.array(search(_cfg(metric="jacobian", gamma_jacobian=1.0), data=DATA).alpha_history[-1])
    assert np.abs(plain - jac).max() > 1e-7


def test_second_order_runs_and_differs_from_first_order() -> None:
    first = search(_cfg(metric="jacobian"), data=DATA)
    second = search(_cfg(metric="jacobian", second_order=True), data=DATA)
    again = search(_cfg(metric="jacobian", second_order=True), data=DATA)
    assert second.alpha_history == again.alpha_history
    assert second.alpha_history[-1] != first.alpha_history[-1]
    assert np.isfinite(np.array(second.alpha_history)).all()


def test_jacobian_regulariser_equals_closed_form_on_a_linear_model() -> None:
    """f(x) = W x: row k of the Jacobian is W_k, so R = -(eps/255/K) sum_k ||W_k||_q."""
    g = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(12, 5)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(5, 12, generator=g))
    x = torch.rand(7, 12, generator=g, requires_grad=True)
    for q in (1.0, 2.0, float("inf")):
        r = jacobian_regularizer(lin(x), x, eps=4.0, q=q)
        expected = -(4.0 / 255 / 5) * torch.linalg.vector_norm(lin.weight, ord=q, dim=1).sum()
        torch.testing.assert_close(r, expected)
    (grad,) = torch.autograd.grad(jacobian_regularizer(lin(x), x, 4.0), lin.weight)
    torch.testing.assert_close(grad, -(4.0 / 255 / 5) * lin.weight.detach().sign())


def test_jacobian_regulariser_rejects_bad_input() -> None:
    x = torch.rand(2, 3)
    with pytest.raises(Rb201Error, match="require grad"):
        jacobian_regularizer(x * 2, x, 2.0)
    xg = x.clone().requires_grad_(True)
    with pytest.raises(Rb201Error, match="q must be"):
        jacobian_regularizer(xg * 2, xg, 2.0, q=0.5)
    with pytest.raises(Rb201Error, match="1/255"):
        jacobian_regularizer(xg * 2, xg, -1.0)


@pytest.mark.parametrize("method", ["ibp", "crown-ibp"])
def test_certified_regulariser_gradient_in_alpha_is_finite_and_nonzero(method: str) -> None:
    net = create_supernet("mnist5k", channels=4, n_cells=1, seed=1)
    x = torch.rand(6, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    y = torch.arange(6)
    r = certified_regularizer(net, x, y, eps=2.0, method=method)
    (g,) = torch.autograd.grad(r, net.alphas)
    assert torch.isfinite(r) and torch.isfinite(g).all() and g.abs().sum() > 0


def test_certified_bound_shrinks_with_epsilon() -> None:
    net = create_supernet("mnist5k", channels=4, n_cells=1, seed=2)
    x = torch.rand(4, 1, 12, 12, generator=torch.Generator().manual_seed(2))
    y = torch.arange(4)
    with torch.no_grad():
        small, large = (certified_regularizer(net, x, y, eps=e) for e in (0.5, 4.0))
    assert large < small


@pytest.mark.parametrize("method", ["ibp", "crown-ibp"])
def test_bound_of_discretised_supernet_equals_the_engine_bound_of_the_discrete_network(method: str) -> None:
    """One-hot alphas: the mixed-edge bound equals measures.bounds on the NB201Network with the same weights.

    Running statistics are used (track_running_stats=True, eval mode) so both BNs are the same fixed affine map."""
    from robustbench201.measures.bounds import ball_box, margin_bounds

    arch = Arch.from_index(1462)
    net = create_supernet("mnist5k", channels=4, n_cells=1, seed=4, track_running_stats=True)
    net.fix_alphas(arch)
    with torch.no_grad():
        for s in range(3):  # populate the running statistics
            net(torch.rand(16, 1, 12, 12, generator=torch.Generator().manual_seed(s)))
    net.eval()
    ref = create_model(arch, "mnist5k", channels=4, n_cells=1)
    ref.load_state_dict(net.discrete_state_dict(arch), strict=True)
    ref.eval()
    x = torch.rand(5, 1, 12, 12, generator=torch.Generator().manual_seed(9))
    y = torch.tensor([0, 3, 5, 7, 9])
    lo, hi = ball_box(x, 2.0)
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref(x), rtol=1e-5, atol=1e-5)
        b_net, b_ref = margin_bounds(net, lo, hi, y, method), margin_bounds(ref, lo, hi, y, method)
    scale = float(b_ref.abs().max())
    torch.testing.assert_close(b_net, b_ref, rtol=1e-5, atol=1e-6 * scale + 1e-5)


def test_resume_after_an_interruption_equals_an_uninterrupted_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = _cfg(metric="jacobian", epochs=2, a_lr=0.01)  # a fixed rate: the automatic one follows the epoch count
    full = search(cfg, tmp_path / "full", data=DATA)

    class Killed(Exception):
        pass

    def kill(epoch: int, stats: dict[str, float]) -> None:
        raise Killed

    with pytest.raises(Killed):
        search(cfg, tmp_path / "cut", data=DATA, on_epoch=kill)
    assert not (tmp_path / "cut" / RESULT).exists()
    resumed = search(cfg, tmp_path / "cut", data=DATA, resume=True)
    assert resumed.alpha_history == full.alpha_history
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in full.history]
    # one epoch, then extended to two on resume: same as two from the start (cosine set from the epoch index)
    search(_cfg(metric="jacobian", epochs=1, a_lr=0.01), tmp_path / "ext", data=DATA)
    extended = search(cfg, tmp_path / "ext", data=DATA, resume=True)
    assert extended.alpha_history == full.alpha_history
    saved = json.loads((tmp_path / "ext" / RESULT).read_text())
    assert saved["alpha_history"] == full.alpha_history and saved["index"] == full.index


def test_resume_refuses_a_checkpoint_with_other_settings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    search(_cfg(metric="none"), tmp_path, data=DATA)
    with pytest.raises(CheckpointError, match="metric"):
        search(_cfg(metric="jacobian"), tmp_path, data=DATA, resume=True)


def test_config_rejects_bad_values() -> None:
    with pytest.raises(Rb201Error, match="metric"):
        _cfg(metric="lipschitz")
    with pytest.raises(Rb201Error, match="1/255"):
        _cfg(eps=300)
    with pytest.raises(Rb201Error, match="epochs"):
        _cfg(epochs=0)
    with pytest.raises(Rb201Error, match="dataset"):
        _cfg(dataset="svhn")
    assert DSRNAConfig.from_json(_cfg().to_json()) == _cfg()


def test_result_json_describes_the_derived_cell() -> None:
    res = search(_cfg(metric="none"), data=DATA)
    d = res.to_json()
    assert d["arch"] == res.arch.string and d["index"] == res.arch.index
    assert d["representative"] == res.arch.representative.index
    assert len(d["alpha_history"]) == 2 and len(d["alpha_history"][0]) == 6
    json.dumps(d)


def test_score_on_table_reports_values_and_percentiles(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    reps = [0, 1, 2, 3, 3]  # arch 4 is an isomorph of 3
    wide = pd.DataFrame(
        {
            "representative": reps,
            "clean": [0.5, 0.6, 0.7, 0.9, 0.9],
            "fgsm@1": [0.1, 0.4, 0.3, np.nan, np.nan],
            "params": [1.0, 2.0, 3.0, 4.0, 4.0],
        }
    )
    wide.index.name = "arch_index"

    from robustbench201 import _query

    monkeypatch.setattr(_query, "table", lambda dataset, form="wide", source=None: wide)
    res = DSRNAResult(_cfg(), Arch.from_index(2), [], [], 0.0)
    score = score_on_table(res, "cifar10")
    assert score.n_classes == 4 and score.index == 2
    assert score.values == {"clean": 0.7, "fgsm@1": 0.3, "mean_adv": 0.3}  # mean_adv: the only attack here
    assert score.percentiles["clean"] == 75.0
    assert score.percentiles["fgsm@1"] == pytest.approx(200 / 3)


def test_score_on_the_embedded_table() -> None:
    """1462 (all 3x3 convs) on the shipped CIFAR-10 table: a real lookup among the 6466 classes."""
    score = score_on_table(Arch.from_index(1462), "cifar10")
    assert score.n_classes == 6466 and score.representative == 1462
    assert 0.5 < score.clean <= 1.0
    assert 0.0 <= score.percentiles["clean"] <= 100.0
    assert "fgsm@1" in score.values and "fgsm@1" in score.percentiles


def test_cli_runs_a_short_search_and_writes_json_and_png(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import mlxtend  # noqa: F401 - part of the test extra
    from click.testing import CliRunner

    from robustbench201.cli import main

    out = tmp_path / "run"
    args = ["search", "dsrna", "--metric", "certified", "--epochs", "1", "--channels", "4", "--n-train", "32"]
    args += ["--batch-size", "16", "--reg-batch", "4", "--out", str(out), "--json"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert Arch.from_index(info["index"]).string == info["arch"]
    saved = json.loads((out / RESULT).read_text())
    assert saved["config"]["metric"] == "certified" and saved["index"] == info["index"]
    assert (out / "alphas.png").read_bytes()[:4] == b"\x89PNG"
    again = CliRunner().invoke(main, [*args[:5], "2", *args[6:-1], "--resume"])
    assert again.exit_code == 0, again.output
    assert len(json.loads((out / RESULT).read_text())["history"]) == 2
    # the text output: per-edge decisions, the regulariser per epoch, the transfer estimate, labelled
    text = again.stdout
    assert "lead over the second op" in text and text.count("->") >= 6
    assert "R_CB" in text and "x loss" in text
    assert "no results table exists for mnist5k" in text and "transfer estimate (cifar10 table)" in text


def test_cli_names_the_missing_cifar_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from robustbench201.cli import main

    res = CliRunner().invoke(main, ["search", "dsrna", "--dataset", "cifar10", "--data-root", str(tmp_path)])
    assert res.exit_code != 0
    assert "data_batch_1" in res.output and "Traceback" not in res.output


def test_cli_module_does_not_import_torch() -> None:
    import subprocess

    code = "import sys, robustbench201.cli.dsrna_cmd; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_public_names_import_from_the_subpackage_lazily() -> None:
    """``from robustbench201.search.dsrna import ...`` names the objects (never a submodule), and the settings and
    results come without torch."""
    import subprocess

    import robustbench201.search.dsrna as pkg

    for name in pkg.__all__:
        assert not inspect.ismodule(getattr(pkg, name)), name
    assert pkg.search.__module__ == "robustbench201.search.dsrna.bilevel" and callable(pkg.compare)
    code = (
        "import sys\n"
        "from robustbench201.search.dsrna import DSRNAConfig, CompareConfig, DSRNAResult, RESULT\n"
        "from robustbench201.search.dsrna.diagnostics import edge_decisions\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_threads_and_device_arguments() -> None:
    torch.set_num_threads(2)  # the autouse fixture restores the caller's setting afterwards
    search(_cfg(metric="none"), data=DATA, threads=1)
    assert torch.get_num_threads() == 2
    with pytest.raises(Rb201Error, match="threads"):
        search(_cfg(metric="none"), data=DATA, threads=0)
    with pytest.raises(Rb201Error, match="device"):
        search(_cfg(metric="none"), data=DATA, device="quantum")


def test_regulariser_magnitudes_are_reported_per_epoch_beside_the_loss() -> None:
    """Absolute mode (the paper's objective): each epoch records R, gamma x R and its ratio to the validation loss;
    one gamma leaves the two regularisers orders of magnitude apart."""
    res = search(_cfg(metric="combined", gamma_mode="absolute"), data=DATA)
    h = res.history[0]
    assert res.reg_scale == {"jacobian": 1.0, "certified": 1.0}
    for t in ("jacobian", "certified"):
        assert h[f"term_{t}"] == pytest.approx(0.01 * h[f"R_{t}"])
        assert h[f"ratio_{t}"] == pytest.approx(abs(h[f"term_{t}"]) / h["val_loss"])
    assert h["R_jacobian"] < 0 and h["R_certified"] < 0  # R_Jac <= 0 always; the bound of an untrained net too
    assert h["ratio_certified"] > 100 * h["ratio_jacobian"]
    assert 0 < h["val_acc"] <= 1 and h["a_lr"] == res.a_lr == pytest.approx(0.1)  # 2 alpha steps: the cap


def test_relative_gamma_calibrates_each_regulariser_to_the_loss_at_the_start() -> None:
    """Relative mode: s = L_val / |R| on the initial supernet, so gamma x s x R starts at about gamma x L_val for
    both regularisers."""
    from robustbench201.search.dsrna import calibrate

    cfg = _cfg(metric="combined", gamma_jacobian=0.5, gamma_certified=0.5)
    res = search(cfg, data=DATA)
    model = create_supernet("mnist5k", channels=4, n_cells=1, in_channels=1, resolution=12, seed=cfg.seed)
    labels = torch.from_numpy(DATA.labels)
    assert calibrate(model, DATA.images, labels, torch.arange(32, 64), cfg) == res.reg_scale
    h = res.history[0]
    for t in ("jacobian", "certified"):
        assert h[f"term_{t}"] == pytest.approx(0.5 * res.reg_scale[t] * h[f"R_{t}"])
        assert 0.1 < h[f"ratio_{t}"] < 5  # about 0.5 after one short epoch, for both
    assert res.reg_scale["jacobian"] > 1000 * res.reg_scale["certified"]


def test_summary_warns_on_a_forced_uniform_and_on_the_identity_cell() -> None:
    from robustbench201.search.dsrna.summary import summarize

    res = search(_cfg(metric="none", a_lr=1e-7), data=DATA)  # forced: the alphas cannot move
    info = summarize(res, plot=False)
    codes = [f["code"] for f in info["findings"]]
    assert codes[0] == "uniform" and not any(e["decided"] for e in info["edges"])
    assert "needs" in info["findings"][0]["message"] and info["movement"]["max_change"] < 1e-4
    assert "no results table exists for mnist5k" in info["table_note"]
    assert info["transfer"]["label"] == "transfer estimate (cifar10 table)" and "mean_adv" in info["transfer"]["values"]
    # the identity cell, decided: the collapse warning alone
    ident = Arch.from_index(55)
    alphas = np.full((6, 5), 0.1)
    alphas[np.arange(6), list(ident.ops)] = 0.6
    collapsed = DSRNAResult(res.config, ident, [res.alpha_history[0], alphas.tolist()], res.history, 1.0, 0.1, 2)
    codes = [f["code"] for f in summarize(collapsed, plot=False, transfer=False)["findings"]]
    assert codes == ["identity"]


def test_relative_gamma_puts_each_term_at_gamma_times_the_loss_on_the_calibration_batch() -> None:
    """At the calibration point (initial supernet, the first validation batch) gamma x s x |R| is exactly gamma x
    L_val for each regulariser, with a different gamma per regulariser; with alphas and weights held nearly still,
    the first epoch's ratios stay near their gammas."""
    from robustbench201.search.dsrna import arch_objective, calibrate

    cfg = _cfg(metric="combined", gamma_jacobian=0.3, gamma_certified=0.7, calib_batches=1, batch_size=32)
    model = create_supernet("mnist5k", channels=4, n_cells=1, in_channels=1, resolution=12, seed=cfg.seed)
    labels = torch.from_numpy(DATA.labels)
    scale = calibrate(model, DATA.images, labels, torch.arange(32, 64), cfg)
    x = torch.from_numpy(DATA.images[32:64]).float() / 255
    _, parts = arch_objective(model, x, labels[32:64], cfg, scale)
    for term, gamma in (("jacobian", 0.3), ("certified", 0.7)):
        assert abs(parts[f"term_{term}"]) / parts["val_loss"] == pytest.approx(gamma, rel=1e-5)
    still = search(_cfg(metric="combined", gamma_jacobian=0.3, gamma_certified=0.7, a_lr=1e-7, w_lr=1e-6,
                        w_lr_min=1e-7), data=DATA)  # fmt: skip
    h = still.history[0]
    for term, gamma in (("jacobian", 0.3), ("certified", 0.7)):
        assert 0.5 * gamma < h[f"ratio_{term}"] < 2 * gamma


def test_cli_text_shows_the_weights_and_warns_on_a_forced_uniform(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from robustbench201.cli import main

    args = ["search", "dsrna", "--metric", "jacobian", "--epochs", "1", "--channels", "4", "--n-train", "32"]
    args += ["--batch-size", "16", "--reg-batch", "4", "--a-lr", "1e-7", "--gamma-jacobian", "0.25", "--no-plot"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    text = res.stdout
    assert text.count("undecided") >= 6 and "softmax weight; uniform is 0.2" in text
    assert "warning         the derived cell is indistinguishable from a uniform draw" in text
    assert "architecture lr 1e-07" in text and "R_Jac" in text
    assert "epoch 1/1" in res.stderr and "(gamma R = " in res.stderr
