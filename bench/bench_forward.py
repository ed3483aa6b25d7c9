"""Per-image cost of one evaluation-mode forward pass: the network as built against the exact fast rewrite
(``fast_model``), over batch sizes, with the rewrite's CPU chunking on and off.

Square spends its 5000 queries per still-robust point in forward passes, so this is the cost that decides the
protocol's wall time. Batches of every size are timed in rounds, interleaved, and the median per image is printed;
the logits of both networks are compared once. Random BN statistics (the cost does not depend on training).

Usage: python bench/bench_forward.py [--size small|full] [--arch 1462] [--batches 16,64,128,320,640] [--threads 1]
    small: C=8, N=1 on 1 x 28 x 28 (the attack benchmark's network); full: the official C=16, N=5 on 3 x 32 x 32.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

import robustbench201.models.fast as fast_mod
from robustbench201.models.network import create_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="small", choices=["small", "full"])
    ap.add_argument("--arch", default="1462", help="NB201 index or arch string")
    ap.add_argument("--batches", default="16,64,128,320,640")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    arch = int(args.arch) if args.arch.isdigit() else args.arch
    if args.size == "small":
        net = create_model(arch, "mnist", channels=8, n_cells=1)
        shape = (1, 28, 28)
    else:
        net = create_model(arch, "cifar10")
        shape = (3, 32, 32)
    gen = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1, generator=gen)
            m.running_var.uniform_(0.5, 1.5, generator=gen)
    net.eval().requires_grad_(False)
    fast = fast_mod.fast_model(net)
    batches = [int(b) for b in args.batches.split(",")]
    n = max(batches)
    x = torch.rand(n, *shape, generator=gen)
    chunk_bytes = fast_mod.CPU_CHUNK_BYTES
    print(
        f"# {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{args.threads} thread(s); load average before: {os.getloadavg()}"
    )
    print(f"# {args.size} network {args.arch}, input {shape}; {n} images per timing, {args.rounds} rounds")
    with torch.inference_mode():
        diff = float((fast(x[:64]) - net(x[:64])).abs().max())
    print(f"# max |logit difference| fast vs as built on 64 images: {diff:.2e}")

    def per_image(f, b: int) -> float:  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        with torch.inference_mode():
            for i in range(0, n, b):
                f(x[i : i + b])
        return (time.perf_counter() - t0) / n * 1e6

    variants = ("as built", "fast, chunked", "fast, unchunked")
    times: dict[tuple[str, int], list[float]] = {(v, b): [] for v in variants for b in batches}
    for _ in range(args.rounds):
        for b in batches:
            times[("as built", b)].append(per_image(net, b))
            fast_mod.CPU_CHUNK_BYTES = chunk_bytes
            times[("fast, chunked", b)].append(per_image(fast, b))
            fast_mod.CPU_CHUNK_BYTES = 1 << 60
            times[("fast, unchunked", b)].append(per_image(fast, b))
            fast_mod.CPU_CHUNK_BYTES = chunk_bytes
    rows = fast_mod.cpu_chunk_rows(fast.stem.out_channels, shape[1], shape[2])
    print(f"\nmedian microseconds per image (chunk: {rows} rows)")
    print("batch  " + "".join(f"{v:>18s}" for v in variants) + "   as built / fast chunked")
    for b in batches:
        med = [statistics.median(times[(v, b)]) for v in variants]
        print(f"{b:5d}  " + "".join(f"{m:18.1f}" for m in med) + f"   {med[0] / med[1]:.2f}x")
    print(f"# load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
