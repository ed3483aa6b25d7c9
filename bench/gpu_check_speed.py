"""Speed parts of ``bench/gpu_check.py``: forward cost over batch sizes, the jung2023 grid (ours, then the peers
for the wall-time ratio), the Square levers (buckets, CUDA graphs, float16 proposals) and several workers per
device. Epsilons in 1/255 units; FLOPs are 2 x the multiply-accumulates of ``models/counting.py``."""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_attacks import run_ours, run_reference
from gpu_check_setup import Context, grid_spec, median_time, paired_weaker, sync
from torch import nn

from robustbench201.attacks.cascade import BatchPolicy, run_grid
from robustbench201.attacks.square import Square
from robustbench201.attacks.square_fast import FastSquare
from robustbench201.models.counting import flop_count
from robustbench201.models.fast import fast_model
from robustbench201.spec import EvalSpec, attack


def flops(arch: int, channels: int, cells: int) -> float:
    """FLOPs of one 3 x 32 x 32 forward (2 x multiply-accumulates), 10 classes."""
    return 2.0 * flop_count(arch, 10, channels, cells, 3, 32)


def median_arch(channels: int, cells: int) -> int:
    """The representative cell whose FLOPs are the median of the 6466 (the smallest index among ties)."""
    from robustbench201.space import representative_indices

    reps = sorted(set(representative_indices()))
    f = np.array([flop_count(i, 10, channels, cells, 3, 32) for i in reps])
    target = float(np.median(f))
    return int(reps[int(np.argmin(np.abs(f - target)))])


def _net(ctx: Context, arch: int) -> nn.Module:
    if arch == ctx.sizes.arch and ctx.net is not None:
        return ctx.net
    from robustbench201.models.network import create_model
    from robustbench201.train import init_default_

    net = create_model(arch, "cifar10", channels=ctx.sizes.channels, n_cells=ctx.sizes.cells)
    init_default_(net, torch.Generator().manual_seed(777))
    return net.to(ctx.device).eval().requires_grad_(False)


def part_forward_cost(ctx: Context, seconds: float) -> dict[str, Any]:
    """Per-call seconds of the fast forward (inference) over batch sizes, for the trained cell and a median-FLOP
    cell, and of forward + input-gradient backward at the preset's batch; achieved FLOP/s against the peak."""
    s = ctx.sizes
    deadline = time.perf_counter() + seconds
    peak = ctx.shared.get("peak", {}).get("fp32_flops")
    rows: list[dict[str, Any]] = []
    archs = [s.arch, median_arch(s.channels, s.cells)]
    gen = torch.Generator(device=ctx.device).manual_seed(0)
    for arch in archs:
        model = fast_model(_net(ctx, arch))
        f = flops(arch, s.channels, s.cells)
        last: tuple[int, float] | None = None
        for b in s.batches:
            if last is not None and time.perf_counter() + 8 * last[1] * b / last[0] > deadline:
                rows.append({"arch": arch, "batch": b, "skipped": "time budget"})
                continue
            x = torch.rand(b, 3, 32, 32, device=ctx.device, generator=gen)
            with torch.no_grad():
                t = median_time(lambda m=model, x=x: m(x), ctx.device, reps=5)
            last = (b, t)
            rows.append({"arch": arch, "batch": b, "seconds": t, "us_per_image": 1e6 * t / b, "flops_per_s": f * b / t,
                         "of_fp32_peak": f * b / t / peak if peak else None})  # fmt: skip
    b = 512 if s.mode == "full" else 32
    model = fast_model(_net(ctx, s.arch))
    x = torch.rand(b, 3, 32, 32, device=ctx.device, generator=gen)

    def fwd_bwd() -> None:
        xr = x.clone().requires_grad_(True)
        model(xr).sum().backward()

    t_fb = median_time(fwd_bwd, ctx.device, reps=5)
    with torch.no_grad():
        t_f = median_time(lambda: model(x), ctx.device, reps=5)
    ctx.shared["forward_cost"] = rows
    ctx.shared["backward_ratio"] = t_fb / t_f
    return {"archs": archs, "flops": {a: flops(a, s.channels, s.cells) for a in archs}, "table": rows,
            "fwd_bwd_batch": b, "fwd_bwd_over_fwd": t_fb / t_f}  # fmt: skip


def call_seconds(ctx: Context, rows: int) -> float | None:
    """Forward seconds of ``rows`` rows of the trained cell, interpolated log-log in the measured table."""
    pts = sorted(
        (r["batch"], r["seconds"])
        for r in ctx.shared.get("forward_cost", [])
        if r.get("arch") == ctx.sizes.arch and "seconds" in r
    )
    if not pts:
        return None
    if rows <= pts[0][0]:
        return pts[0][1]
    for (b0, t0), (b1, t1) in zip(pts, pts[1:]):
        if rows <= b1:
            w = math.log(rows / b0) / math.log(b1 / b0)
            return math.exp((1 - w) * math.log(t0) + w * math.log(t1))
    b, t = pts[-1]
    return t * rows / b


def _test_tensors(ctx: Context, n: int) -> tuple[Any, torch.Tensor, torch.Tensor]:
    assert ctx.test is not None
    data = ctx.test.subset(n, seed=6)
    x = torch.from_numpy(data.images).to(ctx.device).float().div_(255)
    y = torch.from_numpy(data.labels).to(ctx.device)
    return data, x, y


def part_grid(ctx: Context, seconds: float) -> dict[str, Any]:
    """Ours on the jung2023 grid: N as large as the budget allows (at most 73, i.e. 511 rows per batch as the
    preset runs); per attack: wall, passes, robust accuracy; achieved FLOP/s and peak memory."""
    assert ctx.net is not None
    s = ctx.sizes
    spec = grid_spec(s)
    q = dict(next(a for a in spec.attacks if a.name == "aa_square").params)["n_queries"]
    n = s.grid_max_n
    if s.mode == "full":
        while n > 4:  # upper bound: every point stays robust for every query; PGD + APGD as 3 x 141 forwards
            t = call_seconds(ctx, 7 * n)
            if t is None or (q + 3 * 141) * t * 1.5 <= 0.8 * seconds:
                break
            n //= 2
    data, _, _ = _test_tensors(ctx, n)
    f = flops(s.arch, s.channels, s.cells)
    if ctx.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(ctx.device)
    per: dict[str, Any] = {}
    for a in spec.attacks:
        r = run_ours(ctx.net, data, spec, a, seed=0, device=ctx.dev)
        r["epsilons"] = list(a.epsilons)
        r["params"] = dict(a.params)
        per[a.name] = r
    wall = sum(r["wall"] for r in per.values())
    fwd = sum(r["fwd"] for r in per.values())
    bwd = sum(r["bwd"] for r in per.values())
    out: dict[str, Any] = {
        "spec": spec.name,
        "n": n,
        "arch": s.arch,
        "flops_per_forward": f,
        "attacks": per,
        "seconds": wall,
        "forward_images_per_s": fwd / wall,
        "backward_images_per_s": bwd / wall,
        "achieved_flops_per_s": (fwd + bwd) * f / wall,
        "flop_note": "a backward pass counted as the forward's FLOPs (input gradient only: the weights are frozen)",
        "peak_memory_gib": torch.cuda.max_memory_allocated(ctx.device) / 2**30 if ctx.device.type == "cuda" else None,
    }
    peak = ctx.shared.get("peak", {}).get("fp32_flops")
    out["of_fp32_peak"] = out["achieved_flops_per_s"] / peak if peak else None
    sq = per["aa_square"]
    out["square_seconds_per_forward_image"] = sq["wall"] / max(1, sq["fwd"])
    ctx.shared["grid"] = out
    return out


def part_reference(ctx: Context, seconds: float) -> dict[str, Any]:
    """The same grid the reference way (torchattacks FGSM / PGD, pyautoattack APGD-CE / Square, one call per
    epsilon) on the same N points; where the budget stops the peers early, ours is timed again on the epsilons
    they did, so the ratio always compares equal work."""
    import pyautoattack  # noqa: F401  (fail early and clearly when the peers are not installed)
    import torchattacks  # noqa: F401

    assert ctx.net is not None
    grid = ctx.shared.get("grid")
    if grid is None:
        raise RuntimeError("the grid part did not run, so there is nothing to compare with")
    spec = grid_spec(ctx.sizes)
    data, x, y = _test_tensors(ctx, grid["n"])
    start = time.perf_counter()
    end = start + seconds
    weights = {a.name: grid["attacks"][a.name]["wall"] for a in spec.attacks}
    per: dict[str, Any] = {}
    total_ref = total_ours = 0.0
    for i, a in enumerate(spec.attacks):
        left = end - time.perf_counter()
        share = left * weights[a.name] / max(1e-9, sum(weights[b.name] for b in spec.attacks[i:]))
        ours_wall = grid["attacks"][a.name]["wall"]  # kept free for timing ours again on a subset
        stop = time.perf_counter() + max(0.3 * share, 0.8 * share - ours_wall)
        r = run_reference(ctx.net, x, y, a, seed=0, device=ctx.dev, deadline=stop)
        ours = grid["attacks"][a.name]
        if len(r["eps_done"]) < len(a.epsilons):
            sub = attack(a.name, tuple(r["eps_done"]), **dict(a.params))
            o = run_ours(ctx.net, data, spec, sub, seed=0, device=ctx.dev)
            ours_wall, ours_acc = o["wall"], o["acc"]
        else:
            ours_wall, ours_acc = ours["wall"], ours["acc"]
        total_ref += r["wall"]
        total_ours += ours_wall
        per[a.name] = {
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
    return {
        "n": grid["n"],
        "attacks": per,
        "reference_seconds": total_ref,
        "ours_seconds": total_ours,
        "ratio": total_ref / total_ours,
        "note": "ratio = reference wall / ours wall on the same epsilons and points (both on this device)",
    }


# ---- Square levers -----------------------------------------------------------------------------------------------
def part_square_levers(ctx: Context, seconds: float) -> dict[str, Any]:
    """Square on the jung2023 epsilons, same points and seed: eager float32 against bucket padding, CUDA graphs,
    float16 proposals verified in float32 (and both), with an audit run for float16's decisions."""
    assert ctx.net is not None
    s = ctx.sizes
    eps = (0.1, 0.5, 1.0, 2.0, 3.0, 4.0, 8.0)
    n = ctx.shared.get("grid", {}).get("n", s.grid_max_n)
    if s.mode == "quick":
        n = min(n, 4)  # float16 convolutions are slow on a CPU
    model = fast_model(ctx.net)
    _, x, y = _test_tensors(ctx, n)
    with torch.no_grad():
        clean = model(x).float().cpu()
    q = s.lever_queries
    t_call = call_seconds(ctx, 7 * n)
    if t_call is not None and s.mode == "full":  # six runs, the audit about twice a plain one
        q = max(50, min(q, int(0.8 * seconds / (8 * 1.5 * t_call))))
    cuda = ctx.device.type == "cuda"
    configs: dict[str, Square] = {
        "eager": Square(n_queries=q),
        "buckets": FastSquare(n_queries=q, buckets=16),
        "graphs": FastSquare(n_queries=q, buckets=16, cuda_graphs=True),
        "fp16": FastSquare(n_queries=q, proposals="fp16-verified"),
        "fp16+graphs": FastSquare(n_queries=q, proposals="fp16-verified", buckets=16, cuda_graphs=True),
        "fp16-audit": FastSquare(n_queries=q, proposals="fp16-verified", audit=True),
    }
    deadline = time.perf_counter() + seconds
    runs: dict[str, Any] = {}
    base = None
    for name, atk in configs.items():
        if not cuda and "graphs" in name:
            runs[name] = {"skipped": "CUDA graphs need a CUDA device (buckets alone run on CPU)"}
            continue
        est = runs.get("eager", {}).get("seconds", 0.0) * (2.5 if "audit" in name else 1.2)
        if time.perf_counter() + est > deadline:
            runs[name] = {"skipped": "time budget"}
            continue
        gen = torch.Generator(device=ctx.device).manual_seed(21)
        sync(ctx.device)
        t0 = time.perf_counter()
        res = run_grid(atk, model, x.cpu(), y.cpu(), clean, eps, "per-epsilon", gen, BatchPolicy(8192), ctx.device)
        sync(ctx.device)
        r: dict[str, Any] = {"seconds": time.perf_counter() - t0, "robust": res.correct.mean(1).tolist()}
        if isinstance(atk, FastSquare):
            r["stats"] = atk.stats.as_dict()
        if base is None:
            base = res
        else:
            r["flags_differing_from_eager"] = int((res.correct != base.correct).sum())
            r["max_logit_difference"] = float((res.logits - base.logits).abs().max())
            r["speedup_vs_eager"] = runs["eager"]["seconds"] / r["seconds"]
            r["vs_eager"] = paired_weaker(res.correct.ravel(), base.correct.ravel())
        runs[name] = r
    fp16 = runs.get("fp16-audit", {}).get("stats") or runs.get("fp16", {}).get("stats")
    verdict = None
    if fp16 is not None and "vs_eager" in runs.get("fp16", {}):
        verdict = {
            "reevaluated_fraction": fp16["reevaluated_fraction"],
            "audit_disagreements_beyond_ties": runs.get("fp16-audit", {})
            .get("stats", {})
            .get("audit_disagreements_beyond_ties"),
            "meets_strength_rule": not runs["fp16"]["vs_eager"]["weaker"],
        }
    return {"n": n, "queries": q, "epsilons": list(eps), "runs": runs, "fp16_verdict": verdict}


# ---- several workers per device -------------------------------------------------------------------------------------
class CheckFactory:
    """Evaluator factory of the workers part: the trained network's weights and a few test images, pickled to each
    worker; every task index evaluates the same network (rows are labelled with the task index)."""

    def __init__(self, ctx: Context, spec: EvalSpec, n: int) -> None:
        assert ctx.net is not None and ctx.test is not None
        self.state = {k: v.detach().cpu() for k, v in ctx.net.state_dict().items()}
        self.arch, self.channels, self.cells = ctx.sizes.arch, ctx.sizes.channels, ctx.sizes.cells
        self.data = ctx.test.subset(n, seed=7)
        self.spec_json, self.spec_hash = spec.to_json(), spec.hash

    def identity(self) -> dict[str, Any]:
        return {"spec_hash": self.spec_hash, "dataset": "cifar10", "weights": "gpu-check", "n_test": len(self.data),
                "arch": self.arch, "channels": self.channels, "n_cells": self.cells}  # fmt: skip

    def __call__(self, device: str):  # type: ignore[no-untyped-def]
        from robustbench201._version import code_version
        from robustbench201.evaluation import evaluate
        from robustbench201.models.network import create_model
        from robustbench201.runner.records import result_arrays, result_rows
        from robustbench201.runner.worker import ArchOutput

        net = create_model(self.arch, "cifar10", channels=self.channels, n_cells=self.cells)
        net.load_state_dict(self.state)
        net = net.to(device).eval().requires_grad_(False)
        spec = EvalSpec.from_json(self.spec_json)
        version = code_version()

        def run(index: int) -> ArchOutput:
            res = evaluate(net, self.data, spec, device=device)
            return ArchOutput(result_rows(res, index, "cifar10", 0, "gpu-check", version),
                              result_arrays(res, index, "cifar10", 0, "gpu-check"), dict(res.timings))  # fmt: skip

        return run


def part_workers(ctx: Context, seconds: float) -> dict[str, Any]:
    """``run_job`` with K workers on the one device (what ``rb201 evaluate --workers-per-gpu K`` runs): wall time
    for the same tasks, per-task seconds, and whether the rows equal those of one worker."""
    import pyarrow.parquet as pq

    from robustbench201.runner.job import run_job
    from robustbench201.runner.pool import expand_devices
    from robustbench201.runner.shard import read_shard_manifest

    s = ctx.sizes
    quick = s.mode == "quick"
    spec = EvalSpec(
        name="gpu-check-workers",
        attacks=(
            attack("pgd", (1, 4, 8), steps=3 if quick else 10),
            attack("aa_square", (1, 4, 8), n_queries=20 if quick else 500),
        ),  # fmt: skip
        semantics="per-epsilon",
    )
    factory = CheckFactory(ctx, spec, s.worker_n)
    tasks = list(range(s.worker_tasks))
    deadline = time.perf_counter() + seconds
    out: dict[str, Any] = {"n": s.worker_n, "tasks": len(tasks), "spec": spec.to_dict(), "runs": {}}
    tables: dict[int, list[Any]] = {}
    with tempfile.TemporaryDirectory(prefix="rb201-gpu-check-") as tmp:
        for k in s.workers:
            prev = out["runs"].get(1, {})
            if k > 1 and prev and time.perf_counter() + 20 + prev["seconds"] > deadline:
                out["runs"][k] = {"skipped": "time budget"}
                continue
            devices = expand_devices([ctx.dev], k)
            t0 = time.perf_counter()
            rep = run_job(tasks, Path(tmp) / f"k{k}", factory, devices=devices, progress=False)
            wall = time.perf_counter() - t0
            man = read_shard_manifest(rep.shard_dir)
            per = [float(v["seconds"]) for v in man["finished"].values()]
            tables[k] = [pq.read_table(p).to_pandas() for p in sorted(rep.shard_dir.glob("arch-*.parquet"))]
            out["runs"][k] = {
                "seconds": wall,
                "failures": rep.failures,
                "task_seconds_median": statistics.median(per) if per else None,
                "tasks_per_hour_wall": len(tasks) / wall * 3600,
                "tasks_per_hour_steady": k / statistics.median(per) * 3600 if per else None,
            }
    ref = tables.get(1)
    for k, tab in tables.items():
        if k == 1 or ref is None:
            continue
        same = len(tab) == len(ref) and all(
            a.sort_values(list(a.columns))
            .reset_index(drop=True)
            .equals(b.sort_values(list(b.columns)).reset_index(drop=True))
            for a, b in zip(tab, ref)
        )
        out["runs"][k]["rows_equal_one_worker"] = bool(same)
    out["note"] = ("steady = K / median task seconds (without process start-up); wall includes starting K worker "
                   "processes (importing torch, initialising CUDA). K = 1 runs in-process.")  # fmt: skip
    return out
