"""How much a corruption changes images, in the statistics used to compare our generator with the published one.

``change_stats`` computes, over a batch of clean and corrupted uint8 images, the three numbers of the reference set
in ``tests/fixtures/cifar-c-reference/`` (made by running ``make_cifar_c.py`` of Hendrycks & Dietterich, ICLR 2019):
mean absolute change and mean brightness shift in 0..255 pixel units, and mean PSNR in dB.
"""

from __future__ import annotations

import numpy as np

from ..errors import Rb201Error

#: Floor of the per-image mean squared error (255^2 * 1e-6), so that an unchanged image scores 60 dB, not infinity.
MSE_FLOOR = 255.0**2 * 1e-6


def change_stats(clean: np.ndarray, corrupted: np.ndarray) -> dict[str, float]:
    """Mean over images of: mean |corrupted - clean| (``mean_abs_change``, 0..255 units), PSNR(corrupted, clean)
    in dB with the MSE floored at ``MSE_FLOOR`` (``mean_psnr_db``), and mean(corrupted - clean)
    (``mean_brightness_shift``, 0..255 units). Both arrays are uint8 of the same shape, images along the first
    axis (any layout of the other axes)."""
    for name, a in (("clean", clean), ("corrupted", corrupted)):
        if not isinstance(a, np.ndarray) or a.dtype != np.uint8 or a.ndim < 2 or len(a) == 0:
            got = f"{a.dtype} array of shape {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
            raise Rb201Error(f"{name} images must be a non-empty uint8 array N x ..., got {got}")
    if clean.shape != corrupted.shape:
        raise Rb201Error(f"clean and corrupted images differ in shape: {clean.shape} vs {corrupted.shape}")
    d = corrupted.reshape(len(corrupted), -1).astype(np.float64) - clean.reshape(len(clean), -1)
    mse = np.maximum((d * d).mean(axis=1), MSE_FLOOR)
    return {
        "mean_abs_change": float(np.abs(d).mean(axis=1).mean()),
        "mean_psnr_db": float((10.0 * np.log10(255.0**2 / mse)).mean()),
        "mean_brightness_shift": float(d.mean(axis=1).mean()),
    }
