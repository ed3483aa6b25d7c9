"""Certified bounds are sound in floating point: checked against a high-precision interval propagation on a trained
network, where float32 bound propagation is off by far more than certification can tolerate.

The network is ``tiny_model()`` of ``test_attacks`` (one NB201 cell per stage, C=6, trained with Adam for two epochs
on 2500 MNIST-5k digits): training makes the intermediate intervals large, so the rounding of each interval endpoint
is amplified through the layers. The reference interval propagation is written here independently of
``bounds_ops`` and runs in numpy's ``longdouble`` where that is the x87 80-bit format (64-bit significand, 2^11 times
finer than float64), else in float64.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from test_attacks import test_images, tiny_model

from robustbench201.measures.bounds import ball_box, certify, margin_lower_bound, sound_margin_lower_bound
from robustbench201.models.ops import Pooling, ReLUConvBN, ResNetBasicBlock
from robustbench201.space import EDGES

HIGH = np.finfo(np.longdouble).nmant == 63  # x87 extended precision (fast); quad precision in software is slow
REF = np.longdouble if HIGH else np.float64
REF_TOL = 1e-12 if HIGH else 1e-9  # relative rounding of the reference itself on this network (measured 1e-10 in f64)
EPS = 1e-4  # 1/255 units: small enough that many margin bounds lie near zero for this network
N = 48


def _ref(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy().astype(REF)


def _conv(x: np.ndarray, m: torch.nn.Conv2d, absolute: bool = False) -> np.ndarray:
    w = np.abs(_ref(m.weight)) if absolute else _ref(m.weight)
    s, p = m.stride[0], m.padding[0]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    cols = np.lib.stride_tricks.sliding_window_view(xp, w.shape[2:], axis=(2, 3))[:, :, ::s, ::s]
    out = np.tensordot(cols, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
    if m.bias is not None and not absolute:
        out = out + _ref(m.bias)[None, :, None, None]
    return out


def _conv_iv(iv, m):  # type: ignore[no-untyped-def]
    mid, rad = (iv[1] + iv[0]) / 2, (iv[1] - iv[0]) / 2
    c, r = _conv(mid, m), _conv(rad, m, absolute=True)
    return c - r, c + r


def _chan_iv(iv, scale, shift):  # type: ignore[no-untyped-def]
    s, t = scale[None, :, None, None], shift[None, :, None, None]
    mid, rad = (iv[1] + iv[0]) / 2, (iv[1] - iv[0]) / 2
    return mid * s + t - rad * np.abs(s), mid * s + t + rad * np.abs(s)


def _bn_iv(iv, m):  # type: ignore[no-untyped-def]
    s = _ref(m.weight) / np.sqrt(_ref(m.running_var) + REF(m.eps))
    return _chan_iv(iv, s, _ref(m.bias) - _ref(m.running_mean) * s)


def _relu_iv(iv):  # type: ignore[no-untyped-def]
    return np.maximum(iv[0], 0), np.maximum(iv[1], 0)


def _pool3_iv(iv):  # type: ignore[no-untyped-def]
    """AvgPool2d(3, 1, 1, count_include_pad=False)."""
    h, w = iv[0].shape[2:]
    count = np.lib.stride_tricks.sliding_window_view(np.pad(np.ones((h, w), dtype=REF), 1), (3, 3)).sum((2, 3))
    pad = ((0, 0), (0, 0), (1, 1), (1, 1))
    return tuple(
        np.lib.stride_tricks.sliding_window_view(np.pad(x, pad), (3, 3), (2, 3)).sum((4, 5)) / count for x in iv
    )


def _relu_conv_bn_iv(iv, m):  # type: ignore[no-untyped-def]
    return _bn_iv(_conv_iv(_relu_iv(iv), m.op[1]), m.op[2])


def _cell_iv(iv, cell):  # type: ignore[no-untyped-def]
    nodes = [iv]
    for j in range(1, 4):
        acc = (np.zeros_like(iv[0]), np.zeros_like(iv[0]))
        for k, (s, d) in enumerate(EDGES):
            op = cell.layers[k]
            if d != j or cell.arch.ops[k] == 0:
                continue
            if isinstance(op, ReLUConvBN):
                out = _relu_conv_bn_iv(nodes[s], op)
            else:
                out = _pool3_iv(nodes[s]) if isinstance(op, Pooling) else nodes[s]
            acc = (acc[0] + out[0], acc[1] + out[1])
        nodes.append(acc)
    return nodes[3]


def reference_ibp_margin(model: torch.nn.Module, x_lower: torch.Tensor, x_upper: torch.Tensor, y: torch.Tensor):
    """IBP lower bound of ``min_{j != y} f_y - f_j`` over the box, the last layer folded into the margin (as in
    ``bounds.margin_bounds``), propagated in ``REF`` precision with this module's own rules."""
    mean, std = _ref(model.normalize.mean).ravel(), _ref(model.normalize.std).ravel()
    iv = _chan_iv((_ref(x_lower), _ref(x_upper)), 1 / std, -mean / std)
    iv = _bn_iv(_conv_iv(iv, model.stem[0]), model.stem[1])
    for cell in model.cells:
        if isinstance(cell, ResNetBasicBlock):
            pooled = tuple(x.reshape(*x.shape[:2], x.shape[2] // 2, 2, x.shape[3] // 2, 2).mean((3, 5)) for x in iv)
            short = _conv_iv(pooled, cell.downsample[1])
            main = _relu_conv_bn_iv(_relu_conv_bn_iv(iv, cell.conv_a), cell.conv_b)
            iv = (short[0] + main[0], short[1] + main[1])
        else:
            iv = _cell_iv(iv, cell)
    f_lo, f_hi = (x.mean((2, 3)) for x in _relu_iv(_bn_iv(iv, model.lastact[0])))
    W, b = _ref(model.classifier.weight), _ref(model.classifier.bias)
    out = np.empty(len(y), dtype=REF)
    for i, yi in enumerate(y.tolist()):
        A = W[yi][None] - W
        v = (np.maximum(A, 0) * f_lo[i] + np.minimum(A, 0) * f_hi[i]).sum(1) + b[yi] - b
        v[yi] = np.inf
        out[i] = v.min()
    return out


@pytest.fixture(scope="module")
def setting():
    model = tiny_model()
    x, y = test_images(N)
    model64 = copy.deepcopy(model).double()
    lo, hi = ball_box(x.double(), EPS)
    ref = reference_ibp_margin(model, lo, hi, y)
    with torch.no_grad():
        plain64 = margin_lower_bound(model64, x.double(), y, EPS, "ibp").numpy()
    # the reference is itself correct: it agrees with the float64 bound code to float64 rounding
    assert np.abs(plain64 - ref).max() <= 1e-8 * (1 + np.abs(ref).max())
    return model, model64, x, y, ref


def test_float32_bounds_of_a_trained_network_are_off_by_more_than_certification_tolerates(setting):
    model, model64, x, y, ref = setting
    with torch.no_grad():
        f32 = margin_lower_bound(model, x, y, EPS, "ibp").double().numpy()
        sound = sound_margin_lower_bound(model64, x.double(), y, EPS, "ibp").numpy()
    err = np.abs(f32 - ref.astype(np.float64))
    assert err.max() > 1e-3 * np.abs(ref).max()  # far beyond float32's 6e-8 unit roundoff
    # some margin lies closer to 0 than the float32 error: its float32 flag is decided by rounding
    assert err.max() > 10 * np.abs(ref).min()
    # the sound bound's rounding allowance is orders of magnitude below the float32 error
    assert (ref - sound).max() < 1e-4 * err.max()


def test_certified_ibp_bounds_are_below_the_reference_and_flags_match(setting):
    model, model64, x, y, ref = setting
    with torch.no_grad():
        sound = sound_margin_lower_bound(model64, x.double(), y, EPS, "ibp").numpy()
    scale = 1 + np.abs(ref)
    assert (sound <= ref + REF_TOL * scale).all()  # sound
    assert ((ref - sound) <= 1e-6 * scale).all()  # and tight: the allowance is tiny in float64
    res = certify(model, x, y, [EPS], "ibp", batch_size=20)
    lb = res["margin_lb"][0].double().numpy()
    assert res["margin_lb"].dtype == torch.float32 and (lb <= sound + 1e-12 * scale).all()  # rounded down
    assert ((ref - lb) <= 1e-5 * scale).all()
    assert np.abs(ref).min() > 1e-5  # no margin within the allowance of 0, so the flags must agree exactly
    assert np.array_equal(res["certified"][0].numpy(), ref > 0)
    assert 0 < int(res["certified"][0].sum()) < N  # both outcomes occur


def test_certified_crown_ibp_bounds_are_sound_and_match_float64_flags(setting):
    model, model64, x, y, ref = setting
    x, y = x[:24], y[:24]
    with torch.no_grad():
        ref64 = margin_lower_bound(model64, x.double(), y, EPS, "crown-ibp").numpy()
        f32 = margin_lower_bound(model, x, y, EPS, "crown-ibp").double().numpy()
    res = certify(model, x, y, [EPS], "crown-ibp", batch_size=24)
    lb = res["margin_lb"][0].double().numpy()
    scale = 1 + np.abs(ref64)
    assert (lb <= ref64 + 1e-9 * scale).all() and ((ref64 - lb) <= 1e-5 * scale).all()
    assert np.abs(ref64).min() > 1e-5
    assert np.array_equal(res["certified"][0].numpy(), ref64 > 0)
    assert np.abs(f32 - ref64).max() > 100 * (ref64 - lb).max()  # float32 is off by far more than the allowance
