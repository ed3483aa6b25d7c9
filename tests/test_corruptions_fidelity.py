"""Our generator against the published CIFAR-10-C generator, corruption by corruption and severity by severity.

The reference set (``tests/fixtures/cifar-c-reference/``, see its SOURCE.md) holds 200 natural 32 x 32 images and
what ``make_cifar_c.py`` does to them, from two runs with different seeds. Every (corruption, severity) pair of ours
must change the images by the same amount: mean absolute change within 0.8-1.25 times the reference (the mean of its
two runs) and mean PSNR within 1.5 dB of it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from robustbench201.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from robustbench201.corruptions.fidelity import change_stats
from robustbench201.errors import Rb201Error

FIXTURE = Path(__file__).parent / "fixtures" / "cifar-c-reference"
RATIO = (0.8, 1.25)  # allowed (ours / reference) mean absolute change
PSNR_DB = 1.5  # allowed |ours - reference| mean PSNR


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    """The 200 reference images, N x C x H x W as ``corrupt`` takes them."""
    with np.load(FIXTURE / "images.npz") as f:
        return np.ascontiguousarray(f["images"].transpose(0, 3, 1, 2))


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads((FIXTURE / "stats.json").read_text())


@pytest.mark.parametrize("severity", SEVERITIES)
@pytest.mark.parametrize("name", CORRUPTIONS)
def test_generator_changes_images_as_much_as_the_published_one(
    name: str, severity: int, clean: np.ndarray, reference: dict
) -> None:
    ours = change_stats(clean, corrupt(clean, name, severity, seed=0))
    ref = reference[name][str(severity)]
    ref_change = float(np.mean(ref["mean_abs_change"]))
    ref_psnr = float(np.mean(ref["mean_psnr_db"]))
    ratio = ours["mean_abs_change"] / ref_change
    delta = ours["mean_psnr_db"] - ref_psnr
    detail = f"{name} {severity}: change {ours['mean_abs_change']:.2f} vs {ref_change:.2f}, PSNR {delta:+.2f} dB"
    assert RATIO[0] <= ratio <= RATIO[1], detail
    assert abs(delta) <= PSNR_DB, detail


def test_reference_fixture_covers_every_pair_and_holds_200_natural_images(clean: np.ndarray, reference: dict) -> None:
    assert clean.shape == (200, 3, 32, 32) and clean.dtype == np.uint8
    assert 60 < clean.mean() < 200 and clean.std() > 30  # natural photographs, not a constant or noise
    assert list(reference) == list(CORRUPTIONS)
    for name in CORRUPTIONS:
        assert sorted(reference[name]) == [str(s) for s in SEVERITIES]
        for stats in reference[name].values():
            assert all(len(v) == 2 for v in stats.values())  # two runs with different seeds


def test_reference_fixture_is_the_shared_reference_set(shared_data: Path) -> None:
    ref = shared_data / "cifar-c-reference"
    with np.load(FIXTURE / "images.npz") as f:
        np.testing.assert_array_equal(f["images"], np.load(ref / "images.npy"))
    assert json.loads((FIXTURE / "stats.json").read_text()) == json.loads((ref / "stats.json").read_text())


def test_change_stats_in_pixel_units_and_db() -> None:
    clean = np.zeros((2, 3, 4, 4), dtype=np.uint8)
    corrupted = clean.copy()
    corrupted[0] = 10  # image 0: every value +10; image 1 unchanged
    s = change_stats(clean, corrupted)
    assert s["mean_abs_change"] == pytest.approx(5.0)
    assert s["mean_brightness_shift"] == pytest.approx(5.0)
    assert s["mean_psnr_db"] == pytest.approx((10 * np.log10(255**2 / 100) + 60.0) / 2)
    down = change_stats(corrupted, clean)
    assert down["mean_brightness_shift"] == pytest.approx(-5.0) and down["mean_abs_change"] == pytest.approx(5.0)


def test_change_stats_rejects_mismatched_or_non_uint8_images() -> None:
    x = np.zeros((2, 3, 4, 4), dtype=np.uint8)
    with pytest.raises(Rb201Error, match="differ in shape"):
        change_stats(x, x[:1])
    with pytest.raises(Rb201Error, match="corrupted images must be a non-empty uint8"):
        change_stats(x, x.astype(np.float32))
