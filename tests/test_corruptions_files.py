"""CIFAR-10-C / CIFAR-100-C reader on small files in the real layout, and the two corruption sources."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robustbench201.corruptions import (
    CORRUPTIONS,
    GENERATED_ID,
    CifarCFiles,
    GeneratedCorruptions,
    corrupt,
    read_cifar_c,
)
from robustbench201.data.base import ImageSet
from robustbench201.errors import DataIntegrityError, InvalidChoiceError, Rb201Error

N = 20


@pytest.fixture()
def clean() -> ImageSet:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, N).astype(np.int64)
    return ImageSet("cifar10", "test", images, labels)


def _write_cifar_c(root: Path, clean: ImageSet, names: tuple[str, ...] = ("fog", "contrast")) -> dict[str, np.ndarray]:
    """Write <name>.npy of shape (5 N, 32, 32, 3) (severities 1..5 stacked) and labels.npy, as the published files."""
    root.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in names:
        blocks = [corrupt(clean.images, name, s, seed=9).transpose(0, 2, 3, 1) for s in range(1, 6)]
        arr = np.concatenate(blocks)
        assert arr.shape == (5 * N, 32, 32, 3) and arr.dtype == np.uint8
        np.save(root / f"{name}.npy", arr)
        written[name] = arr
    np.save(root / "labels.npy", np.tile(clean.labels, 5))
    return written


def test_reader_returns_the_severity_block_in_nchw_with_labels(tmp_path: Path, clean: ImageSet) -> None:
    arr = _write_cifar_c(tmp_path, clean)["fog"]
    for s in range(1, 6):
        got = read_cifar_c(tmp_path, "fog", s, n_test=N)
        assert got.images.shape == (N, 3, 32, 32) and got.images.flags.c_contiguous
        np.testing.assert_array_equal(got.images, arr[(s - 1) * N : s * N].transpose(0, 3, 1, 2))
        np.testing.assert_array_equal(got.labels, clean.labels)
        assert got.name == "cifar10" and got.split == "test" and got.indices is None


def test_reader_subset_matches_the_clean_test_subset(tmp_path: Path, clean: ImageSet) -> None:
    _write_cifar_c(tmp_path, clean)
    sub = clean.subset(7, seed=3)
    got = read_cifar_c(tmp_path, "contrast", 4, sub.indices, n_test=N)
    np.testing.assert_array_equal(got.indices, sub.indices)
    np.testing.assert_array_equal(got.labels, sub.labels)
    np.testing.assert_array_equal(got.images, corrupt(sub.images, "contrast", 4))


def test_cifar_c_files_source(tmp_path: Path, clean: ImageSet) -> None:
    _write_cifar_c(tmp_path, clean, names=("contrast", "gaussian_noise"))
    src = CifarCFiles(tmp_path, "CIFAR-10", n_test=N)
    assert src.name == "cifar10-c-files"
    assert src.corruptions() == ("gaussian_noise", "contrast")  # protocol order, only those present
    got = src.get("contrast", 2)
    np.testing.assert_array_equal(got.images, corrupt(clean.images, "contrast", 2))
    np.testing.assert_array_equal(got.labels, clean.labels)
    sub = CifarCFiles(tmp_path, "cifar10", indices=np.array([3, 1]), n_test=N).get("gaussian_noise", 5)
    np.testing.assert_array_equal(sub.labels, clean.labels[[3, 1]])
    labels100 = np.tile(np.arange(N) * 4, 5)
    np.save(tmp_path / "labels.npy", labels100)
    assert CifarCFiles(tmp_path, "cifar100", n_test=N).name == "cifar100-c-files"


def test_missing_files_name_the_file_and_the_layout(tmp_path: Path, clean: ImageSet) -> None:
    with pytest.raises(Rb201Error, match="does not exist"):
        CifarCFiles(tmp_path / "nope", "cifar10", n_test=N)
    _write_cifar_c(tmp_path, clean, names=("fog",))
    with pytest.raises(Rb201Error, match=r"missing CIFAR-C file '.*snow\.npy'.*expected layout.*\(5 n, 32, 32, 3\)"):
        read_cifar_c(tmp_path, "snow", 1, n_test=N)
    (tmp_path / "labels.npy").unlink()
    with pytest.raises(Rb201Error, match=r"labels\.npy"):
        CifarCFiles(tmp_path, "cifar10", n_test=N)


def test_truncated_and_mismatched_files_are_refused(tmp_path: Path, clean: ImageSet) -> None:
    _write_cifar_c(tmp_path, clean, names=("fog",))
    path = tmp_path / "fog.npy"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataIntegrityError, match="truncated"):
        read_cifar_c(tmp_path, "fog", 1, n_test=N)
    np.save(path, np.zeros((5 * N - 5, 32, 32, 3), np.uint8))
    with pytest.raises(DataIntegrityError, match=r"shape \(95, 32, 32, 3\), expected uint8 \(100, 32, 32, 3\)"):
        read_cifar_c(tmp_path, "fog", 1, n_test=N)
    np.save(path, np.zeros((5 * N, 32, 32, 3), np.float32))
    with pytest.raises(DataIntegrityError, match="float32"):
        read_cifar_c(tmp_path, "fog", 1, n_test=N)
    # the real default expects 10000 test images
    with pytest.raises(DataIntegrityError, match=r"expected \(50000,\)"):
        read_cifar_c(tmp_path, "fog", 1)
    bad = np.tile(clean.labels, 5)
    bad[3 * N] = (bad[3 * N] + 1) % 10
    np.save(tmp_path / "labels.npy", bad)
    with pytest.raises(DataIntegrityError, match="severity 4 differ"):
        CifarCFiles(tmp_path, "cifar10", n_test=N)
    np.save(tmp_path / "labels.npy", np.tile(clean.labels + 10, 5))
    with pytest.raises(DataIntegrityError, match=r"outside 0\.\.9"):
        CifarCFiles(tmp_path, "cifar10", n_test=N)


def test_bad_arguments(tmp_path: Path, clean: ImageSet) -> None:
    _write_cifar_c(tmp_path, clean, names=("fog",))
    with pytest.raises(InvalidChoiceError, match="'ImageNet16-120'.*'cifar10', 'cifar100'"):
        CifarCFiles(tmp_path, "ImageNet16-120")
    with pytest.raises(InvalidChoiceError, match="corruption 'speckle_noise'"):
        read_cifar_c(tmp_path, "speckle_noise", 1, n_test=N)
    with pytest.raises(Rb201Error, match="severity"):
        read_cifar_c(tmp_path, "fog", 6, n_test=N)
    with pytest.raises(Rb201Error, match=r"indices must lie in 0\.\.19"):
        read_cifar_c(tmp_path, "fog", 1, np.array([0, 20]), n_test=N)


def test_generated_source_is_aligned_labelled_and_subset_consistent(clean: ImageSet) -> None:
    src = GeneratedCorruptions(clean, seed=4)
    assert src.name == f"{GENERATED_ID}-seed4" and src.corruptions() == CORRUPTIONS
    full = src.get("glass_blur", 3)
    np.testing.assert_array_equal(full.labels, clean.labels)
    np.testing.assert_array_equal(full.images, corrupt(clean.images, "glass_blur", 3, seed=4))
    sub = clean.subset(6, seed=1)
    part = GeneratedCorruptions(sub, seed=4).get("glass_blur", 3)
    np.testing.assert_array_equal(part.images, full.images[sub.indices])
    np.testing.assert_array_equal(part.indices, sub.indices)
    with pytest.raises(Rb201Error, match="seed"):
        GeneratedCorruptions(clean, seed=-2)
