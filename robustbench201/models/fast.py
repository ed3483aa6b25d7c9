"""An exact, inference-only rewrite of an eval-mode :class:`NB201Network` for the many forward passes of attacks.

What changes (and why it is exact in evaluation mode):

* every eval-mode BatchNorm that follows a convolution is folded into that convolution (weight scaled by
  ``gamma / sqrt(var + eps)``, bias ``beta - mean * gamma / sqrt(var + eps)``);
* ``none`` edges and edges that cannot reach the cell output (:meth:`Arch.live_edges`) are dropped;
* edges that leave a node unreachable from the cell input (a node whose inputs are all ``none``) compute an
  input-independent tensor: it is precomputed once per spatial size and added as a constant, so dead and
  half-dead cells stay bit-for-bit the same function (a folded conv of zeros is its BN shift, not zero);
* skip edges are plain additions; activations are channels-last;
* on a CPU, a large batch is run in chunks of rows whose widest activation fills about :data:`CPU_CHUNK_BYTES`
  (a cache-sized working set): per image, a 640-row forward of a small cell costs about 1.2-1.4x what 64-row chunks
  cost (``BENCHMARKS.md``). Rows are independent in evaluation mode, so chunking changes no value beyond float
  summation order inside the convolution library.

The result is differentiable (gradient attacks may use it too), has no trainable state and must be rebuilt if
the source network's weights change. ``compile=True`` wraps the forward in ``torch.compile`` (off by default, and
the engine does not use it: compiling costs 5-25 s on CPU, and even with inductor's weight freezing it gained only
about 5% in a CPU Square run over the chunked eager forward, 1.2x per pass on the full-size network; see
``BENCHMARKS.md``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..space import EDGES, reachability
from .network import NB201Network
from .ops import Identity, Pooling, ReLUConvBN, ResNetBasicBlock, Zero


def _fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new conv computing ``bn(conv(x))`` with eval-mode statistics."""
    w = conv.weight.detach().float()
    if bn.track_running_stats and bn.running_var is not None:
        mean, var = bn.running_mean.detach().float(), bn.running_var.detach().float()
    else:  # batch statistics cannot be folded; treated as identity statistics (only for untracked BN)
        mean, var = torch.zeros_like(w[:, 0, 0, 0]), torch.ones_like(w[:, 0, 0, 0])
    gamma = bn.weight.detach().float() if bn.affine else torch.ones_like(mean)
    beta = bn.bias.detach().float() if bn.affine else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + bn.eps)
    bias = beta - mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias.detach().float() * scale
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        bias=True,
    ).to(w.device)
    with torch.no_grad():
        fused.weight.copy_(w * scale.view(-1, 1, 1, 1))
        fused.bias.copy_(bias)
    return fused


class _ReLUConv(nn.Module):
    """ReLU then a BN-folded conv."""

    def __init__(self, block: ReLUConvBN) -> None:
        super().__init__()
        self.conv = _fold_conv_bn(block.op[1], block.op[2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.relu(x))


def _fast_op(op: nn.Module) -> nn.Module:
    if isinstance(op, ReLUConvBN):
        return _ReLUConv(op)
    if isinstance(op, Pooling):
        return op.op
    if isinstance(op, Identity):
        return nn.Identity()
    raise TypeError(f"cannot rewrite edge op {type(op).__name__}")  # Zero edges are never live


class _FastCell(nn.Module):
    """A cell with only live edges; input-independent contributions added as cached constants."""

    def __init__(self, cell: nn.Module) -> None:
        super().__init__()
        arch = cell.arch
        live = arch.live_edges()
        fwd, bwd = reachability(arch.ops)
        self.fwd = fwd
        ops: dict[str, nn.Module] = {}
        self.dynamic: list[tuple[int, int, str]] = []  # (src, dst, key) fed by the input
        self.static: list[tuple[int, int, str]] = []  # (src, dst, key) fed by input-independent nodes
        for k, (o, (s, d)) in enumerate(zip(arch.ops, EDGES)):
            if o == 0 or not bwd[d]:
                continue
            assert not isinstance(cell.layers[k], Zero)
            key = str(k)
            ops[key] = _fast_op(cell.layers[k])
            (self.dynamic if live[k] else self.static).append((s, d, key))
        self.ops = nn.ModuleDict(ops)
        self._const: dict[tuple, list[torch.Tensor | None]] = {}

    def _constants(self, x: torch.Tensor) -> list[torch.Tensor | None]:
        """Per node: the input-independent term it receives (node value itself if unreachable from the input)."""
        key = (tuple(x.shape[1:]), x.device, x.dtype)
        got = self._const.get(key)
        if got is not None:
            return got
        zero = torch.zeros((1, *x.shape[1:]), device=x.device, dtype=x.dtype)
        val: list[torch.Tensor | None] = [None, None, None, None]  # values of input-independent nodes
        const: list[torch.Tensor | None] = [None, None, None, None]
        with torch.no_grad():
            for j in range(1, 4):
                acc = None
                for s, d, k in self.static:
                    if d != j:
                        continue
                    v = val[s] if val[s] is not None else zero
                    out = self.ops[k](v)
                    acc = out if acc is None else acc + out
                if self.fwd[j]:
                    const[j] = acc
                else:
                    val[j] = acc if acc is not None else zero
        const[0] = None
        if not self.fwd[3]:
            const[3] = val[3]
        result = [c.contiguous(memory_format=torch.channels_last) if c is not None else None for c in const]
        self._const[key] = result
        return result

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        const = self._constants(x) if self.static or not self.fwd[3] else [None, None, None, None]
        nodes: list[torch.Tensor | None] = [x, None, None, None]
        for j in range(1, 4):
            acc = None
            for s, d, k in self.dynamic:
                if d == j:
                    out = self.ops[k](nodes[s])
                    acc = out if acc is None else acc + out
            c = const[j]
            if c is not None:
                acc = c.expand(x.shape[0], -1, -1, -1) if acc is None else acc + c
            nodes[j] = acc
        out = nodes[3]
        if out is None:  # dead cell without constant terms: exactly zero
            return torch.zeros_like(x)
        return out


class _FastResBlock(nn.Module):
    def __init__(self, block: ResNetBasicBlock) -> None:
        super().__init__()
        self.conv_a = _ReLUConv(block.conv_a)
        self.conv_b = _ReLUConv(block.conv_b)
        self.pool = block.downsample[0]
        self.shortcut = block.downsample[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(self.pool(x)) + self.conv_b(self.conv_a(x))


#: bytes of the widest activation of one CPU chunk (about the size of a core's L2 cache)
CPU_CHUNK_BYTES = 2 << 20


def cpu_chunk_rows(channels: int, height: int, width: int, itemsize: int = 4) -> int:
    """Rows per CPU chunk for a widest activation of ``channels x height x width`` items (at least 8)."""
    return max(8, CPU_CHUNK_BYTES // max(1, channels * height * width * itemsize))


class FastNB201(nn.Module):
    """Inference-only, BN-folded, dead-edge-free copy of an :class:`NB201Network` (same input/output contract:
    [0, 1] NCHW in, logits out)."""

    def __init__(self, net: NB201Network) -> None:
        super().__init__()
        self.register_buffer("mean", net.normalize.mean.detach().clone(), persistent=False)
        self.register_buffer("std", net.normalize.std.detach().clone(), persistent=False)
        self.stem = _fold_conv_bn(net.stem[0], net.stem[1])
        blocks: list[nn.Module] = []
        for cell in net.cells:
            blocks.append(_FastResBlock(cell) if isinstance(cell, ResNetBasicBlock) else _FastCell(cell))
        self.cells = nn.ModuleList(blocks)
        bn = net.lastact[0]
        scale = bn.weight.detach() / torch.sqrt(bn.running_var.detach() + bn.eps)
        self.register_buffer("last_scale", scale.view(1, -1, 1, 1).clone(), persistent=False)
        self.register_buffer(
            "last_shift",
            (bn.bias.detach() - bn.running_mean.detach() * scale).view(1, -1, 1, 1).clone(),
            persistent=False,
        )
        self.classifier = nn.Linear(net.classifier.in_features, net.classifier.out_features).to(scale.device)
        with torch.no_grad():
            self.classifier.weight.copy_(net.classifier.weight)
            self.classifier.bias.copy_(net.classifier.bias)
        self.to(memory_format=torch.channels_last)
        self.eval()
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu":
            rows = cpu_chunk_rows(self.stem.out_channels, x.shape[-2], x.shape[-1], x.element_size())
            if x.shape[0] > rows:
                return torch.cat([self._forward(c) for c in x.split(rows)])
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        h = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        h = self.stem(h)
        for cell in self.cells:
            h = cell(h)
        h = torch.relu(h * self.last_scale + self.last_shift)
        return self.classifier(h.mean(dim=(2, 3)))


def fast_model(net: nn.Module, compile: bool = False) -> nn.Module:
    """The fast exact rewrite of an :class:`NB201Network` (any other module is returned unchanged).

    The network must be in evaluation mode semantics (running BN statistics); ``compile`` adds ``torch.compile``."""
    if not isinstance(net, NB201Network):
        return net
    fast: nn.Module = FastNB201(net)
    if compile:
        fast = torch.compile(fast, dynamic=True)  # type: ignore[assignment]
    return fast
