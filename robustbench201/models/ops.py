"""The five NB201 edge operations and the ResNet reduction block, with the official module nesting.

The nesting fixes the state-dict keys: ``ReLUConvBN.op = Sequential(ReLU, Conv2d, BatchNorm2d)`` gives
``op.1.weight`` and ``op.2.*``, exactly as in the NB201 / NATS-Bench trained networks. The same definitions build the
search supernet (with ``affine=False`` BatchNorm there).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import choice_error
from ..space import OPS


class ReLUConvBN(nn.Module):
    """ReLU -> Conv(k, stride, pad, no bias) -> BN."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int,
        padding: int,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=not affine),
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track_running_stats),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Pooling(nn.Module):
    """avg_pool_3x3: AvgPool2d(3, stride 1, pad 1, count_include_pad=False); no parameters (C_in == C_out)."""

    def __init__(self) -> None:
        super().__init__()
        self.op = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Zero(nn.Module):
    """The ``none`` edge: ``x * 0`` (keeps NaN/inf propagation of the official op out: returns true zeros)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


class Identity(nn.Module):
    """The ``skip_connect`` edge (stride 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def make_op(name: str, channels: int, affine: bool = True, track_running_stats: bool = True) -> nn.Module:
    """One edge operation C -> C, stride 1, by NB201 op name."""
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, 0, affine, track_running_stats)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, 1, affine, track_running_stats)
    if name == "avg_pool_3x3":
        return Pooling()
    raise choice_error("op", name, OPS)


class ResNetBasicBlock(nn.Module):
    """The stride-2 reduction block between the three stages (official ``ResNetBasicblock``)."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True, track_running_stats: bool = True) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1, affine, track_running_stats)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1, affine, track_running_stats)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, padding=0, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))
