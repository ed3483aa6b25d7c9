"""Op-level bound propagation: interval (IBP) forward rules and linear (CROWN-style) backward rules.

Two kinds of rule exist per module type, looked up along the module's MRO (so subclasses inherit them):

* ``ibp_forward(module, lower, upper, ctx) -> (lower, upper)``: elementwise interval of the module's output over
  the box ``[lower, upper]`` of its input. Affine maps use the midpoint/radius form (``W mid + b``, ``|W| rad``);
  average pools are monotone and are applied to both ends; ReLU clamps both ends.
* ``linear_backward(module, A, ctx) -> (A_in, bias)``: given a linear lower-bound functional ``A . out`` of the
  module's output (``A`` of shape ``(N, S, *out_shape)``, S specifications per sample), returns ``A_in`` of shape
  ``(N, S, *in_shape)`` and ``bias`` of shape ``(N, S)`` with ``A . out(x) >= A_in . x + bias`` for every ``x`` in
  the input box recorded by the IBP pass (``A_in is None`` means the output does not depend on the input).
  Affine maps are exact (transposed convolution, transposed pooling); ReLU uses CROWN's relaxation with IBP
  pre-activation bounds: upper chord ``u (z - l) / (u - l)`` and the adaptive lower line (slope 1 if ``u >= -l``,
  else 0) on unstable neurons.

A :class:`BoundContext` carries what the backward pass needs from the IBP pass: pre-ReLU intervals, input shapes
and the per-channel affine maps used for BatchNorm. Each module must appear once per forward (a module used twice
raises :class:`~robustbench201.errors.Rb201Error`).

BatchNorm: with running statistics (eval mode) BN is the fixed affine map of ``torch.nn.BatchNorm2d.eval()``.
A BN without running statistics (``track_running_stats=False``, as in the search supernet) normalizes with batch
statistics; the rules then hold those statistics fixed at the batch statistics of the interval midpoints (the
clean batch when eps is small), the convention of CROWN-IBP training. Such bounds are bounds of that affine map.

Cells and mixed edges (the supernet): a cell is a DAG given as a list of :data:`Edge` ``(src, dst, op)`` over
nodes ``0..n_nodes-1`` (node 0 the cell input, node ``n_nodes-1`` its output; a node's value is the sum over its
incoming edges, zero if it has none). ``op`` is a module or a :class:`Mixed` ``(ops, weights)``, the edge
``sum_k weights[k] * ops[k](x)`` with ``weights >= 0`` (e.g. a softmax row of alpha). For IBP a mixed edge's interval
is ``(sum_k w_k l_k, sum_k w_k u_k)``; for the backward pass, ``sum_k w_k * linear_backward(op_k, A)``. Both are
differentiable in the weights. Use :func:`ibp_cell` / :func:`backward_cell` directly, or register a cell type
with :func:`register_cell` (a function ``cell -> (edges, n_nodes)``), or pass ``ctx.cell_edges``, a function
``cell -> (edges, n_nodes) | None`` consulted before the registry (how a network whose cells receive their mixing
weights at forward time supplies them).

Floating point: the rules are exact for real arithmetic. With ``ctx.rounding`` set (a
:class:`~robustbench201.measures.rounding.Rounding`), every interval is widened and every backward step adds to a
rounding allowance so that the results bound the real-arithmetic ones (see :mod:`~robustbench201.measures.rounding`);
:func:`~robustbench201.measures.bounds.certify` uses this in float64.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import Rb201Error
from ..models.network import InferCell, Normalize
from ..models.ops import Identity, Pooling, ReLUConvBN, ResNetBasicBlock, Zero
from ..space import EDGES

Interval = tuple[Tensor, Tensor]
BackResult = tuple[Tensor | None, Tensor | float]


@dataclass(frozen=True)
class Mixed:
    """A mixed edge ``sum_k weights[k] * ops[k](x)``; ``weights`` is a 1-D tensor, entries >= 0."""

    ops: Sequence[nn.Module]
    weights: Tensor


Edge = tuple[int, int, "nn.Module | Mixed"]
CellEdgesFn = Callable[[nn.Module], "tuple[Sequence[Edge], int] | None"]


@dataclass
class BoundContext:
    """State shared by the IBP pass and the linear backward pass over the same inputs."""

    record: bool = True  #: keep pre-ReLU intervals for a later backward pass
    cell_edges: CellEdgesFn | None = None  #: per-cell (edges, n_nodes) override, see the module docstring
    pre_relu: dict[nn.Module, Interval] = field(default_factory=dict)
    in_shape: dict[nn.Module, torch.Size] = field(default_factory=dict)
    affine: dict[nn.Module, tuple[Tensor, Tensor]] = field(default_factory=dict)
    #: a :class:`~robustbench201.measures.rounding.Rounding` for bounds that are sound in floating point, or None
    rounding: Any = None

    def _note_shape(self, module: nn.Module, shape: torch.Size) -> None:
        if self.record and module in self.in_shape:
            raise Rb201Error(
                f"module {type(module).__name__} is applied twice in one forward; bound propagation needs each "
                "module once (give repeated layers their own module)"
            )
        self.in_shape[module] = shape


_IBP: dict[type, Callable[..., Interval]] = {}
_BACK: dict[type, Callable[..., BackResult]] = {}


def _lookup(table: dict[type, Callable], module: nn.Module, what: str) -> Callable:
    for cls in type(module).__mro__:
        rule = table.get(cls)
        if rule is not None:
            return rule
    raise Rb201Error(
        f"no {what} rule for module type {type(module).__name__}; supported: "
        + ", ".join(sorted(c.__name__ for c in table))
    )


def _cell_spec(module: nn.Module, ctx: BoundContext) -> tuple[Sequence[Edge], int] | None:
    if ctx.cell_edges is not None:
        spec = ctx.cell_edges(module)
        if spec is not None:
            return spec
    for cls in type(module).__mro__:
        fn = _CELLS.get(cls)
        if fn is not None:
            return fn(module)
    return None


def ibp_forward(module: nn.Module | Mixed, lower: Tensor, upper: Tensor, ctx: BoundContext | None = None) -> Interval:
    """Interval of ``module``'s output over the input box ``[lower, upper]`` (same units as the activations)."""
    ctx = BoundContext(record=False) if ctx is None else ctx
    if isinstance(module, Mixed):
        return ibp_mixed(module.ops, module.weights, lower, upper, ctx)
    spec = _cell_spec(module, ctx)
    if spec is not None:
        return ibp_cell(spec[0], lower, upper, ctx, spec[1])
    out = _lookup(_IBP, module, "interval")(module, lower, upper, ctx)
    if ctx.rounding is not None:
        out = ctx.rounding.leaf_forward(module, lower, upper, out, ctx)
    return out


def linear_backward(module: nn.Module | Mixed, A: Tensor, ctx: BoundContext) -> BackResult:
    """Pull the linear lower bound ``A . out`` back through ``module`` (see the module docstring)."""
    if isinstance(module, Mixed):
        return backward_mixed(module.ops, module.weights, A, ctx)
    spec = _cell_spec(module, ctx)
    if spec is not None:
        return backward_cell(spec[0], A, ctx, spec[1])
    if ctx.rounding is not None:
        ctx.rounding.leaf_backward(module, A, ctx)
    return _lookup(_BACK, module, "linear backward")(module, A, ctx)


def register_rules(
    cls: type, ibp: Callable[..., Interval] | None = None, backward: Callable[..., BackResult] | None = None
) -> None:
    """Register interval / backward rules for a module type (signatures as :func:`ibp_forward` /
    :func:`linear_backward` with the module first)."""
    if ibp is not None:
        _IBP[cls] = ibp
    if backward is not None:
        _BACK[cls] = backward


_CELLS: dict[type, Callable[[nn.Module], tuple[Sequence[Edge], int]]] = {}


def register_cell(cls: type, edges_fn: Callable[[nn.Module], tuple[Sequence[Edge], int]]) -> None:
    """Treat modules of type ``cls`` as cells: ``edges_fn(cell) -> (edges, n_nodes)``."""
    _CELLS[cls] = edges_fn


# ---- sums (outward rounded / with a rounding allowance when ctx.rounding is set) --------------------------------
def _add_interval(a: Interval | None, b: Interval, ctx: BoundContext) -> Interval:
    if a is None:
        return b
    if ctx.rounding is not None:
        return ctx.rounding.add(a, b)
    return a[0] + b[0], a[1] + b[1]


def _add_functional(a: Tensor | None, b: Tensor, key: object, ctx: BoundContext) -> Tensor:
    if a is None:
        return b
    total = a + b
    if ctx.rounding is not None:
        ctx.rounding.sum_functional(key, total)
    return total


def add_bias(a: Tensor | float, b: Tensor | float, ctx: BoundContext) -> Tensor | float:
    """``a + b`` for the bias terms of a backward pass (accounted in the rounding allowance when there is one)."""
    total = a + b
    if ctx.rounding is not None:
        ctx.rounding.sum_bias(total)
    return total


def _ops_key(ops: Sequence[nn.Module]) -> tuple:
    return ("mixed", *map(id, ops))


def _edges_key(edges: Sequence[Edge]) -> tuple:
    """Identifies a cell across the interval and backward passes (its edge list may be rebuilt in between)."""
    return tuple((s, d, _ops_key(op.ops) if isinstance(op, Mixed) else id(op)) for s, d, op in edges)


# ---- mixed edges and cells ------------------------------------------------------------------------------------
def _check_weights(weights: Tensor, n: int) -> None:
    if weights.dim() != 1 or weights.numel() != n:
        raise Rb201Error(
            f"mixed edge with {n} ops needs a 1-D weight vector of {n} entries, got shape {tuple(weights.shape)}"
        )


def ibp_mixed(
    ops: Sequence[nn.Module], weights: Tensor, lower: Tensor, upper: Tensor, ctx: BoundContext | None = None
) -> Interval:
    """Interval of ``sum_k w_k op_k(x)`` (``w >= 0``): the ``w``-weighted sum of each op's interval."""
    ctx = BoundContext(record=False) if ctx is None else ctx
    _check_weights(weights, len(ops))
    if ctx.rounding is not None:
        ctx.rounding.note(_ops_key(ops), lower, upper, ctx)
    acc: Interval = (torch.zeros_like(lower), torch.zeros_like(upper))
    for k, op in enumerate(ops):
        if isinstance(op, Zero):
            continue
        lk, uk = ibp_forward(op, lower, upper, ctx)
        if ctx.rounding is not None:
            acc = ctx.rounding.add(acc, ctx.rounding.weighted(weights[k], (lk, uk)))
        else:
            acc = (acc[0] + weights[k] * lk, acc[1] + weights[k] * uk)
    return acc


def backward_mixed(ops: Sequence[nn.Module], weights: Tensor, A: Tensor, ctx: BoundContext) -> BackResult:
    """Backward pass through ``sum_k w_k op_k(x)``: ``sum_k w_k`` times each op's backward pass."""
    _check_weights(weights, len(ops))
    A_in: Tensor | None = None
    bias: Tensor | float = 0.0
    rnd, key, n_terms = ctx.rounding, _ops_key(ops), 2 * len(ops)
    for k, op in enumerate(ops):
        if isinstance(op, Zero):
            continue
        before = rnd.delta if rnd is not None else 0.0
        Ak, bk = linear_backward(op, A, ctx)
        if rnd is not None:  # op k's allowance scales with its weight; then the weighted sums' own rounding
            rnd.scale_since(before, weights[k])
            rnd.weighted_bias(weights[k], bk, n_terms)
            if Ak is not None:
                rnd.weighted_functional(key, weights[k], Ak, n_terms)
        bias = bias + weights[k] * bk
        if Ak is not None:
            Ak = weights[k] * Ak
            A_in = Ak if A_in is None else A_in + Ak
    return A_in, bias


def ibp_cell(
    edges: Sequence[Edge], lower: Tensor, upper: Tensor, ctx: BoundContext | None = None, n_nodes: int = 4
) -> Interval:
    """Interval of a cell's output node over the box of its input node (see the module docstring).

    A node without incoming edges is exactly zero; ops applied to it still run (a conv-BN edge maps 0 to the BN
    shift, so a cell without an input-output path outputs a constant, not zero)."""
    ctx = BoundContext(record=False) if ctx is None else ctx
    nodes: list[Interval] = [(lower, upper)]
    for j in range(1, n_nodes):
        acc: Interval | None = None
        for src, dst, op in edges:
            if dst != j or isinstance(op, Zero):
                continue
            acc = _add_interval(acc, ibp_forward(op, nodes[src][0], nodes[src][1], ctx), ctx)
        nodes.append(acc if acc is not None else (torch.zeros_like(lower), torch.zeros_like(upper)))
    if ctx.rounding is not None:
        key = _edges_key(edges)
        for j, (lo, hi) in enumerate(nodes):
            ctx.rounding.note((key, j), lo, hi, ctx)
    return nodes[-1]


def backward_cell(edges: Sequence[Edge], A: Tensor, ctx: BoundContext, n_nodes: int = 4) -> BackResult:
    """Backward pass through a cell: node by node from the output, summing over each node's outgoing edges.

    A node without incoming edges is the constant 0, so the functional reaching it is dropped."""
    acc: list[Tensor | None] = [None] * n_nodes
    acc[-1] = A
    bias: Tensor | float = 0.0
    key = _edges_key(edges) if ctx.rounding is not None else None
    for j in range(n_nodes - 1, 0, -1):
        Aj = acc[j]
        if Aj is None:
            continue
        for src, dst, op in edges:
            if dst != j or isinstance(op, Zero):
                continue
            Ai, bi = linear_backward(op, Aj, ctx)
            bias = add_bias(bias, bi, ctx)
            if Ai is not None:
                acc[src] = _add_functional(acc[src], Ai, (key, src), ctx)
    return acc[0], bias


def _infer_cell_edges(cell: nn.Module) -> tuple[Sequence[Edge], int]:
    ops = cell.arch.ops
    return [(s, d, cell.layers[k]) for k, (s, d) in enumerate(EDGES) if ops[k] != 0], 4


register_cell(InferCell, _infer_cell_edges)


# ---- helpers --------------------------------------------------------------------------------------------------
def _flat(A: Tensor) -> tuple[Tensor, tuple[int, int]]:
    return A.reshape(A.shape[0] * A.shape[1], *A.shape[2:]), (A.shape[0], A.shape[1])


def _chan_affine_ibp(lower: Tensor, upper: Tensor, scale: Tensor, shift: Tensor) -> Interval:
    view = (1, -1) + (1,) * (lower.dim() - 2)
    s, t = scale.view(view), shift.view(view)
    mid, rad = (upper + lower) / 2, (upper - lower) / 2
    c, r = mid * s + t, rad * s.abs()
    return c - r, c + r


def _chan_affine_back(A: Tensor, scale: Tensor, shift: Tensor) -> BackResult:
    view = (1, 1, -1) + (1,) * (A.dim() - 3)
    bias = (A.sum(dim=tuple(range(3, A.dim()))) * shift).sum(-1) if A.dim() > 3 else (A * shift).sum(-1)
    return A * scale.view(view), bias


# ---- rules ----------------------------------------------------------------------------------------------------
def _ibp_seq(m: nn.Sequential, lo: Tensor, hi: Tensor, ctx: BoundContext) -> Interval:
    for sub in m:
        lo, hi = ibp_forward(sub, lo, hi, ctx)
    return lo, hi


def _back_seq(m: nn.Sequential, A: Tensor, ctx: BoundContext) -> BackResult:
    bias: Tensor | float = 0.0
    for sub in reversed(list(m)):
        A, b = linear_backward(sub, A, ctx)
        bias = add_bias(bias, b, ctx)
        if A is None:
            return None, bias
    return A, bias


register_rules(nn.Sequential, _ibp_seq, _back_seq)
register_rules(
    ReLUConvBN, lambda m, lo, hi, ctx: ibp_forward(m.op, lo, hi, ctx), lambda m, A, ctx: linear_backward(m.op, A, ctx)
)
register_rules(
    Pooling, lambda m, lo, hi, ctx: ibp_forward(m.op, lo, hi, ctx), lambda m, A, ctx: linear_backward(m.op, A, ctx)
)
register_rules(Zero, lambda m, lo, hi, ctx: (torch.zeros_like(lo), torch.zeros_like(hi)), lambda m, A, ctx: (None, 0.0))
for _cls in (Identity, nn.Identity):
    register_rules(_cls, lambda m, lo, hi, ctx: (lo, hi), lambda m, A, ctx: (A, 0.0))


def _ibp_relu(m: nn.Module, lo: Tensor, hi: Tensor, ctx: BoundContext) -> Interval:
    ctx._note_shape(m, lo.shape)
    if ctx.record:
        ctx.pre_relu[m] = (lo, hi)
    return lo.clamp(min=0), hi.clamp(min=0)


def _back_relu(m: nn.Module, A: Tensor, ctx: BoundContext) -> BackResult:
    lo, hi = ctx.pre_relu[m]
    lo, hi = lo.unsqueeze(1), hi.unsqueeze(1)
    active = lo >= 0
    unstable = (lo < 0) & (hi > 0)
    denom = torch.where(unstable, hi - lo, torch.ones_like(hi))
    chord = torch.where(unstable, hi / denom, active.to(hi.dtype))
    intercept = torch.where(unstable, -lo * chord, torch.zeros_like(hi))
    lower_slope = torch.where(unstable, (hi >= -lo).to(hi.dtype), active.to(hi.dtype))
    A_neg = A.clamp(max=0)
    A_in = torch.addcmul(A * lower_slope, A_neg, chord - lower_slope)  # A+ lower_slope + A- chord
    bias = torch.bmm(A_neg.flatten(2), intercept.flatten(1).unsqueeze(-1)).squeeze(-1)  # A- . intercept
    return A_in, bias


register_rules(nn.ReLU, _ibp_relu, _back_relu)


def _ibp_conv(m: nn.Conv2d, lo: Tensor, hi: Tensor, ctx: BoundContext) -> Interval:
    ctx._note_shape(m, lo.shape)
    mid, rad = (hi + lo) / 2, (hi - lo) / 2
    c = m._conv_forward(mid, m.weight, m.bias)
    r = m._conv_forward(rad, m.weight.abs(), None)
    return c - r, c + r


def _back_conv(m: nn.Conv2d, A: Tensor, ctx: BoundContext) -> BackResult:
    if m.padding_mode != "zeros" or isinstance(m.padding, str):
        raise Rb201Error(f"conv bounds need numeric zero padding, got padding={m.padding!r}, {m.padding_mode!r}")
    in_shape = ctx.in_shape[m]
    Af, (n, s) = _flat(A)
    out_pad = []
    for d in range(2):
        full = (Af.shape[2 + d] - 1) * m.stride[d] - 2 * m.padding[d] + m.dilation[d] * (m.kernel_size[d] - 1) + 1
        out_pad.append(in_shape[2 + d] - full)
    A_in = F.conv_transpose2d(Af, m.weight, None, m.stride, m.padding, tuple(out_pad), m.groups, m.dilation).reshape(
        n, s, *in_shape[1:]
    )
    bias: Tensor | float = 0.0
    if m.bias is not None:
        bias = (A.sum(dim=(3, 4)) * m.bias).sum(-1)
    return A_in, bias


register_rules(nn.Conv2d, _ibp_conv, _back_conv)


def _bn_affine(m: nn.BatchNorm2d, lo: Tensor, hi: Tensor, ctx: BoundContext) -> tuple[Tensor, Tensor]:
    if m.running_mean is not None and not m.training:
        mean, var = m.running_mean, m.running_var
    else:  # batch statistics, held at those of the interval midpoints (see the module docstring)
        mid = (lo + hi) / 2
        mean = mid.mean(dim=(0, 2, 3))
        var = mid.var(dim=(0, 2, 3), unbiased=False)
    scale = torch.rsqrt(var + m.eps)
    if m.weight is not None:
        scale = scale * m.weight
    shift = -mean * scale
    if m.bias is not None:
        shift = shift + m.bias
    return scale, shift


def _ibp_bn(m: nn.BatchNorm2d, lo: Tensor, hi: Tensor, ctx: BoundContext) -> Interval:
    ctx._note_shape(m, lo.shape)
    scale, shift = _bn_affine(m, lo, hi, ctx)
    if ctx.record or ctx.rounding is not None:
        ctx.affine[m] = (scale, shift)
    return _chan_affine_ibp(lo, hi, scale, shift)


def _back_bn(m: nn.BatchNorm2d, A: Tensor, ctx: BoundContext) -> BackResult:
    return _chan_affine_back(A, *ctx.affine[m])


register_rules(nn.BatchNorm2d, _ibp_bn, _back_bn)


def _norm_affine(m: Normalize) -> tuple[Tensor, Tensor]:
    scale = 1.0 / m.std.flatten()
    return scale, -m.mean.flatten() * scale


register_rules(
    Normalize,
    lambda m, lo, hi, ctx: _chan_affine_ibp(lo, hi, *_norm_affine(m)),
    lambda m, A, ctx: _chan_affine_back(A, *_norm_affine(m)),
)


def _ibp_avgpool(m: nn.AvgPool2d, lo: Tensor, hi: Tensor, ctx: BoundContext) -> Interval:
    ctx._note_shape(m, lo.shape)
    return m(lo), m(hi)  # positive weights: monotone


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _back_avgpool(m: nn.AvgPool2d, A: Tensor, ctx: BoundContext) -> BackResult:
    if m.ceil_mode or m.divisor_override is not None:
        raise Rb201Error("average-pool bounds need ceil_mode=False and divisor_override=None")
    in_shape = ctx.in_shape[m]
    k, s, p = _pair(m.kernel_size), _pair(m.stride if m.stride is not None else m.kernel_size), _pair(m.padding)
    n, sp, c, ho, wo = A.shape
    ones_k = A.new_ones(1, 1, *k)
    if m.count_include_pad:
        A = A / float(k[0] * k[1])
    else:  # divisor = number of in-image positions of each window (differs at the border)
        ones_in = A.new_ones(1, 1, in_shape[2], in_shape[3])
        count = F.conv2d(ones_in, ones_k, None, s, p)
        A = A / count.view(1, 1, 1, ho, wo)
    out_pad = tuple(in_shape[2 + d] - ((A.shape[3 + d] - 1) * s[d] - 2 * p[d] + k[d]) for d in range(2))
    A_in = F.conv_transpose2d(A.reshape(n * sp * c, 1, ho, wo), ones_k, None, s, p, out_pad)
    return A_in.reshape(n, sp, *in_shape[1:]), 0.0


register_rules(nn.AvgPool2d, _ibp_avgpool, _back_avgpool)


def _ibp_gap(m: nn.AdaptiveAvgPool2d, lo: Tensor, hi: Tensor, ctx: BoundContext) -> Interval:
    if _pair(m.output_size) != (1, 1):
        raise Rb201Error(f"adaptive average pool bounds support output_size=1, got {m.output_size!r}")
    ctx._note_shape(m, lo.shape)
    return m(lo), m(hi)


def _back_gap(m: nn.AdaptiveAvgPool2d, A: Tensor, ctx: BoundContext) -> BackResult:
    shape = ctx.in_shape[m]
    hw = shape[2] * shape[3]
    A = A.reshape(A.shape[0], A.shape[1], shape[1], 1, 1) / hw
    return A.expand(A.shape[0], A.shape[1], *shape[1:]), 0.0


register_rules(nn.AdaptiveAvgPool2d, _ibp_gap, _back_gap)


def _ibp_linear(m: nn.Linear, lo: Tensor, hi: Tensor, ctx: BoundContext) -> Interval:
    mid, rad = (hi + lo) / 2, (hi - lo) / 2
    c = F.linear(mid, m.weight, m.bias)
    r = F.linear(rad, m.weight.abs())
    return c - r, c + r


def _back_linear(m: nn.Linear, A: Tensor, ctx: BoundContext) -> BackResult:
    bias = A @ m.bias if m.bias is not None else 0.0
    return A @ m.weight, bias


register_rules(nn.Linear, _ibp_linear, _back_linear)


def _ibp_resblock(m: ResNetBasicBlock, lo: Tensor, hi: Tensor, ctx: BoundContext) -> Interval:
    if ctx.rounding is not None:
        ctx.rounding.note(m, lo, hi, ctx)
    short = ibp_forward(m.downsample, lo, hi, ctx)
    l2, u2 = ibp_forward(m.conv_a, lo, hi, ctx)
    return _add_interval(short, ibp_forward(m.conv_b, l2, u2, ctx), ctx)


def _back_resblock(m: ResNetBasicBlock, A: Tensor, ctx: BoundContext) -> BackResult:
    A1, b1 = linear_backward(m.downsample, A, ctx)
    A2, b2 = linear_backward(m.conv_b, A, ctx)
    A2, b3 = linear_backward(m.conv_a, A2, ctx)
    return _add_functional(A1, A2, m, ctx), add_bias(add_bias(b1, b2, ctx), b3, ctx)


register_rules(ResNetBasicBlock, _ibp_resblock, _back_resblock)


def concretize_lower(A: Tensor, bias: Tensor | float, x_lower: Tensor, x_upper: Tensor) -> Tensor:
    """Minimum of ``A . x + bias`` over the box ``[x_lower, x_upper]`` (``A``: (N, S, *x_shape)) -> (N, S)."""
    lo, hi = x_lower.unsqueeze(1), x_upper.unsqueeze(1)
    val = (A.clamp(min=0) * lo + A.clamp(max=0) * hi).flatten(2).sum(-1)
    return val + bias
