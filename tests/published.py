"""The published reference data the tests compare against.

Always present: the small fixtures in ``tests/fixtures/`` (see each folder's SOURCE.md; ``make_fixtures.py`` writes
them from ``../shared/data``). When ``../shared/data`` is present, tests also read the full published files through
the ``shared_data`` fixture of ``conftest.py``.
"""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from robustbench201.space import NUM_ARCHS
from robustbench201.store.jung import parse_key
from robustbench201.store.schema import wide_name

FIXTURES = Path(__file__).resolve().parent / "fixtures"
#: the published accuracies of SAMPLE_SIZE representatives, in the original on-disk layout of Jung et al.
JUNG_SAMPLE = FIXTURES / "nb201-robustness" / "sample"


@cache
def make_fixtures() -> ModuleType:
    """``tests/fixtures/make_fixtures.py`` as a module: its hashing helpers are the ones the fixtures were made with."""
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def f64_sha256(values: Any) -> str:
    return make_fixtures().f64_sha256(values)


def fixture_json(rel: str) -> Any:
    return json.loads((FIXTURES / rel).read_text())


def fixture_arrays(rel: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / rel) as f:
        return {k: f[k] for k in f.files}


def jung_grid(original: str, epsilons: dict[str, list[float]]) -> list[str]:
    """Wide column names of one published file's value lists (clean: 1; attacks: one per epsilon; corruptions: 5)."""
    family, key, _, _ = parse_key(original)
    if family == "clean":
        return ["clean"]
    if family == "adversarial":
        return [wide_name(key, float(e)) for e in epsilons[original]]
    return [wide_name(key, severity=s) for s in range(1, 6)]


def jung_wide(root: Path, dataset: str = "cifar10"):  # type: ignore[no-untyped-def]
    """The published accuracies of Jung et al. as a wide table (rows: the 6466 representatives) plus params, read
    from the files in their original layout at ``root``."""
    import pandas as pd

    from robustbench201.models.counting import param_count

    meta = json.loads((root / "meta.json").read_text())
    cols: dict[str, pd.Series] = {}
    for f in sorted((root / dataset).glob("*_accuracy.json")):
        key = f.name[: -len("_accuracy.json")]
        d = json.loads(f.read_text())[dataset][key]["accuracy"]
        ids = np.array([int(k) for k in d])
        arr = np.array(list(d.values()), dtype=float)
        if key == "clean":
            cols["clean"] = pd.Series(arr, index=ids)
        elif "@" in key:
            for j, e in enumerate(meta["epsilons"][key]):
                cols[wide_name(key.split("@")[0], float(e))] = pd.Series(arr[:, j], index=ids)
        else:
            for s in range(1, 6):
                cols[wide_name(key, severity=s)] = pd.Series(arr[:, s - 1], index=ids)
    df = pd.DataFrame(cols).sort_index()
    df["params"] = [param_count(int(i)) / 1e6 for i in df.index]
    df.index.name = "arch_index"
    return df


def embedded_accuracy_mismatches(dataset: str) -> list[str]:
    """Published accuracy files of ``dataset`` whose values differ from the embedded default table: each file's
    (6466 representatives x grid) matrix is read from the embedded table and hashed as ``make_fixtures.py`` hashed
    the published one (``fixtures/nb201-robustness/summary.json``). Empty when all agree, value for value."""
    from robustbench201 import default_dataset

    summary = fixture_json("nb201-robustness/summary.json")
    idx = default_dataset().index(dataset)
    reps = np.flatnonzero(np.asarray(idx.reps) == np.arange(NUM_ARCHS))
    bad = []
    if make_fixtures().sha256(reps.astype("<i4").tobytes()) != summary["representatives_sha256"]:
        bad.append("representatives")
    for original, want in summary["accuracy_sha256"][dataset].items():
        cols = [idx.column(name) for name in jung_grid(original, summary["epsilons"])]
        matrix = idx.raw[np.ix_(reps, cols)]
        if matrix.shape[1] != want["columns"] or f64_sha256(matrix) != want["sha256"]:
            bad.append(f"{dataset}/{original}")
    return bad


def embedded_jung_wide(dataset: str = "cifar10"):  # type: ignore[no-untyped-def]
    """What :func:`jung_wide` reads from the full published files, taken from the embedded default table instead,
    after checking every value against the published files' hashes (so it runs without ``../shared/data``)."""
    import pandas as pd

    from robustbench201 import default_dataset
    from robustbench201.models.counting import param_count

    bad = embedded_accuracy_mismatches(dataset)
    assert not bad, f"embedded table differs from the published files: {bad}"
    summary = fixture_json("nb201-robustness/summary.json")
    idx = default_dataset().index(dataset)
    reps = np.flatnonzero(np.asarray(idx.reps) == np.arange(NUM_ARCHS))
    names = [n for original in summary["accuracy_sha256"][dataset] for n in jung_grid(original, summary["epsilons"])]
    df = pd.DataFrame(idx.raw[np.ix_(reps, [idx.column(n) for n in names])], index=reps, columns=names)
    df["params"] = [param_count(int(i)) / 1e6 for i in df.index]
    df.index.name = "arch_index"
    return df


def assert_robustness_equals_embedded(dataset_dir: Path, ids: Any) -> None:
    """Every robustness column of an imported Jung et al. dataset (108 per CIFAR dataset, 33 for ImageNet16-120)
    equals the embedded table's at the NB201 indices ``ids``; the directory is verified on open."""
    import robustbench201 as rb201

    ours, embedded = rb201.Dataset(dataset_dir, verify=True), rb201.default_dataset()
    for ds in ("cifar10", "cifar100", "ImageNet16-120"):
        names = ours.columns(ds)
        assert len(names) == (33 if ds == "ImageNet16-120" else 108)
        for name in names:
            np.testing.assert_array_equal(
                ours.query_many(ids, name, ds), embedded.query_many(ids, name, ds), err_msg=f"{ds} {name}"
            )
