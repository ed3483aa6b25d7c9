"""Noise corruptions: gaussian_noise, shot_noise, impulse_noise.

Severity parameters are those of the CIFAR generator ``make_cifar_c.py`` (Hendrycks & Dietterich, ICLR 2019).
All three run on a torch device; the random draws come from the per-image numpy generators.
"""

from __future__ import annotations

import numpy as np

from ._common import Array, Rngs, like, stack_draws, to_numpy, where

#: Standard deviation of the additive Gaussian noise on the [0, 1] scale (make_cifar_c.py ``gaussian_noise``).
GAUSSIAN_NOISE = (0.04, 0.06, 0.08, 0.09, 0.10)
#: Photon count scale c: out = Poisson(x * c) / c (make_cifar_c.py ``shot_noise``).
SHOT_NOISE = (500, 250, 100, 75, 50)
#: Fraction of values replaced by salt or pepper (make_cifar_c.py ``impulse_noise``, skimage ``s&p``).
IMPULSE_NOISE = (0.01, 0.02, 0.03, 0.05, 0.07)


def gaussian_noise(x: Array, severity: int, rngs: Rngs) -> Array:
    """x + N(0, c^2) per value, c = GAUSSIAN_NOISE[severity - 1]."""
    c = GAUSSIAN_NOISE[severity - 1]
    shape = tuple(x.shape[1:])
    noise = stack_draws(rngs, lambda g: g.standard_normal(shape, dtype=np.float32))
    return x + like(noise * np.float32(c), x)


def shot_noise(x: Array, severity: int, rngs: Rngs) -> Array:
    """Poisson(x * c) / c per value, c = SHOT_NOISE[severity - 1] (variance x / c)."""
    c = SHOT_NOISE[severity - 1]
    lam = to_numpy(x).astype(np.float64) * c
    counts = np.stack([g.poisson(lam_i) for g, lam_i in zip(rngs, lam)]).astype(np.float32)
    return like(counts / np.float32(c), x)


def impulse_noise(x: Array, severity: int, rngs: Rngs) -> Array:
    """Salt-and-pepper noise as ``skimage.util.random_noise(mode='s&p', amount=c)``: each value is replaced with
    probability c, by 1 or 0 with equal probability (independently per channel, as in the original)."""
    c = IMPULSE_NOISE[severity - 1]
    shape = tuple(x.shape[1:])
    u = stack_draws(rngs, lambda g: g.random((2, *shape), dtype=np.float32))
    flipped = like((u[:, 0] < c).astype(np.float32), x)
    salt = like((u[:, 1] < 0.5).astype(np.float32), x)
    return where(flipped > 0, salt, x)
