"""Small learnable image sets for the DSRNA tests (``test_dsrna*.py``): a few steps of a tiny supernet learn them."""

from __future__ import annotations

import numpy as np

from robustbench201.data.base import ImageSet


def tiny_digits(n: int = 64, size: int = 12, seed: int = 0) -> ImageSet:
    """MNIST-5k-shaped class-dependent blobs: a class-specific row lights up over background noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n, dtype=np.int64) % 10
    images = rng.integers(0, 60, size=(n, 1, size, size))
    for i, y in enumerate(labels):
        images[i, 0, y % size, :] = 230
    return ImageSet("mnist5k", "train", images.astype(np.uint8), labels)


def synthetic_cifar(n: int = 32) -> ImageSet:
    """CIFAR-10-shaped images whose class lights up three rows of one channel over background noise."""
    rng = np.random.default_rng(0)
    labels = np.arange(n, dtype=np.int64) % 10
    images = rng.integers(0, 80, size=(n, 3, 32, 32))
    for i, y in enumerate(labels):
        images[i, y % 3, 3 * y : 3 * y + 3, :] = 240
    return ImageSet("cifar10", "train", images.astype(np.uint8), labels)
