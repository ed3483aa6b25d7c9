"""`rb201 validate` on the shipped table and on a published dataset folder."""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path

from robustbench201.published import publish
from robustbench201.store.validate import validate_dataset


def test_the_embedded_table_validates_and_robustness_columns_are_complete():
    root = Path(str(files("robustbench201._data")))
    report = validate_dataset(root)
    assert report.ok, report.problems
    cifar10 = next(d for d in report.coverage.datasets if d.dataset == "cifar10")
    assert not cifar10.representatives_missing
    incomplete = {label for label, _, _ in cifar10.incomplete}
    # published robustness values exist once per isomorphism class: complete over the 6466 representatives
    assert not any("adversarial" in label or "corruption" in label or "/clean/" in label for label in incomplete)
    # zero-cost proxies really cover only part of the space
    assert any("zero-cost" in label for label in incomplete)


def test_a_published_folder_with_its_registry_still_validates(tmp_path):
    src = Path(str(files("robustbench201._data")))
    dst = tmp_path / "ds"
    dst.mkdir()
    shutil.copy(src / "manifest.json", dst)
    for name in ("results-cost.parquet", "results-nats-bench.parquet"):
        shutil.copy(src / name, dst)
    report = validate_dataset(dst, coverage=False)
    assert not report.ok and any("missing" in p or "does not exist" in p for p in report.problems)
    for p in src.glob("*.parquet"):
        shutil.copy(p, dst)
    publish(dst, "http://127.0.0.1:1/ds/")
    assert (dst / "registry.json").is_file()
    assert validate_dataset(dst, coverage=False).ok
    (dst / "stray.parquet").write_bytes(b"x")
    assert any("stray.parquet" in p for p in validate_dataset(dst, coverage=False).problems)
