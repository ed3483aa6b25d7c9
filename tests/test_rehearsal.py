"""A rehearsal of the real workload: every preset on every kind of cell, through the CLI a user runs.

For each preset (``smoke``, ``jung2023``, ``full``) and cells of every kind (a dead cell, a skip/pool-only cell, a
1x1-only cell, the all-3x3 cell 1462 and a mixed cell): ``rb201 evaluate`` (weights trained here for one epoch with
the NB201 recipe, generated corruptions) -> ``rb201 merge`` -> ``rb201 validate`` -> query -> ``rb201 table`` ->
``rb201 analyze``, then the values are checked for sense: robust <= clean, cumulative values non-increasing in
epsilon and never above the per-epsilon value, certified <= every attack's robust accuracy at that epsilon,
surrogates of a dead cell exactly 0, every expected column present for every cell.

The code paths are the presets' own; only the budgets are scaled down through the spec (written to a spec file, as a
user would): every epsilon grid, corruption and severity, surrogate and bound of the preset is kept, with PGD 3 steps
(same step rule 2.5 eps / steps), APGD 5 iterations, Square 20 queries, surrogates on 16 training images with 3 power
iterations, bounds on all 16 test images, on a small network (C=8, N=1) and 16 MNIST test digits.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from robustbench201 import Dataset
from robustbench201.cli import main
from robustbench201.spec import AttackSpec, EvalSpec, preset

CELLS = {
    "dead": 10,  # no path from input to output
    "skip-pool": 2812,  # avg_pool and skip only
    "conv1x1": 4317,  # all 1x1 convolutions
    "conv3x3": 1462,  # all 3x3 convolutions
    "mixed": 0,
}
N_TEST = 16
SCALE = {"pgd": {"steps": 3}, "aa_apgd-ce": {"n_iter": 5}, "aa_apgd-dlr": {"n_iter": 5}, "aa_square": {"n_queries": 20}}
COMMON = ["--dataset", "mnist5k", "--channels", "8", "--cells", "1", "--n-test", str(N_TEST), "--threads", "1"]


def scaled(name: str) -> EvalSpec:
    spec = preset(name)
    attacks = tuple(
        AttackSpec(a.name, a.epsilons, tuple({**dict(a.params), **SCALE.get(a.name, {})}.items())) for a in spec.attacks
    )
    return spec.replace(attacks=attacks, surrogate_n=16, hessian_iters=3, certified_n=N_TEST, batch_size=64)


def run(*args: str) -> str:
    res = CliRunner().invoke(main, list(args))
    assert res.exit_code == 0, f"rb201 {' '.join(args)} exited {res.exit_code}:\n{res.output}"
    assert "Traceback" not in res.output
    return res.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """Networks of every cell trained once (1 epoch, NB201 recipe) and shared by the presets' runs."""
    return tmp_path_factory.mktemp("trained")


@pytest.fixture(scope="module", params=["smoke", "jung2023", "full"])
def built(request, trained, tmp_path_factory) -> tuple[str, EvalSpec, Path, str]:
    name = request.param
    root = tmp_path_factory.mktemp(f"rehearsal-{name}")
    spec = scaled(name)
    spec_file = root / "spec.json"
    spec_file.write_text(spec.to_json())
    archs = ",".join(str(i) for i in CELLS.values())
    out = run("evaluate", "--arch", archs, *COMMON, "--weights", "train", "--epochs", "1", "--train-dir",
              str(trained), "--spec", str(spec_file), "--corruptions", "generated", "--out", str(root / "shards"),
              "--no-progress")  # fmt: skip
    assert f"{len(CELLS)} evaluated, 0 already done, 0 failed" in out
    merged = run("merge", str(root / "shards"), "--out", str(root / "dataset"))
    assert "failed" not in merged
    return name, spec, root / "dataset", merged


def test_validate_accepts_the_dataset(built):
    _, _, ds, _ = built
    out = run("validate", str(ds))
    assert "OK" in out.splitlines()[0]


def test_every_cell_has_every_column_of_the_preset(built):
    name, spec, ds, _ = built
    d = Dataset(ds)
    cols = set(d.columns("mnist5k"))
    per = spec.semantics == "per-epsilon"
    expected = {"clean"}
    for a in spec.attacks:
        for e in a.epsilons:
            expected.add(f"{a.name}@{e:g}/cumulative")
            if per:
                expected.add(f"{a.name}@{e:g}")
    expected |= {f"{c}:{s}" for c in spec.corruptions for s in spec.severities}
    expected |= set(spec.surrogates)
    expected |= {f"{m}@{e:g}" for m in spec.certified for e in spec.certified_epsilons}
    assert expected <= cols, sorted(expected - cols)
    t = d.table("mnist5k", columns=sorted(expected))
    for cell in CELLS.values():
        row = t.loc[cell]
        assert row.notna().all(), (name, cell, row[row.isna()].index.tolist())


def test_values_make_sense(built):
    _, spec, ds, _ = built
    d = Dataset(ds)
    for kind, cell in CELLS.items():
        q = d.query(cell, "mnist5k")
        clean = q.clean_accuracy
        assert 0 <= clean <= 1
        for a in spec.attacks:
            cum = [q.robust(a.name, e, semantics="cumulative") for e in a.epsilons]
            assert all(v <= clean for v in cum), (kind, a.name, cum, clean)
            assert all(x >= y for x, y in zip(cum, cum[1:])), (kind, a.name, cum)  # non-increasing in epsilon
            if spec.semantics == "per-epsilon":
                per = [q.robust(a.name, e, semantics="per-epsilon") for e in a.epsilons]
                assert all(p <= clean for p in per), (kind, a.name, per)
                assert all(c <= p for c, p in zip(cum, per)), (kind, a.name, cum, per)
        for m in spec.certified:
            for e in spec.certified_epsilons:
                cert = q.value(m, eps=e)
                robust = [q.robust(a.name, e, semantics="cumulative") for a in spec.attacks if e in a.epsilons]
                assert all(cert <= r for r in robust), (kind, m, e, cert, robust)
        for s in spec.surrogates:
            v = q.value(s)
            assert math.isfinite(v) and v >= 0
            if kind == "dead":
                assert v == 0.0, (s, v)  # a constant network: zero input gradient and zero curvature


def test_table_and_analyze_run_on_the_dataset(built, tmp_path):
    name, spec, ds, _ = built
    per = spec.semantics == "per-epsilon"
    col = "fgsm@1/per-epsilon" if per else "fgsm@1"  # a bare name reads the only kind a cumulative build holds
    out = run("table", "--source", str(ds), "-d", "mnist5k", "-c", f"clean,{col}", "--sort", col, "--desc",
              "--limit", "0", "--where", "clean>=0", "--format", "csv")  # fmt: skip
    assert len(out.strip().splitlines()) == 1 + len(CELLS)
    out = run("analyze", "all", "--source", str(ds), "--dataset", "mnist5k", "--out", str(tmp_path / "fig"),
              "--format", "json")  # fmt: skip
    res = json.loads(out)
    assert res["rows"] >= len(CELLS)
    out = run("query", str(CELLS["conv3x3"]), "--source", str(ds), "-d", "mnist5k")
    assert "clean" in out


def test_rerunning_the_same_command_recomputes_nothing(built, trained):
    name, spec, ds, _ = built
    root = ds.parent
    archs = ",".join(str(i) for i in CELLS.values())
    out = run("evaluate", "--arch", archs, *COMMON, "--weights", "train", "--epochs", "1", "--train-dir",
              str(trained), "--spec", str(root / "spec.json"), "--corruptions", "generated", "--out",
              str(root / "shards"), "--no-progress")  # fmt: skip
    assert f"0 evaluated, {len(CELLS)} already done, 0 failed" in out
