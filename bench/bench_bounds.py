"""Cost of certified bounds by precision: float32 (the bound code as-is in the model's dtype), float64, and float64
with the rounding allowance that makes the bounds sound (what ``certify`` runs).

Per network and method, the seconds for one epsilon over ``--n`` images in one batch (the minimum over ``--reps``
interleaved repetitions, so that a shared machine's load hits every variant alike). The weights are PyTorch's
initialization with randomized BatchNorm statistics: the cost does not depend on the values.

Usage: python bench/bench_bounds.py [--n 16] [--reps 3] [--threads 1] [--eps 1.0]
"""

from __future__ import annotations

import argparse
import copy
import platform
import time

import torch

from robustbench201.measures.bounds import margin_lower_bound, sound_margin_lower_bound
from robustbench201.models.network import create_model

NETWORKS = {
    "full C=16 N=5, 3x32x32, 10 classes": dict(dataset="cifar10", channels=16, n_cells=5),
    "small C=8 N=1, 1x28x28, 10 classes": dict(dataset="mnist5k", channels=8, n_cells=1),
}


def _network(kwargs: dict, gen: torch.Generator) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(1462, **kwargs)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--eps", type=float, default=1.0, help="L-inf radius in 1/255 units")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} thread(s)")
    gen = torch.Generator().manual_seed(0)
    for name, kwargs in NETWORKS.items():
        model = _network(kwargs, gen)
        model64 = copy.deepcopy(model).double()
        res = 32 if kwargs["dataset"] == "cifar10" else 28
        x = torch.rand((args.n, model.in_channels, res, res), generator=gen)
        y = torch.randint(0, model.num_classes, (args.n,), generator=gen)
        x64 = x.double()
        variants = {
            "float32": (margin_lower_bound, model, x),
            "float64": (margin_lower_bound, model64, x64),
            "float64 sound": (sound_margin_lower_bound, model64, x64),
        }
        for method in ("ibp", "crown-ibp"):
            best = dict.fromkeys(variants, float("inf"))
            for _ in range(args.reps):
                for key, (fn, net, xs) in variants.items():
                    t0 = time.perf_counter()
                    with torch.no_grad():
                        fn(net, xs, y, args.eps, method)
                    best[key] = min(best[key], time.perf_counter() - t0)
            cols = "  ".join(f"{k} {v:.2f} s" for k, v in best.items())
            ratio = best["float64 sound"] / best["float32"]
            print(f"{name}, {args.n} images, {method}: {cols}  (sound / float32 {ratio:.1f}x)")


if __name__ == "__main__":
    main()
