"""Merge at full size: fabricate the shards of a whole build as ``rb201 launch`` lays them, then time ``merge``,
``validate``, a query and the wide table, and read single cells' arrays, at several sizes, with each step's peak
memory, the bytes on disk and the growth exponent of each measure between sizes.

    python bench/bench_merge.py [--cells 100,1000,6466] [--datasets 1] [--n 64] [--work DIR] [--json FILE]
                                [--keep]
    PYTHONPATH=OLD_TREE python bench/bench_merge.py ...     # the same with an older rb201 source tree

The shards hold what a ``jung2023`` evaluation stores: every row and array of the preset's attacks, epsilons, both
semantics, and the 15 corruptions at 5 severities. Their values come from one real evaluation (``template``: a
1-cell NB201 network trained for 2 epochs on MNIST-5k, evaluated on ``--template-n`` test digits with the preset's
grid at small attack budgets and generated corruptions), perturbed per cell: every cell resamples the template's
images (so each key keeps its accuracy and the keys of an image stay correlated) and flips 2% of its per-sample
flags; its confusion matrices are those of its images (100 or 120 classes for CIFAR-100 and ImageNet16-120), its
scalars are perturbed by a few percent. Cells are the isomorphism representatives in index order, in the 128 shards
``rb201 launch --shards 128 --arch-range 0:15625`` plans, written with the project's own writers (``runner.shard``
and ``store.shardfile.write_arch_files``), so the sizes grow as a launch fills its shards. ``--datasets 3``
fabricates CIFAR-10, CIFAR-100 and ImageNet16-120 in one shard folder and merges them in one run.

Every measured step runs in a fresh process (its peak RSS is that process's ``ru_maxrss``) that inherits the
environment, so ``PYTHONPATH`` pointing to another rb201 source tree (e.g. ``git archive`` of an older commit)
measures that code, its shard writer included. The fabricated data lives under ``--work`` and is removed at the end
unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATASETS = (("cifar10", 10), ("cifar100", 100), ("ImageNet16-120", 120))
SHARDS = 128  # rb201 launch --shards 128 --arch-range 0:15625
WEIGHTS, SEED = "nb201-200ep", 777
FLIP = 0.02  # fraction of per-sample flags flipped per cell


# ---- the template: one real evaluation ---------------------------------------------------------------------------
def template(work: Path, n: int) -> dict[str, Any]:
    """Records, arrays and per-image predictions of one real evaluation on ``n`` MNIST-5k test digits, cached in
    ``work``: {"records": [...], "arrays": {json key: array}, "pred": {json key: int array}, "labels": array}."""
    path = work / f"template-{n}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return {"records": meta["records"], "labels": z["labels"],
                    "arrays": {k: z[f"a{i}"] for i, k in enumerate(meta["arrays"])},
                    "pred": {k: z[f"p{i}"] for i, k in enumerate(meta["pred"])}}  # fmt: skip
    import torch

    from robustbench201.corruptions.sources import GeneratedCorruptions
    from robustbench201.data.mnist import load_mnist5k
    from robustbench201.evaluation import evaluate
    from robustbench201.models.network import create_model
    from robustbench201.spec import attack, preset

    torch.set_num_threads(1)
    torch.manual_seed(0)
    train, test = load_mnist5k("train", n=2500), load_mnist5k("test", n=n)
    model = create_model(1462, None, num_classes=10, channels=8, n_cells=1, in_channels=1, mean=(0.13,), std=(0.31,))
    x, y = torch.from_numpy(train.images).float() / 255, torch.from_numpy(train.labels)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(2):
        for i in range(0, len(x), 50):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[i : i + 50]), y[i : i + 50]).backward()
            opt.step()
    small = {"fgsm": {}, "pgd": {"steps": 5}, "aa_apgd-ce": {"n_iter": 10}, "aa_square": {"n_queries": 50}}
    grid = preset("jung2023")
    spec = grid.replace(
        attacks=tuple(attack(a.name, a.epsilons, **small[a.name]) for a in grid.attacks), per_sample=True
    )
    t0 = time.perf_counter()
    result = evaluate(model, test, spec, corruptions=GeneratedCorruptions(test))
    print(f"template: evaluated {len(result.records)} records, {len(result.arrays)} arrays on {n} digits in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip

    def key(k: Any) -> str:
        return json.dumps([k.family, k.key, k.measure, k.epsilon, k.severity, k.semantics, k.split])

    arrays = {key(k): v for k, v in result.arrays.items() if k.measure in ("confusion", "correct")}
    pred = {key(k): v.astype(np.int64) for k, v in result.arrays.items() if k.measure == "pred"}
    records = [[r.family, r.key, r.measure, r.value, r.n, r.norm, r.epsilon, r.severity, r.semantics, r.split]
               for r in result.records]  # fmt: skip
    meta = {"records": records, "arrays": list(arrays), "pred": list(pred)}
    work.mkdir(parents=True, exist_ok=True)
    stored = {f"a{i}": v for i, v in enumerate(arrays.values())} | {f"p{i}": v for i, v in enumerate(pred.values())}
    np.savez(path, meta=json.dumps(meta), labels=test.labels, **stored)
    return template(work, n)


def fabricate_cell(tpl: dict[str, Any], cell: int, ds_i: int, n: int) -> tuple[list[Any], dict[Any, np.ndarray]]:
    """The records and arrays of one fabricated cell of dataset ``DATASETS[ds_i]`` on ``n`` images."""
    from robustbench201.evaluation import ArrayKey, Record

    k_classes = DATASETS[ds_i][1]
    rng = np.random.default_rng([cell, ds_i])
    labels_t = tpl["labels"]
    idx = rng.integers(0, len(labels_t), n)
    spread = k_classes // 10
    sub = rng.integers(0, spread, n)
    labels = labels_t[idx] * spread + sub
    arrays: dict[Any, np.ndarray] = {}
    flags_of: dict[tuple, np.ndarray] = {}
    for k, v in tpl["arrays"].items():
        fam, key, measure, eps, sev, sem, split = json.loads(k)
        if measure != "correct":
            continue
        flags = v[idx] ^ (rng.random(n) < FLIP)
        flags_of[(fam, key, eps, sev, sem, split)] = flags
        arrays[ArrayKey(fam, key, measure, eps, sev, sem, split)] = flags
    for k in tpl["arrays"]:
        fam, key, measure, eps, sev, sem, split = json.loads(k)
        if measure != "confusion":
            continue
        flags = flags_of[(fam, key, eps, sev, sem, split)]
        preds = tpl["pred"]
        own = json.dumps([fam, key, "pred", eps, sev, sem, split])  # cumulative sets have no predictions of their own
        pred_t = preds.get(own, preds.get(json.dumps([fam, key, "pred", eps, sev, "per-epsilon", split])))
        pred_t = pred_t[idx] * spread + sub
        wrong = np.where(pred_t == labels, (labels + 1 + rng.integers(0, k_classes - 1, n)) % k_classes, pred_t)
        pred = np.where(flags, labels, wrong)
        conf = np.bincount(labels * k_classes + pred, minlength=k_classes * k_classes).reshape(k_classes, k_classes)
        arrays[ArrayKey(fam, key, measure, eps, sev, sem, split)] = conf.astype(np.int64)
    records = []
    for fam, key, measure, value, _, norm, eps, sev, sem, split in tpl["records"]:
        flags = flags_of.get((fam, key, eps, sev, sem, split))
        if measure == "accuracy" and flags is not None:
            value = float(flags.mean())
        elif value == value:
            value = float(value * (1 + 0.03 * rng.standard_normal()))
        records.append(Record(fam, key, measure, value, n, norm, eps, sev, sem, split))
    return records, arrays


def fabricate(tpl: dict[str, Any], out: Path, cells: int, datasets: int, n: int) -> dict[str, int]:
    """Fill the shards under ``out`` until each dataset holds its first ``cells`` representatives (shards already
    there are resumed); return the raw bytes (numpy ``nbytes``) of one cell's arrays per dataset."""
    from robustbench201.corruptions import GENERATED_ID
    from robustbench201.evaluation import EvalResult
    from robustbench201.runner.plan import plan_launch
    from robustbench201.runner.records import result_arrays, result_rows
    from robustbench201.runner.shard import Shard
    from robustbench201.spec import preset
    from robustbench201.store.shardfile import arch_files, shard_name, write_arch_files

    spec = preset("jung2023")
    spec_json = spec.to_json()
    raw: dict[str, int] = {}
    plan = plan_launch((0, 15625), SHARDS)
    for ds_i, (ds, _) in enumerate(DATASETS[:datasets]):
        identity = {"spec_hash": spec.hash, "dataset": ds, "weights": WEIGHTS, "weights_source": "/data/nats",
                    "seed": SEED, "n_test": None if n == 10000 else n, "channels": 16, "n_cells": 5,
                    "corruptions": GENERATED_ID}  # fmt: skip
        left = cells
        for planned in plan:
            if left <= 0:
                break
            archs = list(planned.archs)[:left]
            left -= len(archs)
            done = set(arch_files(out / shard_name(spec.hash, identity, list(planned.archs), planned.bounds)))
            if set(archs) <= done:
                continue
            shard = Shard.open(out, spec.hash, spec_json, identity, list(planned.archs), planned.bounds)
            try:
                if done:
                    shard.scan()
                for idx in archs:
                    if idx in done:
                        continue
                    records, arrays = fabricate_cell(tpl, idx, ds_i, n)
                    result = EvalResult(spec, records, arrays, {"clean": 0.1}, f"rb201-{GENERATED_ID}")
                    rows = result_rows(result, idx, ds, SEED, WEIGHTS, "0.1.0")
                    stored = result_arrays(result, idx, ds, SEED, WEIGHTS)
                    write_arch_files(shard.path, idx, rows, stored, spec_json, {"clean": 0.1}, "cpu")
                    shard.record_success(idx, len(rows), "cpu", {"clean": 0.1})
                    raw[ds] = sum(a.nbytes for a in stored.values())
                shard.save(force=True)
            finally:
                shard.close()
        if ds not in raw:
            _, arrays = fabricate_cell(tpl, 0, ds_i, n)
            raw[ds] = sum(a.nbytes for a in arrays.values())
    return raw


# ---- measured steps (each in a fresh process) ----------------------------------------------------------------
def _maxrss() -> int:
    """Peak resident memory of this process in bytes: Linux's ``VmHWM`` (``ru_maxrss`` keeps the high-water mark
    of the process that started this one across ``exec``), else ``ru_maxrss`` (macOS: bytes)."""
    try:
        for text in Path("/proc/self/status").read_text().splitlines():
            if text.startswith("VmHWM:"):
                return int(text.split()[1]) * 1024
    except OSError:
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


def step(name: str, args: list[str]) -> dict[str, Any]:
    """Run one step in this process (the child side of :func:`run_step`)."""
    t0 = time.perf_counter()
    out: dict[str, Any] = {}
    if name == "merge":
        from robustbench201.store.merge import merge_datasets

        rep = merge_datasets([args[0]], args[1])
        out.update(rows=rep.rows_out, arrays=rep.arrays)
    elif name == "validate":
        from robustbench201.store.validate import validate_dataset

        rep = validate_dataset(args[0])
        if not rep.ok:
            raise SystemExit(f"validation failed: {rep.problems[:3]}")
    elif name == "query":
        import robustbench201 as rb201

        out["value"] = rb201.query(int(args[1]), args[2], source=args[0]).value("clean")
    elif name == "table":
        import robustbench201 as rb201

        out["shape"] = list(rb201.table(args[1], source=args[0]).shape)
    elif name == "arrays":
        out.update(read_cells(Path(args[0]), args[1], [int(a) for a in args[2:]]))
    out["s"] = time.perf_counter() - t0
    out["rss"] = _maxrss()
    return out


def read_cells(path: Path, dataset: str, cells: list[int]) -> dict[str, Any]:
    """Seconds to read all arrays of the first cell (opening included) and the median of the others, and the number
    of arrays per cell: through ``rb201.Dataset.arrays`` where it exists, else from the HDF5 groups of the layout
    before it (one group per cell)."""
    import robustbench201 as rb201

    ds = rb201.Dataset(path)
    times, count = [], 0
    t0 = time.perf_counter()
    if hasattr(ds, "arrays"):
        for c in cells:
            count = len(ds.arrays(c, dataset))
            times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
    else:
        import h5py

        files = [h5py.File(path / f.path, "r") for f in ds.manifest.of_kind("arrays") if f.dataset == dataset]
        for c in cells:
            group = f"{dataset}/arch_{c:05d}"
            got: dict[str, np.ndarray] = {}
            for fh in files:
                if group in fh:
                    fh[group].visititems(partial(_keep_dataset, got, h5py.Dataset))
            count = len(got)
            times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
    return {"first": times[0], "median": float(np.median(times[1:])) if len(times) > 1 else times[0], "count": count}


def _keep_dataset(out: dict[str, np.ndarray], kind: type, name: str, obj: Any) -> None:
    if isinstance(obj, kind):
        out[name] = obj[()]


def run_step(name: str, args: list[str], cache: Path) -> dict[str, Any]:
    """``name`` in a fresh interpreter; its result, with ``wall``: the wall time of the whole process (interpreter
    start included) and the load average before it."""
    env = dict(os.environ, RB201_CACHE=str(cache), OMP_NUM_THREADS="1")
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, __file__, "--step", name, *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode:
        raise SystemExit(f"step {name} failed:\n{res.stdout}\n{res.stderr}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out.update(wall=wall, load=load)
    return out


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def kinds_bytes(path: Path) -> dict[str, int]:
    m = json.loads((path / "manifest.json").read_text())
    out: dict[str, int] = {}
    for f in m["files"]:
        out[f["kind"]] = out.get(f["kind"], 0) + f["bytes"]
    return out


# ---- the benchmark ----------------------------------------------------------------------------------------------
def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    tpl = template(work, args.template_n)
    from robustbench201.space import representative_indices

    reps = [i for i, r in enumerate(representative_indices()) if i == r]
    shards = work / f"shards-{args.datasets}x-n{args.n}"
    results = []
    for cells in sorted(args.cells):
        t0 = time.perf_counter()
        raw = fabricate(tpl, shards, cells, args.datasets, args.n)
        made = time.perf_counter() - t0
        print(f"{cells} cells x {args.datasets} dataset(s): shards ready ({made:.0f} s)", flush=True)
        out = work / f"dataset-{args.datasets}x-{cells}-n{args.n}"
        shutil.rmtree(out, ignore_errors=True)
        with tempfile.TemporaryDirectory(dir=work) as cache:
            row: dict[str, Any] = {"cells": cells, "datasets": args.datasets, "n": args.n}
            row["merge"] = run_step("merge", [str(shards), str(out)], Path(cache))
            row["validate"] = run_step("validate", [str(out)], Path(cache))
            rng = np.random.default_rng(0)
            picks = [int(c) for c in rng.choice(reps[:cells], size=min(args.read_cells, cells), replace=False)]
            with tempfile.TemporaryDirectory(dir=work) as fresh:  # the first query of a fresh cache hashes its file
                row["query"] = run_step("query", [str(out), str(picks[0]), "cifar10"], Path(fresh))
            with tempfile.TemporaryDirectory(dir=work) as fresh:
                row["table"] = run_step("table", [str(out), "cifar10"], Path(fresh))
            row["arrays"] = run_step("arrays", [str(out), "cifar10", *map(str, picks)], Path(cache))
        row["disk"] = du(out)
        row["kinds"] = kinds_bytes(out)
        row["shards_disk"] = du(shards)
        row["raw_arrays"] = sum(raw.values()) * cells
        results.append(row)
        print(line(row), flush=True)
        shutil.rmtree(out, ignore_errors=True)
    return results


def line(r: dict[str, Any]) -> str:
    gib = 1 << 30
    return (
        f"{r['cells']} cells x {r['datasets']}: merge {r['merge']['s']:.1f} s ({r['merge']['rss'] / gib:.2f} GiB), "
        f"validate {r['validate']['s']:.1f} s ({r['validate']['rss'] / gib:.2f} GiB), query {r['query']['wall']:.2f} s,"
        f" table {r['table']['wall']:.2f} s ({r['table']['rss'] / gib:.2f} GiB), one cell's "
        f"{r['arrays']['count']} arrays {r['arrays']['median'] * 1e3:.1f} ms (first {r['arrays']['first'] * 1e3:.0f} "
        f"ms), disk {r['disk'] / 1e6:.0f} MB ({r['disk'] / 1e6 / (r['cells'] * r['datasets']):.3f} MB per cell; "
        f"arrays {r['kinds'].get('arrays', 0) / max(r['raw_arrays'], 1):.2f}x their raw bytes), load "
        f"{r['merge']['load']:.1f}"
    )


def table_md(results: list[dict[str, Any]]) -> str:
    gib = 1 << 30
    head = (
        "| cells x datasets | merge | merge peak RSS | validate | validate peak RSS | query (fresh process) | "
        "table (fresh process) | one cell's arrays | dataset on disk | MB per cell | arrays / raw bytes |"
    )
    out = [head, "|" + "---|" * 11]
    for r in results:
        pc = r["cells"] * r["datasets"]
        out.append(
            f"| {r['cells']} x {r['datasets']} | {r['merge']['s']:.1f} s | {r['merge']['rss'] / gib:.2f} GiB | "
            f"{r['validate']['s']:.1f} s | {r['validate']['rss'] / gib:.2f} GiB | {r['query']['wall']:.2f} s | "
            f"{r['table']['wall']:.2f} s | {r['arrays']['median'] * 1e3:.1f} ms | {r['disk'] / 1e6:.0f} MB | "
            f"{r['disk'] / 1e6 / pc:.3f} | {r['kinds'].get('arrays', 0) / max(r['raw_arrays'], 1):.2f} |"
        )
    for a, b in zip(results, results[1:]):
        g = math.log(b["cells"] / a["cells"])

        def e(f: Any, a: dict[str, Any] = a, b: dict[str, Any] = b, g: float = g) -> str:
            return f"{math.log(f(b) / f(a)) / g:.2f}"

        out.append(
            f"\ngrowth {a['cells']} -> {b['cells']} cells (exponent, 1 = linear): merge time "
            f"{e(lambda r: r['merge']['s'])}, merge peak RSS {e(lambda r: r['merge']['rss'])}, validate "
            f"{e(lambda r: r['validate']['s'])}, query {e(lambda r: r['query']['wall'])}, table "
            f"{e(lambda r: r['table']['wall'])}, one cell's arrays {e(lambda r: r['arrays']['median'])}, disk "
            f"{e(lambda r: r['disk'])}"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cells", default="100,1000,6466", help="comma-separated numbers of cells per dataset")
    p.add_argument("--datasets", type=int, default=1, choices=(1, 2, 3), help="CIFAR-10 [, CIFAR-100, ImageNet16-120]")
    p.add_argument("--n", type=int, default=64, help="test images per cell (length of the per-sample flags)")
    p.add_argument("--template-n", type=int, default=64, help="test digits of the real evaluation values come from")
    p.add_argument("--read-cells", type=int, default=21, help="cells whose arrays are read (the first opens the files)")
    p.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "rb201-bench-merge"))
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--keep", action="store_true", help="keep the fabricated shards and the template under --work")
    p.add_argument("--step", default=None, help=argparse.SUPPRESS)
    args, rest = p.parse_known_args(argv)
    if args.step:
        print(json.dumps(step(args.step, rest)))
        return 0
    args.cells = [int(c) for c in args.cells.split(",")]
    if max(args.cells) > 6466 or min(args.cells) < 1:
        p.error("--cells must be in 1..6466 (the isomorphism representatives)")
    import robustbench201

    code = Path(robustbench201.__file__).parent.parent
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; rb201 from {code}", flush=True)
    try:
        results = measure(args)
    finally:
        if not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)
    print(table_md(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
