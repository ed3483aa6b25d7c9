"""R_table: the results table as DSRNA's prior. Exact value against a brute-force loop over the 15625 cells, gradient
against finite differences, the straight-through variant, cells without a value, chance handling on the embedded
tables, the search and its report."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from dsrna_data import synthetic_cifar, tiny_digits

from robustbench201.errors import CheckpointError, Rb201Error
from robustbench201.search.cell_distribution import cell_tensor, edge_gradient, expectation, index_of_ops, softmax
from robustbench201.search.dsrna import DSRNAConfig, search
from robustbench201.search.dsrna.regularizers import table_regularizer
from robustbench201.search.dsrna.summary import summarize
from robustbench201.search.dsrna.table_prior import (
    at_chance,
    build_prior,
    chance_study,
    column_kendall,
    dead_mass,
    guided_columns,
)
from robustbench201.space import NUM_ARCHS, Arch, ops_table, representative_indices

OPS = np.asarray(ops_table(), dtype=np.int64)  # (15625, 6), NB201 index order
DEAD = np.array([Arch.from_index(i).is_dead for i in range(NUM_ARCHS)])


def _brute(probs: np.ndarray, values: np.ndarray) -> float:
    """``sum_a prod_e P[e, a_e] v(a)`` by a plain loop over the cells (cells with a NaN value left out and the rest
    renormalised, the conditional expectation)."""
    num = den = 0.0
    for i in range(NUM_ARCHS):
        if math.isnan(values[i]):
            continue
        p = 1.0
        for e in range(6):
            p *= probs[e, OPS[i, e]]
        num += p * values[i]
        den += p
    return num / den


def _alphas(seed: int, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=scale, size=(6, 5))


def test_expectation_equals_a_loop_over_the_15625_cells() -> None:
    rng = np.random.default_rng(0)
    values = rng.random(NUM_ARCHS)
    for seed, scale in ((1, 0.0), (2, 1.0), (3, 4.0)):
        probs = softmax(_alphas(seed, scale))
        # the same sum in another order: two float64 sums of 15625 terms in [0, 1] differ by far less than 1e-9
        assert expectation(probs, cell_tensor(values)) == pytest.approx(_brute(probs, values), abs=1e-9)
    # batched: one value per alpha matrix
    probs = softmax(np.stack([_alphas(s) for s in range(3)]))
    batched = expectation(probs, cell_tensor(values))
    assert batched.shape == (3,)
    for k in range(3):
        assert batched[k] == pytest.approx(expectation(probs[k], cell_tensor(values)), abs=1e-12)


def test_a_one_hot_distribution_reads_one_cell_and_its_gradient_reads_the_neighbours() -> None:
    values = np.random.default_rng(1).random(NUM_ARCHS)
    arch = Arch.from_index(1462)
    onehot = np.zeros((6, 5))
    onehot[np.arange(6), arch.ops] = 1.0
    tensor = cell_tensor(values)
    assert expectation(onehot, tensor) == values[1462]  # exactly one term is nonzero
    grad = edge_gradient(onehot, tensor)
    for e in range(6):
        for o in range(5):
            ops = list(arch.ops)
            ops[e] = o
            assert grad[e, o] == values[Arch.from_ops(tuple(ops)).index]
    assert index_of_ops(np.array(arch.ops)) == 1462


def test_table_prior_value_equals_the_brute_force_sum_on_the_embedded_table() -> None:
    prior = build_prior("cifar10", "pgd@1", chance="gate")
    probs = softmax(_alphas(4))
    value, _ = prior.value_and_gradient(probs)
    assert value == pytest.approx(_brute(probs, np.asarray(prior.values)), abs=1e-9)
    # each cell takes its isomorphism class's value
    reps = np.asarray(representative_indices())
    np.testing.assert_array_equal(prior.raw, prior.raw[reps])
    assert prior.n_missing_cells == 0 and prior.chance == 0.1


def test_the_regulariser_gradient_matches_finite_differences() -> None:
    prior = build_prior("cifar10", "mean_adv", chance="gate")
    alphas = torch.tensor(_alphas(5), dtype=torch.float64, requires_grad=True)
    # gradcheck: central differences (eps 1e-6) of an exact float64 multilinear function against the analytic
    # gradient; the difference is O(eps^2) plus rounding of a sum of 15625 terms, far below the tolerance
    assert torch.autograd.gradcheck(lambda a: table_regularizer(a, prior), (alphas,), eps=1e-6, atol=1e-7)
    # through a float32 parameter, as in a search: computed in float64 from the (exactly widened) float32 alphas, so
    # the float32 gradient is the float64 one rounded to float32 (relative error <= 2^-24)
    a32 = alphas.detach().float().requires_grad_(True)
    r = table_regularizer(a32, prior)
    assert r.dtype == torch.float64
    r.backward()
    a64 = a32.detach().double().requires_grad_(True)
    table_regularizer(a64, prior).backward()
    np.testing.assert_allclose(a32.grad.numpy(), a64.grad.numpy(), rtol=1e-6, atol=1e-12)


def test_cells_without_a_value_are_left_out_and_counted_not_taken_as_zero(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(6)
    values = rng.random(NUM_ARCHS) + 1.0  # all >= 1: a missing value taken as 0 would pull the mean down
    keep = rng.random(NUM_ARCHS) < 0.5
    df = pd.DataFrame({"arch_index": np.arange(NUM_ARCHS)[keep], "score": values[keep], "clean": 0.9})
    path = tmp_path / "partial.parquet"
    df.to_parquet(path)
    prior = build_prior("cifar10", "score", source=str(path), chance="none")
    # a cell without its own row takes its class representative's value, if the representative has one
    reps = np.asarray(representative_indices())
    expected = np.where(keep[reps], values[reps], np.where(keep, values, np.nan))
    np.testing.assert_array_equal(prior.raw, expected)
    assert prior.n_missing_cells == int(np.isnan(expected).sum()) > 0
    probs = softmax(_alphas(7))
    value, grad = prior.value_and_gradient(probs)
    assert value == pytest.approx(_brute(probs, expected), abs=1e-9) and value >= 1.0
    missing = sum(np.prod(probs[np.arange(6), OPS[i]]) for i in np.flatnonzero(np.isnan(expected)))
    assert prior.mass(probs, "missing") == pytest.approx(missing, abs=1e-9)
    h = 1e-6  # the gradient of the conditional expectation, by central differences in one probability
    up, down = probs.copy(), probs.copy()
    up[2, 3] += h
    down[2, 3] -= h
    fd = (prior.value_and_gradient(up)[0] - prior.value_and_gradient(down)[0]) / (2 * h)
    assert fd == pytest.approx(grad[2, 3], abs=1e-6)
    empty = pd.DataFrame({"arch_index": [0], "score": [np.nan], "clean": [0.9]})
    empty.to_parquet(tmp_path / "empty.parquet")
    with pytest.raises(Rb201Error, match="score"):
        build_prior("cifar10", "score", source=str(tmp_path / "empty.parquet"), chance="none")


def test_straight_through_reads_the_argmax_cell_and_steps_towards_better_neighbours() -> None:
    prior = build_prior("cifar10", "fgsm@1", chance="gate")
    alphas = torch.tensor(_alphas(8), dtype=torch.float64, requires_grad=True)
    r = table_regularizer(alphas, prior, "argmax-st")
    top = alphas.detach().numpy().argmax(axis=1)
    cell = int(index_of_ops(top))
    assert float(r.detach()) == prior.values[cell]  # the forward value is the argmax cell's, exactly
    r.backward()
    # backward: the gradient in the probabilities is each one-edge neighbour's advantage, chained through the softmax
    probs = softmax(alphas.detach().numpy())
    g = np.zeros((6, 5))
    for e in range(6):
        for o in range(5):
            ops = top.copy()
            ops[e] = o
            g[e, o] = prior.values[int(index_of_ops(ops))] - prior.values[cell]
    expected = probs * (g - (probs * g).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(alphas.grad.numpy(), expected, rtol=0, atol=1e-12)
    # exclude_none: the argmax over the four other ops, as the derivation
    a = torch.zeros(6, 5, dtype=torch.float64)
    a[:, 0] = 5.0
    a[:, 3] = 1.0
    r = table_regularizer(a, prior, "argmax-st", exclude_none=True)
    assert float(r.detach()) == prior.values[int(index_of_ops(np.full(6, 3)))]
    with pytest.raises(Rb201Error, match="estimator"):
        table_regularizer(a, prior, "sampled")


def test_chance_handling_keeps_dead_and_chance_cells_from_maximising_the_prior() -> None:
    """On the embedded tables: at PGD 8/255 every dead cell (chance accuracy) beats every live cell on CIFAR-10, so the
    raw column and the accuracy retained relative to clean are maximised by a dead cell; gating by clean accuracy and
    the dead-mass penalty are not. On ImageNet16-120 a live cell at chance accuracy maximises the dead-mass penalty,
    and only the gate avoids it."""
    rows = {(r["column"], r["chance"]): r for r in chance_study("cifar10", ("pgd@8", "pgd@1"))}
    assert rows["pgd@8", "none"]["dead"] and rows["pgd@8", "retained"]["dead"]
    assert rows["pgd@1", "retained"]["dead"]  # retained accuracy rewards chance at every epsilon
    for mode in ("gate", "dead-penalty"):
        assert not rows["pgd@8", mode]["dead"] and not rows["pgd@8", mode]["at_chance"]
    assert rows["pgd@1", "none"]["index"] == rows["pgd@1", "dead-penalty"]["index"]  # no dead cell there to move
    inet = {r["chance"]: r for r in chance_study("ImageNet16-120", ("pgd@8",))}
    chance = 1 / 120
    assert not inet["dead-penalty"]["dead"] and at_chance(inet["dead-penalty"]["clean"], chance, 6000)
    assert not at_chance(inet["gate"]["clean"], chance, 6000) and not inet["gate"]["dead"]
    # the gate gives a cell at chance the column's worst value; the penalty (twice the column's range) puts every dead
    # cell at least one range below every live cell
    gate = np.asarray(build_prior("cifar10", "pgd@8", chance="gate").values)
    assert gate[DEAD].max() == gate.min()
    penalty = build_prior("cifar10", "pgd@8", chance="dead-penalty")
    v, raw = np.asarray(penalty.values), np.asarray(penalty.raw)
    span = raw.max() - raw.min()
    assert penalty.penalty == 2 * span and v[DEAD].max() <= v[~DEAD].min() - span


def test_dead_mass_is_the_probability_of_the_341_dead_cells() -> None:
    assert DEAD.sum() == 341
    assert dead_mass(np.full((6, 5), 0.2)) == pytest.approx(341 / NUM_ARCHS, abs=1e-12)
    probs = softmax(_alphas(9))
    assert dead_mass(probs) == pytest.approx(_brute(probs, DEAD.astype(float)), abs=1e-9)


def test_kendall_between_the_tables_and_the_columns_a_prior_reads() -> None:
    taus = column_kendall("clean")
    assert set(taus) == {"cifar10~cifar100", "cifar10~ImageNet16-120", "cifar100~ImageNet16-120"}
    assert all(-1 <= t <= 1 for t in taus.values())
    assert column_kendall("clean")["cifar10~cifar100"] == taus["cifar10~cifar100"]
    cols = ["clean", "fgsm@1", "pgd@1", "mean_adv"]
    assert guided_columns(build_prior("cifar10", "pgd@1", chance="none"), cols) == ["pgd@1", "mean_adv"]
    assert guided_columns(build_prior("cifar10", "mean_adv", chance="none"), cols) == ["fgsm@1", "pgd@1", "mean_adv"]
    assert guided_columns(build_prior("cifar10", "fog:3", chance="none"), cols) == []
    assert guided_columns(build_prior("cifar10", "0.5*clean + 0.5*fgsm@8", chance="none"), cols) == [
        "clean",
        "mean_adv",
    ]


def test_a_min_objective_and_bad_columns() -> None:
    prior = build_prior("cifar10", "min:params", chance="none")
    assert not prior.maximize
    np.testing.assert_array_equal(prior.values, -prior.raw)
    assert prior.percentile(int(np.nanargmin(prior.raw))) == 100.0
    with pytest.raises(Rb201Error, match="pgd@99"):
        build_prior("cifar10", "pgd@99")
    with pytest.raises(Rb201Error, match="chance handling"):
        build_prior("cifar10", "pgd@1", chance="ignore")
    with pytest.raises(Rb201Error, match="surrogate_dataset"):
        DSRNAConfig(metric="table", surrogate_dataset="mnist5k")
    with pytest.raises(Rb201Error, match="surrogate_column"):
        DSRNAConfig(metric="table", surrogate_column=" ")


# ---- the search ----------------------------------------------------------------------------------------------------
DATA = tiny_digits()
BASE = {"epochs": 2, "channels": 4, "n_cells": 1, "batch_size": 16, "n_train": 64, "reg_batch": 8}


@pytest.mark.parametrize("metric", ["table", "table-st", "table+jacobian", "table+certified"])
def test_table_searches_run_deterministically_and_record_the_prior(metric: str) -> None:
    cfg = DSRNAConfig(**BASE, metric=metric)  # type: ignore[arg-type]
    assert cfg.surrogate_dataset == "cifar10"  # MNIST-5k has no table: CIFAR-10's, a transfer
    a, b = search(cfg, data=DATA), search(cfg, data=DATA)
    assert a.alpha_history == b.alpha_history
    h = a.history[-1]
    assert {k for k in h if k.startswith("R_")} == {f"R_{t}" for t in cfg.terms}
    assert 0 <= h["R_table"] < 1 and 0 <= h["dead_mass"] < 1
    assert a.reg_scale["table"] > 0  # relative gamma calibrated like the others


def test_the_prior_moves_the_weights_towards_the_table_s_better_ops() -> None:
    """Absolute mode with gamma 1e4: -gamma R_table outweighs the validation loss in every alpha's gradient (at the
    start |dR/dalpha| is 1e-4 to 1e-2, times 1e4 against a loss gradient below 1), so Adam's steps ascend the table's
    expectation, which rises from the start; plain DARTS' weights end elsewhere."""
    cfg = DSRNAConfig(**BASE | {"epochs": 3}, metric="table", gamma_mode="absolute", gamma_table=1e4)  # type: ignore[arg-type]
    res = search(cfg, data=DATA)
    prior = build_prior("cifar10", cfg.surrogate_column, chance=cfg.surrogate_chance)
    start = prior.value_and_gradient(np.asarray(res.alpha_history[0]))[0]
    end = prior.value_and_gradient(np.asarray(res.alpha_history[-1]))[0]
    assert end > start
    plain = search(dataclasses.replace(cfg, metric="none"), data=DATA)
    assert res.alpha_history[-1] != plain.alpha_history[-1]


def test_summary_names_the_column_the_table_and_the_transfer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = DSRNAConfig(**BASE, metric="table", surrogate_column="fgsm@1")  # type: ignore[arg-type]
    res = search(cfg, out=tmp_path, data=DATA)
    info = summarize(res, tmp_path, plot=False)
    sur = info["surrogate"]
    assert sur["dataset"] == "cifar10" and sur["column"] == "fgsm@1" and sur["transfer"] is True
    assert sur["estimator"] == "expectation" and sur["chance"] == "gate" and sur["n_classes"] == 6466
    assert sur["percentile"] == info["transfer"]["percentiles"]["fgsm@1"]  # same rank as the table score
    assert set(sur["kendall"]) == {"cifar10~cifar100", "cifar10~ImageNet16-120", "cifar100~ImageNet16-120"}
    assert 0 <= info["dead_mass"] < 1
    saved = json.loads((tmp_path / "dsrna_result.json").read_text())
    assert saved["config"]["surrogate_column"] == "fgsm@1"


def test_table_settings_belong_to_the_identity_of_table_searches_only(tmp_path) -> None:  # type: ignore[no-untyped-def]
    plain = DSRNAConfig(**BASE, metric="none")  # type: ignore[arg-type]
    assert plain.identity() == dataclasses.replace(plain, surrogate_column="fgsm@1").identity()
    table = dataclasses.replace(plain, metric="table")
    assert table.identity() != dataclasses.replace(table, surrogate_column="fgsm@1").identity()
    search(table, out=tmp_path, data=DATA)
    with pytest.raises(CheckpointError, match="surrogate_column"):
        search(dataclasses.replace(table, surrogate_column="fgsm@1", epochs=3), out=tmp_path, data=DATA, resume=True)
    old = table.to_json()
    for k in ("gamma_table", "surrogate_column", "surrogate_dataset", "surrogate_source", "surrogate_chance"):
        old.pop(k)
    assert DSRNAConfig.from_json(old | {"metric": "none"}).identity() == plain.identity()  # configs written before


# ---- --compare and the command line ---------------------------------------------------------------------------------
TINY = DSRNAConfig(n_train=32, epochs=1, channels=4, batch_size=16, reg_batch=4)


@pytest.mark.parametrize(("column", "guided"), [("pgd@1", ["pgd@1", "mean_adv"]), ("fog:3", [])])
def test_compare_on_the_table_marks_the_scores_the_guiding_column_reads(tmp_path, column, guided) -> None:  # type: ignore[no-untyped-def]
    from robustbench201.search.dsrna import CompareConfig, compare
    from robustbench201.search.dsrna.comparison_report import render

    search_cfg = dataclasses.replace(TINY, dataset="cifar10", surrogate_column=column)
    cfg = CompareConfig(search=search_cfg, metrics=("none", "table"), seeds=(0,), n_random=1)
    report = compare(cfg, tmp_path, data=synthetic_cifar(), plot=not guided)  # the figure with a table group too
    sur = report["surrogate"]
    assert sur["dataset"] == "cifar10" and sur["transfer"] is False and sur["guided"] == guided
    assert sur["metrics"] == ["table"] and "kendall" not in sur
    prior = build_prior("cifar10", column, chance="gate")
    for run in [*report["runs"], *report["random"]]:
        assert run["surrogate"]["percentile"] == prior.percentile(run["index"])
    text = render(report)
    assert f"guided by {column} of the cifar10 table" in text and f"pct {column} (cifar10)" in text
    if guided:
        assert "pgd@1*" in text and "not held-out scores" in text
    else:
        assert "*" not in text.splitlines()[0] and "every score is held out" in text
        assert (tmp_path / "compare.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_compare_on_mnist5k_says_the_prior_is_a_transfer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from robustbench201.cli import main

    out = tmp_path / "cmp"
    args = ["search", "dsrna", "--compare", "--seeds", "0", "--metrics", "none,table-st", "--random-cells", "0"]
    args += ["--no-reference", "--n-train", "32", "--epochs", "1", "--channels", "4", "--batch-size", "16"]
    args += ["--reg-batch", "4", "--train-epochs", "1", "--train-seeds", "777", "--score-n-train", "64"]
    args += ["--n-test", "32", "--pgd-steps", "2", "--score-eps", "8", "--no-plot", "--surrogate-column", "fgsm@1"]
    res = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "DSRNA (R_table, argmax ST)" in res.stdout and "A transfer: the searches saw mnist5k images" in res.stdout
    assert "cifar10 vs cifar100" in res.stdout and "pct fgsm@1 (cifar10)" in res.stdout
    bad = CliRunner().invoke(main, [*args[:-2], "--surrogate-column", "pgd@99", "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "pgd@99" in bad.output and "Traceback" not in bad.output
    assert not (tmp_path / "x").exists()  # refused before any search


def test_cli_single_search_names_what_guided_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from robustbench201.cli import main

    args = ["search", "dsrna", "--metric", "table", "--surrogate-column", "mean_adv", "--surrogate-chance"]
    args += ["dead-penalty", "--epochs", "1", "--channels", "4", "--n-train", "32", "--batch-size", "16", "--no-plot"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    text = res.stdout
    assert "guided by       mean_adv of the cifar10 table (embedded), chance handling dead-penalty" in text
    assert "percentile" in text and "Kendall tau of mean_adv" in text and "dead mass" in text
    assert "R_table" in res.stderr  # the per-epoch line


def test_table_scores_say_when_a_value_is_at_chance() -> None:
    from robustbench201.search.dsrna.summary import score_on_table

    dead = score_on_table(Arch.from_index(10), "cifar10")  # a dead cell: 0.100 everywhere
    assert "pgd@8" in dead.at_chance and dead.percentiles["pgd@8"] == 100.0
    live = score_on_table(Arch.from_index(655), "cifar10")
    assert "clean" not in live.at_chance and "fgsm@1" not in live.at_chance


def test_a_source_dataset_directory_guides_r_table_and_its_missing_cells_are_counted(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A dataset directory with rows for three classes only: R_table is their conditional expectation, the other
    classes are counted as without a value, and the search output says so."""
    from click.testing import CliRunner

    from robustbench201.cli import main
    from robustbench201.store.dataset import write_dataset_dir
    from robustbench201.store.schema import Row, rows_to_table

    values = {1462: 0.6, 655: 0.7, 13714: 0.5}
    rows = []
    for a, v in values.items():
        base = {"arch_index": a, "dataset": "cifar10", "seed": 777, "weights": "train", "spec_hash": "abc", "n": 50}
        rows.append(Row(family="clean", key="clean", measure="accuracy", value=0.9, **base))
        rows.append(Row(family="adversarial", key="pgd", measure="accuracy", value=v, norm="Linf", epsilon=1.0,
                        semantics="per-epsilon", **base))  # fmt: skip
    src = tmp_path / "ds"
    write_dataset_dir(src, {"run": rows_to_table(rows)}, name="ds", created="2024-01-01T00:00:00Z")
    prior = build_prior("cifar10", "pgd@1", source=str(src), chance="none")
    reps = np.asarray(representative_indices())
    known = np.isin(reps, list(values))
    assert prior.n_missing_cells == int((~known).sum()) and prior.n_missing_classes == 6466 - 3
    probs = softmax(_alphas(10))
    expected = np.where(known, [values.get(int(r), np.nan) for r in reps], np.nan)
    assert prior.value_and_gradient(probs)[0] == pytest.approx(_brute(probs, expected), abs=1e-9)
    args = ["search", "dsrna", "--metric", "table", "--surrogate-chance", "none", "--table-source", str(src)]
    args += ["--epochs", "1", "--channels", "4", "--n-train", "32", "--batch-size", "16", "--no-plot"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert f"of the cifar10 table ({src})" in res.stdout
    assert f"no value      {prior.n_missing_cells} cells (6463 classes)" in res.stdout
