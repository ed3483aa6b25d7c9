"""The NB201 cell network (PROTOCOL.md section 2), state-dict compatible with the official trained networks.

Contract (RobustBench-style): input in [0, 1], NCHW; the dataset normalization happens inside (non-persistent
buffers, so official state dicts load with ``strict=True``); the forward returns logits only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..data.info import dataset_info
from ..errors import Rb201Error
from ..space import EDGES, Arch
from .ops import ResNetBasicBlock, make_op


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; buffers are not persistent (absent from the state dict)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class InferCell(nn.Module):
    """A discrete NB201 cell: node j = sum_{i<j} op_ij(node i); output = node 3. ``layers[k]`` in edge order."""

    def __init__(self, arch: Arch, channels: int, affine: bool = True, track_running_stats: bool = True) -> None:
        super().__init__()
        self.arch = arch
        self.layers = nn.ModuleList(make_op(name, channels, affine, track_running_stats) for name in arch.op_names)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in range(1, 4):
            acc = None
            for k, (src, dst) in enumerate(EDGES):
                if dst != j:
                    continue
                if self.arch.ops[k] == 0:  # none: contributes zero; skip the work, keep shape below
                    continue
                out = self.layers[k](nodes[src])
                acc = out if acc is None else acc + out
            nodes.append(acc if acc is not None else torch.zeros_like(x))
        return nodes[3]


class NB201Network(nn.Module):
    """NB201 macro skeleton: stem, 3 stages of ``n_cells`` cells with 2 ResNet reduction blocks, BN-ReLU, GAP, FC."""

    def __init__(
        self,
        arch: Arch,
        num_classes: int,
        channels: int = 16,
        n_cells: int = 5,
        in_channels: int = 3,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.arch = arch
        self.num_classes = num_classes
        self.channels = channels
        self.n_cells = n_cells
        self.in_channels = in_channels
        mean = tuple(mean) if mean is not None else (0.0,) * in_channels
        std = tuple(std) if std is not None else (1.0,) * in_channels
        if len(mean) != in_channels or len(std) != in_channels:
            raise Rb201Error(f"mean/std need {in_channels} entries (one per input channel), got {mean}, {std}")
        self.normalize = Normalize(mean, std)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(channels)
        )
        cells: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage > 0:
                cells.append(ResNetBasicBlock(c, 2 * c))
                c *= 2
            cells.extend(InferCell(arch, c) for _ in range(n_cells))
        self.cells = nn.ModuleList(cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (what the official forward returns first), from [0, 1] input."""
        h = self.stem(self.normalize(x))
        for cell in self.cells:
            h = cell(h)
        h = self.lastact(h)
        return self.global_pooling(h).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@dataclass(frozen=True)
class NetworkIO:
    """What a network's ends need from its dataset: classes, input channels, resolution, normalization."""

    num_classes: int
    in_channels: int
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    resolution: int | None


def network_io(
    dataset: str | None,
    *,
    num_classes: int | None = None,
    in_channels: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    resolution: int | None = None,
    who: str = "create_model",
) -> NetworkIO:
    """Classes, input channels, resolution and normalization from ``dataset`` (each can be overridden; the dataset's
    normalization applies only when the input channels are the dataset's). With ``dataset=None``, ``num_classes``
    is required and the normalization is the identity unless given."""
    if dataset is not None:
        info = dataset_info(dataset)
        num_classes = info.num_classes if num_classes is None else num_classes
        in_channels = info.channels if in_channels is None else in_channels
        resolution = info.resolution if resolution is None else resolution
        if mean is None and std is None and in_channels == info.channels:
            mean, std = info.mean, info.std
    elif num_classes is None:
        raise Rb201Error(f"{who} needs dataset=... or num_classes=...")
    in_channels = 3 if in_channels is None else in_channels
    if num_classes < 1 or in_channels < 1:
        raise Rb201Error(f"num_classes and in_channels must be >= 1, got {num_classes}, {in_channels}")
    return NetworkIO(
        num_classes,
        in_channels,
        None if mean is None else tuple(mean),
        None if std is None else tuple(std),
        resolution,
    )


def create_model(
    arch: object,
    dataset: str | None = "cifar10",
    *,
    num_classes: int | None = None,
    channels: int = 16,
    n_cells: int = 5,
    in_channels: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> NB201Network:
    """Build the NB201 network for ``arch`` (string, index, op tuple or :class:`Arch`).

    ``dataset`` sets classes, input channels and normalization; each can be overridden. With ``dataset=None``,
    ``num_classes`` is required and normalization is the identity unless ``mean``/``std`` are given.
    The defaults (C=16, N=5) are the official network; small values (e.g. C=8, N=1) run quickly on CPU.
    """
    a = Arch.parse(arch)
    if channels < 1 or n_cells < 1:
        raise Rb201Error(f"channels and n_cells must be >= 1, got channels={channels}, n_cells={n_cells}")
    io = network_io(dataset, num_classes=num_classes, in_channels=in_channels, mean=mean, std=std)
    return NB201Network(a, io.num_classes, channels, n_cells, io.in_channels, io.mean, io.std)
