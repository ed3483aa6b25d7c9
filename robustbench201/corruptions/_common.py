"""Shared pieces of the corruption generator: per-image random streams, array backends and the helpers that several
corruption types use (clipped zoom, plasma fractal, line-kernel motion blur).

Internal layout: every corruption function takes float32 images ``x`` of shape N x H x W x C with values in [0, 1]
(the layout of the original generator, which works on H x W x C arrays), the severity (1..5) and one
``numpy.random.Generator`` per image, and returns an array of the same shape (values may leave [0, 1]; the caller
clips and quantizes). Corruptions listed in ``DEVICE_CAPABLE`` also accept a ``torch.Tensor`` on any device: their
random draws still come from the per-image numpy generators, so results do not depend on the device.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Array = Any  # numpy.ndarray or torch.Tensor (torch is imported lazily)
Rngs = Sequence[np.random.Generator]
CorruptionFn = Callable[[Array, int, Rngs], Array]


def is_torch(x: Array) -> bool:
    """True when ``x`` is a torch tensor (checked without importing torch)."""
    return type(x).__module__.startswith("torch")


def like(a: np.ndarray, ref: Array) -> Array:
    """``a`` (numpy) on the backend, device and dtype of ``ref``."""
    if not is_torch(ref):
        return np.asarray(a, dtype=ref.dtype)
    import torch

    a = np.ascontiguousarray(a)
    if not a.flags.writeable:
        a = a.copy()
    return torch.as_tensor(a, dtype=ref.dtype).to(ref.device)


def to_numpy(x: Array) -> np.ndarray:
    """Host numpy copy of ``x``."""
    if is_torch(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def amax(x: Array, axis: int | tuple[int, ...]) -> Array:
    """Maximum over ``axis`` with the reduced axes kept, on either backend."""
    if is_torch(x):
        return x.amax(dim=axis, keepdim=True)
    return x.max(axis=axis, keepdims=True)


def where(cond: Array, a: Array, b: Array) -> Array:
    """Element-wise ``a if cond else b`` on either backend."""
    if is_torch(cond):
        import torch

        return torch.where(cond, a, b)
    return np.where(cond, a, b)


def einsum(spec: str, *ops: Array) -> Array:
    """``einsum`` on the backend of the last operand (the image batch)."""
    if is_torch(ops[-1]):
        import torch

        return torch.einsum(spec, *ops)
    return np.einsum(spec, *ops, optimize=True)


def stack_draws(rngs: Rngs, draw: Callable[[np.random.Generator], np.ndarray]) -> np.ndarray:
    """Stack one draw per image: ``draw(rng_i)`` for every image's generator, along a new first axis."""
    return np.stack([draw(g) for g in rngs])


def per_image_rngs(seed: int, corruption_id: int, severity: int, image_ids: np.ndarray) -> list[np.random.Generator]:
    """One independent generator per image, keyed by (seed, corruption, severity, image id).

    Keying by the image id (its position in the full split) makes the corruption of an image independent of the
    batch it is generated in and of the subset that was taken."""
    return [np.random.default_rng([seed, corruption_id, severity, int(i)]) for i in image_ids]


@functools.lru_cache(maxsize=128)
def zoom_matrix(n_in: int, zoom_factor: float) -> np.ndarray:
    """The round(n_in * z) x n_in matrix of ``scipy.ndimage.zoom(..., order=1)`` along one axis, read off scipy
    itself by zooming the identity (order-1 zoom is linear, so it is exactly this matrix product)."""
    from scipy.ndimage import zoom

    m = zoom(np.eye(n_in, dtype=np.float64), (zoom_factor, 1), order=1)
    m.setflags(write=False)
    return m


def zoom_operators(h: int, w: int, zoom_factor: float) -> tuple[np.ndarray, np.ndarray]:
    """(R, C), H x H and W x W: ``clipped_zoom`` of an H x W image X is R @ X @ C.T.

    The original crops the central ceil(H / z) x ceil(W / z) window, enlarges it with ``scipy.ndimage.zoom``
    (order 1) and trims the centre back to H x W; R and C are scipy's own order-1 coefficients
    (``zoom_matrix``) restricted to the surviving rows and placed on the crop's columns."""
    ops = []
    for n in (h, w):
        c = int(np.ceil(n / zoom_factor))
        start = (n - c) // 2
        z = zoom_matrix(c, zoom_factor)
        t = (z.shape[0] - n) // 2
        full = np.zeros((n, n))
        full[:, start : start + c] = z[t : t + n]
        ops.append(full)
    return ops[0], ops[1]


def zoom_hwk(xt: np.ndarray, zoom_factor: float) -> np.ndarray:
    """``clipped_zoom`` of images stored as H x W x K (K = batch x channels); see ``zoom_sum_hwk``."""
    return zoom_sum_hwk(xt, (zoom_factor,))


#: Float32 values of the zoomed intermediate per chunk of ``zoom_sum_hwk`` (16 MiB): bounds memory, not results.
_ZOOM_CHUNK_VALUES = 1 << 22


@functools.lru_cache(maxsize=32)
def stacked_zoom_operators(h: int, w: int, zoom_factors: tuple[float, ...]) -> tuple[Any, Any]:
    """Sparse float32 [R_1; ...; R_Z] ((Z H) x H) and [C_1 ... C_Z] (W x (Z W)) of ``zoom_operators`` for each
    factor; order-1 zoom reads two neighbours, so each row of R_z and C_z has at most two non-zeros."""
    import scipy.sparse as sp

    ops = [zoom_operators(h, w, z) for z in zoom_factors]
    r_all = sp.csr_array(np.concatenate([r for r, _ in ops]).astype(np.float32))
    c_all = sp.csr_array(np.concatenate([c for _, c in ops], axis=1).astype(np.float32))
    return r_all, c_all


def zoom_sum_hwk(xt: np.ndarray, zoom_factors: Sequence[float]) -> np.ndarray:
    """Sum over ``zoom_factors`` of ``clipped_zoom`` of images stored as H x W x K (K = batch x channels).

    With (R_z, C_z) = ``zoom_operators`` the sum is sum_z R_z X C_z^T, computed per chunk of K as two sparse
    products (``stacked_zoom_operators``): [R_1; ...; R_Z] X, then [C_1 ... C_Z] times those Z results stacked along
    W, which also sums over z. Sparse products run in one thread, so the time does not depend on the BLAS thread
    count: the former batched dense product (one small product per image row) was tens of times slower with two
    BLAS threads than with one on a busy machine (``bench/bench_corruptions.py`` measures both counts)."""
    h, w, k = xt.shape
    nz = len(zoom_factors)
    r_all, c_all = stacked_zoom_operators(h, w, tuple(float(z) for z in zoom_factors))
    out = np.empty((h, w, k), dtype=np.result_type(xt.dtype, np.float32))
    step = max(1, _ZOOM_CHUNK_VALUES // (nz * h * w))
    for k0 in range(0, k, step):
        k1 = min(k, k0 + step)
        kc = k1 - k0
        rows = r_all @ xt[:, :, k0:k1].reshape(h, w * kc)  # (Z H) x (W kc): R_z X for every z
        stacked = rows.reshape(nz, h, w, kc).transpose(0, 2, 1, 3).reshape(nz * w, h * kc)
        out[:, :, k0:k1] = (c_all @ stacked).reshape(w, h, kc).transpose(1, 0, 2)
    return out


def clipped_zoom(x: np.ndarray, zoom_factor: float) -> np.ndarray:
    """Zoom N x H x W x C images about their centre and crop back to H x W (``clipped_zoom`` of make_cifar_c.py,
    same result as the original's per-image ``scipy.ndimage.zoom``, see ``zoom_operators``)."""
    n, h, w, ch = x.shape
    xt = np.ascontiguousarray(x.transpose(1, 2, 0, 3)).reshape(h, w, n * ch)
    return zoom_hwk(xt, zoom_factor).reshape(h, w, n, ch).transpose(2, 0, 1, 3)


def plasma_size(h: int, w: int) -> int:
    """Side of the plasma map used for an H x W image: the smallest power of two >= max(H, W)."""
    return 1 << max(1, (max(h, w) - 1).bit_length())


def plasma_draws(mapsize: int) -> int:
    """Number of uniform draws one plasma map of side ``mapsize`` consumes."""
    n, step = 0, mapsize
    while step >= 2:
        n += 3 * (mapsize // step) ** 2
        step //= 2
    return n


def plasma_fractal(u: np.ndarray, mapsize: int, wibbledecay: float) -> np.ndarray:
    """Diamond-square height maps in [0, 1], N x mapsize x mapsize (``plasma_fractal`` of make_cifar_c.py).

    ``u`` (N x ``plasma_draws(mapsize)``) holds each map's uniform draws in [-1, 1); the original draws
    ``uniform(-wibble, wibble)`` and multiplies by ``wibble`` again, which is kept (``wibble ** 2 * u``)."""
    n = u.shape[0]
    m = np.zeros((n, mapsize, mapsize), dtype=np.float64)
    step, wibble, pos = mapsize, 100.0, 0

    def wibbled_mean(a: np.ndarray) -> np.ndarray:
        nonlocal pos
        k = a[0].size
        r = u[:, pos : pos + k].reshape(a.shape)
        pos += k
        return a / 4 + wibble * wibble * r

    while step >= 2:
        half = step // 2
        corners = m[:, 0:mapsize:step, 0:mapsize:step]
        sq = corners + np.roll(corners, -1, axis=1)
        sq = sq + np.roll(sq, -1, axis=2)
        m[:, half:mapsize:step, half:mapsize:step] = wibbled_mean(sq)
        dr = m[:, half:mapsize:step, half:mapsize:step]
        ul = m[:, 0:mapsize:step, 0:mapsize:step]
        lt = dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=2)
        m[:, 0:mapsize:step, half:mapsize:step] = wibbled_mean(lt)
        tt = dr + np.roll(dr, 1, axis=2) + ul + np.roll(ul, -1, axis=1)
        m[:, half:mapsize:step, 0:mapsize:step] = wibbled_mean(tt)
        step //= 2
        wibble /= wibbledecay
    m -= m.min(axis=(1, 2), keepdims=True)
    return m / m.max(axis=(1, 2), keepdims=True)


def motion_blur(x: np.ndarray, radius: int, sigma: float, angles_deg: np.ndarray) -> np.ndarray:
    """Line-kernel motion blur of N x H x W x C images, one angle (degrees) per image.

    Our re-implementation of ImageMagick's ``MotionBlurImage`` (used by the original through Wand): width
    2 * radius + 1 taps with one-sided Gaussian weights exp(-i^2 / (2 sigma^2)) (normalized), tap i reading the
    pixel at offset (ceil(i cos a - 0.5), ceil(i sin a - 0.5)) in (x, y), with edge pixels repeated outside the image
    (ImageMagick's default virtual-pixel method). Integer offsets, so no interpolation."""
    n, h, w, _ = x.shape
    width = 2 * int(radius) + 1
    taps = np.arange(width, dtype=np.float64)
    kernel = np.exp(-(taps**2) / (2.0 * sigma * sigma))
    kernel /= kernel.sum()
    a = np.deg2rad(np.asarray(angles_deg, dtype=np.float64)).reshape(n, 1)
    ox = np.ceil(taps * np.cos(a) - 0.5).astype(np.int64)  # N x width
    oy = np.ceil(taps * np.sin(a) - 0.5).astype(np.int64)
    rows0, cols0 = np.arange(h), np.arange(w)
    flat = x.reshape(n, h * w, -1)
    out = np.zeros_like(flat)
    for i in range(width):
        rows = np.clip(rows0[None, :] + oy[:, i : i + 1], 0, h - 1)
        cols = np.clip(cols0[None, :] + ox[:, i : i + 1], 0, w - 1)
        idx = (rows[:, :, None] * w + cols[:, None, :]).reshape(n, h * w, 1)
        out += np.float32(kernel[i]) * np.take_along_axis(flat, idx, axis=1)
    out = out.reshape(x.shape)
    return out


def gray(x: Array) -> Array:
    """Luma of N x H x W x C images, N x H x W x 1 (OpenCV's RGB2GRAY weights; a 1-channel image is its own luma)."""
    if x.shape[-1] == 1:
        return x
    return 0.299 * x[..., 0:1] + 0.587 * x[..., 1:2] + 0.114 * x[..., 2:3]
