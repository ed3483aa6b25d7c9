"""Weather corruptions: snow, frost, fog.

Severity parameters are those of the CIFAR generator ``make_cifar_c.py`` (Hendrycks & Dietterich, ICLR 2019).
Two parts of the original need assets we do not ship, and are replaced by documented procedural equivalents:

- snow blurs its flake layer with ImageMagick's motion blur: we use our line-kernel re-implementation
  (``_common.motion_blur``) with the same radius, sigma and angle range;
- frost blends random crops of six photographs of frost (the original draws ``randint(5)``, so only the first
  five are used): we blend random crops of five seeded procedural frost textures (``frost_textures``) with the
  same blend weights. Fog blending and the frost blend run on a torch device.
"""

from __future__ import annotations

import functools

import numpy as np

from ._common import (
    Array,
    Rngs,
    amax,
    clipped_zoom,
    gray,
    like,
    motion_blur,
    plasma_draws,
    plasma_fractal,
    plasma_size,
    stack_draws,
)

#: (mean, std, zoom, threshold, blur radius, blur sigma, image weight) of the snow layer.
SNOW = (
    (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
    (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
    (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
    (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
    (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
)
#: (image weight, frost weight): out = a * x + b * frost.
FROST = ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))
#: (fog strength, plasma wibble decay).
FOG = ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))

#: Number of frost textures drawn from, as ``np.random.randint(5)`` in the original.
N_FROST_TEXTURES = 5
_FROST_TEXTURE_SEED = 20190101  # fixed: the textures play the role of shipped assets, not of per-call randomness


def snow(x: np.ndarray, severity: int, rngs: Rngs) -> np.ndarray:
    """Thresholded, zoomed Gaussian flakes, motion-blurred at an angle in [-135, -45) degrees, added twice (the layer
    and its 180-degree rotation) to an image brightened towards max(x, 1.5 * luma + 0.5)."""
    mean, std, zoom, thresh, radius, sigma, w = SNOW[severity - 1]
    _, h, wd, _ = x.shape
    layer = stack_draws(rngs, lambda g: g.normal(mean, std, size=(h, wd)).astype(np.float32))
    angles = np.array([g.uniform(-135, -45) for g in rngs])
    layer = clipped_zoom(layer[..., None], zoom)
    layer[layer < thresh] = 0
    layer = np.floor(np.clip(layer, 0, 1) * 255.0) / 255.0  # the original passes the layer as an 8-bit image
    layer = motion_blur(layer.astype(np.float32), radius, sigma, angles)
    layer = np.round(layer * 255.0) / np.float32(255.0)  # and reads the blurred layer back as 8-bit
    x = w * x + (1 - w) * np.maximum(x, gray(x) * 1.5 + 0.5)
    return x + layer + np.rot90(layer, k=2, axes=(1, 2))


def fog(x: Array, severity: int, rngs: Rngs) -> Array:
    """x + c * plasma, rescaled by max / (max + c) where max is the image's largest value (diamond-square plasma of
    side the next power of two, cropped to H x W)."""
    c, decay = FOG[severity - 1]
    _, h, w, _ = x.shape
    size = plasma_size(h, w)
    k = plasma_draws(size)
    u = stack_draws(rngs, lambda g: g.uniform(-1.0, 1.0, size=k))
    plasma = plasma_fractal(u, size, decay)[:, :h, :w, None].astype(np.float32)
    max_val = amax(x, axis=(1, 2, 3))
    return (x + c * like(plasma, x)) * max_val / (max_val + c)


def _line_kernel(length: int, angle: float) -> np.ndarray:
    """Binary kernel of a centred line segment of ``length`` pixels at ``angle`` (radians)."""
    half = length // 2
    k = np.zeros((2 * half + 1, 2 * half + 1), dtype=np.float32)
    t = np.linspace(-half, half, 4 * half + 1)
    rr = np.rint(half + t * np.sin(angle)).astype(int)
    cc = np.rint(half + t * np.cos(angle)).astype(int)
    k[rr, cc] = 1.0
    return k


@functools.lru_cache(maxsize=4)
def frost_textures(size: int) -> np.ndarray:
    """Five seeded procedural frost textures, N_FROST_TEXTURES x size x size x 3, float32 in [0, 1] (read-only).

    Our stand-in for the frost photographs of the original: tileable ice-crystal patterns made of sparse seeds
    grown into needles along three directions 60 degrees apart (the hexagonal habit of ice), in two sizes, over a
    low-frequency plasma haze; mean brightness about 0.45, tinted slightly blue like the photographs. Fixed (they do
    not depend on the corruption seed), so, like the photographs, only the crop position varies per image."""
    from scipy.ndimage import convolve

    rng = np.random.default_rng(_FROST_TEXTURE_SEED)
    psize = plasma_size(size, size)
    out = np.empty((N_FROST_TEXTURES, size, size, 3), dtype=np.float32)
    for i in range(N_FROST_TEXTURES):
        needles = np.zeros((size, size), dtype=np.float32)
        base = rng.uniform(0, np.pi / 3)
        for length, density, weight in ((max(5, size // 10) | 1, 0.004, 1.0), (5, 0.02, 0.5)):
            for j in range(3):
                seeds = (rng.random((size, size)) < density) * rng.uniform(0.3, 1.0, (size, size))
                ang = base + j * np.pi / 3 + rng.normal(0, 0.08)
                needles += weight * convolve(seeds.astype(np.float32), _line_kernel(length, ang), mode="wrap")
        crystals = 1.0 - np.exp(-1.5 * needles)
        haze = plasma_fractal(rng.uniform(-1, 1, (1, plasma_draws(psize))), psize, 2.0)[0, :size, :size]
        t = 0.65 * crystals + 0.35 * haze
        t = (t - t.min()) / (t.max() - t.min())
        t = t ** (np.log(0.45) / np.log(max(float(t.mean()), 1e-3)))  # gamma so that the mean is 0.45
        out[i] = t[..., None] * np.array([0.85, 0.92, 1.0], dtype=np.float32)
    out.setflags(write=False)
    return out


def frost(x: Array, severity: int, rngs: Rngs) -> Array:
    """a * x + b * frost crop, the crop taken at a random place of a random one of the frost textures."""
    a, b = FROST[severity - 1]
    _, h, w, ch = x.shape
    size = max(128, 4 * max(h, w))
    tex = frost_textures(size)
    if ch == 1:
        tex = gray(tex)
    crops = np.empty((len(rngs), h, w, ch), dtype=np.float32)
    for n, g in enumerate(rngs):
        idx = int(g.integers(N_FROST_TEXTURES))
        r0, c0 = int(g.integers(0, size - h)), int(g.integers(0, size - w))
        crops[n] = tex[idx, r0 : r0 + h, c0 : c0 + w]
    return a * x + b * like(crops, x)
