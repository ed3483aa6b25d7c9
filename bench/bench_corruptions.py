"""Throughput of the corruption generator: seconds per corruption for N CIFAR-shaped images at severity 5.

Wall and CPU time (all threads) are both shown: on a shared machine the CPU time is the steadier number.

Usage: python bench/bench_corruptions.py [N]
"""

from __future__ import annotations

import sys
import time

import numpy as np

from robustbench201.corruptions import CORRUPTIONS, corrupt


def main(n: int = 1000) -> None:
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


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
