"""Speed parts of ``bench/gpu_check.py``: the forward cost table (three cells, batch sizes, forward and forward +
input-gradient backward), the jung2023 grid with every call recorded, and the same grid the reference way for the
wall-time ratio. Epsilons in 1/255 units; FLOPs are 2 x the multiply-accumulates of ``models/counting.py``."""

from __future__ import annotations

import time
import zlib
from typing import Any

import numpy as np
import torch
from bench_attacks import run_reference
from gpu_check_budget import PartCut
from gpu_check_calls import CallRecorder
from gpu_check_setup import Context, call_seconds, fit, grid_spec, median_time, sync
from torch import nn

from robustbench201.attacks import create_attack
from robustbench201.attacks.cascade import BatchPolicy, run_grid
from robustbench201.attacks.square_fast import apply_square_options, square_options
from robustbench201.data.base import ImageSet
from robustbench201.models.counting import flop_count
from robustbench201.models.fast import fast_model
from robustbench201.spec import AttackSpec, EvalSpec, attack


def flops(arch: int, channels: int, cells: int) -> float:
    """FLOPs of one 3 x 32 x 32 forward (2 x multiply-accumulates), 10 classes."""
    return 2.0 * flop_count(arch, 10, channels, cells, 3, 32)


def reference_cells(channels: int, cells: int, largest: int) -> dict[str, int]:
    """The cells of the cost table: the smallest and the median of the 6466 representatives by FLOPs (the smallest
    index among ties) and ``largest`` (the trained cell, all 3 x 3 convolutions: the most FLOPs of the space)."""
    from robustbench201.space import representative_indices

    reps = sorted(set(representative_indices()))
    f = np.array([flop_count(i, 10, channels, cells, 3, 32) for i in reps])
    if flop_count(largest, 10, channels, cells, 3, 32) < f.max():
        raise ValueError(f"cell {largest} is not the largest by FLOPs")
    median = int(reps[int(np.argmin(np.abs(f - float(np.median(f)))))])
    return {"smallest": int(reps[int(np.argmin(f))]), "median": median, "largest": largest}


def _net(ctx: Context, arch: int) -> nn.Module:
    if arch == ctx.sizes.arch and ctx.net is not None:
        return ctx.net
    from robustbench201.models.network import create_model
    from robustbench201.train import init_default_

    net = create_model(arch, "cifar10", channels=ctx.sizes.channels, n_cells=ctx.sizes.cells)
    init_default_(net, torch.Generator().manual_seed(777))
    return net.to(ctx.device).eval().requires_grad_(False)


def part_forward_cost(ctx: Context, seconds: float) -> dict[str, Any]:
    """Seconds per call of the fast forward (``fwd``, inference) and of forward + input-gradient backward
    (``fwd_bwd``, weights frozen, as the attacks run it) over batch sizes, for the largest (trained), median and
    smallest cell (largest first: the projection and the other parts' sizing need it most); achieved FLOP/s and
    its share of the fp32 peak. A batch is skipped when its estimate would overrun the share."""
    s = ctx.sizes
    peak = ctx.shared.get("peak", {}).get("fp32_flops")
    roles = reference_cells(s.channels, s.cells, s.arch)
    out = ctx.result
    out.update(cells=[], table=[])
    ctx.shared["forward_cost"] = out  # the parts after this one read what has been measured so far
    gen = torch.Generator(device=ctx.device).manual_seed(0)
    for role in ("largest", "median", "smallest"):
        arch = roles[role]
        model = fast_model(_net(ctx, arch))
        f = flops(arch, s.channels, s.cells)
        measured = False
        last: tuple[int, float] | None = None
        for b in s.batches:
            if last is not None and 12 * last[1] * b / last[0] > ctx.left():
                out["table"].append({"arch": arch, "batch": b, "skipped": "time budget"})
                continue
            x = torch.rand(b, 3, 32, 32, device=ctx.device, generator=gen)

            def fwd_bwd(x: torch.Tensor = x, model: nn.Module = model) -> None:
                model(x.clone().requires_grad_(True)).sum().backward()

            with torch.no_grad():
                t_f = median_time(lambda m=model, x=x: m(x), ctx.device, reps=5, max_seconds=0.1 * ctx.left())
            t_fb = median_time(fwd_bwd, ctx.device, reps=5, max_seconds=0.1 * ctx.left())
            last = (b, t_f + t_fb)
            out["table"].append({"arch": arch, "role": role, "batch": b, "fwd": t_f, "fwd_bwd": t_fb,
                                 "us_per_image": 1e6 * t_f / b, "flops_per_s": f * b / t_f,
                                 "of_fp32_peak": f * b / t_f / peak if peak else None})  # fmt: skip
            if not measured:
                out["cells"].append({"arch": arch, "role": role, "flops": f})
                out["cells"].sort(key=lambda c: c["flops"])
                measured = True
    big = [r for r in out["table"] if r["arch"] == s.arch and "fwd" in r]
    if big:
        r = min(big, key=lambda r: abs(np.log(r["batch"] / 512)))
        out["fwd_bwd_over_fwd"], out["fwd_bwd_batch"] = r["fwd_bwd"] / r["fwd"], r["batch"]
    return out


def _test_tensors(ctx: Context, n: int) -> tuple[ImageSet, torch.Tensor, torch.Tensor]:
    assert ctx.test is not None
    data = ctx.test.subset(n, seed=6)
    x = torch.from_numpy(data.images).to(ctx.device).float().div_(255)
    y = torch.from_numpy(data.labels).to(ctx.device)
    return data, x, y


def grid_calls(spec: EvalSpec) -> float:
    """Forward-call equivalents of the grid on one batch if no point broke (a gradient call ~ three forwards)."""
    p = {a.name: dict(a.params) for a in spec.attacks}
    return (p["aa_square"]["n_queries"] + 1) + 3 * (p["pgd"]["steps"] + 1) + 3 * (p["aa_apgd-ce"]["n_iter"] + 1) + 4


def run_attack(ctx: Context, rec: CallRecorder, data: ImageSet, clean: torch.Tensor, a: AttackSpec,
               spec: EvalSpec, into: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """One attack of the grid as ``rb201.evaluate`` runs it (same attack object, random stream and per-epsilon
    batching), all its rows in one batch, every call recorded under the attack's name with its row sequence.
    If the watchdog cuts it, the calls so far go to ``into[a.name]`` marked ``partial`` before the cut goes on."""
    atk = apply_square_options(create_attack(a.name, **a.kwargs()), square_options(spec.extra, spec.precision))
    gen = torch.Generator(device=ctx.device).manual_seed(spec.seed * 1_000_003 + zlib.crc32(a.name.encode()))
    labels = torch.from_numpy(np.asarray(data.labels, dtype=np.int64))
    attacked = int((clean.argmax(1) == labels).sum())
    fwd0, bwd0 = rec.forward_images, rec.backward_images
    t0 = time.perf_counter()
    try:
        with rec.section(a.name, sequence=True):
            res = run_grid(atk, rec, data.images, labels, clean, a.epsilons, "per-epsilon", gen,
                           BatchPolicy(max(1, attacked) * len(a.epsilons)), ctx.device)  # fmt: skip
            sync(ctx.device)
    except PartCut:
        if into is not None:
            into[a.name] = {"partial": True, "wall": time.perf_counter() - t0, "attacked": attacked,
                            "epsilons": list(a.epsilons), "params": dict(a.params),
                            "calls": rec.report().get(a.name, {})}  # fmt: skip
        raise
    wall = time.perf_counter() - t0
    robust = [int(v) for v in res.correct.sum(1)]
    return {"wall": wall, "acc": [r / len(data) for r in robust], "robust": robust, "robust_rows": sum(robust),
            "attacked": attacked, "fwd": rec.forward_images - fwd0, "bwd": rec.backward_images - bwd0,
            "epsilons": list(a.epsilons), "params": dict(a.params), "calls": rec.report().get(a.name, {})}  # fmt: skip


def part_grid(ctx: Context, seconds: float) -> dict[str, Any]:
    """Ours on the jung2023 grid (full budgets, per-epsilon semantics): N as large as the share allows (at most 73,
    i.e. 511 rows, one batch of the preset), each attack's rows in one batch; per attack: wall, passes, robust
    accuracy and every call (rows, kind, seconds; Square's active rows per iteration); FLOP/s and peak memory."""
    assert ctx.net is not None
    s = ctx.sizes
    spec = grid_spec(s)
    calls = grid_calls(spec)
    n = fit(s.grid_max_n, lambda m: (lambda t: None if t is None else 1.5 * calls * t)(call_seconds(ctx, 7 * m)),
            0.8 * seconds, n_min=4)  # fmt: skip
    data, x, _ = _test_tensors(ctx, n)
    f = flops(s.arch, s.channels, s.cells)
    if ctx.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(ctx.device)
    rec = CallRecorder(fast_model(ctx.net), ctx.device, ctx.deadline)
    out = ctx.result
    out.update(
        spec=spec.name,
        n=n,
        arch=s.arch,
        flops_per_forward=f,
        attacks={},
        flop_note="a backward pass counted as the forward's FLOPs (input gradient only: weights frozen)",
    )
    ctx.shared["grid"] = out
    with torch.no_grad(), rec.section("clean"):
        clean = rec(x).float().cpu()
    for a in spec.attacks:
        out["attacks"][a.name] = run_attack(ctx, rec, data, clean, a, spec, into=out["attacks"])
        per = out["attacks"].values()
        wall = sum(r["wall"] for r in per)
        fwd, bwd = sum(r["fwd"] for r in per), sum(r["bwd"] for r in per)
        out.update(seconds=wall, forward_images_per_s=fwd / wall, backward_images_per_s=bwd / wall,
                   achieved_flops_per_s=(fwd + bwd) * f / wall)  # fmt: skip
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated(ctx.device) / 2**30 if ctx.device.type == "cuda" \
            else None  # fmt: skip
        peak = ctx.shared.get("peak", {}).get("fp32_flops")
        out["of_fp32_peak"] = out["achieved_flops_per_s"] / peak if peak else None
    out["calls"] = {"clean": rec.report().get("clean", {})}
    out["arithmetic_flags"] = rec.flags_seen
    if not any(r["attacked"] for r in out["attacks"].values()):
        raise RuntimeError(f"none of the {n} test points is classified correctly, so no attack did any work")
    return out


def part_reference(ctx: Context, seconds: float) -> dict[str, Any]:
    """The same grid the reference way (torchattacks FGSM / PGD, pyautoattack APGD-CE / Square, one call per
    epsilon) on the same N points, in float32 with TF32 off like ours; where the share stops the peers early,
    ours is timed again on the epsilons they did, so the ratio always compares equal work."""
    import pyautoattack  # noqa: F401  (fail early and clearly when the peers are not installed)
    import torchattacks  # noqa: F401

    assert ctx.net is not None
    grid = ctx.shared.get("grid")
    if grid is None or not grid.get("attacks"):
        raise RuntimeError("the grid part did not run, so there is nothing to compare with")
    spec = grid_spec(ctx.sizes)
    data, x, y = _test_tensors(ctx, grid["n"])
    end = time.perf_counter() + 0.9 * seconds
    todo = [a for a in spec.attacks if not grid["attacks"].get(a.name, {"partial": True}).get("partial")]
    weights = {a.name: grid["attacks"][a.name]["wall"] for a in todo}
    out = ctx.result
    out.update(
        n=grid["n"],
        attacks={},
        note="ratio = reference wall / ours wall on the same epsilons and points (both on this device)",
    )
    rec = CallRecorder(fast_model(ctx.net), ctx.device)
    peers = CallRecorder(ctx.net, ctx.device)  # the network as trained, which the peers attack
    with torch.no_grad():
        clean = rec(x).float().cpu()
    for i, a in enumerate(todo):
        left = end - time.perf_counter()
        share = left * weights[a.name] / max(1e-9, sum(weights[b.name] for b in todo[i:]))
        ours = grid["attacks"][a.name]
        stop = time.perf_counter() + max(0.3 * share, 0.8 * share - ours["wall"])  # time kept for ours on a subset
        with peers.section(a.name):
            r = run_reference(peers, x, y, a, seed=0, device=ctx.dev, deadline=stop)
        out["calls"] = peers.report()
        if not r["eps_done"]:
            continue
        if len(r["eps_done"]) < len(a.epsilons):
            o = run_attack(ctx, rec, data, clean, attack(a.name, tuple(r["eps_done"]), **dict(a.params)), spec)
            ours_wall, ours_acc = o["wall"], o["acc"]
        else:
            ours_wall, ours_acc = ours["wall"], ours["acc"]
        out["attacks"][a.name] = {
            "epsilons": r["eps_done"],
            "complete": len(r["eps_done"]) == len(a.epsilons),
            "reference_seconds": r["wall"],
            "ours_seconds": ours_wall,
            "ratio": r["wall"] / ours_wall,
            "reference_robust": r["acc"],
            "ours_robust": ours_acc,
            "largest_gap_ours_minus_ref": max((o - q for o, q in zip(ours_acc, r["acc"])), default=None),
            "reference_passes_per_image": {"fwd": r["fwd"] / len(data), "bwd": r["bwd"] / len(data)},
        }
        done = out["attacks"].values()
        out["reference_seconds"] = sum(v["reference_seconds"] for v in done)
        out["ours_seconds"] = sum(v["ours_seconds"] for v in done)
        out["ratio"] = out["reference_seconds"] / out["ours_seconds"]
    return out
