"""In-memory image sets: uint8 NCHW arrays with integer labels, the currency between readers and the engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..errors import Rb201Error

__all__ = ["ImageSet", "CorruptionSource"]


@dataclass(frozen=True)
class ImageSet:
    """Images stay uint8 (N x C x H x W) until they reach the device; labels are int64 in 0..K-1.

    ``indices`` holds the positions in the full split when a subset was taken (recorded in outputs)."""

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray
    indices: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise Rb201Error(
                f"{self.name}/{self.split}: images must be uint8 N x C x H x W, got {self.images.dtype} "
                f"with shape {self.images.shape}"
            )
        if self.labels.ndim != 1 or len(self.labels) != len(self.images):
            raise Rb201Error(
                f"{self.name}/{self.split}: {len(self.images)} images but labels of shape {self.labels.shape}"
            )
        if len(self.images) == 0:
            raise Rb201Error(f"{self.name}/{self.split}: the image set is empty")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        _, c, h, w = self.images.shape
        return c, h, w

    def subset(self, n: int, seed: int = 0) -> ImageSet:
        """A fixed, seeded subset of ``n`` images (sorted positions; the same for the same ``n`` and ``seed``)."""
        total = len(self)
        if not 0 < n <= total:
            raise Rb201Error(f"subset size {n} out of range; allowed: 1..{total} for {self.name}/{self.split}")
        if n == total:
            return self
        pos = np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))
        base = self.indices[pos] if self.indices is not None else pos
        return ImageSet(self.name, self.split, self.images[pos], self.labels[pos], base.astype(np.int64))


class CorruptionSource(Protocol):
    """Corrupted versions of one test set, image-aligned with it (same order and labels)."""

    name: str  # e.g. "cifar10-c-files" or "generated-v2-seed0"

    def corruptions(self) -> tuple[str, ...]: ...

    def get(self, corruption: str, severity: int) -> ImageSet: ...
