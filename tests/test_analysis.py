"""Analyses of Jung et al. on a wide table: rank correlations, the equal-parameter-count study, surrogates, Pareto
fronts, figures, and the ``rb201 analyze`` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from published import embedded_jung_wide  # tests/ is on sys.path under pytest's default import mode
from scipy.stats import kendalltau

from robustbench201.cli import main
from robustbench201.errors import Rb201Error
from robustbench201.search import analysis as an
from robustbench201.space import unique_indices


@pytest.fixture(scope="module")
def jung() -> pd.DataFrame:
    """The published CIFAR-10 table, from the embedded table checked against the published files' hashes
    (``tests/published.py``; ``test_nas`` compares it with the files themselves when ``../shared/data`` is present)."""
    return embedded_jung_wide("cifar10")


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    idx = np.array(unique_indices()[:400])
    rng = np.random.default_rng(1)
    clean = rng.uniform(0.5, 0.9, idx.size)
    df = pd.DataFrame({"clean": clean}, index=pd.Index(idx, name="arch_index"))
    for a in an.ATTACKS:
        for e in (0.1, 1.0, 8.0, 255.0):
            df[f"{a}@{e:g}"] = clean * np.exp(-e / 4) + rng.normal(0, 0.01, idx.size)
    for c in ("fog", "snow", "frost"):
        for s in range(1, 6):
            df[f"{c}:{s}"] = clean - 0.05 * s + rng.normal(0, 0.02, idx.size)
    df["synflow"] = np.where(np.arange(idx.size) % 2 == 0, clean + rng.normal(0, 0.05, idx.size), np.nan)
    df["params"] = rng.uniform(0.1, 1.5, idx.size)
    return df


def test_kendall_matches_scipy_and_skips_nan(small: pd.DataFrame) -> None:
    tau, n = an.kendall(small["synflow"].to_numpy(), small["clean"].to_numpy())
    ok = small["synflow"].notna()
    assert n == 200 and tau == pytest.approx(kendalltau(small.loc[ok, "synflow"], small.loc[ok, "clean"]).statistic)
    m = an.kendall_matrix(small, ["clean", "fgsm@1", "pgd@1"])
    assert np.allclose(np.diag(m), 1) and np.allclose(m, m.T)


def test_clean_vs_robust_rows_per_attack_and_epsilon(small: pd.DataFrame) -> None:
    cvr = an.clean_vs_robust(small)
    assert len(cvr) == 16 and set(cvr["attack"]) == set(an.ATTACKS)
    assert (cvr.loc[cvr["epsilon"] == 0.1, "tau"] > 0.8).all()


def test_corruption_matrix_and_mean_adversarial_averagings(small: pd.DataFrame) -> None:
    cm = an.corruption_matrix(small)
    assert list(cm.columns) == ["fog", "frost", "snow"]
    flat = an.mean_adversarial(small, exclude_eps=(255.0,))
    cols = [f"{a}@{e}" for a in an.ATTACKS for e in ("0.1", "1", "8")]
    np.testing.assert_allclose(flat, small[cols].mean(axis=1))
    with pytest.raises(Rb201Error, match="averaging"):
        an.mean_adversarial(small, averaging="median")


def test_pareto_front_is_non_dominated() -> None:
    df = pd.DataFrame(
        {"acc": [0.5, 0.6, 0.55, 0.7, 0.65], "cost": [1.0, 2.0, 2.5, 3.0, 1.5]}, index=[10, 11, 12, 13, 14]
    )
    assert an.pareto_front(df, "acc", "cost") == [10, 14, 13]  # 11 (0.6 at cost 2) is dominated by 14 (0.65 at 1.5)


def test_surrogate_correlation_uses_known_rows(small: pd.DataFrame) -> None:
    res = an.surrogate_correlation(small)
    row = res[(res["surrogate"] == "synflow") & (res["target"] == "clean")].iloc[0]
    assert row["n"] == 200 and row["tau"] > 0.5
    with pytest.raises(Rb201Error, match="lacks columns"):
        an.surrogate_correlation(small, surrogates=["jacobian"])


# ---- the published CIFAR-10 table --------------------------------------------------------------------------
def test_equal_parameter_count_headline(jung: pd.DataFrame) -> None:
    """405 cells with two 3x3 and no 1x1 convs share one parameter count, yet their mean adversarial accuracy
    (flat mean over the 4 attacks and all epsilons except 255) spans 21.5% to 40.9% (paper: 20% to 41%)."""
    r = an.equal_params_study(jung)
    assert r["cells"] == 405 and r["params"] == [pytest.approx(0.559386)]
    assert r["min"] == pytest.approx(0.21487, abs=1e-4) and r["max"] == pytest.approx(0.40874, abs=1e-4)
    cands = an.headline_candidates(jung)
    assert len(cands) == 4 and all(0.2 < c["min"] < 0.22 and 0.39 < c["max"] < 0.41 for c in cands)


def test_rank_correlations_fall_with_epsilon(jung: pd.DataFrame) -> None:
    cvr = an.clean_vs_robust(jung).set_index("column")["tau"]
    assert cvr["fgsm@0.1"] > 0.8 and cvr["pgd@0.1"] > 0.8
    assert cvr["pgd@1"] < 0.3 and cvr["aa_apgd-ce@1"] < 0
    am = an.attack_matrix(jung, 1.0)
    assert am.loc["pgd@1", "aa_apgd-ce@1"] > 0.5


def test_run_analyses_writes_figures(small: pd.DataFrame, tmp_path: Path) -> None:
    from robustbench201.search.report import analyze

    res = analyze(small, tmp_path, "all", "toy").results
    names = sorted(Path(p).name for p in res["figures"])
    assert names == sorted(
        f"toy_{n}.png"
        for n in (
            "kendall_attacks_eps1",
            "robust_vs_eps",
            "kendall_corruptions",
            "pareto_fgsm1_params",
            "best_cell_fgsm1",
        )
    )
    assert all(Path(p).stat().st_size > 1000 for p in res["figures"])
    assert "equal_params" in res and "surrogates" in res and res["skipped"] == {}


def test_cli_analyze(small: pd.DataFrame, tmp_path: Path) -> None:
    src = tmp_path / "wide.parquet"
    small.reset_index().to_parquet(src)
    res = CliRunner().invoke(main, ["analyze", "params", "--source", str(src)])
    assert res.exit_code == 0, res.output
    assert "equal parameter count" in res.output
    res = CliRunner().invoke(main, ["analyze", "all", "--source", str(src), "--format", "json", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.output)["figures"]) == 5
    res = CliRunner().invoke(main, ["analyze", "kendall", "--source", str(src)])
    assert res.exit_code == 0 and "Kendall tau between attacks" in res.output
    bad = CliRunner().invoke(main, ["analyze", "everything", "--source", str(src)])
    assert bad.exit_code != 0 and "everything" in bad.output
    missing = CliRunner().invoke(main, ["analyze", "--source", str(tmp_path / "none.parquet")])
    assert missing.exit_code != 0 and "does not exist" in missing.output
