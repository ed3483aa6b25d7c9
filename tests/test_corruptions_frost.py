"""The frost photographs shipped with the package: what they are, where they come from, how crops are taken."""

from __future__ import annotations

import hashlib
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from published import fixture_arrays, fixture_json

from robustbench201.corruptions import corrupt
from robustbench201.corruptions.weather import FROST_FILES, frost_layers, frost_photographs, frost_scale

FROST_DIR = REPO / "robustbench201" / "corruptions" / "frost"
#: Original file of each shipped photograph (in ../shared/data/hendrycks-frost, from hendrycks/robustness).
ORIGINALS = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")


def test_five_photographs_shrunk_as_the_generator_uses_them() -> None:
    photos = frost_photographs()
    assert len(photos) == 5 == len(FROST_FILES)
    assert [p.shape for p in photos] == [(120, 180, 3), (63, 112, 3), (63, 112, 3), (70, 105, 3), (99, 132, 3)]
    assert all(p.dtype == np.uint8 and not p.flags.writeable for p in photos)
    # the means after the generator's 0.2x shrink, measured by running it (shared/data/hendrycks-frost/SOURCE.md)
    assert [round(float(p.mean())) for p in photos] == [131, 207, 207, 152, 123]
    np.testing.assert_array_equal(photos[1], photos[2])  # frost2 and frost3 of the original share their pixels


def test_shipped_photographs_are_the_originals_shrunk_by_one_fifth(shared_data: Path) -> None:
    """cv2.resize(fx=fy=0.2, bilinear) reads output pixel i at source coordinate 5 i + 2, with weights (1, 0)."""
    from PIL import Image

    for photo, name in zip(frost_photographs(), ORIGINALS):
        orig = np.asarray(Image.open(shared_data / "hendrycks-frost" / name).convert("RGB"))
        h, w = round(0.2 * orig.shape[0]), round(0.2 * orig.shape[1])
        want = orig[2::5, 2::5][:h, :w]
        if name.endswith(".png"):
            np.testing.assert_array_equal(photo, want)
        else:  # JPEG decoders may differ slightly between libjpeg builds
            assert np.abs(photo.astype(int) - want).max() <= 2, name


def test_shipped_photographs_equal_the_shrunk_originals_fixture() -> None:
    """The fixture version of the test above (``fixtures/hendrycks-frost/``): the originals shrunk the same way,
    the PNGs through the SHA-256 of their pixels, the JPEGs as arrays (Pillow's decoding)."""
    facts = fixture_json("hendrycks-frost/summary.json")["shrunk"]
    jpegs = fixture_arrays("hendrycks-frost/shrunk_jpegs.npz")
    assert list(facts) == list(ORIGINALS)
    for photo, name in zip(frost_photographs(), ORIGINALS):
        assert list(photo.shape) == facts[name]["shape"], name
        if name.endswith(".png"):
            assert hashlib.sha256(np.ascontiguousarray(photo).tobytes()).hexdigest() == facts[name]["sha256"], name
        else:  # JPEG decoders may differ slightly between libjpeg builds
            want = jpegs[name.replace(".", "_")]
            assert want.shape == photo.shape and np.abs(photo.astype(int) - want).max() <= 2, name


def test_licence_and_provenance_ship_beside_the_photographs() -> None:
    licence = (FROST_DIR / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0" in licence
    source = (FROST_DIR / "SOURCE.md").read_text()
    assert "hendrycks/robustness" in source and "Apache-2.0" in source
    for name in FROST_FILES:
        assert f"`{name}`" in source


def test_pyproject_ships_the_photographs_licence_and_provenance() -> None:
    tomllib = pytest.importorskip("tomllib")  # the standard library has it from Python 3.11
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["robustbench201.corruptions"]
    for name in [*FROST_FILES, "LICENSE", "SOURCE.md"]:
        assert any(fnmatch(f"frost/{name}", p) for p in patterns), name


@pytest.mark.parametrize(("h", "w"), [(32, 32), (16, 16), (28, 28), (62, 104)])
def test_small_inputs_crop_the_photographs_at_the_published_scale(h: int, w: int) -> None:
    assert frost_scale(h, w) == 1.0
    for layer, photo in zip(frost_layers(h, w), frost_photographs()):
        np.testing.assert_allclose(layer * 255.0, photo, atol=1e-4)


@pytest.mark.parametrize(("h", "w"), [(63, 63), (64, 64), (100, 200), (224, 224)])
def test_larger_inputs_crop_photographs_enlarged_just_enough(h: int, w: int) -> None:
    f = frost_scale(h, w)
    assert f > 1.0
    layers = frost_layers(h, w)
    assert all(layer.shape[0] > h and layer.shape[1] > w for layer in layers)
    # the smallest common factor: some photograph leaves exactly one crop offset along some axis
    assert min(min(layer.shape[0] - h, layer.shape[1] - w) for layer in layers) == 1
    x = np.zeros((2, 3, h, w), dtype=np.uint8)
    y = corrupt(x, "frost", 5, seed=0)
    assert y.shape == x.shape and 0.45 * 100 < y.mean() < 0.45 * 220  # b * a photograph's mean brightness


def test_one_channel_images_blend_the_luma_of_the_crop() -> None:
    x = np.zeros((4, 1, 28, 28), dtype=np.uint8)
    g = corrupt(x, "frost", 3, seed=1)
    rgb = corrupt(np.zeros((4, 3, 28, 28), dtype=np.uint8), "frost", 3, seed=1).astype(np.float64)
    luma = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]
    assert np.abs(g[:, 0] - luma).max() <= 1.5  # same photograph and crop, then luma (each side truncated)
