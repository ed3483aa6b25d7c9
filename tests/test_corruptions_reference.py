"""Corruption building blocks against their references: PIL (pixelate, JPEG), the original kernels and helpers
(defocus disk, ImageMagick-style motion blur, clipped zoom, plasma), and the torch path against the numpy path."""

from __future__ import annotations

import io

import numpy as np
import pytest

from robustbench201.corruptions import DEVICE_CAPABLE, REGISTRY, blur, corrupt, digital
from robustbench201.corruptions import _common as common


def _images(n: int, c: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    x = gaussian_filter(np.random.default_rng(seed).random((n, c, h, w)), sigma=(0, 0, 1.5, 1.5))
    x = (x - x.min()) / (x.max() - x.min())
    return np.rint(x * 255).astype(np.uint8)


@pytest.mark.parametrize(("c", "side"), [(3, 32), (3, 16), (1, 28)])
def test_pixelate_matches_pil_box_resize_within_one_level(c: int, side: int) -> None:
    from PIL import Image

    x = _images(3, c, side, side)
    for s, f in enumerate(digital.PIXELATE, start=1):
        got = corrupt(x, "pixelate", s)
        small = int(side * f)
        for img, out in zip(x, got):
            pil = Image.fromarray(img[0] if c == 1 else img.transpose(1, 2, 0))
            ref = np.asarray(
                pil.resize((small, small), Image.Resampling.BOX).resize((side, side), Image.Resampling.BOX)
            )
            ref = ref.reshape(side, side, c).transpose(2, 0, 1)
            assert np.abs(out.astype(int) - ref).max() <= 1


def test_jpeg_matches_pillow_exactly() -> None:
    from PIL import Image

    x = _images(2, 3, 32, 32)
    for s, q in enumerate(digital.JPEG_QUALITY, start=1):
        got = corrupt(x, "jpeg_compression", s)
        buf = io.BytesIO()
        Image.fromarray(x[1].transpose(1, 2, 0)).save(buf, format="JPEG", quality=q)
        ref = np.asarray(Image.open(io.BytesIO(buf.getvalue()))).transpose(2, 0, 1)
        np.testing.assert_array_equal(got[1], ref)


def test_defocus_kernels_are_normalized_symmetric_disks() -> None:
    for radius, alias in blur.DEFOCUS_BLUR:
        k = blur.disk_kernel(float(radius), float(alias))
        assert k.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(k, k.T)
        np.testing.assert_allclose(k, k[::-1, ::-1])
        assert k.shape[0] % 2 == 1 and k[k.shape[0] // 2, k.shape[1] // 2] == k.max()
    # radius 0.3: the disk is the centre pixel, so the kernel is the 3 x 3 Gaussian of sigma 0.4
    g = np.exp(-np.array([1.0, 0.0, 1.0]) / (2 * 0.4**2))
    g /= g.sum()
    np.testing.assert_allclose(blur.disk_kernel(0.3, 0.4), np.outer(g, g))


def test_motion_blur_spreads_an_impulse_along_the_angle_with_half_gaussian_weights() -> None:
    x = np.zeros((2, 24, 24, 1), dtype=np.float32)
    x[:, 12, 12] = 1.0
    radius, sigma = 4, 2.0
    out = common.motion_blur(x, radius, sigma, np.array([0.0, 90.0]))
    w = np.exp(-(np.arange(2 * radius + 1) ** 2) / (2 * sigma**2))
    w /= w.sum()
    # tap i reads x + i (angle 0) or y + i (angle 90): the impulse shows up at 12 - i
    np.testing.assert_allclose(out[0, 12, 12 - 2 * radius : 13, 0], w[::-1], rtol=1e-5)
    np.testing.assert_allclose(out[1, 12 - 2 * radius : 13, 12, 0], w[::-1], rtol=1e-5)
    assert out[0].sum() == pytest.approx(1.0, rel=1e-5) and out[1].sum() == pytest.approx(1.0, rel=1e-5)


def test_clipped_zoom_matches_the_per_image_original() -> None:
    from scipy.ndimage import zoom

    x = _images(2, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float32) / 255
    for z in (1.06, 1.25, 2.25):
        ch = int(np.ceil(32 / z))
        top = (32 - ch) // 2
        ref = zoom(x[1, top : top + ch, top : top + ch], (z, z, 1), order=1)
        t = (ref.shape[0] - 32) // 2
        np.testing.assert_allclose(common.clipped_zoom(x, z)[1], ref[t : t + 32, t : t + 32], atol=1e-6)


def test_plasma_maps_fill_zero_to_one_and_depend_on_the_draws() -> None:
    size = 32
    u = np.random.default_rng(0).uniform(-1, 1, (2, common.plasma_draws(size)))
    p = common.plasma_fractal(u, size, 3.0)
    assert p.shape == (2, 32, 32)
    np.testing.assert_allclose(p.min(axis=(1, 2)), 0)
    np.testing.assert_allclose(p.max(axis=(1, 2)), 1)
    assert not np.allclose(p[0], p[1])
    assert common.plasma_size(28, 28) == 32 and common.plasma_size(16, 16) == 16


@pytest.mark.parametrize("name", sorted(DEVICE_CAPABLE))
def test_torch_path_matches_numpy_path(name: str) -> None:
    import torch

    x = _images(3, 3, 16, 16, seed=2).transpose(0, 2, 3, 1).astype(np.float32) / 255
    ids = np.arange(3)
    ref = REGISTRY[name](x, 4, common.per_image_rngs(0, 1, 4, ids))
    got = REGISTRY[name](torch.from_numpy(x), 4, common.per_image_rngs(0, 1, 4, ids))
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-5)


def test_device_argument_is_validated() -> None:
    import torch  # noqa: F401 - part of the test extra

    from robustbench201.errors import Rb201Error

    with pytest.raises(Rb201Error, match="unknown device 'gpu0'"):
        corrupt(_images(1, 3, 16, 16), "contrast", 1, device="gpu0")


def _published_shuffle(img: np.ndarray, offsets: np.ndarray, d: int) -> np.ndarray:
    """The original glass-blur loop on one H x W x C uint8 image, its "swap" statement as written (numpy views)."""
    x = img.copy()
    h, w = x.shape[:2]
    for it in range(offsets.shape[0]):
        k = 0
        for r in range(h - d, d, -1):
            for c in range(w - d, d, -1):
                dx, dy = offsets[it, k]
                k += 1
                rp, cp = r + dy, c + dx
                x[r, c], x[rp, cp] = x[rp, cp], x[r, c]
    return x


def _true_swap(img: np.ndarray, offsets: np.ndarray, d: int) -> np.ndarray:
    x = img.copy()
    h, w = x.shape[:2]
    for it in range(offsets.shape[0]):
        k = 0
        for r in range(h - d, d, -1):
            for c in range(w - d, d, -1):
                dx, dy = offsets[it, k]
                k += 1
                here = x[r, c].copy()
                x[r, c] = x[r + dy, c + dx]
                x[r + dy, c + dx] = here
    return x


@pytest.mark.parametrize("d", [1, 2])
def test_glass_blur_shuffle_is_the_published_view_aliased_swap(d: int) -> None:
    """The original's swap copies the neighbour (its right-hand side holds views); ours does the same, for the CIFAR
    displacement d = 1 (one gather per iteration) and for d = 2 (pixel by pixel), and differs from a true swap."""
    rng = np.random.default_rng(d)
    img = rng.integers(0, 256, (3, 12, 10, 3), dtype=np.uint8)
    offsets = rng.integers(-d, d, size=(3, 2, (12 - 2 * d) * (10 - 2 * d), 2))
    got = blur.copy_shuffle(img, offsets, d)
    for i in range(3):
        np.testing.assert_array_equal(got[i], _published_shuffle(img[i], offsets[i], d))
        assert not np.array_equal(got[i], _true_swap(img[i], offsets[i], d))


def test_zoom_blur_matches_the_per_image_original() -> None:
    """Mean of the image and its clipped zooms by every factor, each zoom as the original's per-image scipy call."""
    from scipy.ndimage import zoom

    def clipped(img: np.ndarray, z: float) -> np.ndarray:
        h = img.shape[0]
        ch = int(np.ceil(h / z))
        top = (h - ch) // 2
        out = zoom(img[top : top + ch, top : top + ch], (z, z, 1), order=1)
        t = (out.shape[0] - h) // 2
        return out[t : t + h, t : t + h]

    for side in (32, 16):
        x = _images(2, 3, side, side, seed=side).transpose(0, 2, 3, 1).astype(np.float32) / 255
        for s in (1, 5):
            factors = np.arange(1, blur.ZOOM_BLUR_END[s - 1], 0.01)
            got = blur.zoom_blur(x, s, [])
            for img, out in zip(x, got):
                ref = (img + sum(clipped(img, float(z)) for z in factors)) / (len(factors) + 1)
                np.testing.assert_allclose(out, ref, atol=2e-6)
