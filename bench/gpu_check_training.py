"""Training parts of ``bench/gpu_check.py``: the speed of the NB201 protocol (batch 256, SGD with Nesterov momentum,
random crop and flip on the device: ``robustbench201.train.train_model`` itself) with K training processes per GPU,
the GPU-hours of training the whole dataset that follow, and the training levers (channels-last, bfloat16
autocast with float32 master weights, TF32, ``torch.compile``) with bfloat16's effect on accuracy.

Speed is measured on random images of the dataset's shape (the data's values do not change the work): ``steps``
batches per epoch, three epochs, the first a warm-up (cuDNN's algorithm search, compilation); images/s of the
later epochs. With K processes, each trains its own network at the same time (a barrier starts them together) and
the GPU's rate is the sum of theirs.

Training projection: ``cells x sum over datasets (train images x epochs / images per second)`` in GPU-hours, with
6466 cells, 200 epochs, 50,000 training images for CIFAR-10 and CIFAR-100 and 151,700 for ImageNet16-120 (16 x 16)
(PROTOCOL.md sections 3 and 5), at the best K measured. The ``estimate`` uses the cell whose FLOPs are the mean of
the 6466 (a step's time is about affine in FLOPs, so the mean cell's time is about the mean time); ``if_all_largest``
uses the largest cell (every cell as costly as the most expensive one). CIFAR-100 is timed as CIFAR-10 (same
images, a larger last layer only).
"""

from __future__ import annotations

import multiprocessing as mp
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from gpu_check_setup import Context, mnist_as_cifar

from robustbench201.data.base import ImageSet
from robustbench201.models.counting import flop_count
from robustbench201.models.train_levers import TrainLevers

CELLS = 6466
EPOCHS = 200
N_TRAIN = {"cifar10": 50_000, "cifar100": 50_000, "ImageNet16-120": 151_700}
TIMED_AS = {"cifar10": "cifar10", "cifar100": "cifar10", "ImageNet16-120": "ImageNet16-120"}
SPEED_EPOCHS = 3
COMPILE_SECONDS = 45  # the least time left in which the compiled step is tried (compiling the full network: tens of s)


def training_hours(cells: int, epochs: int, n_train: dict[str, int], images_per_s: dict[str, float]) -> float:
    """GPU-hours of training ``cells`` networks per dataset for ``epochs`` epochs at ``images_per_s`` per GPU."""
    return cells * sum(n_train[d] * epochs / images_per_s[d] for d in n_train) / 3600.0


def mean_cell(channels: int, cells: int) -> int:
    """The representative cell whose FLOPs are closest to the mean of the 6466 (smallest index among ties)."""
    from robustbench201.space import representative_indices

    reps = sorted(set(representative_indices()))
    f = np.array([flop_count(i, 10, channels, cells, 3, 32) for i in reps])
    return int(reps[int(np.argmin(np.abs(f - f.mean())))])


def synthetic(dataset: str, n: int, seed: int = 0) -> ImageSet:
    """``n`` random uint8 images and labels of ``dataset``'s shape (speed only)."""
    from robustbench201.data.info import dataset_info

    info = dataset_info(dataset)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, info.channels, info.resolution, info.resolution), dtype=np.uint8)
    return ImageSet(dataset, "train", x, rng.integers(0, info.num_classes, n).astype(np.int64))


def images_per_s(images: int, epoch_s: list[float]) -> float:
    """Training images per second from the seconds of each epoch: the median of the epochs after the first (the
    warm-up), or the first alone while it is the only one (an underestimate)."""
    return images / statistics.median(epoch_s[1:] if len(epoch_s) > 1 else epoch_s)


def train_speed(arch: int, dataset: str, device: str, channels: int, cells: int, batch: int, steps: int,
                levers: TrainLevers | None = None, seed: int = 777,
                on_epoch: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Images per second of ``train_model`` on random images (``steps`` batches per epoch, three epochs, the
    first not counted) and the seconds of each epoch (the first: warm-up, compilation). ``on_epoch`` gets the
    result so far after every epoch."""
    from robustbench201.train import train_model

    data = synthetic(dataset, batch * steps, seed)
    r: dict[str, Any] = {"images": len(data), "epoch_s": []}

    def epoch_end(st: Any) -> None:
        r["epoch_s"].append(st.seconds)
        r["images_per_s"] = images_per_s(len(data), r["epoch_s"])
        r["first_epoch_s"] = r["epoch_s"][0]
        if on_epoch is not None:
            on_epoch(r)

    train_model(arch, data, epochs=SPEED_EPOCHS, seed=seed, device=device, channels=channels, n_cells=cells,
                batch_size=batch, levers=levers, on_epoch_end=epoch_end)  # fmt: skip
    return r


def lever_flags(levers: TrainLevers, device: str) -> dict[str, Any]:
    """The arithmetic flags in force inside a training step with ``levers``: one step of a one-layer network
    through the same :class:`~robustbench201.models.train_levers.TrainStep`, observed by a forward hook."""
    from gpu_check_budget import flags

    from robustbench201.models.train_levers import TrainStep

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten()).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    seen: dict[str, Any] = {}
    hook = net.register_forward_pre_hook(lambda m, a: seen.update(flags()) if not seen else None)
    try:
        x = torch.rand(2, 3, 5, 5, device=device)
        TrainStep(net, opt, torch.nn.CrossEntropyLoss(), replace(levers, compile=False), torch.device(device))(
            x, torch.zeros(2, dtype=torch.long, device=device)
        )
    finally:
        hook.remove()
    return seen


def _speed_worker(wid: int, device: str, phases: list[dict[str, Any]], barriers: list[Any], results: Any) -> None:
    """One of K training processes: for each phase it takes part in, wait for the others, then time training."""
    torch.set_num_threads(1)
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    for i, ph in enumerate(phases):
        if wid >= ph["k"]:
            continue
        try:
            barriers[i].wait(timeout=600)
            r = train_speed(ph["arch"], ph["dataset"], device, ph["channels"], ph["cells"], ph["batch"], ph["steps"],
                            seed=777 + wid)  # fmt: skip
            r["flags"] = lever_flags(TrainLevers(), device)
            results.put((i, wid, r))
        except Exception as exc:  # reported, the other processes go on
            results.put((i, wid, {"error": f"{type(exc).__name__}: {exc}"}))


def _key(arch: int, dataset: str, k: int) -> str:
    return f"{arch}@{dataset}/K={k}"


def part_train_speed(ctx: Context, seconds: float) -> dict[str, Any]:
    """Images/s of the NB201 protocol on the largest and the mean cell at 32 x 32 and 16 x 16, with K = 1 in this
    process, then K = 2, 4... processes on the one device (the mean cell first); the training projection is
    updated after every measurement."""
    s = ctx.sizes
    out = ctx.result
    cells = {"largest": s.arch, "mean": mean_cell(s.channels, s.cells)}
    out.update(cells=cells, batch=s.train_batch, steps_per_epoch=s.speed_steps, runs={}, assumptions=__doc__,
               flags=lever_flags(TrainLevers(), ctx.dev))  # fmt: skip
    base = {"channels": s.channels, "cells": s.cells, "batch": s.train_batch, "steps": s.speed_steps}
    for role in ("mean", "largest"):
        for ds in ("cifar10", "ImageNet16-120"):
            entry = out["runs"][_key(cells[role], ds, 1)] = {"role": role, "dataset": ds, "k": 1}

            def update(r: dict[str, Any], entry: dict[str, Any] = entry) -> None:  # after every epoch
                entry.update(r, aggregate_images_per_s=r["images_per_s"], epochs_done=len(r["epoch_s"]))
                out["projection"] = projection(out, cells)

            train_speed(cells[role], ds, ctx.dev, s.channels, s.cells, s.train_batch, s.speed_steps, on_epoch=update)
    phases = [{"k": k, "arch": cells["mean"], "dataset": ds, **base}
              for k in s.train_procs if k > 1 for ds in ("cifar10", "ImageNet16-120")]  # fmt: skip
    if phases:
        _in_processes(ctx, phases, out, cells)
    return out


def _in_processes(ctx: Context, phases: list[dict[str, Any]], out: dict[str, Any], cells: dict[str, int]) -> None:
    """Run the K-process phases in max(K) spawned workers; record each phase as its results arrive."""
    mpc = mp.get_context("spawn")
    kmax = max(p["k"] for p in phases)
    barriers = [mpc.Barrier(p["k"]) for p in phases]
    results = mpc.Queue()
    procs = [mpc.Process(target=_speed_worker, args=(w, ctx.dev, phases, barriers, results), daemon=True)
             for w in range(kmax)]  # fmt: skip
    got: dict[int, dict[int, Any]] = {}
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    try:
        expected = sum(p["k"] for p in phases)
        while sum(len(v) for v in got.values()) < expected:
            try:
                i, wid, r = results.get(timeout=5.0)
            except Exception:  # queue.Empty: check that the workers live
                if not any(p.is_alive() for p in procs):
                    raise RuntimeError("every training process exited early") from None
                continue
            got.setdefault(i, {})[wid] = r
            ph = phases[i]
            if len(got[i]) == ph["k"]:
                runs = got[i]
                ok = [v for v in runs.values() if "images_per_s" in v]
                out["runs"][_key(ph["arch"], ph["dataset"], ph["k"])] = {
                    "role": "mean", "dataset": ph["dataset"], "k": ph["k"],
                    "aggregate_images_per_s": sum(v["images_per_s"] for v in ok) if len(ok) == ph["k"] else None,
                    "per_process": runs, "seconds_since_start": time.perf_counter() - t0,
                }  # fmt: skip
                out["projection"] = projection(out, cells)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join(timeout=5)
        results.close()


def projection(out: dict[str, Any], cells: dict[str, int]) -> dict[str, Any]:
    """GPU-hours of training 6466 cells x 3 datasets x 200 epochs from the runs so far: per K, and at the best K
    measured for the mean cell (``estimate``) and with every cell as costly as the largest (``if_all_largest``,
    K = 1: the only K measured for it). A resolution not timed yet counts at CIFAR-10's images/s (16 x 16 images
    have a quarter of the pixels, so that overestimates), and the report says so."""

    def rates(arch: int, k: int, notes: list[str]) -> dict[str, float] | None:
        got = {}
        for d in N_TRAIN:
            r = out["runs"].get(_key(arch, TIMED_AS[d], k), {})
            got[d] = r.get("aggregate_images_per_s")
        if got["cifar10"] and not got["ImageNet16-120"]:
            got["ImageNet16-120"] = got["cifar10"]
            notes.append(f"cell {arch}, K={k}: ImageNet16-120 not timed, counted at CIFAR-10's images/s")
        return got if all(got.values()) else None  # type: ignore[return-value]

    notes: list[str] = []
    per_k: dict[str, Any] = {}
    for k in sorted({r["k"] for r in out["runs"].values()}):
        ips = rates(cells["mean"], k, notes)
        if ips is not None:
            per_k[str(k)] = {"images_per_s": ips, "gpu_hours": training_hours(CELLS, EPOCHS, N_TRAIN, ips)}
    res: dict[str, Any] = {"cells": CELLS, "epochs": EPOCHS, "n_train": N_TRAIN, "by_k_mean_cell": per_k}
    if per_k:
        best = min(per_k, key=lambda k: per_k[k]["gpu_hours"])
        res.update(best_k=int(best), estimate_gpu_hours=per_k[best]["gpu_hours"])
    big = rates(cells["largest"], 1, notes)
    if big is not None:
        res["if_all_largest_gpu_hours_k1"] = training_hours(CELLS, EPOCHS, N_TRAIN, big)
    if notes:
        res["notes"] = notes
    return res


# ---- training levers ----------------------------------------------------------------------------------------------
LEVER_CONFIGS: dict[str, TrainLevers] = {
    "fp32": TrainLevers(),
    "channels_last": TrainLevers(channels_last=True),
    "bf16": TrainLevers(autocast="bf16"),
    "channels_last+bf16": TrainLevers(channels_last=True, autocast="bf16"),
    "tf32": TrainLevers(tf32=True),
    "compile": TrainLevers(compile=True),
}


def part_train_levers(ctx: Context, seconds: float) -> dict[str, Any]:
    """The training levers on the largest cell at 32 x 32, K = 1: images/s of each against float32 (compile last:
    it pays its compilation first), then bfloat16's effect on accuracy: the same short training on MNIST-5k (as
    3 x 32 x 32) in float32 with two seeds and in bfloat16 with the first, test accuracy side by side (the float32
    seed-to-seed difference is the noise to read bfloat16's difference against). A lever "pays" when it is at
    least 5% faster and, for bfloat16, its accuracy difference is within the seed-to-seed one (or 1 point)."""
    s = ctx.sizes
    out = ctx.result
    out.update(arch=s.arch, batch=s.train_batch, speed={}, accuracy={}, pays={})

    def measure(name: str, **extra: Any) -> None:
        entry = out["speed"][name] = {"flags": lever_flags(LEVER_CONFIGS[name], ctx.dev), **extra}

        def update(r: dict[str, Any]) -> None:  # after every epoch: a cut keeps the epochs done
            entry.update(r)
            _speedups(out)

        train_speed(s.arch, "cifar10", ctx.dev, s.channels, s.cells, s.train_batch, s.speed_steps,
                    LEVER_CONFIGS[name], on_epoch=update)  # fmt: skip

    for name in [n for n in LEVER_CONFIGS if n != "compile"]:
        measure(name)
    _accuracy(ctx, out)
    _speedups(out)
    if s.mode == "quick" or ctx.left() < COMPILE_SECONDS:  # the unit tests check the lever itself
        why = "quick mode" if s.mode == "quick" else f"{ctx.left():.0f} s left, less than {COMPILE_SECONDS} s"
        out["speed"]["compile"] = {"skipped": why, "flags": lever_flags(LEVER_CONFIGS["compile"], ctx.dev)}
        return out
    measure("compile", started_at_part_second=ctx.deadline.elapsed() if ctx.deadline else None)  # a cut says when
    return out


def _accuracy(ctx: Context, out: dict[str, Any]) -> None:
    from robustbench201.train import accuracy, train_model

    s = ctx.sizes
    train, test = mnist_as_cifar("train", s.lever_images), mnist_as_cifar("test")
    kw = {"device": ctx.dev, "channels": s.channels, "n_cells": s.cells, "batch_size": s.train_batch,
          "epochs": s.lever_epochs}  # fmt: skip
    acc = out["accuracy"]
    acc.update(train_images=len(train), test_images=len(test), epochs=s.lever_epochs)
    runs = (("fp32_seed777", 777, TrainLevers()), ("bf16_seed777", 777, TrainLevers(autocast="bf16")),
            ("fp32_seed888", 888, TrainLevers()))  # fmt: skip
    for name, seed, levers in runs:
        res = train_model(s.arch, train, seed=seed, levers=levers, **kw)
        acc[name] = accuracy(res.model, test, ctx.dev)
    acc["bf16_minus_fp32"] = acc["bf16_seed777"] - acc["fp32_seed777"]
    acc["seed_to_seed_fp32"] = acc["fp32_seed888"] - acc["fp32_seed777"]


def _speedups(out: dict[str, Any]) -> None:
    base = out["speed"].get("fp32", {}).get("images_per_s")
    if not base:
        return
    acc = out["accuracy"]
    noise = max(0.01, abs(acc.get("seed_to_seed_fp32", 0.0)))
    for name, r in out["speed"].items():
        if name == "fp32" or "images_per_s" not in r:
            continue
        r["speedup_vs_fp32"] = r["images_per_s"] / base
        faster = r["speedup_vs_fp32"] >= 1.05
        if "bf16" not in name:
            out["pays"][name] = bool(faster)
        elif "bf16_minus_fp32" in acc:
            out["pays"][name] = bool(faster and abs(acc["bf16_minus_fp32"]) <= noise)
