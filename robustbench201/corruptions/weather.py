"""Weather corruptions: snow, frost, fog.

Severity parameters are those of the CIFAR generator ``make_cifar_c.py`` (Hendrycks & Dietterich, ICLR 2019).
Snow blurs its flake layer with ImageMagick's motion blur in the original: we use our line-kernel re-implementation
(``_common.motion_blur``) with the same radius, sigma and angle range. Frost blends crops of the original's frost
photographs, shipped in the form it uses them (shrunk by 0.2; ``frost/SOURCE.md``). Fog and the frost blend run on a
torch device.
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

#: The frost photographs, in the original's order: it draws ``np.random.randint(5)``, so its sixth is never used.
FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.png", "frost5.png")


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


@functools.lru_cache(maxsize=1)
def frost_photographs() -> tuple[np.ndarray, ...]:
    """The five frost photographs as the original uses them (shrunk by 0.2), uint8 H x W x 3 RGB, read-only.

    Shipped in ``robustbench201/corruptions/frost/`` with their licence and provenance (``SOURCE.md`` there)."""
    from importlib.resources import files

    from PIL import Image

    out = []
    for name in FROST_FILES:
        with files(__package__).joinpath("frost", name).open("rb") as f:
            photo = np.asarray(Image.open(f).convert("RGB"))
        photo.setflags(write=False)
        out.append(photo)
    return tuple(out)


def frost_scale(h: int, w: int) -> float:
    """Factor by which the (0.2x) photographs are enlarged before an H x W crop: 1 when an H x W crop with at least
    one possible offset per axis fits in every photograph (H <= 62 and W <= 104), else the smallest common factor
    that makes it fit."""
    need = max(max((h + 1) / p.shape[0], (w + 1) / p.shape[1]) for p in frost_photographs())
    return max(1.0, need)


@functools.lru_cache(maxsize=8)
def frost_layers(h: int, w: int) -> tuple[np.ndarray, ...]:
    """The photographs that H x W crops are taken from: float32 in [0, 1], each H' x W' x 3 with H' > H and W' > W,
    enlarged by ``frost_scale(h, w)`` (scipy zoom, order 1) when the shipped size is too small (read-only)."""
    from scipy.ndimage import zoom

    f = frost_scale(h, w)
    out = []
    for photo in frost_photographs():
        layer = photo.astype(np.float32) / np.float32(255.0)
        if f > 1.0:
            layer = zoom(layer, (f, f, 1), order=1)  # round(f * side) pixels per side: > H and > W by design
        layer.setflags(write=False)
        out.append(layer)
    return tuple(out)


def frost(x: Array, severity: int, rngs: Rngs) -> Array:
    """a * x + b * crop of a frost photograph, (a, b) = FROST[severity - 1] (``frost`` of make_cifar_c.py).

    Per image, as the original: photograph ``integers(5)``, then the crop's top row ``integers(0, H' - H)`` and left
    column ``integers(0, W' - W)`` (upper bounds exclusive), from that image's generator. H x W crops are taken at
    the published scale (the 0.2x photographs, so frost crystals have the size in pixels they have in CIFAR-10-C)
    for every input with H <= 62 and W <= 104 (CIFAR, ImageNet16-120, MNIST); larger inputs crop from photographs
    enlarged by ``frost_scale``. One-channel images blend the luma of the crop."""
    a, b = FROST[severity - 1]
    _, h, w, ch = x.shape
    layers = frost_layers(h, w)
    crops = np.empty((len(rngs), h, w, 3), dtype=np.float32)
    for n, g in enumerate(rngs):
        layer = layers[int(g.integers(len(layers)))]
        r0 = int(g.integers(0, layer.shape[0] - h))
        c0 = int(g.integers(0, layer.shape[1] - w))
        crops[n] = layer[r0 : r0 + h, c0 : c0 + w]
    if ch == 1:
        crops = gray(crops)
    return a * x + b * like(crops, x)
