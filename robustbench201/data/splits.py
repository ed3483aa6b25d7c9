"""Validation splits held out of the training set (the ``valid`` split of evaluation rows; ``holdout`` of a training
recipe, :data:`robustbench201.vocab.HOLDOUTS`).

* ``none``: nothing is held out (the published NB201 ``cifar10`` protocol and NAS-RobBench-201 train on every
  training image); there is no validation split.
* ``nb201``: CIFAR-10 only, NAS-Bench-201's ``cifar10-valid`` split: 25,000 of the 50,000 training images validate,
  the other 25,000 train (shipped in ``split_files/``, provenance in its SOURCE.md). It needs the full training split.
* ``seeded``: per class, ``round(fraction * count)`` images validate, the first ones of that class in the permutation
  ``numpy.random.default_rng(seed).permutation(n)``; the rest train.

Positions are recorded: the validation :class:`ImageSet` has ``split == "valid"`` and ``indices`` = its positions in
the full training split, the training part keeps its positions too. No torch import.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import numpy as np

from ..errors import DataIntegrityError, Rb201Error, check_choice
from ..vocab import HOLDOUTS
from .base import ImageSet

__all__ = ["NB201_SPLIT_FILE", "NB201_SPLIT_SHA256", "CIFAR10_TRAIN", "nb201_cifar10_valid_mask",
           "holdout_positions", "holdout_split"]  # fmt: skip

NB201_SPLIT_FILE = Path(__file__).parent / "split_files" / "nb201-cifar10-valid.bits"
NB201_SPLIT_SHA256 = "8fdc87ff7322864d3344f941d025223ad2523004baed3016b8602ec81139ae65"
CIFAR10_TRAIN = 50_000


@cache
def nb201_cifar10_valid_mask() -> np.ndarray:
    """Bool (50000,): True for the training images NAS-Bench-201's ``cifar10-valid`` protocol validates on."""
    raw = NB201_SPLIT_FILE.read_bytes()
    if hashlib.sha256(raw).hexdigest() != NB201_SPLIT_SHA256:
        raise DataIntegrityError(f"{NB201_SPLIT_FILE} does not match its pinned sha256; reinstall rb201")
    mask = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little")[:CIFAR10_TRAIN].astype(bool)
    mask.flags.writeable = False
    return mask


def holdout_positions(
    dataset: str, labels: np.ndarray, holdout: str, fraction: float = 0.1, seed: int = 0, full: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(training positions, validation positions) within a training set with these ``labels``, both sorted.

    ``full`` says the labels are those of the whole training split (``nb201`` needs it)."""
    check_choice("holdout", holdout, HOLDOUTS)
    y = np.asarray(labels)
    n = len(y)
    every = np.arange(n, dtype=np.int64)
    if holdout == "none":
        return every, every[:0]
    if holdout == "nb201":
        if dataset != "cifar10" or not full or n != CIFAR10_TRAIN:
            raise Rb201Error(
                f"holdout 'nb201' is NAS-Bench-201's cifar10-valid split of the 50000 CIFAR-10 training images; "
                f"got {dataset} with {n} training images{'' if full else ' (a subset)'}; allowed there: 'seeded'"
            )
        mask = nb201_cifar10_valid_mask()
        return every[~mask], every[mask]
    if not 0 < fraction < 1:
        raise Rb201Error(f"holdout fraction {fraction!r} out of range; allowed: 0 < fraction < 1")
    perm = np.random.default_rng(seed).permutation(n)
    valid = np.zeros(n, dtype=bool)
    for c in np.unique(y):
        members = perm[y[perm] == c]  # this class, in permutation order
        valid[members[: int(round(fraction * len(members)))]] = True
    if not valid.any() or valid.all():
        raise Rb201Error(f"holdout fraction {fraction} of {n} images leaves an empty split; use a larger set")
    return every[~valid], every[valid]


def holdout_split(
    train: ImageSet, holdout: str, fraction: float = 0.1, seed: int = 0
) -> tuple[ImageSet, ImageSet | None]:
    """(training part, validation split or None for ``none``) of a training set (:func:`holdout_positions`)."""
    if holdout == "none":
        check_choice("holdout", holdout, HOLDOUTS)
        return train, None
    keep, hold = holdout_positions(train.name, train.labels, holdout, fraction, seed, full=train.indices is None)
    base = train.indices if train.indices is not None else np.arange(len(train), dtype=np.int64)

    def part(pos: np.ndarray, split: str) -> ImageSet:
        return ImageSet(train.name, split, train.images[pos], train.labels[pos], base[pos].astype(np.int64))

    return part(keep, train.split), part(hold, "valid")
