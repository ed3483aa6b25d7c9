"""``rb201 search dsrna --compare`` on tiny budgets: MNIST-5k (cells trained and attacked) and CIFAR-10 (table
scoring), resumable, and the command line around it."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from dsrna_data import synthetic_cifar

from robustbench201.errors import Rb201Error
from robustbench201.search.dsrna.comparison import COMPARE_JSON, compare, random_cells
from robustbench201.search.dsrna.comparison_report import render
from robustbench201.search.dsrna.config import CompareConfig, DSRNAConfig
from robustbench201.search.dsrna.summary import score_on_table
from robustbench201.space import Arch

TINY = DSRNAConfig(n_train=32, epochs=1, channels=4, batch_size=16, reg_batch=4)


def test_compare_on_mnist5k_trains_and_attacks_every_cell_and_resumes(tmp_path: Path) -> None:
    cfg = CompareConfig(
        search=TINY,
        metrics=("none", "jacobian"),
        seeds=(0,),
        n_random=1,
        train_epochs=1,
        train_seeds=(777, 888),
        n_score_train=64,
        n_test=32,
        pgd_steps=2,
    )
    assert cfg.mode == "trained"
    report = compare(cfg, tmp_path, plot=True)
    cols = ["clean", "fgsm@2", "fgsm@8", "pgd@2", "pgd@8", "mean_adv"]
    assert report["columns"] == cols
    keys = [g["key"] for g in report["groups"]]
    assert keys == ["none", "jacobian", "random", "reference"]
    assert report["reference"]["index"] == 655  # the CIFAR-10 table's fgsm@1 optimum, trained here
    for run in report["runs"]:
        assert run["train_seeds"] == [777, 888] and len(run["per_seed"]["pgd@8"]) == 2
        assert run["values"]["pgd@8"] == pytest.approx(np.mean(run["per_seed"]["pgd@8"]))
        assert 0 <= run["values"]["pgd@8"] <= run["values"]["clean"] <= 1
        assert run["values"]["mean_adv"] == pytest.approx(np.mean([run["values"][c] for c in cols[1:-1]]))
        assert "fgsm@1" in run["transfer"] and run["movement"]["max_weight"] > 0.2
    assert report["random"][0]["index"] == random_cells(1, 0)[0]
    for name in (COMPARE_JSON, "compare.md", "compare.png"):
        assert (tmp_path / name).stat().st_size > 0
    cells = {*(r["index"] for r in report["runs"]), report["random"][0]["index"], 655}
    assert len(list((tmp_path / "cells").glob("*.json"))) == 2 * len(cells)  # every cell, every training seed
    text = render(report)
    assert "DARTS" in text and "DSRNA (R_Jac)" in text and "trained here" in text and "+-" in text
    # a second call finds every search and every trained cell on disk: it rewrites none of their files (a job that
    # ran again would replace its file, atomically, by a new one)
    files = [p for d in ("searches", "cells") for p in (tmp_path / d).rglob("*") if p.is_file()]
    saved = [(p.stat().st_ino, p.stat().st_mtime_ns) for p in files]
    again = compare(cfg, tmp_path, plot=False)
    assert files and [(p.stat().st_ino, p.stat().st_mtime_ns) for p in files] == saved
    assert again["groups"] == report["groups"]


def test_compare_on_cifar10_scores_on_the_table_against_random_cells_and_the_optimum(tmp_path: Path) -> None:
    search = dataclasses.replace(TINY, dataset="cifar10")
    cfg = CompareConfig(search=search, metrics=("none", "certified"), seeds=(0, 1), n_random=2)
    assert cfg.mode == "table"
    report = compare(cfg, tmp_path, data=synthetic_cifar(), plot=True)
    assert report["columns"] == ["clean", "fgsm@1", "pgd@1", "mean_adv"]
    groups = {g["key"]: g for g in report["groups"]}
    assert list(groups) == ["none", "certified", "random", "random_expectation", "optimum"]
    assert groups["optimum"]["fgsm@1"]["index"] == 655 and groups["optimum"]["fgsm@1"]["mean"] == pytest.approx(0.692)
    assert groups["optimum"]["clean"]["index"] == 13714
    exp = report["random_expectation"]["fgsm@1"]
    assert exp["p10"] < exp["mean"] < exp["p90"] < 0.692
    for run in report["runs"]:
        score = score_on_table(Arch.from_index(run["index"]), "cifar10")
        assert run["values"]["fgsm@1"] == score.values["fgsm@1"]
        assert run["percentiles"]["mean_adv"] == score.percentiles["mean_adv"]
    assert groups["none"]["n"] == 2 and groups["none"]["fgsm@1"]["min"] <= groups["none"]["fgsm@1"]["mean"]
    assert (tmp_path / "compare.png").read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "compare.md").read_text()
    assert md.startswith("| method |") and "table optimum (per column)" in md and "pct fgsm@1" in md


def test_compare_settings_refuse_bad_values() -> None:
    with pytest.raises(Rb201Error, match="metric 'lipschitz'"):
        CompareConfig(metrics=("none", "lipschitz"))
    with pytest.raises(Rb201Error, match="repeat"):
        CompareConfig(seeds=(0, 0))
    with pytest.raises(Rb201Error, match="1/255"):
        CompareConfig(score_eps=(0.0,))
    with pytest.raises(Rb201Error, match="workers"):
        compare(CompareConfig(), "unused", workers=0)


def _fake_cifar10(root: Path) -> None:
    rng = np.random.default_rng(1)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, size=(10, 3072), dtype=np.uint8), b"labels": list(range(10))}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))


def test_cli_compare_on_cifar10_prints_the_tables_and_writes_the_report(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from robustbench201.cli import main

    _fake_cifar10(tmp_path / "data")
    out = tmp_path / "cmp"
    args = ["search", "dsrna", "--dataset", "cifar10", "--data-root", str(tmp_path / "data"), "--compare"]
    args += ["--seeds", "0", "--metrics", "none,jacobian", "--random-cells", "1", "--n-train", "16"]
    args += ["--epochs", "1", "--channels", "4", "--batch-size", "8", "--reg-batch", "2", "--no-plot"]
    res = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "DSRNA (R_Jac)" in res.stdout and "table optimum (per column)" in res.stdout and "#655" in res.stdout
    saved = json.loads((out / COMPARE_JSON).read_text())
    assert [r["group"] for r in saved["runs"]] == ["none", "jacobian"]
    assert saved["config"]["search"]["dataset"] == "cifar10"


def test_cli_compare_options_need_compare_and_compare_needs_out() -> None:
    from click.testing import CliRunner

    from robustbench201.cli import main

    res = CliRunner().invoke(main, ["search", "dsrna", "--seeds", "0,1"])
    assert res.exit_code != 0 and "--seeds needs --compare" in res.output
    res = CliRunner().invoke(main, ["search", "dsrna", "--compare"])
    assert res.exit_code != 0 and "--compare needs --out" in res.output
    res = CliRunner().invoke(main, ["search", "dsrna", "--compare", "--metrics", "none,lipschitz", "--out", "x"])
    assert res.exit_code != 0 and "lipschitz" in res.output and "Traceback" not in res.output


def test_cli_compare_on_mnist5k_trains_the_cells_and_reports_progress(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from robustbench201.cli import main

    out = tmp_path / "cmp"
    args = ["search", "dsrna", "--compare", "--seeds", "0", "--metrics", "none,certified", "--random-cells", "1"]
    args += ["--no-reference", "--n-train", "32", "--epochs", "1", "--channels", "4", "--batch-size", "16"]
    args += ["--reg-batch", "4", "--train-epochs", "1", "--train-seeds", "777", "--score-n-train", "64"]
    args += ["--n-test", "32", "--pgd-steps", "2", "--score-eps", "8", "--out", str(out)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    text = res.stdout
    assert "DARTS" in text and "DSRNA (R_CB)" in text and "random cells (1 drawn)" in text
    assert "pgd@8" in text and "fgsm@2" not in text and "Each cell trained 1 epoch(s)" in text
    assert "trained here" not in text  # --no-reference
    assert "search none seed 0:" in res.stderr and "search certified seed 0:" in res.stderr
    assert res.stderr.count("cell #") == len(list((out / "cells").glob("*.json")))
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG" and f"figure          {out / 'compare.png'}" in text
    saved = json.loads((out / COMPARE_JSON).read_text())
    assert saved["mode"] == "trained" and "reference" not in saved and saved["config"]["train_seeds"] == [777]
