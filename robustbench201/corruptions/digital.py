"""Digital corruptions: brightness, contrast, elastic_transform, pixelate, jpeg_compression.

Severity parameters are those of the CIFAR generator ``make_cifar_c.py`` (Hendrycks & Dietterich, ICLR 2019).
Brightness, contrast and pixelate run on a torch device.
"""

from __future__ import annotations

import functools
import io

import numpy as np

from ._common import Array, Rngs, amax, einsum, stack_draws, where

#: Added to the HSV value channel.
BRIGHTNESS = (0.05, 0.1, 0.15, 0.2, 0.3)
#: Contrast factor about the per-channel image mean.
CONTRAST = (0.75, 0.5, 0.4, 0.3, 0.15)
#: (displacement scale, displacement smoothness sigma, affine jitter), as fractions of the image size.
ELASTIC_TRANSFORM = ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03))
#: Relative side of the down-sampled image (PIL BOX resampling down, then back up).
PIXELATE = (0.95, 0.9, 0.85, 0.75, 0.65)
#: PIL JPEG quality.
JPEG_QUALITY = (80, 65, 58, 50, 40)


def brightness(x: Array, severity: int, rngs: Rngs) -> Array:
    """V + c in HSV (clipped to 1), back to RGB.

    Done in closed form: with hue and saturation fixed, every RGB value is proportional to V, so the result is
    x * V' / V with V = max over channels and V' = min(V + c, 1) (a black pixel becomes gray V'); this equals
    skimage's ``hsv2rgb(rgb2hsv(x))`` round trip of the original up to float rounding."""
    c = BRIGHTNESS[severity - 1]
    v = amax(x, axis=-1)
    v_new = (v + c).clip(0, 1)
    ratio = v_new / where(v > 0, v, v_new)
    return where(v > 0, x * ratio, v_new + 0 * x)


def contrast(x: Array, severity: int, rngs: Rngs) -> Array:
    """(x - m) * c + m with m the per-image, per-channel mean."""
    c = CONTRAST[severity - 1]
    means = x.mean(axis=(1, 2), keepdims=True)
    return (x - means) * c + means


def elastic_transform(x: np.ndarray, severity: int, rngs: Rngs) -> np.ndarray:
    """Random affine warp (three control points jittered uniformly by +-c * size; bilinear, reflect-101 border, as
    OpenCV's warpAffine in the original), then a smooth random displacement field (uniform noise blurred by a
    Gaussian of sigma c * size, truncate 3, scaled by c * size; bilinear, reflect border, scipy map_coordinates)."""
    from scipy.ndimage import gaussian_filter, map_coordinates

    n, h, w, ch = x.shape
    size = min(h, w)
    alpha, sigma, jitter = (size * v for v in ELASTIC_TRANSFORM[severity - 1])
    center = np.array([h // 2, w // 2], dtype=np.float64)  # as the original: (H, W) centre used as (x, y) points
    sq = size // 3
    pts1 = np.array([center + sq, [center[0] + sq, center[1] - sq], center - sq])
    jit = stack_draws(rngs, lambda g: g.uniform(-jitter, jitter, size=(3, 2)))
    field = stack_draws(rngs, lambda g: g.uniform(-1, 1, size=(2, h, w)))
    # affine maps pts1 -> pts2 in (x, y) = (col, row); the warp samples the source at the inverse map
    src = np.concatenate([pts1, np.ones((3, 1))], axis=1)
    fwd = np.linalg.solve(src[None], pts1[None] + jit)  # N x 3 x 2: [x y 1] @ fwd = [x' y']
    full = np.zeros((n, 3, 3))
    full[:, :, :2] = fwd
    full[:, 2, 2] = 1.0
    inv = np.linalg.inv(full)
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    hom = np.stack([cols, rows, np.ones_like(rows)], axis=-1)  # H x W x 3
    mapped = np.einsum("hwk,nkj->nhwj", hom, inv)
    planes = np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(n * ch, h, w)
    plane_idx = np.broadcast_to(np.arange(n * ch, dtype=np.float64)[:, None, None], planes.shape)

    def sample(img: np.ndarray, r: np.ndarray, c: np.ndarray, mode: str) -> np.ndarray:
        r = np.repeat(r, ch, axis=0)
        c = np.repeat(c, ch, axis=0)
        return map_coordinates(img, [plane_idx, r, c], order=1, mode=mode)

    warped = sample(planes, mapped[..., 1], mapped[..., 0], "mirror")
    if alpha > 0:
        disp = gaussian_filter(field, sigma=(0, 0, sigma, sigma), mode="reflect", truncate=3.0) * alpha
        warped = sample(warped, rows[None] + disp[:, 1], cols[None] + disp[:, 0], "reflect")
    return warped.reshape(n, ch, h, w).transpose(0, 2, 3, 1)


@functools.lru_cache(maxsize=32)
def box_resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """The n_out x n_in matrix of PIL's BOX resampling along one axis, read off PIL itself (float mode)."""
    from PIL import Image

    eye = np.eye(n_in, dtype=np.float32)
    out = np.asarray(Image.fromarray(eye).resize((n_out, n_in), Image.Resampling.BOX))
    m = np.ascontiguousarray(out.T)
    m.setflags(write=False)
    return m


def _box_pass(x: Array, m: np.ndarray, axis: str) -> Array:
    """One PIL resampling pass, rounded to 8 bits as PIL does for 8-bit images."""
    from ._common import like

    mm = like(m, x)
    y = einsum("jw,nhwc->nhjc", mm, x) if axis == "w" else einsum("jh,nhwc->njwc", mm, x)
    return (y * 255.0).round() / 255.0


def pixelate(x: Array, severity: int, rngs: Rngs) -> Array:
    """PIL BOX resize to (int(W c), int(H c)) and back, as batched matrix products with PIL's own coefficients
    (horizontal pass first, each pass rounded to 8 bits, as PIL does)."""
    c = PIXELATE[severity - 1]
    _, h, w, _ = x.shape
    sw, sh = max(1, int(w * c)), max(1, int(h * c))
    for (hi, ho), (wi, wo) in (((h, sh), (w, sw)), ((sh, h), (sw, w))):
        if wi != wo:
            x = _box_pass(x, box_resize_matrix(wi, wo), "w")
        if hi != ho:
            x = _box_pass(x, box_resize_matrix(hi, ho), "h")
    return x


def jpeg_compression(x: np.ndarray, severity: int, rngs: Rngs) -> np.ndarray:
    """Pillow JPEG encode at the given quality and decode (default 4:2:0 chroma subsampling), one image at a time."""
    from PIL import Image

    q = JPEG_QUALITY[severity - 1]
    u8 = np.rint(np.clip(x, 0, 1) * 255.0).astype(np.uint8)
    out = np.empty(x.shape, dtype=np.float32)
    for i, img in enumerate(u8):
        pil = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=q)
        buf.seek(0)
        dec = np.asarray(Image.open(buf))
        out[i] = (dec.reshape(img.shape) / np.float32(255.0)).astype(np.float32)
    return out
