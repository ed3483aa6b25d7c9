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

Cost: IBP is two forward passes' worth of convolutions. The backward pass carries ``A`` of shape
``(N, K-1, C, H, W)`` (``K`` classes) through transposed convolutions and the ReLU relaxations, so it costs about
``K-1`` forward passes plus elementwise work, and ``4 (K-1) C H W`` bytes per sample and live ``A`` (a cell keeps
up to three node accumulators alive): for CIFAR-10 at C=16, 32x32, 9 x 16384 floats = 0.6 MB per sample and ``A``.
:func:`certify` works in batches of ``batch_size`` samples to bound that memory. Measured on the full-size CIFAR-10
network (C=16, N=5), 16 images, one CPU thread: forward 0.15 s, IBP 0.43 s, CROWN-IBP 4.6 s per epsilon.

Soundness is up to floating-point rounding (float32, about 1e-6 relative; the tests allow 1e-4 absolute): treat a
``margin_lb`` within that of 0 as uncertified if exactness matters.

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

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..errors import Rb201Error, check_choice
from ..space import EDGES
from .bounds_ops import BoundContext, CellEdgesFn, Interval, Mixed, concretize_lower, ibp_forward, linear_backward

METHODS = ("crown-ibp", "ibp")
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
        bias = bias + b
        if cur is None:
            break
    return cur, bias


def _context(model: nn.Module, record: bool, cell_edges: CellEdgesFn | None) -> BoundContext:
    return BoundContext(record=record, cell_edges=cell_edges if cell_edges is not None else _mixed_cell_edges(model))


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

    Differentiable in the network parameters and mixing weights (no ``no_grad`` inside)."""
    _check_model(model)
    check_choice("bound method", method, METHODS)
    num_classes = model.classifier.out_features
    if num_classes < 2:
        raise Rb201Error(f"a margin needs >= 2 classes, the network has {num_classes}")
    crown = method == "crown-ibp"
    ctx = _context(model, crown, cell_edges)
    f_lo, f_hi = _features_ibp(model, x_lower, x_upper, ctx)
    C = _spec(y, num_classes).to(f_lo.dtype)
    W, b = model.classifier.weight, model.classifier.bias
    A = C @ W  # (N, K-1, F)
    bias = C @ b if b is not None else 0.0
    ibp = concretize_lower(A, bias, f_lo, f_hi)
    if not crown:
        return ibp
    A_in, bias_in = _features_backward(model, A, ctx)
    if A_in is None:  # the output does not depend on the input
        lin = torch.zeros_like(ibp) + bias + bias_in
    else:
        lin = concretize_lower(A_in, bias + bias_in, x_lower, x_upper)
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

    Returns ``margin_lb`` (E, N) float, a lower bound of the worst-case margin, and ``certified`` (E, N) bool,
    ``margin_lb > 0``. The model is evaluated in eval mode (its train/eval flags are restored afterwards)."""
    _check_inputs(x, y)
    check_choice("bound method", method, METHODS)
    eps_values = [_check_eps(e) for e in eps_list]
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise Rb201Error(f"batch_size must be an integer >= 1, got {batch_size!r}")
    _check_model(model)
    modes = {m: m.training for m in model.modules()}
    model.eval()
    out = torch.empty(len(eps_values), x.shape[0], dtype=torch.float32)
    try:
        with torch.no_grad():
            for e, eps in enumerate(eps_values):
                for start in range(0, x.shape[0], batch_size):
                    xb, yb = x[start : start + batch_size], y[start : start + batch_size]
                    lb = margin_lower_bound(model, xb, yb, eps, method, cell_edges=cell_edges)
                    out[e, start : start + xb.shape[0]] = lb.float().cpu()
    finally:
        for m, flag in modes.items():
            m.train(flag)
    return {"margin_lb": out, "certified": out > 0}
