"""Our corruption generator against the published CIFAR-10-C generator on the 200 reference images.

For every corruption and severity: mean |change| of ours over the reference's (the mean of its two seeded runs) and
our mean PSNR minus the reference's, for each of our seeds. Prints a markdown table (seed 0, the seed of
``tests/test_corruptions_fidelity.py``: "ratio / PSNR difference in dB" per severity), the worst pairs over all
seeds, frost's brightness shift against the reference's, and the time taken. Tolerances of the test: ratio
0.8-1.25, |PSNR difference| <= 1.5 dB.

Usage: python bench/bench_corruption_fidelity.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from robustbench201.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from robustbench201.corruptions.fidelity import change_stats

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "cifar-c-reference"


def measure(seeds: list[int]) -> dict[tuple[str, int, int], tuple[float, float, float, float]]:
    """(corruption, severity, seed) -> (mean |change| ratio, PSNR difference in dB, our brightness shift, the
    reference's brightness shift) against the reference (shifts in 0..255 units)."""
    with np.load(FIXTURE / "images.npz") as f:
        clean = np.ascontiguousarray(f["images"].transpose(0, 3, 1, 2))
    ref = json.loads((FIXTURE / "stats.json").read_text())
    out = {}
    for name in CORRUPTIONS:
        for s in SEVERITIES:
            r = ref[name][str(s)]
            for seed in seeds:
                ours = change_stats(clean, corrupt(clean, name, s, seed=seed))
                ratio = ours["mean_abs_change"] / float(np.mean(r["mean_abs_change"]))
                delta = ours["mean_psnr_db"] - float(np.mean(r["mean_psnr_db"]))
                shift = float(np.mean(r["mean_brightness_shift"]))
                out[name, s, seed] = (ratio, delta, ours["mean_brightness_shift"], shift)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of our generator")
    args = ap.parse_args()
    t0 = time.perf_counter()
    res = measure(args.seeds)
    dt = time.perf_counter() - t0
    first = args.seeds[0]
    print(f"| corruption (seed {first}) | " + " | ".join(f"severity {s}" for s in SEVERITIES) + " |")
    print("|---|" + "---|" * len(SEVERITIES))
    for name in CORRUPTIONS:
        cells = [f"{res[name, s, first][0]:.2f} / {res[name, s, first][1]:+.2f}" for s in SEVERITIES]
        print(f"| {name} | " + " | ".join(cells) + " |")
    ratios = [v[0] for v in res.values()]
    deltas = [v[1] for v in res.values()]
    lo = min(res, key=lambda k: res[k][0])
    hi = max(res, key=lambda k: res[k][0])
    worst = max(res, key=lambda k: abs(res[k][1]))
    ok = sum(0.8 <= r <= 1.25 and abs(d) <= 1.5 for r, d in zip(ratios, deltas))
    print(f"\nseeds {args.seeds}: {ok} of {len(res)} (corruption, severity, seed) within the tolerances")
    print(f"lowest ratio {res[lo][0]:.3f} ({lo[0]} {lo[1]}, seed {lo[2]})")
    print(f"highest ratio {res[hi][0]:.3f} ({hi[0]} {hi[1]}, seed {hi[2]})")
    print(f"largest |PSNR difference| {abs(res[worst][1]):.2f} dB ({worst[0]} {worst[1]}, seed {worst[2]})")
    for name in ("frost",):
        pairs = ", ".join(f"{res[name, s, first][2]:+.1f} / {res[name, s, first][3]:+.1f}" for s in SEVERITIES)
        print(f"{name} brightness shift, ours / reference, severities 1..5 (seed {first}): {pairs}")
    print(f"{dt:.1f} s for {len(args.seeds)} seeds x 75 pairs x 200 images")


if __name__ == "__main__":
    main()
