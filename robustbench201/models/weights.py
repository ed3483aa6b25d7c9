"""Load official trained NB201 networks (PROTOCOL.md section 4).

Two archive formats hold the same per-architecture record (an ``ArchResults`` state dict):

* NATS-Bench topology "full": ``{index:06d}.pickle.pbz2``, bz2-compressed pickle,
  ``obj[hp]['all_results'][(dataset, seed)]['net_state_dict']`` with ``hp`` in ``{'12', '200'}``;
* NB201 v1.0/v1.1 archive: ``{index:06d}-FULL.pth``, a ``torch.save`` dict with ``'less'`` (12 epochs) and
  ``'full'`` (200 epochs) records.

Both are pickles and unpickling runs code from the file: every loader here needs ``trust=True``, an explicit
acknowledgement that the file comes from a source you trust. Nothing is loaded without it.
"""

from __future__ import annotations

import bz2
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data.info import DATASETS, canonical_dataset
from ..errors import CheckpointError, InvalidArchError, Rb201Error, choice_error
from ..space import Arch
from .counting import param_count
from .network import NB201Network, create_model

HPS = ("200", "12")
#: Dataset names used inside the official archives.
ARCHIVE_DATASETS = ("cifar10", "cifar10-valid", "cifar100", "ImageNet16-120")
_FULL_KEYS = {"200": "full", "12": "less"}
_PARAMS_TOL_M = 1e-6  # stored ``params`` is a float in millions


@dataclass(frozen=True)
class OfficialWeights:
    """A strictly loaded official network with where it came from."""

    model: NB201Network
    arch: Arch
    dataset: str
    seed: int
    hp: str
    params_m: float
    source: str


def _require_trust(path: Path, trust: bool) -> None:
    if trust is not True:
        raise CheckpointError(
            f"refusing to unpickle {path}: official NB201/NATS-Bench weight files are pickles, and loading a pickle "
            "can run arbitrary code. Pass trust=True only for files from a source you trust."
        )


def read_archive_record(path: str | Path, hp: str = "200", *, trust: bool = False) -> dict[str, Any]:
    """Read the ``ArchResults`` state dict for ``hp`` ('200' by default, or '12') from either archive format."""
    p = Path(path)
    if hp not in HPS:
        raise choice_error("hp (training epochs of the archive record)", hp, HPS)
    if not p.is_file():
        raise CheckpointError(f"weights file {p} does not exist")
    _require_trust(p, trust)
    name = p.name
    try:
        if name.endswith(".pbz2"):
            with bz2.open(p, "rb") as fh:
                obj = pickle.load(fh)  # noqa: S301 - guarded by trust=True
            key = hp
        elif name.endswith(".pth"):
            obj = torch.load(p, map_location="cpu", weights_only=False)
            key = _FULL_KEYS[hp]
        else:
            raise CheckpointError(
                f"unknown weights file type {name!r}; expected '{{index:06d}}.pickle.pbz2' (NATS-Bench) "
                "or '{index:06d}-FULL.pth' (NB201)"
            )
    except (OSError, EOFError, pickle.UnpicklingError, RuntimeError, ValueError) as exc:
        if isinstance(exc, Rb201Error):
            raise
        raise CheckpointError(f"cannot read weights file {p}: {type(exc).__name__}: {exc}") from None
    if not isinstance(obj, dict) or key not in obj:
        keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{p} has no record for hp={hp!r} (looked for key {key!r}; file has {keys})")
    record = obj[key]
    if not isinstance(record, dict) or "all_results" not in record:
        raise CheckpointError(f"{p}: record {key!r} is not an ArchResults state dict (no 'all_results')")
    return record


def _index_from_name(p: Path) -> int | None:
    m = re.match(r"^(\d{6})(?:\.pickle\.pbz2|-FULL\.pth)$", p.name)
    return int(m.group(1)) if m else None


def load_official(
    path: str | Path,
    dataset: str = "cifar10",
    seed: int = 777,
    hp: str = "200",
    *,
    trust: bool = False,
    arch: object | None = None,
) -> OfficialWeights:
    """Build the network of an official archive file and load its trained weights strictly.

    ``dataset`` is an archive dataset name (``cifar10``, ``cifar10-valid``, ``cifar100``, ``ImageNet16-120``);
    ``seed`` one of the record's seeds (777, 888, 999); ``hp`` the training length ('200' default, or '12').
    ``trust=True`` is required (pickle). The record's stored parameter count must match the rebuilt network,
    else :class:`CheckpointError` (some published seed records belong to another architecture).
    """
    p = Path(path)
    if dataset not in ARCHIVE_DATASETS:
        raise choice_error("archive dataset", dataset, ARCHIVE_DATASETS)
    record = read_archive_record(p, hp, trust=trust)
    results = record["all_results"]
    if (dataset, seed) not in results:
        have = sorted(f"{d}/{s}" for d, s in results)
        raise CheckpointError(f"{p} (hp={hp}) has no run for dataset={dataset!r} seed={seed}; available: {have}")
    run = results[(dataset, seed)]
    state = run.get("net_state_dict") if isinstance(run, dict) else None
    if state is None:
        raise CheckpointError(
            f"{p}: run {dataset}/{seed} (hp={hp}) has no weights (net_state_dict is None: a 'simple' archive?)"
        )
    cfg = run.get("arch_config") or {}
    arch_str = cfg.get("arch_str") or record.get("arch_str")
    try:
        file_arch = Arch.from_string(arch_str) if arch_str else None
    except InvalidArchError as exc:
        raise CheckpointError(f"{p}: stored architecture is not an NB201 cell: {exc}") from None
    if file_arch is None:
        idx = record.get("arch_index")
        idx = idx if isinstance(idx, int) and idx >= 0 else _index_from_name(p)
        if idx is None:
            raise CheckpointError(f"{p}: no arch_str and no index in the record or file name")
        file_arch = Arch.from_index(idx)
    if arch is not None:
        want = Arch.parse(arch)
        if want != file_arch:
            raise CheckpointError(f"{p} holds {file_arch!r}, not the requested {want!r}")
    channels = int(cfg.get("channel", 16))
    n_cells = int(cfg.get("num_cells", 5))
    norm_ds = canonical_dataset("cifar10" if dataset == "cifar10-valid" else dataset)
    num_classes = int(cfg.get("class_num", DATASETS[norm_ds].num_classes))
    model = create_model(file_arch, norm_ds, num_classes=num_classes, channels=channels, n_cells=n_cells)
    rebuilt_m = param_count(file_arch, num_classes, channels, n_cells, DATASETS[norm_ds].channels) / 1e6
    stored = run.get("params")
    if stored is not None and abs(float(stored) - rebuilt_m) > _PARAMS_TOL_M:
        raise CheckpointError(
            f"{p} run {dataset}/{seed} (hp={hp}) stores params={float(stored):.6f} M but {file_arch.string} "
            f"with C={channels}, N={n_cells}, {num_classes} classes has {rebuilt_m:.6f} M: "
            "the record belongs to another architecture; refusing to load it"
        )
    load_state_dict_strict(model, state, source=f"{p} {dataset}/{seed} hp={hp}")
    model.eval()
    return OfficialWeights(model, file_arch, dataset, seed, hp, rebuilt_m, str(p))


def load_state_dict_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with a one-line error naming missing, unexpected and mis-shaped keys."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{source}: state dict expected, got {type(state).__name__}")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and hasattr(v, "shape") and tuple(v.shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches (e.g. {shapes[:2]})")
        raise CheckpointError(f"{source} does not fit the network: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)
