"""Common corruptions: a reader of the published CIFAR-10-C / CIFAR-100-C files and a seeded generator of the 15
corruption types at severities 1..5 (Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR 2019).

The generator is our own implementation of the CIFAR generator ``make_cifar_c.py`` of that paper, with its
published CIFAR severity parameters (cited per module: ``noise``, ``blur``, ``weather``, ``digital``), vectorised
over the batch, and run on a torch device for the element-wise types (``DEVICE_CAPABLE``). On 200 natural 32 x 32
images every type changes images by the amount the published generator does, severity by severity (mean absolute
change within 0.8-1.25x and PSNR within 1.5 dB of the reference statistics: ``tests/test_corruptions_fidelity.py``,
table in ``docs/CORRUPTIONS.md``). Differences from the original, all deliberate:

- **Generated corruptions are not bit-identical to the published CIFAR-10-C / CIFAR-100-C files.** The original
  generator sets no random seed and uses OpenCV and ImageMagick. Outputs of the generator are therefore labelled as
  generated, with the generator version (``GeneratedCorruptions.name``: ``"generated-v2-seed0"`` for version 2 and
  seed 0, see ``GENERATOR_VERSION``); use the published files (``CifarCFiles``) to compare with published numbers.
- Snow and motion blur use our line-kernel re-implementation of ImageMagick's motion blur
  (``_common.motion_blur``); frost blends the original's photographs, shipped shrunk as the original uses them.
- Randomness is explicit: one ``numpy.random.Generator`` per image, keyed by (seed, corruption, severity, image id),
  so an image gets the same corruption whatever batch or subset it is generated in, on every device.
- Images of any size are accepted; parameters stay in pixels as published for CIFAR (32 x 32), except for
  elastic_transform whose parameters are fractions of the image size in the original; fog's plasma map has the
  next power-of-two side and is cropped, as the original crops its 32 x 32 map; frost crops photographs enlarged
  when an image does not fit in them (``weather.frost``). ``docs/CORRUPTIONS.md`` says what each input size gets.
- The final conversion truncates to uint8 like the original (``np.uint8`` of a float in [0, 255]), with a 1e-3
  guard so that an unchanged value maps to itself despite float rounding.
"""

from __future__ import annotations

import numpy as np

from ..errors import Rb201Error, check_choice
from ..vocab import CORRUPTIONS
from . import blur, digital, noise, weather
from ._common import CorruptionFn, is_torch, per_image_rngs, to_numpy

#: name -> function(x: float32 N x H x W x C in [0, 1], severity, per-image generators) -> same shape.
REGISTRY: dict[str, CorruptionFn] = {
    "gaussian_noise": noise.gaussian_noise,
    "shot_noise": noise.shot_noise,
    "impulse_noise": noise.impulse_noise,
    "defocus_blur": blur.defocus_blur,
    "glass_blur": blur.glass_blur,
    "motion_blur": blur.motion_blur,
    "zoom_blur": blur.zoom_blur,
    "snow": weather.snow,
    "frost": weather.frost,
    "fog": weather.fog,
    "brightness": digital.brightness,
    "contrast": digital.contrast,
    "elastic_transform": digital.elastic_transform,
    "pixelate": digital.pixelate,
    "jpeg_compression": digital.jpeg_compression,
}

#: Types whose arithmetic runs on a torch device when ``device`` is not "cpu" (random draws stay on the host).
DEVICE_CAPABLE: frozenset[str] = frozenset(
    {"gaussian_noise", "shot_noise", "impulse_noise", "fog", "frost", "brightness", "contrast", "pixelate"}
)

#: Types that draw random numbers (the others are deterministic functions of the image).
STOCHASTIC: frozenset[str] = frozenset(
    {
        "gaussian_noise",
        "shot_noise",
        "impulse_noise",
        "glass_blur",
        "motion_blur",
        "snow",
        "frost",
        "fog",
        "elastic_transform",
    }
)

SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)

#: Version of the generator's output, bumped whenever the images it makes for a given seed change. It is part of
#: the name of generated corruption sets, of the identity (and so the directory name) of shards evaluated on them
#: and of the ``source`` of their result rows, so results of two versions never resume or merge into one another.
#: 1: procedural frost textures, a real swap in glass blur, Tiny-ImageNet's motion-blur table.
#: 2: the published frost photographs, glass blur's copy, CIFAR's motion-blur table.
GENERATOR_VERSION = 2
#: Identity of "generated" corruptions in shard identities: the generator version included.
GENERATED_ID = f"generated-v{GENERATOR_VERSION}"
MIN_SIDE = 8
_CHUNK = 1024  # images per chunk: bounds the float working memory; results do not depend on it


def list_corruptions() -> list[str]:
    """The 15 corruption names, in protocol order."""
    return list(CORRUPTIONS)


def check_corruption(name: str) -> str:
    """``name`` if it is one of the 15 corruptions, else an error listing them."""
    return check_choice("corruption", name, CORRUPTIONS)


def check_severity(severity: int) -> int:
    """``severity`` if it is an integer in 1..5, else an error."""
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 1 <= severity <= 5:
        raise Rb201Error(f"severity must be an integer in 1..5, got {severity!r}")
    return int(severity)


def _check_images(images: np.ndarray) -> None:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        got = f"{images.dtype} array of shape {images.shape}" if isinstance(images, np.ndarray) else type(images)
        raise Rb201Error(f"images must be a uint8 array N x C x H x W, got {got}")
    n, c, h, w = images.shape
    if c not in (1, 3):
        raise Rb201Error(f"images must have 1 or 3 channels (N x C x H x W), got C={c} in shape {images.shape}")
    if min(h, w) < MIN_SIDE or n == 0:
        raise Rb201Error(f"images must be non-empty with H, W >= {MIN_SIDE}, got shape {images.shape}")


def _to_uint8(y: np.ndarray) -> np.ndarray:
    return np.floor(np.clip(y, 0.0, 1.0) * 255.0 + 1e-3).astype(np.uint8)


def corrupt(
    images: np.ndarray,
    name: str,
    severity: int,
    seed: int = 0,
    device: str = "cpu",
    *,
    image_ids: np.ndarray | None = None,
) -> np.ndarray:
    """Corrupt uint8 N x C x H x W images (C = 1 or 3) with corruption ``name`` at ``severity`` (1..5).

    Deterministic for a given ``seed``: image i's randomness is keyed by ``image_ids[i]`` (default: its position
    0..N-1; pass the positions in the full split so that subsets get the same corruption as the full set).
    ``device`` other than "cpu" runs the element-wise types (``DEVICE_CAPABLE``) with torch on that device; the
    result is the same up to float rounding. Returns uint8 of the same shape."""
    check_corruption(name)
    severity = check_severity(severity)
    _check_images(images)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise Rb201Error(f"seed must be a non-negative integer, got {seed!r}")
    n = len(images)
    if image_ids is None:
        ids = np.arange(n, dtype=np.int64)
    else:
        ids = np.asarray(image_ids)
        if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer) or (n and ids.min() < 0):
            raise Rb201Error(f"image_ids must be {n} non-negative integers, got shape {ids.shape} {ids.dtype}")
    use_torch = device != "cpu" and name in DEVICE_CAPABLE
    tdevice = _torch_device(device) if device != "cpu" else None
    fn = REGISTRY[name]
    cid = CORRUPTIONS.index(name)
    out = np.empty_like(images)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        x = images[start:stop].transpose(0, 2, 3, 1).astype(np.float32) / np.float32(255.0)
        if use_torch:
            import torch

            x = torch.from_numpy(x).to(tdevice)
        rngs = per_image_rngs(int(seed), cid, severity, ids[start:stop])
        y = fn(x, severity, rngs)
        if is_torch(y):
            y = ((y.clip(0.0, 1.0) * 255.0 + 1e-3).floor()).to(torch.uint8)
            out[start:stop] = to_numpy(y).transpose(0, 3, 1, 2)
        else:
            out[start:stop] = _to_uint8(np.asarray(y)).transpose(0, 3, 1, 2)
    return out


def _torch_device(device: str):  # noqa: ANN202 - returns torch.device, torch imported lazily
    import torch

    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise Rb201Error(f"unknown device {device!r}; allowed: 'cpu', 'cuda', 'cuda:N', 'mps', ...") from e


from .sources import CifarCFiles, GeneratedCorruptions, read_cifar_c  # noqa: E402

__all__ = [
    "CORRUPTIONS",
    "DEVICE_CAPABLE",
    "GENERATED_ID",
    "GENERATOR_VERSION",
    "REGISTRY",
    "STOCHASTIC",
    "SEVERITIES",
    "CifarCFiles",
    "GeneratedCorruptions",
    "check_corruption",
    "check_severity",
    "corrupt",
    "list_corruptions",
    "read_cifar_c",
]
