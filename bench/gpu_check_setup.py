"""Shared pieces of ``bench/gpu_check.py``: sizes per mode, the run context (device, data, trained network, the
running part's result and deadline), timing, sizing a part's work to its share, and the dense matmul peak.
Epsilons are in 1/255 units throughout."""

from __future__ import annotations

import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gpu_check_budget import Deadline
from torch import nn

from robustbench201.data.base import ImageSet
from robustbench201.spec import EvalSpec, attack, preset

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Sizes:
    """Problem sizes of one mode (``full``: the GPU check; ``quick``: the CPU smoke run of every part). Parts take
    these as upper bounds and scale down to their time share."""

    mode: str
    channels: int
    cells: int
    arch: int
    train_images: int
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
    peak_n: int  # side of the matmul of the peak part
    speed_steps: int  # training steps per timed epoch of the training speed parts
    train_procs: tuple[int, ...]  # K training processes per GPU
    lever_images: int  # training images of the levers' short accuracy runs
    lever_epochs: int


FULL = Sizes("full", 16, 5, 1462, 4000, 40, 256, 64, 1000, 512, 73, 1000, (1, 2, 4), 8, 64,
             (1, 4, 16, 64, 256, 512, 2048), 8192, 16, (1, 2, 4), 4000, 4)  # fmt: skip
QUICK = Sizes("quick", 8, 1, 1462, 1000, 2, 32, 16, 24, 16, 8, 20, (1, 2), 2, 8, (1, 8, 32, 128), 256, 2, (1, 2),
              256, 1)  # fmt: skip


def grid_spec(sizes: Sizes) -> EvalSpec:
    """The jung2023 attacks and budgets (``quick``: tiny budgets) at the jung2023 radii times 8 (capped at 255), no
    corruptions. The check's network is trained on MNIST digits, which need about 8 times CIFAR's radii for a
    comparable share of broken points (BENCHMARKS.md, "Attacks"): the broken points' calls are what the projection
    measures. The number of epsilons, and so the rows and calls, is that of jung2023."""
    base = preset("jung2023").replace(corruptions=(), surrogates=(), certified=())
    small = {"pgd": {"steps": 5}, "aa_apgd-ce": {"n_iter": 10}, "aa_square": {"n_queries": 50}}
    attacks = []
    for a in base.attacks:
        eps = tuple(sorted({min(255.0, 8.0 * e) for e in a.epsilons}))
        params = dict(a.params) if sizes.mode == "full" else {**dict(a.params), **small.get(a.name, {})}
        attacks.append(attack(a.name, eps, **params))
    return base.replace(attacks=tuple(attacks), name="jung2023-x8" + ("" if sizes.mode == "full" else "-quick"))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn: Callable[[], Any], device: torch.device, reps: int, min_seconds: float = 0.0,
                max_seconds: float = math.inf) -> float:  # fmt: skip
    """Median wall seconds of ``fn`` over ``reps`` calls (more while their sum is under ``min_seconds``, fewer once
    it passes ``max_seconds``), after one warm-up call."""
    fn()
    sync(device)
    times: list[float] = []
    while len(times) < reps or sum(times) < min_seconds:
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
        if len(times) >= 50 * reps or sum(times) > max_seconds:
            break
    return statistics.median(times)


def machine(device: torch.device, commit: str | None = None) -> dict[str, Any]:
    """Where and with what the check ran. ``commit``: the source commit given on the command line (a copy without
    git metadata cannot tell it); else ``git rev-parse HEAD`` where git works."""
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
    from robustbench201._version import __version__, code_version

    if commit:
        info["git_commit"], info["commit_source"] = commit, "--commit"
        info["code_version"] = f"{__version__}+g{commit[:10]}"
    else:
        try:
            rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
            info["git_commit"] = rev.stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            info["git_commit"] = None
        info["commit_source"] = "git" if info["git_commit"] else None
        info["code_version"] = code_version()
    return info


def matmul_peak(ctx: Context, seconds: float) -> dict[str, Any]:
    """Dense matmul FLOP/s measured here, per precision (fp32 with TF32 off, tf32, fp16, bf16), each with the
    arithmetic flags in force while it ran; the matrix side shrinks until one product fits the time share."""
    from gpu_check_budget import flags, set_tf32

    device, out = ctx.device, ctx.result
    n = ctx.sizes.peak_n
    out["size"], out["flags"] = n, {}
    per = seconds / 6
    for name, dtype, tf32 in (
        ("fp32", torch.float32, False),
        ("tf32", torch.float32, True),
        ("fp16", torch.float16, False),
        ("bf16", torch.bfloat16, False),
    ):
        if device.type != "cuda" and name in ("tf32", "fp16"):
            continue  # no TF32 on a CPU; float16 matmuls there are emulated
        set_tf32(tf32)
        try:
            g = torch.Generator(device=device).manual_seed(0)
            a = torch.randn(n, n, device=device, generator=g).to(dtype)
            b = torch.randn(n, n, device=device, generator=g).to(dtype)
            t = median_time(lambda a=a, b=b: a @ b, device, reps=5, min_seconds=min(1.0, per / 2), max_seconds=per)
            out["flags"][name] = flags()
            out[f"{name}_flops"] = 2.0 * n**3 / t
        finally:
            set_tf32(False)
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
    """What every part shares: device, sizes, data, the trained network, results later parts use, and the running
    part's result dict (filled as it measures, so a part cut by the watchdog keeps what it has) and deadline."""

    device: torch.device
    sizes: Sizes
    out: Path
    train: ImageSet | None = None
    test: ImageSet | None = None
    net: nn.Module | None = None
    trained: bool = False
    shared: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    deadline: Deadline | None = None

    @property
    def dev(self) -> str:
        return str(self.device)

    def left(self) -> float:
        """Seconds left of the running part's share (infinite outside a part)."""
        return self.deadline.left() if self.deadline is not None else math.inf


def call_seconds(ctx: Context, rows: float, kind: str = "fwd", arch: int | None = None) -> float | None:
    """Seconds of one call of ``rows`` rows of cell ``arch`` (default: the trained one), interpolated log-log in the
    forward cost table (None before that part ran)."""
    from gpu_check_projection import CallCost

    fc = ctx.shared.get("forward_cost")
    a = ctx.sizes.arch if arch is None else arch
    pts = [(r["batch"], r[kind]) for r in (fc or {}).get("table", []) if r["arch"] == a and kind in r]
    return float(CallCost.from_points(pts)(rows)) if pts else None


def fit(n_max: int, cost: Callable[[int], float | None], seconds: float, n_min: int = 1) -> int:
    """The largest ``n`` of ``n_max, n_max // 2, ...`` (at least ``n_min``) whose estimated ``cost(n)`` seconds fit
    in ``seconds`` (``n_max`` when there is no estimate yet)."""
    n = n_max
    while n > n_min:
        c = cost(n)
        if c is None or c <= seconds:
            break
        n = max(n_min, n // 2)
    return n


def train_network(ctx: Context, seconds: float) -> dict[str, Any]:
    """Train the full-size (quick: small) network on MNIST-5k as 3 x 32 x 32 images (float32, TF32 off) for about
    ``seconds``: a one-epoch probe on a few batches times the step, then a fresh run of as many epochs as fit.
    Each epoch is checkpointed: if the watchdog cuts the run, the network of the last finished epoch is used (and
    the report says so); before any epoch has finished, the seeded initial weights."""
    from robustbench201.train import accuracy, train_model

    s, out = ctx.sizes, ctx.result
    train = mnist_as_cifar("train", s.train_images)
    test = mnist_as_cifar("test")
    ctx.train, ctx.test = train, test
    kw = {"device": ctx.dev, "channels": s.channels, "n_cells": s.cells, "seed": 777, "batch_size": s.train_batch}
    out.update(arch=s.arch, channels=s.channels, cells=s.cells, train_images=len(train), batch_size=s.train_batch,
               test_images=len(test))  # fmt: skip
    epochs = s.max_epochs
    t0 = time.perf_counter()
    if s.mode == "full":
        # Two epochs of a probe, timing only the second: the first carries the device's warm-up (kernel loading,
        # allocator growth), which on a GPU is several times an epoch and once planned 1 epoch into a 35 s share.
        probe_n = min(len(train), 1024)
        ends: list[float] = []
        train_model(s.arch, train.subset(probe_n, seed=1), epochs=2,
                    on_epoch_end=lambda _st: (sync(ctx.device), ends.append(time.perf_counter())), **kw)  # fmt: skip
        per_image = (ends[1] - ends[0]) / probe_n
        left = max(0.0, 0.85 * min(seconds, ctx.left()) - (time.perf_counter() - t0))
        epochs = max(1, min(s.max_epochs, int(left / (per_image * len(train)))))
        out["probe_seconds_per_image"] = per_image
    out["epochs_planned"] = epochs
    tmp = Path(tempfile.mkdtemp(prefix="rb201-gpu-check-train-"))
    ckpt = tmp / "train.partial"
    done: list[int] = []
    try:
        res = train_model(s.arch, train, epochs=epochs, checkpoint_path=ckpt,
                          on_epoch_end=lambda st: done.append(st.epoch), **kw)  # fmt: skip
        net, out["epochs"] = res.model, epochs
        out["train_seconds"], out["train_images_per_second"] = res.wall_time_s, res.images_per_s
    except BaseException:
        net = _last_epoch(ctx, ckpt) if done else None
        if net is None:
            untrained_network(ctx)
            out.update(trained=False, note="cut before the first epoch ended: seeded initial weights")
        else:
            _use(ctx, net)
            out.update(epochs=done[-1], note=f"cut after epoch {done[-1]} of {epochs}: that epoch's weights")
            out["clean_accuracy_test"] = accuracy(ctx.net, test, ctx.dev)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _use(ctx, net)
    out["clean_accuracy_test"] = acc = accuracy(ctx.net, test, ctx.dev)
    if acc < 0.5:  # ten balanced classes: chance is 0.1; the attack parts need points to attack
        out["warning"] = f"clean accuracy {acc:.3f} after {epochs} epochs: too close to chance for the attack parts"
    return out


def _use(ctx: Context, net: nn.Module) -> None:
    ctx.net, ctx.trained = net.to(ctx.device).eval().requires_grad_(False), True


def _last_epoch(ctx: Context, ckpt: Path) -> nn.Module | None:
    """The network of the last checkpointed epoch (None if unreadable)."""
    from robustbench201.models.network import create_model

    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)["model"]
    except Exception:  # a checkpoint cut while written is not used
        return None
    s = ctx.sizes
    net = create_model(s.arch, "cifar10", channels=s.channels, n_cells=s.cells)
    net.load_state_dict(state)
    return net


def untrained_network(ctx: Context) -> dict[str, Any]:
    """Fallback when MNIST-5k is missing: the seeded default initialisation on random CIFAR-shaped images."""
    from robustbench201.models.network import create_model
    from robustbench201.train import init_default_

    s = ctx.sizes
    net = create_model(s.arch, "cifar10", channels=s.channels, n_cells=s.cells)
    init_default_(net, torch.Generator().manual_seed(777))
    ctx.net = net.to(ctx.device).eval().requires_grad_(False)
    if ctx.test is None or ctx.train is None:
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
