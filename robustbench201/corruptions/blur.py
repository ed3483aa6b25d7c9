"""Blur corruptions: defocus_blur, glass_blur, motion_blur, zoom_blur.

Severity parameters are those of the CIFAR generator ``make_cifar_c.py`` (Hendrycks & Dietterich, ICLR 2019), in
pixels. The original filters with OpenCV; we use ``scipy.ndimage`` with the same kernels and border rules
(OpenCV's default BORDER_REFLECT_101 is scipy's ``mode='mirror'``). Motion blur used ImageMagick (through Wand);
ours is the line-kernel re-implementation in ``_common.motion_blur``.
"""

from __future__ import annotations

import functools

import numpy as np

from ._common import Rngs, stack_draws, zoom_sum_hwk
from ._common import motion_blur as _line_blur

#: (disk radius, anti-alias Gaussian sigma) of the defocus kernel.
DEFOCUS_BLUR = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))
#: (Gaussian sigma, max pixel displacement, iterations) of the glass blur.
GLASS_BLUR = ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))
#: (radius, sigma) of the motion blur, CIFAR's table at every input size (see ``motion_blur``); the angle is uniform
#: in [-45, 45) degrees per image.
MOTION_BLUR = ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))
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

    The shuffle visits rows H - d .. d + 1 and columns W - d .. d + 1 in decreasing order (d = max displacement),
    draws an offset (dx, dy) from ``randint(-d, d)`` (upper bound exclusive, as in the original) per visited pixel
    and per iteration, and **copies** the pixel at (row + dy, column + dx) into the visited pixel. The original
    writes a swap, ``x[h, w], x[h', w'] = x[h', w'], x[h, w]``, but its right-hand side holds numpy views: the first
    assignment overwrites the pixel that the second view reads, so the neighbour is copied and keeps its value. The
    published CIFAR-10-C files were made that way, and a real swap (pixels travelling along chains) changes images
    about 1.3 times as much at severities 1-3, so we copy (``copy_shuffle``)."""
    sigma, d, iters = GLASS_BLUR[severity - 1]
    _, h, w, _ = x.shape
    img = np.floor(_gauss(x, sigma) * 255.0).clip(0, 255).astype(np.uint8)
    n_pos = max(0, h - 2 * d) * max(0, w - 2 * d)
    if n_pos:
        offsets = stack_draws(rngs, lambda g: g.integers(-d, d, size=(iters, n_pos, 2)))
        img = copy_shuffle(img, offsets, d)
    return _gauss(img.astype(np.float32) / 255.0, sigma)


def copy_shuffle(img: np.ndarray, offsets: np.ndarray, d: int) -> np.ndarray:
    """The original's pixel shuffle on N x H x W x C images: per iteration, visited pixel (r, c) (rows H - d .. d + 1,
    columns W - d .. d + 1, decreasing, row-major) takes the value of pixel (r + dy, c + dx), with ``offsets``
    N x iterations x positions x (dx, dy) in that visiting order. Returns a new array.

    With d = 1 (every CIFAR severity) the offsets are -1 or 0, so every source pixel lies above or left of the
    visited one and is visited later: each iteration reads only pixels it has not yet written, and is one gather
    from the image as it was before the iteration. Larger d can read pixels already written in the same
    iteration, and is done pixel by pixel in the original's order (vectorised over the batch)."""
    n, h, w, _ = img.shape
    rows = np.arange(h - d, d, -1)
    cols = np.arange(w - d, d, -1)
    rr = np.repeat(rows, len(cols))  # visiting order: row-major over decreasing rows and columns
    cc = np.tile(cols, len(rows))
    out = img.copy()
    nidx = np.arange(n)[:, None]
    for it in range(offsets.shape[1]):
        src_r = rr[None, :] + offsets[:, it, :, 1]
        src_c = cc[None, :] + offsets[:, it, :, 0]
        if d == 1:
            out[nidx, rr[None, :], cc[None, :]] = out[nidx, src_r, src_c]
        else:
            for k in range(len(rr)):
                out[nidx[:, 0], rr[k], cc[k]] = out[nidx[:, 0], src_r[:, k], src_c[:, k]]
    return out


def motion_blur(x: np.ndarray, severity: int, rngs: Rngs) -> np.ndarray:
    """Line-kernel motion blur (ImageMagick's MotionBlurImage, re-implemented), angle uniform in [-45, 45) degrees.

    (radius, sigma) in pixels from CIFAR's table (``MOTION_BLUR``) at every input size: 32 x 32 as published, and
    also ImageNet16-120 (16 x 16), MNIST (28 x 28) and larger inputs, like the pixel parameters of every other blur
    here. The published tables do not scale the blur with the image: Tiny-ImageNet's (64 x 64) keeps sigma at 1-3
    pixels against CIFAR's 1-2.5 (radius only cuts the kernel's tail), so no table for 16 x 16 follows from them, and
    one table keeps a severity the same blur in pixels on every dataset (relative to the image, a 16 x 16 image is
    blurred twice as much as a 32 x 32 one, as by defocus and glass blur)."""
    radius, sigma = MOTION_BLUR[severity - 1]
    angles = np.array([g.uniform(-45, 45) for g in rngs])
    return _line_blur(x, radius, sigma, angles)


def zoom_blur(x: np.ndarray, severity: int, rngs: Rngs) -> np.ndarray:
    """Mean of the image and its centre zooms by each factor (scipy zoom, order 1), as matrix products with scipy's
    own coefficients (``_common.zoom_sum_hwk``)."""
    factors = np.arange(1, ZOOM_BLUR_END[severity - 1], 0.01)
    n, h, w, c = x.shape
    xt = np.ascontiguousarray(x.transpose(1, 2, 0, 3)).reshape(h, w, n * c)
    out = xt + zoom_sum_hwk(xt, [float(z) for z in factors])
    out /= np.float32(len(factors) + 1)
    return out.reshape(h, w, n, c).transpose(2, 0, 1, 3)
