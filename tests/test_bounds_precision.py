"""Certified bounds are sound in floating point, checked against a high-precision interval propagation written here
independently of ``bounds_ops``; float32 bound propagation is not, and certification cannot use it.

* Float32 cannot hold the features of a network built for that (``_far_from_float32_network``): every pooled
  feature lies in [2^24, 2^25), where float32 numbers are the even integers, while the exact margin bounds are about
  +-1. So on every IEEE machine, whatever its kernels and summation order, the float32 bound is an even integer,
  off by at least the distance of the exact bound to the nearest even integer (here about 1): the certified flag of
  such a point is decided by rounding. float64 holds the same features to 4e-9.
* On a trained network (``tiny_model()`` of ``test_attacks``: one NB201 cell per stage, C=6, two epochs of Adam on
  2500 MNIST-5k digits) the sound bounds lie below the reference and their rounding allowance is far below the
  float32 error. Its weights, and so its margins, differ between float paths; the labels and the radius are
  chosen so that both certified and uncertified points occur on any of them (``setting``).

The reference runs in numpy's ``longdouble`` where that is the x87 80-bit format (64-bit significand, 2^11 times
finer than float64), else in float64.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from test_attacks import test_images, tiny_model

from robustbench201.measures.bounds import ball_box, certify, margin_lower_bound, sound_margin_lower_bound
from robustbench201.models.network import create_model
from robustbench201.models.ops import Pooling, ReLUConvBN, ResNetBasicBlock
from robustbench201.space import EDGES

HIGH = np.finfo(np.longdouble).nmant == 63  # x87 extended precision (fast); quad precision in software is slow
REF = np.longdouble if HIGH else np.float64
REF_TOL = 1e-12 if HIGH else 1e-9  # relative rounding of the reference itself on this network (measured 1e-10 in f64)
EPS = 1e-4  # 1/255 units: the largest radius tried on the trained network (halved until some point certifies)
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
    """The trained network, N test digits, labels of both signs of margin and a radius at which both outcomes occur.

    Labels: the network's top class for even rows (clean margin > 0) and its second class for odd rows (clean margin
    < 0), so every odd row is uncertifiable at any radius (a sound bound lies below the clean margin). Radius: EPS,
    halved until the reference bound of some even row among the first 24 exceeds ``CERTIFY_TOL``: the IBP bound
    tends to the clean margin as the radius goes to 0, so this ends on every network."""
    model = tiny_model()
    x, _ = test_images(N)
    with torch.no_grad():
        ranked = model(x).argsort(1, descending=True)
    y = torch.where(torch.arange(N) % 2 == 0, ranked[:, 0], ranked[:, 1])
    model64 = copy.deepcopy(model).double()
    eps = EPS
    for _ in range(60):
        ref = reference_ibp_margin(model, *ball_box(x.double(), eps), y)
        if (ref[:24:2] > CERTIFY_TOL * (1 + np.abs(ref[:24:2]))).any():
            break
        eps /= 2
    else:
        raise AssertionError(f"no row certifies down to eps {eps}: the clean margins {ref[::2]} are not positive?")
    assert (ref[1::2] < 0).all()
    with torch.no_grad():
        plain64 = margin_lower_bound(model64, x.double(), y, eps, "ibp").numpy()
    # the reference is itself correct: it agrees with the float64 bound code to float64 rounding
    assert np.abs(plain64 - ref).max() <= 1e-8 * (1 + np.abs(ref).max())
    return model, model64, x, y, eps, ref


CERTIFY_TOL = 1e-5  # relative: above the sound path's allowance plus the float32 rounding of certify's result


def _far_from_float32_network() -> torch.nn.Module:
    """An NB201 network whose exact IBP margin bound at image x is about +-2 mean(x), computed through features that
    float32 cannot hold (module docstring). Every parameter is a small integer or 2^24, every BN has eps 0 and unit
    variance (so it is exactly ``weight * x + bias``):

    * stem: the 3x3 convolution's centre tap is 2 (the image doubled), BN the identity;
    * cells: the output node is the input node through a skip edge;
    * reduction blocks: the residual branch is zeroed by its BNs, the shortcut's 1x1 convolution copies channel 0
      (so channel 0 becomes the 4x4 block means of 2x);
    * last BN: channel 0 gets + 2^24, channel 1 is the constant 2^24, the rest 0; after ReLU and pooling, feature 0
      is 2^24 + 2 mean(x) and feature 1 is 2^24;
    * classifier: two classes, logit 0 = feature 0, logit 1 = feature 1, so the margin of class 0 is 2 mean(x).
    """
    model = create_model(
        "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|",
        None,
        num_classes=2,
        channels=1,
        n_cells=1,
        in_channels=1,
    ).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eps = 0.0
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
        model.stem[0].weight[0, 0, 1, 1] = 2.0
        model.stem[1].weight.fill_(1.0)
        for cell in model.cells:
            if isinstance(cell, ResNetBasicBlock):
                cell.downsample[1].weight[0, 0, 0, 0] = 1.0
        bn = model.lastact[0]
        bn.weight[0] = 1.0
        bn.bias[:2] = 2.0**24
        model.classifier.weight[0, 0] = model.classifier.weight[1, 1] = 1.0
    return model


def test_float32_bounds_are_off_by_more_than_certification_tolerates_where_float32_cannot_hold_the_features():
    model = _far_from_float32_network()
    # images of mean m exactly (m +- 1/4 on a checkerboard), so the exact bound of class 0 is about 2m, of class 1
    # about -2m: between 0.875 and 1.125 in size, at least 0.875 from every even integer
    board = (torch.arange(28)[:, None] + torch.arange(28)[None, :]) % 2 * 0.5 - 0.25
    means = torch.tensor([0.4375, 0.5, 0.5625])
    x = (means[:, None, None] + board).repeat(2, 1, 1).unsqueeze(1)
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    ref = reference_ibp_margin(model, *ball_box(x.double(), EPS), y).astype(np.float64)
    assert np.allclose(np.abs(ref), 2 * means.repeat(2).numpy(), atol=1e-5)
    with torch.no_grad():
        f32 = margin_lower_bound(model, x, y, EPS, "ibp").double().numpy()
        sound = sound_margin_lower_bound(copy.deepcopy(model).double(), x.double(), y, EPS, "ibp").numpy()
    assert (f32 % 2 == 0).all(), f32  # float32 can only give even integers here
    to_even = np.abs(ref - 2 * np.round(ref / 2))
    err = np.abs(f32 - ref)
    assert (err >= to_even - 1e-9).all() and err.min() > 0.8  # off by about the whole margin
    # float64 holds the features (its spacing at 2^24 is 2^-28 = 4e-9): the sound bound is below the exact one, by an
    # allowance that sums such roundings over the terms of each layer (1e-6 here), far below the float32 error
    assert (sound <= ref + 1e-9).all() and (ref - sound).max() < 1e-4 * to_even.min()
    res = certify(model, x, y, [EPS], "ibp")
    assert np.array_equal(res["certified"][0].numpy(), ref > 0)  # |ref| >= 0.875: far beyond the allowance


def test_certified_ibp_bounds_are_below_the_reference_and_flags_match(setting):
    model, model64, x, y, eps, ref = setting
    with torch.no_grad():
        sound = sound_margin_lower_bound(model64, x.double(), y, eps, "ibp").numpy()
        f32 = margin_lower_bound(model, x, y, eps, "ibp").double().numpy()
    scale = 1 + np.abs(ref)
    assert (sound <= ref + REF_TOL * scale).all()  # sound
    # and tight: the allowance bounds float64 rounding (2^-53) through the layers whose float32 rounding (2^-24) gave
    # the float32 error, so it is about 2^-29 times that error (times the ratio of worst-case to actual rounding)
    err32 = np.abs(f32 - ref)
    assert (ref - sound).max() <= 1e-4 * err32.max()
    res = certify(model, x, y, [eps], "ibp", batch_size=20)
    lb = res["margin_lb"][0].double().numpy()
    assert res["margin_lb"].dtype == torch.float32 and (lb <= sound + 1e-12 * scale).all()  # rounded down
    assert ((ref - lb) <= (ref - sound) + 2.0**-23 * np.abs(sound) + 1e-12 * scale).all()  # by one float32 rounding
    # flags: certified wherever the exact bound exceeds the allowance, never where it is <= 0; both occur
    assert ((ref - lb) <= CERTIFY_TOL * scale).all()
    sure = ref > CERTIFY_TOL * scale
    assert res["certified"][0].numpy()[sure].all() and not res["certified"][0].numpy()[ref <= 0].any()
    assert sure.any() and (ref <= 0).any()


def test_certified_crown_ibp_bounds_are_sound_and_match_float64_flags(setting):
    model, model64, x, y, eps, ref = setting
    x, y, ref = x[:24], y[:24], ref[:24]
    with torch.no_grad():
        ref64 = margin_lower_bound(model64, x.double(), y, eps, "crown-ibp").numpy()
    res = certify(model, x, y, [eps], "crown-ibp", batch_size=24)
    lb = res["margin_lb"][0].double().numpy()
    scale = 1 + np.abs(ref64)
    assert (lb <= ref64 + 1e-9 * scale).all() and ((ref64 - lb) <= CERTIFY_TOL * scale).all()
    assert (ref64 >= ref - 1e-8 * scale).all()  # CROWN-IBP is the maximum of IBP and the linear bound
    sure = ref64 > CERTIFY_TOL * scale
    assert res["certified"][0].numpy()[sure].all() and not res["certified"][0].numpy()[ref64 <= 0].any()
    assert sure.any() and (ref64 <= 0).any()  # some even row certifies by IBP already; odd rows never do
