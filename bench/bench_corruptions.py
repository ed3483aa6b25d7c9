"""Throughput of the corruption generator, and zoom blur's time with one and two BLAS threads.

Part 1: seconds per corruption for N CIFAR-shaped images at severity 5 (wall and CPU time of all threads; on a
shared machine the CPU time is the steadier number).

Part 2: zoom blur at severity 5 on the 200 reference images (``tests/fixtures/cifar-c-reference``) with the BLAS
limited to 1 and to 2 threads (threadpoolctl when installed, else a fresh process per count with OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS and MKL_NUM_THREADS set), best of ``--repeat`` runs, for ours (two sparse products per chunk,
``_common.zoom_sum_hwk``) and, as the peer in the same run, the former batched dense product (one small matrix
product per image row and zoom factor). ``--load K`` keeps K busy-looping processes running during part 2, as other
jobs on a shared machine do: that is where a multi-threaded BLAS suffers.

Usage: python bench/bench_corruptions.py [--n 1000] [--repeat 3] [--load 0] [--skip-throughput]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from robustbench201.corruptions import CORRUPTIONS, corrupt
from robustbench201.corruptions._common import zoom_operators
from robustbench201.corruptions.blur import ZOOM_BLUR_END

REFERENCE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "cifar-c-reference" / "images.npz"


def throughput(n: int) -> None:
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    x = gaussian_filter(rng.random((n, 3, 32, 32)), sigma=(0, 0, 1.5, 1.5))
    x = np.rint((x - x.min()) / (x.max() - x.min()) * 255).astype(np.uint8)
    total = 0.0
    for name in CORRUPTIONS:
        t, c = time.perf_counter(), time.process_time()
        corrupt(x, name, 5, seed=0)
        dt, dc = time.perf_counter() - t, time.process_time() - c
        total += dt
        print(f"{name:18s} wall {dt:7.3f} s  cpu {dc:7.3f} s  ({n / dt:9.0f} img/s wall)")
    print(f"{'total':18s} {total:7.3f} s for {n} images x 15 corruptions (one severity)")


def _reference_images() -> np.ndarray:
    with np.load(REFERENCE) as f:
        return np.ascontiguousarray(f["images"].transpose(0, 3, 1, 2))


def _batched_dense_zoom_blur(x: np.ndarray, severity: int) -> np.ndarray:
    """The former zoom blur: per factor, R @ X as one product, then C applied by a batched ``np.matmul`` over rows."""
    factors = np.arange(1, ZOOM_BLUR_END[severity - 1], 0.01)
    xf = x.transpose(0, 2, 3, 1).astype(np.float32) / np.float32(255.0)
    n, h, w, c = xf.shape
    xt = np.ascontiguousarray(xf.transpose(1, 2, 0, 3)).reshape(h, w, n * c)
    out = xt.copy()
    for z in factors:
        r, cm = (m.astype(np.float32) for m in zoom_operators(h, w, float(z)))
        t = (r @ xt.reshape(h, w * n * c)).reshape(h, w, n * c)
        out += np.matmul(cm, t)
    return out / np.float32(len(factors) + 1)


def _time_zoom(threads: int, repeat: int) -> dict[str, float]:
    """Best-of-``repeat`` seconds of ours and of the former zoom blur (severity 5, 200 images) in this process."""
    x = _reference_images()
    impls = {"ours": lambda: corrupt(x, "zoom_blur", 5, seed=0), "former": lambda: _batched_dense_zoom_blur(x, 5)}
    out = {}
    for name, fn in impls.items():
        fn()  # warm-up: operators are cached, imports done
        best = float("inf")
        for _ in range(repeat):
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        out[name] = best
    out["threads"] = threads
    return out


def _zoom_in_process(threads: int, repeat: int) -> dict[str, float]:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
        env["MKL_NUM_THREADS"] = str(threads)
        code = f"import json, bench_corruptions as b; print(json.dumps(b._time_zoom({threads}, {repeat})))"
        res = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=Path(__file__).parent, capture_output=True, text=True
        )
        res.check_returncode()
        return json.loads(res.stdout.strip().splitlines()[-1])
    with threadpool_limits(limits=threads, user_api="blas"):
        return _time_zoom(threads, repeat)


def zoom_threads(repeat: int, load: int) -> None:
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load)]
    try:
        if busy:
            time.sleep(1.0)
        res = {t: _zoom_in_process(t, repeat) for t in (1, 2)}
    finally:
        for p in busy:
            p.kill()
            p.wait()
    print(f"zoom blur, severity 5, 200 images of 32 x 32, best of {repeat}, {load} busy processes beside")
    print(f"{'':8s} {'1 thread':>10s} {'2 threads':>10s} {'2 / 1':>7s}")
    for impl in ("ours", "former"):
        t1, t2 = res[1][impl], res[2][impl]
        print(f"{impl:8s} {t1:9.3f}s {t2:9.3f}s {t2 / t1:6.2f}x")
    print(f"ours is {res[2]['former'] / res[2]['ours']:.1f}x faster than the former with 2 threads")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="images for the throughput part")
    ap.add_argument("--repeat", type=int, default=3, help="runs per zoom-blur timing (the best is shown)")
    ap.add_argument("--load", type=int, default=0, help="busy-looping processes during the thread comparison")
    ap.add_argument("--skip-throughput", action="store_true", help="only the zoom-blur thread comparison")
    args = ap.parse_args()
    if not args.skip_throughput:
        throughput(args.n)
    zoom_threads(args.repeat, args.load)


if __name__ == "__main__":
    main()
