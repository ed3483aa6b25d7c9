"""Can Square's queries run in bfloat16? Speed of a bfloat16 forward against the decision noise it adds.

Square keeps a proposal iff its margin ``z_y - max_{j != y} z_j`` is below the current best's, so a lower-precision
query is only sound if the sign of ``margin(candidate) - margin(best)`` survives the rounding. This script builds
Square-like pairs on the attack benchmark's network (arch 1462, C=8, N=1, trained 3 epochs on MNIST-5k): a best
point at a random vertex of the L-inf ball (a random sign per pixel, as after many accepted steps), and a candidate
that redraws one random ``s x s`` window with a random sign per channel, Square's late-phase step (s = 1..3 after
its first 250 of 5000 iterations on 28 x 28 images). Both are evaluated in float32 and under bfloat16 autocast.

Printed: the per-image forward time in both precisions (same batch, interleaved), the rounding error of the
margin, and, binned by the true (float32) margin change, how often bfloat16 takes the same keep/reject decision.

Usage: python bench/bench_square_precision.py [--n 200] [--eps 16,32] [--sides 1,2,3,5] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch

from robustbench201.attacks.base import margin
from robustbench201.data.mnist import load_mnist5k
from robustbench201.models.fast import fast_model
from robustbench201.train import train_model


def pairs(x: torch.Tensor, eps: float, side: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(best, candidate) per row: a random vertex of the ball, and the same with one window redrawn."""
    n, c, h, w = x.shape
    best = torch.clamp(x + eps * (torch.randint(0, 2, x.shape, generator=gen).float() * 2 - 1), 0.0, 1.0)
    vh = torch.randint(0, h - side + 1, (n,), generator=gen)
    vw = torch.randint(0, w - side + 1, (n,), generator=gen)
    ar_h, ar_w = torch.arange(h), torch.arange(w)
    win = ((ar_h[None] >= vh[:, None]) & (ar_h[None] < vh[:, None] + side))[:, :, None] & (
        (ar_w[None] >= vw[:, None]) & (ar_w[None] < vw[:, None] + side)
    )[:, None, :]
    sign = torch.randint(0, 2, (n, c, 1, 1), generator=gen).float() * 2 - 1
    cand = torch.where(win[:, None], best + 2 * eps * sign, best)
    cand = torch.clamp(torch.minimum(torch.maximum(cand, x - eps), x + eps), 0.0, 1.0)
    return best, cand


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200, help="test images (clean-correct ones are used)")
    ap.add_argument("--eps", default="16,32", help="L-inf radii in 1/255 units")
    ap.add_argument("--sides", default="1,2,3,5", help="window sides")
    ap.add_argument("--draws", type=int, default=20, help="pairs per image, radius and side")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"# {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{args.threads} thread(s); load average before: {os.getloadavg()}"
    )
    tr = train_model(1462, load_mnist5k("train"), epochs=3, seed=777, channels=8, n_cells=1)
    net = fast_model(tr.model.eval().requires_grad_(False))
    test = load_mnist5k("test").subset(args.n, seed=0)
    x = torch.from_numpy(np.ascontiguousarray(test.images)).float() / 255
    y = torch.from_numpy(np.asarray(test.labels, dtype=np.int64))

    def m32(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return margin(net(z), t)

    def m16(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return margin(net(z).float(), t)

    with torch.inference_mode():
        ok = net(x).argmax(1) == y
        x, y = x[ok], y[ok]
        t32, t16 = [], []
        for _ in range(5):
            t0 = time.perf_counter()
            m32(x, y)
            t32.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            m16(x, y)
            t16.append(time.perf_counter() - t0)
        a32, a16 = statistics.median(t32) / len(x) * 1e6, statistics.median(t16) / len(x) * 1e6
        print(f"# {len(x)} clean-correct images; forward float32 {a32:.0f} us/image, bfloat16 {a16:.0f} us/image")
        print(f"# bfloat16 forward speed-up: {a32 / a16:.2f}x")
        gen = torch.Generator().manual_seed(0)
        d32s, d16s, errs, scales = [], [], [], []
        for e255 in (float(e) for e in args.eps.split(",")):
            for side in (int(s) for s in args.sides.split(",")):
                for _ in range(args.draws):
                    best, cand = pairs(x, e255 / 255, side, gen)
                    b32, c32, b16, c16 = m32(best, y), m32(cand, y), m16(best, y), m16(cand, y)
                    d32s.append((c32 - b32).numpy())
                    d16s.append((c16 - b16).numpy())
                    errs.append((c16 - c32).abs().numpy())
                    scales.append(net(cand).abs().amax(1).numpy())
    d32, d16, err, scale = (np.concatenate(v) for v in (d32s, d16s, errs, scales))
    q = np.quantile(err, [0.5, 0.9, 0.99])
    print(f"# {len(d32)} pairs (eps {args.eps}/255, window sides {args.sides})")
    print(f"margin rounding error |bf16 - fp32|: median {q[0]:.4f}, 90% {q[1]:.4f}, 99% {q[2]:.4f}")
    print(f"  relative to the largest |logit|: median {np.median(err / scale):.4f}")
    print(f"true margin change |d32|: median {np.median(np.abs(d32)):.4f}")
    print("|d32| range        share   same keep/reject decision in bfloat16")
    for lo, hi in ((0, 1e-3), (1e-3, 1e-2), (1e-2, 1e-1), (1e-1, np.inf)):
        sel = (np.abs(d32) >= lo) & (np.abs(d32) < hi)
        if sel.any():
            agree = np.mean((d16[sel] < 0) == (d32[sel] < 0))
            print(f"[{lo:g}, {hi:g})".ljust(18) + f"{sel.mean():6.3f}   {agree:.3f}")
    keep32, keep16 = d32 < 0, d16 < 0
    print(
        f"kept in float32: {keep32.mean():.3f} of proposals; bfloat16 keeps {keep16.mean():.3f}, of which "
        f"{np.mean(~keep32[keep16]):.3f} are worse in float32, and rejects {np.mean(~keep16[keep32]):.3f} of the "
        "float32 improvements"
    )
    print(f"# load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
