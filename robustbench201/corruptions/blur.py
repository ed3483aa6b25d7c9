"""Blur corruptions: defocus_blur, glass_blur, motion_blur, zoom_blur.

Severity parameters are those of the CIFAR generator ``make_cifar_c.py`` (Hendrycks & Dietterich, ICLR 2019), in
pixels. The original filters with OpenCV; we use ``scipy.ndimage`` with the same kernels and border rules
(OpenCV's default BORDER_REFLECT_101 is scipy's ``mode='mirror'``). Motion blur used ImageMagick (through Wand);
ours is the line-kernel re-implementation in ``_common.motion_blur``.
"""

from __future__ import annotations

import functools

import numpy as np

from ._common import Rngs, stack_draws, zoom_hwk
from ._common import motion_blur as _line_blur

#: (disk radius, anti-alias Gaussian sigma) of the defocus kernel.
DEFOCUS_BLUR = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))
#: (Gaussian sigma, max pixel displacement, iterations) of the glass blur.
GLASS_BLUR = ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))
#: (radius, sigma) of the motion blur; the angle is uniform in [-45, 45) degrees per image.
MOTION_BLUR = ((10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3))
#: Zoom factors averaged by the zoom blur, ``np.arange(1, end, 0.01)`` as in the original (floating-point arange
#: gives 7, 12, 16, 21 and 26 factors).
ZOOM_BLUR_END = (1.06, 1.11, 1.16, 1.21, 1.26)


@functools.lru_cache(maxsize=8)
def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """Anti-aliased disk kernel of make_cifar_c.py ``disk``: the 17 x 17 aliased disk x^2 + y^2 <= r^2, normalized,
    blurred by a 3 x 3 Gaussian of sigma ``alias_blur`` (OpenCV GaussianBlur, reflect-101 border), then cropped to
    its support (values above 1e-12 of the peak: the crop changes no output level)."""
    from scipy.ndimage import correlate1d

    half = 8 if radius <= 8 else int(radius)
    grid = np.arange(-half, half + 1, dtype=np.float64)
    xx, yy = np.meshgrid(grid, grid)
    disk = ((xx**2 + yy**2) <= radius**2).astype(np.float64)
    disk /= disk.sum()
    size = 3 if radius <= 8 else 5
    t = np.arange(size) - (size - 1) / 2
    g = np.exp(-(t**2) / (2.0 * alias_blur**2))
    g /= g.sum()
    k = correlate1d(correlate1d(disk, g, axis=0, mode="mirror"), g, axis=1, mode="mirror")
    nz_r, nz_c = np.nonzero(k > 1e-12 * k.max())
    k = k[nz_r.min() : nz_r.max() + 1, nz_c.min() : nz_c.max() + 1]
    k.setflags(write=False)
    return k


def defocus_blur(x: np.ndarray, severity: int, rngs: Rngs) -> np.ndarray:
    """Correlate each channel with the anti-aliased disk kernel (reflect-101 border)."""
    from scipy.ndimage import correlate

    radius, alias = DEFOCUS_BLUR[severity - 1]
    k = disk_kernel(float(radius), float(alias)).astype(np.float32)
    return correlate(x, k[None, :, :, None], mode="mirror")


def _gauss(x: np.ndarray, sigma: float) -> np.ndarray:
    """``skimage.filters.gaussian(x, sigma, channel_axis=-1)`` on an N x H x W x C batch (mode 'nearest',
    truncate 4), done directly with scipy as skimage does."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(x, sigma=(0, sigma, sigma, 0), mode="nearest", truncate=4.0)


def glass_blur(x: np.ndarray, severity: int, rngs: Rngs) -> np.ndarray:
    """Gaussian blur, quantize to uint8 (truncating, as the original), locally shuffle pixels, blur again.

    The shuffle visits rows H - d .. d + 1 and columns W - d .. d + 1 in decreasing order (d = max displacement)
    and swaps each pixel with the one at offset (dy, dx) drawn from ``randint(-d, d)`` (upper bound exclusive, as in
    the original), sequentially per image and vectorised over the batch."""
    sigma, d, iters = GLASS_BLUR[severity - 1]
    n, h, w, _ = x.shape
    img = np.floor(_gauss(x, sigma) * 255.0).clip(0, 255).astype(np.uint8)
    positions = [(r, c) for r in range(h - d, d, -1) for c in range(w - d, d, -1)]
    if positions:
        draws = stack_draws(rngs, lambda g: g.integers(-d, d, size=(iters, len(positions), 2)))
        nidx = np.arange(n)
        for it in range(iters):
            for k, (r, c) in enumerate(positions):
                dx, dy = draws[:, it, k, 0], draws[:, it, k, 1]
                rp, cp = r + dy, c + dx
                here = img[:, r, c].copy()
                img[:, r, c] = img[nidx, rp, cp]
                img[nidx, rp, cp] = here
    return _gauss(img.astype(np.float32) / 255.0, sigma)


def motion_blur(x: np.ndarray, severity: int, rngs: Rngs) -> np.ndarray:
    """Line-kernel motion blur (ImageMagick's MotionBlurImage, re-implemented), angle uniform in [-45, 45)."""
    radius, sigma = MOTION_BLUR[severity - 1]
    angles = np.array([g.uniform(-45, 45) for g in rngs])
    return _line_blur(x, radius, sigma, angles)


def zoom_blur(x: np.ndarray, severity: int, rngs: Rngs) -> np.ndarray:
    """Mean of the image and its centre zooms by each factor (scipy zoom, order 1)."""
    factors = np.arange(1, ZOOM_BLUR_END[severity - 1], 0.01)
    n, h, w, c = x.shape
    xt = np.ascontiguousarray(x.transpose(1, 2, 0, 3)).reshape(h, w, n * c)
    out = xt.copy()
    for z in factors:
        out += zoom_hwk(xt, float(z))
    out /= np.float32(len(factors) + 1)
    return out.reshape(h, w, n, c).transpose(2, 0, 1, 3)
