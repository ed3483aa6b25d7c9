"""Query benchmark: rb201's table against the original helper's approach (json.load of the published files into
dicts, then indexing), on the same data in the same run. Prints times and ratios.

    python bench/bench_query.py [--shared ../shared/data] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def original_load(root: Path) -> dict:
    """What the original helper does: every <dataset>/<key>_accuracy.json into nested dicts."""
    data: dict = {}
    for ds in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(ds.glob("*_accuracy.json")):
            with open(f) as fh:
                for dsn, keys in json.load(fh).items():
                    data.setdefault(dsn, {}).update(keys)
    with open(root / "meta.json") as fh:
        data["meta"] = json.load(fh)
    return data


def best(fn, repeat: int) -> float:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


def per_call(stmt, number: int, repeat: int) -> float:
    return min(timeit.repeat(stmt, number=number, repeat=repeat)) / number


def cold(code: str, repeat: int, fresh_cache: bool = False, cache: str | None = None) -> float:
    """Median wall time of ``python -c code`` in a fresh interpreter; ``RB201_CACHE`` (where verified-file stamps
    live) is a new empty folder per run with ``fresh_cache``, else ``cache``."""
    times = []
    for _ in range(repeat):
        env = dict(os.environ)
        with tempfile.TemporaryDirectory() as tmp:
            if fresh_cache or cache:
                env["RB201_CACHE"] = tmp if fresh_cache else str(cache)
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, cwd="/", env=env)
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    root = a.shared / "nb201-robustness"
    import robustbench201 as rb201
    from robustbench201 import Dataset, default_dataset

    rows = []

    def report(what: str, ours: float, theirs: float | None, unit: str = "s") -> None:
        scale = {"s": 1, "ms": 1e3, "us": 1e6}[unit]
        ratio = f"{theirs / ours:8.1f}x" if theirs else ""
        th = f"{theirs * scale:10.3f}" if theirs else " " * 10
        rows.append(f"{what:<44}{ours * scale:10.3f}{th} {unit:<3}{ratio}")

    # whole-table load
    t_orig = best(lambda: original_load(root), a.repeat)
    path = default_dataset().path

    def load_all():
        d = Dataset(path)
        for ds in d.datasets:
            d.index(ds)

    report("load whole table (3 datasets)", best(load_all, a.repeat), t_orig)

    # cold start, fresh interpreter
    c_none = cold("pass", a.repeat)
    c_ours = cold("import robustbench201 as rb201; rb201.query(13433, 'cifar10').robust('pgd', eps=1)", a.repeat)
    c_orig = cold(
        "import json, pathlib\n"
        f"root = pathlib.Path({str(root)!r}) / 'cifar10'\n"
        "d = {f.name: json.load(open(f)) for f in root.glob('*_accuracy.json')}\n"
        "d['pgd@Linf_accuracy.json']['cifar10']['pgd@Linf']['accuracy']['13433'][2]",
        a.repeat,
    )
    report("cold query 13433 cifar10 (subprocess)", c_ours, c_orig)
    report("  python -c pass (interpreter start)", c_none, None)
    # integrity on read: the first open hashes the files a query uses; later opens trust an unchanged stamp
    query = "import robustbench201 as rb201; rb201.query(13433, 'cifar10').robust('pgd', eps=1)"
    with tempfile.TemporaryDirectory() as cache:
        subprocess.run([sys.executable, "-c", query], check=True, cwd="/", env={**os.environ, "RB201_CACHE": cache})
        c_first = cold(query, a.repeat, fresh_cache=True)
        c_again = cold(query, a.repeat, cache=cache)
    report("  cold query, first open (sha256 of files)", c_first, None)
    report("  cold query, repeated open (stamps kept)", c_again, None)
    from robustbench201.atomic import sha256_file

    wide = path / "wide-cifar10.parquet"
    report(
        f"  sha256 of wide-cifar10 ({wide.stat().st_size / 2**20:.1f} MiB)", best(lambda: sha256_file(wide), 3), None
    )

    # warm lookups
    data = original_load(root)
    eps = data["meta"]["epsilons"]
    src = default_dataset()
    rb201.query(13433, "cifar10")

    def orig_record():
        out = {}
        for key, d in data["cifar10"].items():
            out[key] = d["accuracy"]["13433"]
        return out

    def orig_value():
        return data["cifar10"]["pgd@Linf"]["accuracy"]["13433"][eps["pgd@Linf"].index(1.0)]

    n = 20000
    report(
        "full record, warm (rb201.query)",
        per_call(lambda: rb201.query(13433, "cifar10"), n, 5),
        per_call(orig_record, n, 5),
        "us",
    )
    report(
        "single value, warm (query(...).robust)",
        per_call(lambda: rb201.query(13433, "cifar10").robust("pgd", eps=1), n, 5),
        per_call(orig_value, n, 5),
        "us",
    )
    report(
        "single value, warm (Dataset.value)",
        per_call(lambda: src.value(13433, "pgd@1", "cifar10"), n, 5),
        per_call(orig_value, n, 5),
        "us",
    )
    reps = np.array(sorted(int(k) for k in data["cifar10"]["clean"]["accuracy"]))
    ids = np.random.default_rng(0).choice(reps, 1000, replace=False)
    sids = [str(i) for i in ids.tolist()]
    j = eps["fgsm@Linf"].index(1.0)

    def orig_many():
        acc = data["cifar10"]["fgsm@Linf"]["accuracy"]
        return np.array([acc[s][j] for s in sids])

    assert np.array_equal(rb201.query_many(ids, "fgsm@1", "cifar10"), orig_many())
    report(
        "1000 archs, one metric (query_many)",
        per_call(lambda: rb201.query_many(ids, "fgsm@1", "cifar10"), 2000, 5),
        per_call(orig_many, 2000, 5),
        "ms",
    )

    print(f"{'':<44}{'rb201':>10}{'original':>10}     ratio (original / rb201)")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
