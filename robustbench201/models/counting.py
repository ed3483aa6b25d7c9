"""Parameter and FLOP counts by the official NB201 convention, computed analytically (no torch needed).

* params: all learnable parameters (conv, BN affine, linear), in millions, as ``count_parameters_in_MB``.
* FLOPs: multiply-accumulates of every conv and linear layer for one image, plus the linear bias, in millions (all
  edges count, as in the official hook-based counter, including conv edges that cannot reach the cell output).
"""

from __future__ import annotations

from ..data.info import dataset_info
from ..errors import Rb201Error
from ..space import Arch


def _check(resolution: int) -> None:
    if resolution < 4 or resolution % 4:
        raise Rb201Error(f"input resolution must be a positive multiple of 4 (two stride-2 stages), got {resolution}")


def param_count(arch: object, num_classes: int = 10, channels: int = 16, n_cells: int = 5, in_channels: int = 3) -> int:
    """Number of learnable parameters of the network (an integer)."""
    a = Arch.parse(arch)
    total = in_channels * channels * 9 + 2 * channels  # stem conv + BN
    c = channels
    for stage in range(3):
        if stage:
            total += 9 * c * 2 * c + 2 * 2 * c  # conv_a + BN
            total += 9 * 2 * c * 2 * c + 2 * 2 * c  # conv_b + BN
            total += c * 2 * c  # downsample 1x1
            c *= 2
        per_cell = a.count("nor_conv_1x1") * (c * c + 2 * c) + a.count("nor_conv_3x3") * (9 * c * c + 2 * c)
        total += n_cells * per_cell
    total += 2 * c  # lastact BN
    total += c * num_classes + num_classes  # classifier
    return total


def flop_count(
    arch: object,
    num_classes: int = 10,
    channels: int = 16,
    n_cells: int = 5,
    in_channels: int = 3,
    resolution: int = 32,
) -> int:
    """Multiply-accumulates of conv and linear layers for one image of ``resolution`` x ``resolution``."""
    a = Arch.parse(arch)
    _check(resolution)
    r = resolution
    total = r * r * in_channels * channels * 9
    c = channels
    for stage in range(3):
        if stage:
            r //= 2
            total += r * r * (9 * c * 2 * c + 9 * 2 * c * 2 * c + c * 2 * c)
            c *= 2
        per_cell = a.count("nor_conv_1x1") * c * c + a.count("nor_conv_3x3") * 9 * c * c
        total += n_cells * per_cell * r * r
    total += c * num_classes + num_classes  # the official counter adds the linear bias
    return total


def model_info(arch: object, dataset: str = "cifar10", channels: int = 16, n_cells: int = 5) -> dict[str, float]:
    """``{"params_m": ..., "flops_m": ...}`` for the official network on ``dataset``."""
    info = dataset_info(dataset)
    return {
        "params_m": param_count(arch, info.num_classes, channels, n_cells, info.channels) / 1e6,
        "flops_m": flop_count(arch, info.num_classes, channels, n_cells, info.channels, info.resolution) / 1e6,
    }
