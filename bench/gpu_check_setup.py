"""Shared pieces of ``bench/gpu_check.py``: sizes per mode, the run context (device, data, trained network), timing
and the dense matmul peak. Epsilons are in 1/255 units throughout."""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from robustbench201.data.base import ImageSet
from robustbench201.spec import EvalSpec, attack, preset

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Sizes:
    """Problem sizes of one mode (``full``: the GPU check; ``quick``: the CPU smoke run of every part)."""

    mode: str
    channels: int
    cells: int
    arch: int
    train_images: int
    train_seconds: float
    max_epochs: int
    train_batch: int  # the NB201 protocol's 256 on the GPU; small batches give a tiny CPU run enough steps
    correct_n: int  # images of the CUDA-vs-CPU comparison
    oom_n: int  # images of the out-of-memory fallback check
    precision_n: int
    grid_max_n: int  # largest N of the jung2023 grid (7 epsilons x N rows = one batch of the preset)
    lever_queries: int  # Square queries in the lever comparisons
    workers: tuple[int, ...]  # K values for --workers-per-gpu
    worker_tasks: int
    worker_n: int
    batches: tuple[int, ...]  # batch sizes (rows) of the forward cost table


FULL = Sizes("full", 16, 5, 1462, 4000, 60.0, 40, 256, 64, 2048, 512, 73, 1000, (1, 2, 4), 8, 64,
             (16, 64, 256, 512, 1024, 4096, 16384))  # fmt: skip
QUICK = Sizes("quick", 8, 1, 1462, 1000, 20.0, 2, 32, 16, 24, 16, 8, 20, (1, 2), 2, 8, (8, 32, 128))


def grid_spec(sizes: Sizes) -> EvalSpec:
    """The jung2023 attack grid (full budgets) without corruptions; ``quick`` keeps its epsilons with tiny budgets."""
    spec = preset("jung2023").replace(corruptions=(), surrogates=(), certified=())
    if sizes.mode == "full":
        return spec
    small = {"pgd": {"steps": 5}, "aa_apgd-ce": {"n_iter": 10}, "aa_square": {"n_queries": 50}}
    attacks = tuple(attack(a.name, a.epsilons, **{**dict(a.params), **small.get(a.name, {})}) for a in spec.attacks)
    return spec.replace(attacks=attacks, name="jung2023-quick")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn: Callable[[], Any], device: torch.device, reps: int, min_seconds: float = 0.0) -> float:
    """Median wall seconds of ``fn`` over ``reps`` calls (more while their sum is under ``min_seconds``), after one
    warm-up call."""
    fn()
    sync(device)
    times: list[float] = []
    while len(times) < reps or sum(times) < min_seconds:
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
        if len(times) >= 50 * reps:
            break
    return statistics.median(times)


def machine(device: torch.device) -> dict[str, Any]:
    """Where and with what the check ran."""
    info: dict[str, Any] = {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": platform.node(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        info.update(gpu=p.name, gpu_memory_gib=p.total_memory / 2**30, sm_count=p.multi_processor_count,
                    capability=f"{p.major}.{p.minor}")  # fmt: skip
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        info["git_commit"] = rev.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    from robustbench201._version import code_version

    info["code_version"] = code_version()
    return info


def matmul_peak(device: torch.device, quick: bool) -> dict[str, float]:
    """Dense matmul FLOP/s measured here, per precision (fp32 without TF32, tf32, fp16, bf16)."""
    n = 512 if quick else 8192
    out: dict[str, float] = {"size": float(n)}
    old = torch.backends.cuda.matmul.allow_tf32
    try:
        for name, dtype, tf32 in (
            ("fp32", torch.float32, False),
            ("tf32", torch.float32, True),
            ("fp16", torch.float16, False),
            ("bf16", torch.bfloat16, False),
        ):
            if device.type != "cuda" and name in ("tf32", "fp16"):
                continue  # no TF32 on a CPU; float16 matmuls there are emulated
            torch.backends.cuda.matmul.allow_tf32 = tf32
            g = torch.Generator(device=device).manual_seed(0)
            a = torch.randn(n, n, device=device, generator=g).to(dtype)
            b = torch.randn(n, n, device=device, generator=g).to(dtype)
            t = median_time(lambda a=a, b=b: a @ b, device, reps=5, min_seconds=0.3 if quick else 1.0)
            out[f"{name}_flops"] = 2.0 * n**3 / t
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    return out


def mnist_as_cifar(split: str, n: int | None = None) -> ImageSet:
    """MNIST-5k digits as CIFAR-shaped images: padded with 2 black pixels to 32 x 32 and repeated over 3 channels
    (exact, no interpolation), named ``cifar10`` so the network gets CIFAR-10's shape and normalisation."""
    from robustbench201.data.mnist import load_mnist5k

    src = load_mnist5k(split)
    if n is not None and n < len(src):
        src = src.subset(n, seed=0)
    img = np.pad(src.images, ((0, 0), (0, 0), (2, 2), (2, 2)))
    img = np.ascontiguousarray(np.repeat(img, 3, axis=1))
    return ImageSet("cifar10", split, img, np.asarray(src.labels, dtype=np.int64), src.indices)


@dataclass
class Context:
    """What every part shares: device, sizes, data, the trained network, and results later parts use."""

    device: torch.device
    sizes: Sizes
    out: Path
    train: ImageSet | None = None
    test: ImageSet | None = None
    net: nn.Module | None = None
    trained: bool = False
    shared: dict[str, Any] = field(default_factory=dict)

    @property
    def dev(self) -> str:
        return str(self.device)


def train_network(ctx: Context, seconds: float) -> dict[str, Any]:
    """Train the full-size (quick: small) network on MNIST-5k as 3 x 32 x 32 images for about ``seconds``: a
    one-epoch probe on a few batches times the step, then a fresh run of as many epochs as fit."""
    from robustbench201.train import accuracy, train_model

    s = ctx.sizes
    train = mnist_as_cifar("train", s.train_images)
    test = mnist_as_cifar("test")
    ctx.train, ctx.test = train, test
    kw = {"device": ctx.dev, "channels": s.channels, "n_cells": s.cells, "seed": 777, "batch_size": s.train_batch}
    epochs = s.max_epochs
    if s.mode == "full":
        t0 = time.perf_counter()
        probe_n = min(len(train), 1024)
        train_model(s.arch, train.subset(probe_n, seed=1), epochs=1, **kw)
        sync(ctx.device)
        per_image = (time.perf_counter() - t0) / probe_n  # includes warm-up: an overestimate
        left = max(0.0, seconds - (time.perf_counter() - t0))
        epochs = max(1, min(s.max_epochs, int(left / (per_image * len(train)))))
    res = train_model(s.arch, train, epochs=epochs, **kw)
    net = res.model.eval().requires_grad_(False)
    ctx.net, ctx.trained = net, True
    return {
        "arch": s.arch,
        "channels": s.channels,
        "cells": s.cells,
        "train_images": len(train),
        "batch_size": s.train_batch,
        "epochs": epochs,
        "train_seconds": res.wall_time_s,
        "train_images_per_second": res.images_per_s,
        "clean_accuracy_test": accuracy(net, test, ctx.dev),
        "test_images": len(test),
    }


def untrained_network(ctx: Context) -> dict[str, Any]:
    """Fallback when MNIST-5k is missing: the seeded default initialisation on random CIFAR-shaped images."""
    from robustbench201.models.network import create_model
    from robustbench201.train import init_default_

    s = ctx.sizes
    net = create_model(s.arch, "cifar10", channels=s.channels, n_cells=s.cells)
    init_default_(net, torch.Generator().manual_seed(777))
    ctx.net = net.to(ctx.device).eval().requires_grad_(False)
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (1000, 3, 32, 32), dtype=np.uint8)
    ctx.test = ImageSet("cifar10", "test", imgs, rng.integers(0, 10, 1000).astype(np.int64))
    ctx.train = ImageSet("cifar10", "train", imgs[:500].copy(), rng.integers(0, 10, 500).astype(np.int64))
    return {"trained": False, "note": "MNIST-5k not found: seeded initial weights and random images"}


def binomial_noise(p: float, n: int) -> float:
    """One standard error of an accuracy ``p`` measured on ``n`` points."""
    return math.sqrt(max(p * (1 - p), 1e-12) / max(n, 1))


def paired_weaker(mode_ok: np.ndarray, ref_ok: np.ndarray) -> dict[str, Any]:
    """Is ``mode`` a weaker attack than ``ref`` on the same points? ``b`` points survive only under ``mode``, ``c``
    only under ``ref``; weaker iff ``b - c > max(1, 2 * sqrt(b + c))`` (a paired sign test at about 2 sigma)."""
    b = int((mode_ok & ~ref_ok).sum())
    c = int((~mode_ok & ref_ok).sum())
    return {"only_mode_robust": b, "only_ref_robust": c, "weaker": bool(b - c > max(1.0, 2 * math.sqrt(b + c)))}
