"""Readers for CIFAR-10/100 and ImageNet16-120 pickles, on tiny files written in the real formats."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from robustbench201.data.base import ImageSet
from robustbench201.data.readers import DATA_ENV, MissingDataError, default_data_root, load_dataset
from robustbench201.errors import DataIntegrityError, InvalidChoiceError


def _batch(rng: np.random.Generator, n: int, side: int, labels: np.ndarray, label_key: bytes | str) -> dict:
    data = rng.integers(0, 256, size=(n, 3 * side * side), dtype=np.uint8)
    key = (lambda s: s.encode()) if isinstance(label_key, bytes) else (lambda s: s)
    return {key("batch_label"): key("batch"), key("data"): data, label_key: [int(v) for v in labels]}


def _dump(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=2)


@pytest.fixture
def cifar10_root(tmp_path: Path) -> tuple[Path, list[dict]]:
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-py"
    batches = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        b = _batch(rng, 10, 32, rng.integers(0, 10, 10), b"labels")
        _dump(folder / name, b)
        batches.append(b)
    return tmp_path, batches


def test_cifar10_train_concatenates_batches_in_order_as_chw(cifar10_root) -> None:
    root, batches = cifar10_root
    train = load_dataset("cifar10", root, split="train")
    assert isinstance(train, ImageSet) and train.name == "cifar10" and train.split == "train"
    assert train.images.shape == (50, 3, 32, 32) and train.images.dtype == np.uint8
    assert train.labels.dtype == np.int64 and train.indices is None
    want = np.concatenate([b[b"data"] for b in batches[:5]]).reshape(50, 3, 32, 32)
    np.testing.assert_array_equal(train.images, want)
    # CHW: the first 1024 bytes of a row are the red plane
    np.testing.assert_array_equal(train.images[0, 0].ravel(), batches[0][b"data"][0, :1024])
    np.testing.assert_array_equal(train.labels, np.concatenate([b[b"labels"] for b in batches[:5]]))
    test = load_dataset("CIFAR-10", root)  # default split is test, aliases accepted
    np.testing.assert_array_equal(test.labels, batches[5][b"labels"])


def test_subset_is_seeded_deterministic_and_recorded(cifar10_root) -> None:
    root, _ = cifar10_root
    full = load_dataset("cifar10", root, "train")
    a = load_dataset("cifar10", root, "train", n=7, seed=3)
    b = load_dataset("cifar10", root, "train", n=7, seed=3)
    c = load_dataset("cifar10", root, "train", n=7, seed=4)
    assert len(a) == 7 and a.indices is not None
    np.testing.assert_array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices, c.indices)
    np.testing.assert_array_equal(a.images, full.images[a.indices])
    np.testing.assert_array_equal(a.labels, full.labels[a.indices])


def test_root_from_environment_variable(cifar10_root, monkeypatch) -> None:
    root, _ = cifar10_root
    monkeypatch.setenv(DATA_ENV, str(root))
    assert default_data_root() == root
    assert len(load_dataset("cifar10", split="test")) == 10


def test_cifar100_uses_fine_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    for split in ("train", "test"):
        b = _batch(rng, 10, 32, rng.integers(0, 100, 10), b"fine_labels")
        b[b"coarse_labels"] = [0] * 10
        _dump(tmp_path / "cifar-100-python" / split, b)
    test = load_dataset("cifar100", tmp_path, "test")
    assert test.images.shape == (10, 3, 32, 32)
    np.testing.assert_array_equal(test.labels, b[b"fine_labels"])


def test_imagenet16_keeps_labels_1_to_120_and_shifts_them(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    kept = 0
    for i in range(1, 11):
        labels = np.array([1, 120, 121, 500, 1000, 60])
        _dump(tmp_path / "ImageNet16" / f"train_data_batch_{i}", _batch(rng, 6, 16, labels, "labels"))
        kept += 3
    val_labels = np.array([1, 2, 999, 120])
    val = _batch(rng, 4, 16, val_labels, "labels")
    val["mean"] = np.zeros(768)
    _dump(tmp_path / "ImageNet16" / "val_data", val)
    train = load_dataset("imagenet16-120", tmp_path, "train")
    assert train.images.shape == (kept, 3, 16, 16)
    assert set(train.labels.tolist()) == {0, 119, 59}
    test = load_dataset("ImageNet16-120", tmp_path, "test")
    np.testing.assert_array_equal(test.labels, [0, 1, 119])
    np.testing.assert_array_equal(test.images, val["data"][[0, 1, 3]].reshape(3, 3, 16, 16))


def test_missing_files_error_names_files_folder_and_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError) as exc:
        load_dataset("cifar10", tmp_path, "train")
    msg = str(exc.value)
    assert "data_batch_1" in msg and "data_batch_5" in msg and str(tmp_path / "cifar-10-batches-py") in msg
    assert "rb201 fetch-data cifar10" in msg
    with pytest.raises(MissingDataError, match="val_data"):
        load_dataset("ImageNet16-120", tmp_path, "test")


def test_corrupt_and_misshaped_pickles_are_reported(cifar10_root) -> None:
    root, _ = cifar10_root
    folder = root / "cifar-10-batches-py"
    (folder / "test_batch").write_bytes(b"\x80\x02}q\x00(X")  # truncated
    with pytest.raises(DataIntegrityError, match="test_batch"):
        load_dataset("cifar10", root, "test")
    _dump(folder / "test_batch", {b"data": np.zeros((10, 100), np.uint8), b"labels": [0] * 10})
    with pytest.raises(DataIntegrityError, match="3072"):
        load_dataset("cifar10", root, "test")
    _dump(folder / "test_batch", {b"data": np.zeros((10, 3072), np.uint8), b"labels": [0] * 9})
    with pytest.raises(DataIntegrityError, match="labels"):
        load_dataset("cifar10", root, "test")
    _dump(folder / "test_batch", {b"data": np.zeros((10, 3072), np.uint8)})
    with pytest.raises(DataIntegrityError, match="keys present"):
        load_dataset("cifar10", root, "test")


def test_pickles_cannot_run_code(cifar10_root) -> None:
    root, _ = cifar10_root

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (root / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(DataIntegrityError, match="refusing"):
        load_dataset("cifar10", root, "test")


def test_bad_names_list_the_allowed_values(tmp_path: Path) -> None:
    with pytest.raises(InvalidChoiceError, match="cifar10"):
        load_dataset("svhn", tmp_path)
    with pytest.raises(InvalidChoiceError, match="'train'"):
        load_dataset("cifar10", tmp_path, split="val")
