"""Certified lower bounds of the classification margin of an NB201 network over an L-inf ball.

The input domain is the L-inf ball of radius ``eps`` around ``x`` intersected with ``[0, 1]`` (images on the
[0, 1] scale; ``eps`` at this public API is in units of 1/255). The specification is the margin
``f_y(x') - f_j(x')`` for each ``j != y``; ``margin_lb`` is a lower bound of its minimum over ``j`` and the ball,
and a point is certified when ``margin_lb > 0``.

Methods:

* ``"ibp"``: interval bound propagation (Gowal et al. 2018) through every layer; the last linear layer is folded
  into the margin specification (``C W``) before concretization, which is tighter than subtracting logit intervals.
* ``"crown-ibp"``: IBP gives the pre-activation interval of every ReLU; then one backward linear pass from the
  margin specification (CROWN's relaxation with the adaptive lower line, Zhang et al. 2018/2020) is concretized over
  the input box. CROWN-IBP is not always tighter than IBP, so the result is the elementwise maximum of both
  (sound, and never looser than IBP by construction).

Floating point. The bounds are derived for real arithmetic; computed in floating point they are not, and interval
propagation amplifies rounding: each interval endpoint is rounded to about ``u |value|`` (``u`` the unit roundoff),
and that error grows through the layers like the input radius does. On a briefly trained network (C=6, N=1,
MNIST-5k, ``tests/test_bounds_precision.py``) at eps 1e-4/255, float32 IBP margin bounds were off by up to 0.11 from a
higher-precision propagation, on bounds of magnitude up to 6 (float64: 1e-10), enough to flip certified flags.
Hence two paths:

* :func:`certify` (and so every ``certified`` row of :func:`robustbench201.evaluate`) and
  :func:`sound_margin_lower_bound` are sound: float64, every interval rounded outward and every rounding of the
  linear pass accounted for (:mod:`~robustbench201.measures.rounding`), so a certified flag holds for the network in
  real arithmetic whatever the rounding. The allowance costs little precision: on the network above it lowered the
  float64 bounds by at most 3e-7, where float32 rounding moved them by up to 0.1.
* :func:`margin_bounds`, :func:`margin_lower_bound` and :func:`interval_bounds` compute in the dtype of the model
  and the box, are differentiable, and are exact only up to that amplified rounding: they are the training signal
  of DSRNA's certified-bound regulariser (``search/dsrna/regularizers.py``, float32 on the supernet), not certificates.

Cost. IBP is two forward passes' worth of convolutions (three with the rounding allowance). The backward pass
carries ``A`` of shape ``(N, K-1, C, H, W)`` (``K`` classes) through transposed convolutions and the ReLU
relaxations, so it costs about ``K-1`` forward passes plus elementwise work, and ``(K-1) C H W`` floats per sample
and live ``A`` (a cell keeps up to three node accumulators alive): for CIFAR-10 at C=16, 32x32, 9 x 16384 floats
= 1.2 MB per sample and ``A`` in float64. The sound path also keeps ``|M| max(|l|, |u|)`` of every affine layer
for the backward pass (about as much again as the ReLU intervals CROWN-IBP keeps anyway). :func:`certify` works in
batches of ``batch_size`` samples to bound that memory. Seconds per epsilon for 16 images, one thread of a shared
2-core CPU VM under load (``bench/bench_bounds.py``):

==================================  =====================  =====================  =====================
network                              method                 float32 / float64      sound (certify)
==================================  =====================  =====================  =====================
full (C=16, N=5), 3x32x32            IBP                    1.79 / 5.06            8.10 (4.5x float32)
full (C=16, N=5), 3x32x32            CROWN-IBP              7.76 / 43.2            46.0 (5.9x float32)
small (C=8, N=1), 1x28x28            IBP                    0.09 / 0.23            0.42 (4.7x float32)
small (C=8, N=1), 1x28x28            CROWN-IBP              0.53 / 2.11            2.57 (4.8x float32)
==================================  =====================  =====================  =====================

Most of the price is float64 itself (CPU convolutions in float64 run without oneDNN); the allowance adds 1.6-1.8x
to IBP and 1.1-1.2x to CROWN-IBP. Peak memory of CROWN-IBP on the full network, 16 images in one batch: 0.19 GB in
float32, 0.79 GB for :func:`certify` (so about 3.2 GB at its default ``batch_size=64``).

Networks: anything with the NB201 skeleton (attributes ``normalize, stem, cells, lastact, global_pooling,
classifier``), i.e. :class:`~robustbench201.models.network.NB201Network` and the search supernet. Bounds are of the
function BatchNorm computes with running statistics (eval mode); a BN without running statistics is held at the
batch statistics of the interval midpoints (see :mod:`robustbench201.measures.bounds_ops`).

Supernet use (DSRNA's certified-bound regularizer). A network with an ``edge_weights()`` method returning the
``(6, 5)`` mixing weights (rows >= 0, NB201 edge and op order) whose cells hold ``edges[k].ops`` (the five op modules
of edge k in NB201 op order) is handled directly: each such cell is bounded as a :class:`~.bounds_ops.Mixed` edge
per NB201 edge, with ``edge_weights()`` evaluated once per call so the bound stays differentiable in alpha::

    lb = margin_lower_bound(supernet, x, y, eps=2.0, method="ibp")   # (N,), differentiable in supernet.alphas
    reg = lb.clamp(max=0).mean()

Other mixed networks pass ``cell_edges=fn`` with ``fn(cell) -> (edges, n_nodes)`` (or None for cells the
registry handles), edges as documented in :mod:`~robustbench201.measures.bounds_ops`.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from ..errors import Rb201Error, check_choice
from ..space import EDGES
from ..vocab import CERTIFIED_METHODS
from .bounds_ops import (
    BoundContext,
    CellEdgesFn,
    Interval,
    Mixed,
    add_bias,
    concretize_lower,
    ibp_forward,
    linear_backward,
)
from .rounding import Rounding

METHODS = CERTIFIED_METHODS
_PARTS = ("normalize", "stem", "cells", "lastact", "global_pooling", "classifier")


def _check_model(model: nn.Module) -> None:
    missing = [p for p in _PARTS if not hasattr(model, p)]
    if missing or not isinstance(model.classifier, nn.Linear):
        raise Rb201Error(
            f"bounds need a network with the NB201 skeleton ({', '.join(_PARTS)}; Linear classifier); "
            f"{type(model).__name__} lacks {', '.join(missing) or 'a Linear classifier'}"
        )


def _mixed_cell_edges(model: nn.Module) -> CellEdgesFn | None:
    """The supernet convention: ``model.edge_weights()`` (6 x 5) and cells with ``edges[k].ops``."""
    fn = getattr(model, "edge_weights", None)
    if not callable(fn):
        return None
    weights = fn()

    def edges_of(cell: nn.Module) -> tuple[list, int] | None:
        edges = getattr(cell, "edges", None)
        if not isinstance(edges, nn.ModuleList) or len(edges) != len(EDGES):
            return None
        if not all(hasattr(e, "ops") for e in edges):
            return None
        return [(s, d, Mixed(list(edges[k].ops), weights[k])) for k, (s, d) in enumerate(EDGES)], 4

    return edges_of


def _features_ibp(model: nn.Module, x_lower: Tensor, x_upper: Tensor, ctx: BoundContext) -> Interval:
    lo, hi = ibp_forward(model.normalize, x_lower, x_upper, ctx)
    lo, hi = ibp_forward(model.stem, lo, hi, ctx)
    for cell in model.cells:
        lo, hi = ibp_forward(cell, lo, hi, ctx)
    lo, hi = ibp_forward(model.lastact, lo, hi, ctx)
    lo, hi = ibp_forward(model.global_pooling, lo, hi, ctx)
    return lo.flatten(1), hi.flatten(1)


def _features_backward(model: nn.Module, A: Tensor, ctx: BoundContext) -> tuple[Tensor | None, Tensor | float]:
    """Pull ``A`` on the pooled features back to the [0, 1] input; returns (A_input, bias)."""
    bias: Tensor | float = 0.0
    modules = [model.global_pooling, model.lastact, *reversed(list(model.cells)), model.stem, model.normalize]
    cur: Tensor | None = A
    for m in modules:
        cur, b = linear_backward(m, cur, ctx)
        bias = add_bias(bias, b, ctx)
        if cur is None:
            break
    return cur, bias


def _context(
    model: nn.Module, record: bool, cell_edges: CellEdgesFn | None, rounding: Rounding | None = None
) -> BoundContext:
    edges = cell_edges if cell_edges is not None else _mixed_cell_edges(model)
    return BoundContext(record=record, cell_edges=edges, rounding=rounding)


def interval_bounds(
    model: nn.Module, x_lower: Tensor, x_upper: Tensor, *, cell_edges: CellEdgesFn | None = None
) -> tuple[Tensor, Tensor]:
    """IBP lower and upper bounds (N, K) of the logits over the input box ``[x_lower, x_upper]`` ([0, 1] scale)."""
    _check_model(model)
    if x_lower.shape != x_upper.shape:
        raise Rb201Error(f"x_lower and x_upper shapes differ: {tuple(x_lower.shape)} vs {tuple(x_upper.shape)}")
    if bool((x_lower > x_upper).any()):
        raise Rb201Error("x_lower must be <= x_upper elementwise")
    ctx = _context(model, False, cell_edges)
    lo, hi = _features_ibp(model, x_lower, x_upper, ctx)
    return ibp_forward(model.classifier, lo, hi, ctx)


def _spec(y: Tensor, num_classes: int) -> Tensor:
    """Margin specification C (N, K-1, K): row j is e_y - e_{j'} over the K-1 classes j' != y."""
    n = y.shape[0]
    others = torch.arange(num_classes - 1, device=y.device).expand(n, -1)
    others = others + (others >= y.unsqueeze(1)).long()
    eye = torch.eye(num_classes, device=y.device)
    return eye[y].unsqueeze(1) - eye[others]


def margin_bounds(
    model: nn.Module,
    x_lower: Tensor,
    x_upper: Tensor,
    y: Tensor,
    method: str = "crown-ibp",
    *,
    cell_edges: CellEdgesFn | None = None,
) -> Tensor:
    """Lower bounds (N, K-1) of ``f_y - f_j`` (``j != y``, ascending) over the box ``[x_lower, x_upper]``.

    Computed in the dtype of the model and the box, and exact up to its rounding (which interval propagation
    amplifies: see the module docstring; :func:`certify` gives bounds that are sound in floating point).
    Differentiable in the network parameters and mixing weights (no ``no_grad`` inside)."""
    return _margin_bounds(model, x_lower, x_upper, y, method, cell_edges, None)


def _margin_bounds(
    model: nn.Module,
    x_lower: Tensor,
    x_upper: Tensor,
    y: Tensor,
    method: str,
    cell_edges: CellEdgesFn | None,
    rounding: Rounding | None,
) -> Tensor:
    """:func:`margin_bounds`; with ``rounding``, every step is rounded outward or accounted for (sound)."""
    _check_model(model)
    check_choice("bound method", method, METHODS)
    num_classes = model.classifier.out_features
    if num_classes < 2:
        raise Rb201Error(f"a margin needs >= 2 classes, the network has {num_classes}")
    crown = method == "crown-ibp"
    ctx = _context(model, crown, cell_edges, rounding)
    f_lo, f_hi = _features_ibp(model, x_lower, x_upper, ctx)
    C = _spec(y, num_classes).to(f_lo.dtype)
    W, b = model.classifier.weight, model.classifier.bias
    A = C @ W  # (N, K-1, F)
    bias = C @ b if b is not None else 0.0
    ibp = concretize_lower(A, bias, f_lo, f_hi)
    spec_allowance: Tensor | float = 0.0
    if rounding is not None:  # the roundings of C W, C b and of the concretization over the feature box
        absC = C.abs()
        abs_bias = absC @ b.abs() if b is not None else 0.0
        spec_allowance = rounding.concretize(absC @ W.abs(), abs_bias, f_lo, f_hi, extra_terms=num_classes)
        ibp = rounding.lower(ibp, spec_allowance)
    if not crown:
        return ibp
    A_in, bias_in = _features_backward(model, A, ctx)
    total_bias = add_bias(bias, bias_in, ctx)
    if A_in is None:  # the output does not depend on the input
        lin = torch.zeros_like(ibp) + total_bias
        if rounding is not None:
            lin = rounding.lower(lin, spec_allowance)
    else:
        lin = concretize_lower(A_in, total_bias, x_lower, x_upper)
        if rounding is not None:
            lin = rounding.lower(lin, spec_allowance + rounding.concretize(A_in, total_bias, x_lower, x_upper))
    return torch.maximum(ibp, lin)


def _check_inputs(x: Tensor, y: Tensor) -> None:
    if x.dim() != 4:
        raise Rb201Error(f"x must be N x C x H x W images in [0, 1], got shape {tuple(x.shape)}")
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise Rb201Error(f"y must be a vector of {x.shape[0]} labels, got shape {tuple(y.shape)}")
    if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise Rb201Error(f"x must lie in [0, 1], got range [{float(x.min())}, {float(x.max())}]")


def _check_eps(eps: float) -> float:
    e = float(eps)
    if not math.isfinite(e) or e < 0:
        raise Rb201Error(f"eps must be a finite number >= 0 (units of 1/255), got {eps!r}")
    return e


def ball_box(x: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """The L-inf ball of radius ``eps`` (units of 1/255) around ``x``, intersected with [0, 1], as a box."""
    e = _check_eps(eps) / 255.0
    return (x - e).clamp(0.0, 1.0), (x + e).clamp(0.0, 1.0)


def _outward_ball_box(x: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """:func:`ball_box` rounded outward: contains the real ball of radius ``eps / 255`` around ``x``."""
    e = _check_eps(eps) / 255.0
    if e == 0.0:
        return x.clamp(0.0, 1.0), x.clamp(0.0, 1.0)
    e_up = torch.nextafter(torch.tensor(e, dtype=x.dtype), torch.tensor(math.inf, dtype=x.dtype)).to(x.device)
    lo = torch.nextafter(x - e_up, torch.full_like(x, -math.inf))
    hi = torch.nextafter(x + e_up, torch.full_like(x, math.inf))
    return lo.clamp(0.0, 1.0), hi.clamp(0.0, 1.0)


def margin_lower_bound(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    method: str = "crown-ibp",
    *,
    cell_edges: CellEdgesFn | None = None,
) -> Tensor:
    """Lower bound (N,) of ``min_{j != y} f_y(x') - f_j(x')`` over the L-inf ball of radius ``eps`` (units of
    1/255) around ``x`` in [0, 1]. Differentiable (call under ``torch.no_grad()`` when gradients are not needed)."""
    _check_inputs(x, y)
    lo, hi = ball_box(x, eps)
    return margin_bounds(model, lo, hi, y.long(), method, cell_edges=cell_edges).min(dim=1).values


def sound_margin_lower_bound(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    method: str = "crown-ibp",
    *,
    cell_edges: CellEdgesFn | None = None,
) -> Tensor:
    """:func:`margin_lower_bound` made sound in floating point: a lower bound (N,) of the worst-case margin of the
    network computed in real arithmetic (its stored parameters, exactly), over the L-inf ball of radius ``eps``
    (units of 1/255) around ``x``, whatever the rounding of the computation. Every interval is rounded outward and
    every rounding of the linear pass is accounted for (:mod:`~robustbench201.measures.rounding`). Computed in the
    dtype of ``model`` and ``x``; use float64 (as :func:`certify` does): in float32 the allowance is 2^29 times
    larger. Not meant for gradients; call under ``torch.no_grad()``."""
    _check_inputs(x, y)
    lo, hi = _outward_ball_box(x, eps)
    rounding = Rounding(x.dtype)
    return _margin_bounds(model, lo, hi, y.long(), method, cell_edges, rounding).min(dim=1).values


def _round_down_to_float32(v: Tensor) -> Tensor:
    f = v.float()
    return torch.where(f.double() > v.double(), torch.nextafter(f, torch.full_like(f, -math.inf)), f)


@contextlib.contextmanager
def _sum_of_products_convolutions(device: torch.device) -> Iterator[None]:
    """cuDNN may pick FFT or Winograd convolutions, whose errors the rounding allowance does not cover."""
    if device.type == "cuda":
        with torch.backends.cudnn.flags(enabled=False):
            yield
    else:
        yield


def certify(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps_list: Sequence[float],
    method: str = "crown-ibp",
    batch_size: int = 64,
    *,
    cell_edges: CellEdgesFn | None = None,
) -> dict[str, Tensor]:
    """Certify ``x`` (N images in [0, 1]) with labels ``y`` at each L-inf radius in ``eps_list`` (units of 1/255).

    Returns ``margin_lb`` (E, N) float32, a lower bound of the worst-case margin (rounded down from float64), and
    ``certified`` (E, N) bool, ``margin_lb > 0``. Sound in floating point: the bounds are computed by
    :func:`sound_margin_lower_bound` in float64 on a copy of the model in eval mode (the model is not changed), so
    a certified point is certified for the network in real arithmetic, not by rounding luck."""
    _check_inputs(x, y)
    check_choice("bound method", method, METHODS)
    eps_values = [_check_eps(e) for e in eps_list]
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise Rb201Error(f"batch_size must be an integer >= 1, got {batch_size!r}")
    _check_model(model)
    work = copy.deepcopy(model).to(torch.float64).eval()
    x64 = x.to(torch.float64)
    out = torch.empty(len(eps_values), x.shape[0], dtype=torch.float32)
    with torch.no_grad(), _sum_of_products_convolutions(x.device):
        for e, eps in enumerate(eps_values):
            for start in range(0, x.shape[0], batch_size):
                xb, yb = x64[start : start + batch_size], y[start : start + batch_size]
                lb = sound_margin_lower_bound(work, xb, yb, eps, method, cell_edges=cell_edges)
                out[e, start : start + xb.shape[0]] = _round_down_to_float32(lb.cpu())
    return {"margin_lb": out, "certified": out > 0}
