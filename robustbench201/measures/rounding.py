"""Rounding allowances that make the bound propagation of :mod:`~.bounds_ops` sound in floating point.

Why: the interval and linear bounds are derived for real arithmetic. Computed in floating point, the interval
endpoints are each rounded to about ``u * |value|`` (``u`` the unit roundoff), and interval propagation amplifies
those errors like it amplifies the input radius: on a briefly trained C=6, N=1 MNIST network at eps 1e-4/255 the
float32 IBP margin bound was off by 0.11 from the float64 one on bounds of magnitude about 6, enough to flip
certified flags (see ``tests/test_bounds_precision.py``). A flag must not depend on that.

What: with a :class:`Rounding` in the :class:`~.bounds_ops.BoundContext`, every rule keeps its result an
enclosure of the real-arithmetic one (the function of the stored parameters, computed exactly):

* affine leaves (conv, BatchNorm, normalization, average pools, linear) widen their output interval by
  ``2 gamma_n S`` with ``S = |M| max(|lower|, |upper|) + |b|`` (``|M|`` the map with absolute weights) and ``n``
  the number of rounded operations per output element; ``gamma_n = n u / (1 - n u)`` bounds the error of any
  n-term dot product in any summation order (Higham, *Accuracy and Stability of Numerical Algorithms*, 3.1).
  For BatchNorm and the normalization, ``S`` also covers the rounding of the folded scale and shift;
* sums of intervals (cell nodes, residual blocks, mixed edges) are rounded outward by one ulp
  (:func:`torch.nextafter` after each correctly rounded operation);
* the linear backward pass collects, in :attr:`Rounding.delta` (per sample and specification), a bound on how
  far the computed linear functional can lie above a valid one: ``gamma_n sum |A| S`` per affine leaf (``A`` the
  functional on its output), ``gamma_n sum |A| max(|l|, |u|)`` per ReLU (its rounding and that of the chord,
  which may make the rounded upper line cut the ReLU by about ``3 u max(|l|, |u|)``), and ``gamma_2 |sum|`` per
  sum of functionals or of biases;
* the caller subtracts the allowance of the final concretization and ``2 delta`` (the factor 2 absorbs the
  rounding of the allowance arithmetic itself), then rounds down.

Assumptions: dot products, convolutions and reductions run as sums of products (im2col and GEMM, direct loops or
reduction trees, with or without fused multiply-add), which the standard bound covers; FFT and Winograd
convolutions are not covered, so :func:`~.bounds.certify` disables cuDNN on CUDA. ``rsqrt`` is accurate to 2 ulp.
No overflow (an overflowing bound is infinite and certifies nothing); gradual underflow is covered by the
absolute :data:`TINY` added to every allowance.

Cost: one more convolution of ``|W|`` per convolution in the interval pass, and one elementwise product-sum of
``|A|`` per leaf in the backward pass (measured in :mod:`~.bounds`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import torch
from torch import Tensor, nn

from ..errors import Rb201Error
from ..models.network import Normalize
from ..models.ops import Identity, Pooling, ReLUConvBN, ResNetBasicBlock, Zero
from .bounds_ops import BoundContext, Interval, _norm_affine, _pair

#: absolute allowance added to every lower bound: covers gradual underflow (errors of at most 2^-1074 per
#: operation, amplified by the network), far below any margin of interest
TINY = 1e-250

#: module types whose interval and backward rules are exact or only combine the rules of their children
_EXACT = (nn.ReLU, Identity, nn.Identity, Zero, nn.Sequential, ReLUConvBN, Pooling, ResNetBasicBlock)

AbsMap = Callable[[nn.Module, Tensor, BoundContext], tuple[Tensor, int, int]]


def unit_roundoff(dtype: torch.dtype) -> float:
    """``u``: half the distance from 1 to the next float of ``dtype`` (2^-53 for float64, 2^-24 for float32)."""
    return torch.finfo(dtype).eps / 2


def gamma(n: int, dtype: torch.dtype) -> float:
    """``gamma_n = n u / (1 - n u)``: bound on the relative error of an n-operation sum of products."""
    nu = n * unit_roundoff(dtype)
    if nu >= 0.5:
        raise Rb201Error(f"rounding allowance undefined: {n} operations per element in {dtype} (n u >= 1/2)")
    return nu / (1 - nu)


def _down(t: Tensor) -> Tensor:
    return torch.nextafter(t, torch.full_like(t, -torch.inf))


def _up(t: Tensor) -> Tensor:
    return torch.nextafter(t, torch.full_like(t, torch.inf))


def _mag(lower: Tensor, upper: Tensor) -> Tensor:
    return torch.maximum(lower.abs(), upper.abs())


def _dot(A: Tensor, S: Tensor) -> Tensor:
    """``sum |A| * S`` per sample and specification: A (N, S, *shape), S (N, *shape) -> (N, S)."""
    return torch.bmm(A.abs().flatten(2), S.flatten(1).unsqueeze(-1)).squeeze(-1)


# ---- absolute maps: S = |M| mag + |b| per output element, n forward, n backward ----------------------------------
def _abs_conv(m: nn.Conv2d, mag: Tensor, ctx: BoundContext) -> tuple[Tensor, int, int]:
    S = m._conv_forward(mag, m.weight.abs(), m.bias.abs() if m.bias is not None else None)
    k = m.kernel_size[0] * m.kernel_size[1]
    fan_in, fan_out = m.in_channels // m.groups * k, m.out_channels * k
    return S, 2 * fan_in + 8, fan_out + S[0].numel() + 8


def _chan(v: Tensor, like: Tensor) -> Tensor:
    return v.view((1, -1) + (1,) * (like.dim() - 2))


def _abs_bn(m: nn.BatchNorm2d, mag: Tensor, ctx: BoundContext) -> tuple[Tensor, int, int]:
    # the folded scale s and shift t = b - mean s carry a few roundings each: cover |s| mag + |mean s| + |b|
    scale, shift = ctx.affine[m]  # recorded by the interval rule whenever a Rounding is present
    const = (shift - (m.bias if m.bias is not None else 0.0)).abs() + (m.bias.abs() if m.bias is not None else 0.0)
    S = mag * _chan(scale.abs(), mag) + _chan(const, mag)
    return S, 16, S[0].numel() + 16


def _abs_normalize(m: Normalize, mag: Tensor, ctx: BoundContext) -> tuple[Tensor, int, int]:
    scale, shift = _norm_affine(m)
    S = mag * _chan(scale.abs(), mag) + _chan(shift.abs(), mag)
    return S, 16, S[0].numel() + 16


def _abs_avgpool(m: nn.AvgPool2d, mag: Tensor, ctx: BoundContext) -> tuple[Tensor, int, int]:
    k = _pair(m.kernel_size)
    return m(mag), 2 * k[0] * k[1] + 8, k[0] * k[1] + 8


def _abs_gap(m: nn.AdaptiveAvgPool2d, mag: Tensor, ctx: BoundContext) -> tuple[Tensor, int, int]:
    hw = mag.shape[2] * mag.shape[3]
    return m(mag), 2 * hw + 8, hw + 8


def _abs_linear(m: nn.Linear, mag: Tensor, ctx: BoundContext) -> tuple[Tensor, int, int]:
    S = torch.nn.functional.linear(mag, m.weight.abs(), m.bias.abs() if m.bias is not None else None)
    return S, 2 * m.in_features + 8, m.out_features + 8


_ABS: dict[type, AbsMap] = {
    nn.Conv2d: _abs_conv,
    nn.BatchNorm2d: _abs_bn,
    Normalize: _abs_normalize,
    nn.AvgPool2d: _abs_avgpool,
    nn.AdaptiveAvgPool2d: _abs_gap,
    nn.Linear: _abs_linear,
}


def _abs_map(module: nn.Module) -> AbsMap | None:
    for cls in type(module).__mro__:
        fn = _ABS.get(cls)
        if fn is not None:
            return fn
    if isinstance(module, _EXACT):
        return None
    raise Rb201Error(
        f"no rounding allowance for module type {type(module).__name__}; sound bounds support "
        + ", ".join(sorted(c.__name__ for c in (*_ABS, *_EXACT)))
    )


class Rounding:
    """Rounding allowances of one bound computation (see the module docstring); pass as ``BoundContext.rounding``.

    :attr:`delta` ((N, S) tensor, or 0.0 before the backward pass) bounds, before the final factor 2, how far the
    linear lower bound of the backward pass can exceed a valid one."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype
        self.u = unit_roundoff(dtype)
        self.delta: Tensor | float = 0.0
        self.scale: dict[nn.Module, tuple[Tensor, int]] = {}  # S and n (backward) of each affine leaf
        self.mag: dict[Hashable, Tensor] = {}  # input magnitudes of nodes where functionals are summed

    # ---- interval pass ----
    def leaf_forward(
        self, module: nn.Module, lower: Tensor, upper: Tensor, out: Interval, ctx: BoundContext
    ) -> Interval:
        """Widen a leaf's output interval by its rounding allowance (exact and composite modules pass through)."""
        fn = _abs_map(module)
        if fn is None:
            return out
        S, n_fwd, n_back = fn(module, _mag(lower, upper), ctx)
        if ctx.record:
            self.scale[module] = (S, n_back)
        e = 2 * gamma(n_fwd, self.dtype) * S + TINY
        return _down(out[0] - e), _up(out[1] + e)

    def add(self, a: Interval, b: Interval) -> Interval:
        """Outward-rounded interval sum."""
        return _down(a[0] + b[0]), _up(a[1] + b[1])

    def weighted(self, w: Tensor, iv: Interval) -> Interval:
        """Outward-rounded ``w * interval`` for a scalar ``w >= 0``."""
        return _down(w * iv[0]), _up(w * iv[1])

    def note(self, key: Hashable, lower: Tensor, upper: Tensor, ctx: BoundContext) -> None:
        """Remember the magnitude of a value whose functionals the backward pass sums (cell nodes, block inputs)."""
        if ctx.record:
            self.mag[key] = _mag(lower, upper)

    # ---- backward pass ----
    def _add(self, term: Tensor) -> None:
        self.delta = self.delta + term

    def leaf_backward(self, module: nn.Module, A: Tensor, ctx: BoundContext) -> None:
        """Allowance of one leaf's backward rule, for the functional ``A`` on its output."""
        if isinstance(module, nn.ReLU):
            lo, hi = ctx.pre_relu[module]
            self._add(gamma(lo[0].numel() + 24, self.dtype) * _dot(A, _mag(lo, hi)))
        elif module in self.scale:
            S, n = self.scale[module]
            self._add(gamma(n, self.dtype) * _dot(A, S))
        elif _abs_map(module) is not None:  # exact modules need nothing; unknown ones were refused by _abs_map
            raise Rb201Error(
                f"no recorded interval pass for {type(module).__name__}: run the IBP pass with record=True"
            )

    def sum_functional(self, key: Hashable, total: Tensor) -> None:
        """Allowance of one rounded sum of functionals on the value remembered under ``key``."""
        self._add(gamma(2, self.dtype) * _dot(total, self.mag[key]))

    def weighted_functional(self, key: Hashable, w: Tensor, A: Tensor, n_terms: int) -> None:
        """Allowance of ``w * A`` summed over ``n_terms`` weighted functionals on the value under ``key``."""
        self._add(gamma(n_terms + 2, self.dtype) * w * _dot(A, self.mag[key]))

    def sum_bias(self, total: Tensor | float) -> None:
        """Allowance of one rounded sum of biases."""
        if isinstance(total, Tensor):
            self._add(gamma(2, self.dtype) * total.abs())

    def weighted_bias(self, w: Tensor, b: Tensor | float, n_terms: int) -> None:
        if isinstance(b, Tensor):
            self._add(gamma(n_terms + 2, self.dtype) * w * b.abs())

    def scale_since(self, before: Tensor | float, w: Tensor) -> None:
        """Scale the allowance collected since ``before`` by ``max(w, 1)`` (a mixed op's functional is ``w A``)."""
        self.delta = before + (self.delta - before) * torch.clamp(w.detach(), min=1.0)

    # ---- concretization ----
    def concretize(
        self, A: Tensor, bias: Tensor | float, x_lower: Tensor, x_upper: Tensor, extra_terms: int = 0
    ) -> Tensor:
        """Allowance (N, S) of :func:`~.bounds_ops.concretize_lower` with the same arguments; ``extra_terms``
        counts roundings already in ``A`` and ``bias`` relative to the absolute values passed."""
        mag = _mag(x_lower, x_upper)
        b = bias.abs() if isinstance(bias, Tensor) else abs(bias)
        return gamma(mag[0].numel() + extra_terms + 4, self.dtype) * (_dot(A, mag) + b)

    def lower(self, value: Tensor, allowance: Tensor | float) -> Tensor:
        """A rounded-down ``value - 2 (allowance + delta) - TINY``: a lower bound valid in real arithmetic."""
        return _down(value - 2 * (allowance + self.delta) - TINY)
