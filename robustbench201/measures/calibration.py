"""Calibration: expected calibration error (ECE) with equal-width confidence bins, and the per-sample values a
calibration study needs. Pure NumPy.

ECE (Naeini et al. 2015; Guo et al. 2017, "On calibration of modern neural networks"): the confidences ``c_i`` (the
softmax probability of the predicted class) are put into ``M`` bins of equal width, bin ``m`` (1-based) holding
``(m - 1) / M < c <= m / M`` (a confidence of exactly 0 goes into the first bin); then

    ECE = sum over bins of  |B_m| / n * | accuracy(B_m) - mean confidence(B_m) |

with empty bins contributing nothing. rb201 uses ``M = 15`` (Guo et al.'s choice). The value is in [0, 1].
"""

from __future__ import annotations

import numpy as np

from ..errors import Rb201Error

ECE_BINS = 15


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE of per-sample ``confidence`` (predicted-class probability, in [0, 1]) and ``correct`` flags."""
    conf = np.asarray(confidence, dtype=np.float64).reshape(-1)
    ok = np.asarray(correct, dtype=bool).reshape(-1)
    if conf.shape != ok.shape:
        raise Rb201Error(f"{conf.size} confidences but {ok.size} correct flags; allowed: one of each per sample")
    if conf.size == 0:
        raise Rb201Error("ECE of zero samples is undefined; allowed: at least one sample")
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise Rb201Error(f"n_bins {n_bins!r} out of range; allowed: an integer >= 1")
    if not np.isfinite(conf).all() or conf.min() < 0 or conf.max() > 1:
        raise Rb201Error("confidences must lie in [0, 1]")
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    conf_sum = np.bincount(bins, weights=conf, minlength=n_bins)
    acc_sum = np.bincount(bins, weights=ok.astype(np.float64), minlength=n_bins)
    return float(np.abs(acc_sum - conf_sum).sum() / conf.size)


def per_sample_outputs(probs: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """The per-sample arrays of one evaluated point set: predicted class (int16), softmax probability of the predicted
    class and of the true class (float16; float16 keeps about 3 significant digits, enough for calibration bins)."""
    p = np.asarray(probs, dtype=np.float32)
    y = np.asarray(labels, dtype=np.int64)
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise Rb201Error(f"probabilities of shape {p.shape} do not match {y.shape[0]} labels; allowed: N x K and N")
    pred = p.argmax(1)
    return {
        "pred": pred.astype(np.int16),
        "prob_pred": p[np.arange(len(y)), pred].astype(np.float16),
        "prob_true": p[np.arange(len(y)), y].astype(np.float16),
    }
