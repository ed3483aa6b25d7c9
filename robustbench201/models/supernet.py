"""The alpha-mixed NB201 supernet used by differentiable search (DARTS / DSRNA).

The macro skeleton is the NB201 network's (PROTOCOL.md section 2): stem, three stages of ``n_cells`` cells with
two ResNet reduction blocks, BN-ReLU, global average pooling, linear classifier; inputs in [0, 1] with the
normalization inside and logits-only output, like :class:`~robustbench201.models.network.NB201Network`.

Each cell edge is a :class:`MixedEdge`: ``sum_o softmax(alpha_e)_o * op_o(x)`` over the five NB201 ops. One
``6 x 5`` alpha matrix is shared by all cells, as in NB201's DARTS baseline (``TinyNetworkDarts``).

BatchNorm in search mode:

* edge ops use ``affine=False`` BN (as DARTS / NB201), so their convolutions carry a bias (``bias=not affine``,
  the official :class:`~robustbench201.models.ops.ReLUConvBN`); that bias is cancelled exactly by the BN mean;
* stem, reduction blocks and ``lastact`` keep ``affine=True`` BN (as NB201's ``TinyNetworkDarts``);
* every BN has ``track_running_stats=False`` by default: batch statistics are used in train *and* eval mode, so
  forward passes never mutate module state (which keeps search steps, finite differences and resumes exact).
  Pass ``track_running_stats=True`` for running statistics in eval mode.

With :meth:`SearchSupernet.fix_alphas` the edge weights become a fixed one-hot (the discretised supernet); it then
computes exactly the discrete network of :meth:`derive`'s cell (ops with weight 0 are skipped).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import Rb201Error
from ..space import EDGES, NUM_EDGES, NUM_OPS, OPS, Arch
from .network import Normalize, network_io
from .ops import ResNetBasicBlock, make_op

__all__ = ["MixedEdge", "SearchCell", "SearchSupernet", "create_supernet"]


class MixedEdge(nn.Module):
    """One alpha-mixed edge: ``sum_o w_o * op_o(x)`` with ``ops[o]`` in NB201 op order.

    The ``none`` op and ops whose weight is exactly 0 (one-hot alphas) are skipped: their contribution is exactly
    zero and so is the derivative of the output w.r.t. the ``none`` weight (its op output is 0)."""

    def __init__(self, channels: int, affine: bool = False, track_running_stats: bool = False) -> None:
        super().__init__()
        self.ops = nn.ModuleList(make_op(name, channels, affine, track_running_stats) for name in OPS)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, skip_zero: bool = False) -> torch.Tensor:
        out: torch.Tensor | None = None
        for o, op in enumerate(self.ops):
            if o == 0 or (skip_zero and float(weights[o]) == 0.0):
                continue
            term = weights[o] * op(x)
            out = term if out is None else out + term
        return out if out is not None else torch.zeros_like(x)


class SearchCell(nn.Module):
    """An NB201 cell whose six edges are :class:`MixedEdge` s; ``edges[k]`` in NB201 edge order, output = node 3."""

    def __init__(self, channels: int, affine: bool = False, track_running_stats: bool = False) -> None:
        super().__init__()
        self.edges = nn.ModuleList(MixedEdge(channels, affine, track_running_stats) for _ in range(NUM_EDGES))

    def forward(self, x: torch.Tensor, weights: torch.Tensor, skip_zero: bool = False) -> torch.Tensor:
        nodes = [x]
        for j in range(1, 4):
            acc: torch.Tensor | None = None
            for k, (src, dst) in enumerate(EDGES):
                if dst == j:
                    out = self.edges[k](nodes[src], weights[k], skip_zero)
                    acc = out if acc is None else acc + out
            nodes.append(acc)  # type: ignore[arg-type]  # every node has >= 1 incoming edge
        return nodes[3]


class SearchSupernet(nn.Module):
    """NB201 supernet with alpha-mixed cells (one shared ``6 x 5`` alpha matrix), [0, 1] input, logits output.

    ``alphas`` is initialised ``alpha_init_std * N(0, 1)`` (NB201's DARTS uses 1e-3) from ``generator``;
    the weights use PyTorch's default init (seed it with :func:`create_supernet`)."""

    def __init__(
        self,
        num_classes: int,
        channels: int = 16,
        n_cells: int = 5,
        in_channels: int = 3,
        resolution: int = 32,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        track_running_stats: bool = False,
        alpha_init_std: float = 1e-3,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        for name, v in (
            ("num_classes", num_classes),
            ("channels", channels),
            ("n_cells", n_cells),
            ("in_channels", in_channels),
            ("resolution", resolution),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise Rb201Error(f"{name} must be an integer >= 1, got {v!r}")
        if resolution < 4:
            raise Rb201Error(f"resolution must be >= 4 (two stride-2 reductions), got {resolution}")
        self.num_classes = num_classes
        self.channels = channels
        self.n_cells = n_cells
        self.in_channels = in_channels
        self.resolution = resolution
        mean = tuple(mean) if mean is not None else (0.0,) * in_channels
        std = tuple(std) if std is not None else (1.0,) * in_channels
        if len(mean) != in_channels or len(std) != in_channels:
            raise Rb201Error(f"mean/std need {in_channels} entries (one per input channel), got {mean}, {std}")
        trs = track_running_stats
        self.normalize = Normalize(mean, std)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(channels, track_running_stats=trs),
        )
        cells: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage > 0:
                cells.append(ResNetBasicBlock(c, 2 * c, affine=True, track_running_stats=trs))
                c *= 2
            cells.extend(SearchCell(c, affine=False, track_running_stats=trs) for _ in range(n_cells))
        self.cells = nn.ModuleList(cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c, track_running_stats=trs), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)
        init = torch.randn(NUM_EDGES, NUM_OPS, generator=generator) * alpha_init_std
        self.alphas = nn.Parameter(init)
        self.register_buffer("fixed_weights", torch.zeros(NUM_EDGES, NUM_OPS), persistent=False)
        self._fixed: Arch | None = None

    # ---- parameters ---------------------------------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        """The architecture parameters: ``[alphas]`` (6 edges x 5 ops, NB201 orders)."""
        return [self.alphas]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter except the alphas (conv, BN, linear)."""
        return [p for name, p in self.named_parameters() if name != "alphas"]

    # ---- architecture -------------------------------------------------------------------------------------
    def edge_weights(self) -> torch.Tensor:
        """The ``6 x 5`` mixing weights the forward uses: softmax of alphas per edge, or the fixed one-hot."""
        if self._fixed is not None:
            return self.fixed_weights
        return torch.softmax(self.alphas, dim=-1)

    def alphas_softmax(self) -> torch.Tensor:
        """Softmax of the alphas per edge (6 x 5, rows sum to 1), detached, on CPU."""
        return torch.softmax(self.alphas.detach(), dim=-1).cpu()

    def derive(self, exclude_none: bool = False) -> Arch:
        """The discrete cell: argmax of alpha on each edge, ``none`` included (as NB201's DARTS ``genotype``).

        Ties go to the op listed first in NB201 op order (``torch.argmax`` returns the first maximum). A cell
        where ``none`` wins on edges that disconnect input from output is returned as is (a dead cell).
        ``exclude_none=True`` takes the argmax over the four other ops instead (the original DARTS rule)."""
        a = self.alphas.detach()
        idx = a[:, 1:].argmax(dim=-1) + 1 if exclude_none else a.argmax(dim=-1)
        return Arch.from_ops(tuple(int(i) for i in idx.tolist()))

    def fix_alphas(self, arch: object) -> None:
        """Use a fixed one-hot edge weighting for ``arch`` (any form :meth:`Arch.parse` reads): the discretised
        supernet. The alphas are kept but ignored by the forward until :meth:`unfix_alphas`."""
        a = Arch.parse(arch)
        w = torch.zeros(NUM_EDGES, NUM_OPS, device=self.fixed_weights.device)
        w[torch.arange(NUM_EDGES), torch.tensor(a.ops)] = 1.0
        self.fixed_weights.copy_(w)
        self._fixed = a

    def unfix_alphas(self) -> None:
        """Return to the softmax-mixed forward."""
        self._fixed = None

    @property
    def fixed_arch(self) -> Arch | None:
        """The cell fixed by :meth:`fix_alphas`, or None when the edges are softmax-mixed."""
        return self._fixed

    # ---- forward ------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits from [0, 1] input (N x in_channels x H x W)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise Rb201Error(f"expected input N x {self.in_channels} x H x W, got shape {tuple(x.shape)}")
        weights = self.edge_weights()
        skip_zero = self._fixed is not None
        h = self.stem(self.normalize(x))
        for cell in self.cells:
            h = cell(h, weights, skip_zero) if isinstance(cell, SearchCell) else cell(h)
        h = self.lastact(h)
        return self.classifier(self.global_pooling(h).flatten(1))

    def discrete_state_dict(self, arch: object | None = None) -> dict[str, torch.Tensor]:
        """Weights of the discrete NB201 network of ``arch`` (default :meth:`derive`), under the official
        state-dict keys of :class:`~robustbench201.models.network.NB201Network` with the same C and N.

        Edge convolutions are copied without their bias and their affine-free BN becomes weight 1, bias 0: with
        batch statistics (the discrete network in ``train()`` mode) both networks compute the same function, the
        conv bias being removed by the BN mean. With ``track_running_stats=True`` the conv bias is folded into the
        running mean, so both also agree in ``eval()`` mode. BNs without running statistics get neutral ones
        (mean 0, var 1), so the result loads with ``strict=True``."""
        a = Arch.parse(arch) if arch is not None else self.derive()
        out: dict[str, torch.Tensor] = {}
        for key, value in self.state_dict().items():
            parts = key.split(".")
            if key == "alphas":
                continue
            if parts[0] == "cells" and parts[2] == "edges":
                c, k, o = int(parts[1]), int(parts[3]), int(parts[5])
                if o == a.ops[k] and OPS[o] in ("nor_conv_1x1", "nor_conv_3x3"):
                    rest = parts[6:]
                    if rest == ["op", "1", "weight"]:
                        out[f"cells.{c}.layers.{k}.op.1.weight"] = value.detach().clone()
                    elif rest[:2] == ["op", "2"]:  # running stats (track_running_stats=True)
                        out[f"cells.{c}.layers.{k}.op.2.{rest[2]}"] = value.detach().clone()
                continue  # other edge tensors (conv bias, unused ops) have no place in the discrete network
            out[key] = value.detach().clone()
        stats = {"running_mean": 0.0, "running_var": 1.0}
        bn_names = [n for n, m in self.named_modules() if isinstance(m, nn.BatchNorm2d) and m.affine]
        for c, cell in enumerate(self.cells):
            if isinstance(cell, SearchCell):
                for k, o in enumerate(a.ops):
                    if OPS[o] in ("nor_conv_1x1", "nor_conv_3x3"):
                        bn_names.append(f"cells.{c}.layers.{k}.op.2")
                        n_ch = cell.edges[k].ops[o].op[2].num_features
                        out[f"cells.{c}.layers.{k}.op.2.weight"] = torch.ones(n_ch)
                        out[f"cells.{c}.layers.{k}.op.2.bias"] = torch.zeros(n_ch)
                        conv_bias = cell.edges[k].ops[o].op[1].bias.detach()
                        mean_key = f"cells.{c}.layers.{k}.op.2.running_mean"
                        if mean_key in out:  # fold the conv bias into the running mean: same eval-mode function
                            out[mean_key] = out[mean_key] - conv_bias
        for name in bn_names:  # batch-statistics BN has no running stats: give neutral ones for a strict load
            n_ch = out[f"{name}.weight"].numel()
            for stat, fill in stats.items():
                out.setdefault(f"{name}.{stat}", torch.full((n_ch,), fill))
            out.setdefault(f"{name}.num_batches_tracked", torch.tensor(0, dtype=torch.long))
        return out


def create_supernet(
    dataset: str | None = "cifar10",
    *,
    num_classes: int | None = None,
    channels: int = 16,
    n_cells: int = 5,
    in_channels: int | None = None,
    resolution: int | None = None,
    track_running_stats: bool = False,
    seed: int = 0,
) -> SearchSupernet:
    """Build a seeded :class:`SearchSupernet` for ``dataset`` (classes, channels, resolution, normalization).

    The weights are initialised under ``torch.random.fork_rng`` seeded with ``seed`` (the caller's global RNG
    state is restored afterwards); the alphas come from a ``torch.Generator`` seeded with ``seed``."""
    io = network_io(
        dataset, num_classes=num_classes, in_channels=in_channels, resolution=resolution, who="create_supernet"
    )
    num_classes, in_channels, resolution, mean, std = io.num_classes, io.in_channels, io.resolution, io.mean, io.std
    gen = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return SearchSupernet(
            num_classes,  # type: ignore[arg-type]
            channels,
            n_cells,
            in_channels,
            32 if resolution is None else resolution,
            mean,
            std,
            track_running_stats,
            generator=gen,
        )
