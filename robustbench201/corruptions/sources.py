"""Corrupted test sets: the published CIFAR-10-C / CIFAR-100-C files, and our seeded generator.

Both implement ``robustbench201.data.base.CorruptionSource``: ``get(corruption, severity)`` returns an ``ImageSet``
image-aligned with the clean test set (same order, labels and ``indices``).

CIFAR-10-C / CIFAR-100-C layout (PROTOCOL.md section 5; Hendrycks & Dietterich, ICLR 2019), one directory with
``<corruption>.npy``: uint8 (5 n, 32, 32, 3), the n = 10000 test images at severities 1..5 stacked in order, and
``labels.npy``: the n test labels repeated five times.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.base import ImageSet
from ..data.info import canonical_dataset, dataset_info
from ..errors import DataIntegrityError, Rb201Error, check_choice
from . import CORRUPTIONS, GENERATED_ID, check_corruption, check_severity, corrupt

CIFAR_C_DATASETS: tuple[str, ...] = ("cifar10", "cifar100")
_LAYOUT = (
    "expected layout: <root>/<corruption>.npy, uint8 of shape (5 n, 32, 32, 3) = the n test images at severities "
    "1..5 stacked in order, and <root>/labels.npy with the n test labels repeated 5 times (n = {n})"
)


def _cifar_dataset(dataset_name: str) -> str:
    ds = canonical_dataset(dataset_name)
    return check_choice("dataset with CIFAR-C files", ds, CIFAR_C_DATASETS)


def _expected_n(ds: str, n_test: int | None) -> int:
    n = dataset_info(ds).n_test if n_test is None else n_test
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise Rb201Error(f"n_test must be a positive integer, got {n_test!r}")
    return int(n)


def _load(path: Path, n: int) -> np.ndarray:
    if not path.is_file():
        raise Rb201Error(f"missing CIFAR-C file {str(path)!r}; " + _LAYOUT.format(n=n))
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataIntegrityError(
            f"unreadable or truncated .npy file {str(path)!r} ({e}); " + _LAYOUT.format(n=n)
        ) from e


def _check_indices(indices: np.ndarray | None, n: int) -> np.ndarray | None:
    if indices is None:
        return None
    idx = np.asarray(indices)
    if idx.ndim != 1 or len(idx) == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise Rb201Error(f"indices must be a non-empty 1-D integer array, got shape {idx.shape} {idx.dtype}")
    if idx.min() < 0 or idx.max() >= n:
        raise Rb201Error(f"indices must lie in 0..{n - 1} (positions in the test set), got {idx.min()}..{idx.max()}")
    return idx.astype(np.int64)


def read_labels(root: str | Path, dataset_name: str = "cifar10", *, n_test: int | None = None) -> np.ndarray:
    """The n test labels from ``<root>/labels.npy`` (int64), after checking it holds them repeated five times."""
    ds = _cifar_dataset(dataset_name)
    n = _expected_n(ds, n_test)
    path = Path(root) / "labels.npy"
    raw = _load(path, n)
    if raw.shape != (5 * n,) or not np.issubdtype(raw.dtype, np.integer):
        raise DataIntegrityError(
            f"{str(path)!r} has {raw.dtype} shape {raw.shape}, expected ({5 * n},) integers; " + _LAYOUT.format(n=n)
        )
    labels = np.asarray(raw, dtype=np.int64)
    blocks = labels.reshape(5, n)
    if not (blocks == blocks[0]).all():
        bad = int(np.nonzero((blocks != blocks[0]).any(axis=1))[0][0]) + 1
        raise DataIntegrityError(
            f"{str(path)!r}: labels of severity {bad} differ from severity 1; " + _LAYOUT.format(n=n)
        )
    k = dataset_info(ds).num_classes
    if blocks[0].min() < 0 or blocks[0].max() >= k:
        raise DataIntegrityError(f"{str(path)!r}: labels outside 0..{k - 1} for {ds}")
    return blocks[0].copy()


def read_cifar_c(
    root: str | Path,
    corruption: str,
    severity: int,
    indices: np.ndarray | None = None,
    *,
    dataset_name: str = "cifar10",
    n_test: int | None = None,
    labels: np.ndarray | None = None,
) -> ImageSet:
    """One corruption at one severity from CIFAR-10-C / CIFAR-100-C files, as an N x 3 x 32 x 32 ``ImageSet``.

    The .npy is memory-mapped, so only the rows of that severity (and of ``indices``, positions in the clean test
    set as in its ``ImageSet.indices``) are read. ``n_test`` is the number of clean test images (default: the
    dataset's, 10000); ``labels`` (the n test labels) skips re-reading labels.npy."""
    check_corruption(corruption)
    severity = check_severity(severity)
    ds = _cifar_dataset(dataset_name)
    n = _expected_n(ds, n_test)
    idx = _check_indices(indices, n)
    root = Path(root)
    if labels is None:
        labels = read_labels(root, ds, n_test=n)
    path = root / f"{corruption}.npy"
    arr = _load(path, n)
    info = dataset_info(ds)
    want = (5 * n, info.resolution, info.resolution, info.channels)
    if arr.shape != want or arr.dtype != np.uint8:
        raise DataIntegrityError(
            f"{str(path)!r} has {arr.dtype} shape {arr.shape}, expected uint8 {want}; " + _LAYOUT.format(n=n)
        )
    base = (severity - 1) * n
    rows = arr[base : base + n] if idx is None else arr[base + idx]
    images = np.ascontiguousarray(np.asarray(rows).transpose(0, 3, 1, 2))
    lab = labels if idx is None else labels[idx]
    return ImageSet(ds, "test", images, np.asarray(lab, dtype=np.int64).copy(), idx)


class CifarCFiles:
    """The published CIFAR-10-C / CIFAR-100-C files in ``root`` as a ``CorruptionSource``.

    ``indices`` selects the same subset as the clean test set's ``ImageSet.indices``; labels are checked once at
    construction, images are read (memory-mapped) on each ``get``."""

    #: ``source`` of the result rows evaluated on these files.
    row_source = "rb201"

    def __init__(
        self,
        root: str | Path,
        dataset_name: str,
        indices: np.ndarray | None = None,
        *,
        n_test: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.dataset = _cifar_dataset(dataset_name)
        self.n_test = _expected_n(self.dataset, n_test)
        self.indices = _check_indices(indices, self.n_test)
        self.name = f"{self.dataset}-c-files"
        if not self.root.is_dir():
            raise Rb201Error(f"CIFAR-C directory {str(self.root)!r} does not exist; " + _LAYOUT.format(n=self.n_test))
        self._labels = read_labels(self.root, self.dataset, n_test=self.n_test)
        self._present = tuple(c for c in CORRUPTIONS if (self.root / f"{c}.npy").is_file())
        if not self._present:
            raise Rb201Error(
                f"no corruption files in {str(self.root)!r} (looked for {CORRUPTIONS[0]}.npy ... "
                f"{CORRUPTIONS[-1]}.npy); " + _LAYOUT.format(n=self.n_test)
            )

    def corruptions(self) -> tuple[str, ...]:
        """The corruptions whose files are present, in protocol order."""
        return self._present

    def get(self, corruption: str, severity: int) -> ImageSet:
        """``corruption`` at ``severity``, image-aligned with the (subset of the) clean test set."""
        return read_cifar_c(
            self.root,
            corruption,
            severity,
            self.indices,
            dataset_name=self.dataset,
            n_test=self.n_test,
            labels=self._labels,
        )

    def __repr__(self) -> str:
        return f"CifarCFiles({str(self.root)!r}, {self.dataset!r}, n={self.n_test}, subset={self.indices is not None})"


class GeneratedCorruptions:
    """The 15 corruptions generated by ``corrupt`` from a clean test set, as a ``CorruptionSource``.

    Named ``"generated-v{GENERATOR_VERSION}-seed{seed}"`` so that outputs say the corruptions were generated (and by
    which version of the generator), not read from the published files; result rows evaluated on them carry
    ``row_source`` = ``"rb201-generated-v{GENERATOR_VERSION}"``. Image i is keyed by its position in the full split
    (``test_set.indices`` when the test set is a subset), so a subset gets exactly the corruptions its images get in
    the full set. Nothing is cached."""

    def __init__(self, test_set: ImageSet, seed: int = 0, device: str = "cpu") -> None:
        if not isinstance(test_set, ImageSet):
            raise Rb201Error(f"test_set must be an ImageSet, got {type(test_set).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise Rb201Error(f"seed must be a non-negative integer, got {seed!r}")
        self.test_set = test_set
        self.seed = int(seed)
        self.device = device
        self.name = f"{GENERATED_ID}-seed{self.seed}"
        self.row_source = f"rb201-{GENERATED_ID}"

    def corruptions(self) -> tuple[str, ...]:
        """All 15 corruptions, in protocol order."""
        return CORRUPTIONS

    def get(self, corruption: str, severity: int) -> ImageSet:
        """``corruption`` at ``severity`` applied to the test set (same order, labels and indices)."""
        ts = self.test_set
        ids = ts.indices if ts.indices is not None else np.arange(len(ts), dtype=np.int64)
        images = corrupt(ts.images, corruption, severity, self.seed, self.device, image_ids=ids)
        return ImageSet(ts.name, ts.split, images, ts.labels, ts.indices)

    def __repr__(self) -> str:
        ts = self.test_set
        return f"GeneratedCorruptions({ts.name}/{ts.split}, n={len(ts)}, seed={self.seed}, {GENERATED_ID})"
