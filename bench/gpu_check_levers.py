"""Lever parts of ``bench/gpu_check.py`` for evaluation: Square eager against bucket padding, CUDA graphs and
float16 proposals verified in float32; several evaluation workers on one device (``rb201 evaluate
--workers-per-gpu K``). Epsilons in 1/255 units."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from gpu_check_calls import CallRecorder
from gpu_check_setup import Context, call_seconds, paired_weaker, sync
from gpu_check_speed import _test_tensors

from robustbench201.attacks.cascade import BatchPolicy, run_grid
from robustbench201.attacks.square import Square
from robustbench201.attacks.square_fast import FastSquare
from robustbench201.models.fast import fast_model
from robustbench201.spec import EvalSpec, attack


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
    rec = CallRecorder(model, ctx.device)
    _, x, y = _test_tensors(ctx, n)
    with torch.no_grad():
        clean = model(x).float().cpu()
    q = s.lever_queries
    t_call = call_seconds(ctx, 7 * n)
    if t_call is not None:  # six runs, the audit about twice a plain one
        q = max(20, min(q, int(0.8 * seconds / (8 * 1.5 * t_call))))
    cuda = ctx.device.type == "cuda"
    configs: dict[str, Square] = {
        "eager": Square(n_queries=q),
        "buckets": FastSquare(n_queries=q, buckets=16),
        "graphs": FastSquare(n_queries=q, buckets=16, cuda_graphs=True),
        "fp16": FastSquare(n_queries=q, proposals="fp16-verified"),
        "fp16+graphs": FastSquare(n_queries=q, proposals="fp16-verified", buckets=16, cuda_graphs=True),
        "fp16-audit": FastSquare(n_queries=q, proposals="fp16-verified", audit=True),
    }
    out = ctx.result
    runs: dict[str, Any] = {}
    out.update(n=n, queries=q, epsilons=list(eps), runs=runs, fp16_verdict=None)
    base = None
    for name, atk in configs.items():
        if not cuda and "graphs" in name:
            runs[name] = {"skipped": "CUDA graphs need a CUDA device (buckets alone run on CPU)"}
            continue
        est = runs.get("eager", {}).get("seconds", 0.0) * (2.5 if "audit" in name else 1.2)
        if est > ctx.left():
            runs[name] = {"skipped": "time budget"}
            continue
        gen = torch.Generator(device=ctx.device).manual_seed(21)
        # calls recorded where each is a Python call (a captured CUDA graph replays without calling the recorder)
        net = model if "graphs" in name else rec
        sync(ctx.device)
        t0 = time.perf_counter()
        with rec.section(name):
            res = run_grid(atk, net, x.cpu(), y.cpu(), clean, eps, "per-epsilon", gen, BatchPolicy(8192), ctx.device)
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
        out["fp16_verdict"] = _fp16_verdict(runs)
        out["calls"] = rec.report()
    return out


def _fp16_verdict(runs: dict[str, Any]) -> dict[str, Any] | None:
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
    return verdict


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
    out = ctx.result
    out.update(n=s.worker_n, tasks=len(tasks), spec=spec.to_dict(), runs={},
               note="steady = K / median task seconds (without process start-up); wall includes starting K worker "
               "processes (importing torch, initialising CUDA). K = 1 runs in-process.")  # fmt: skip
    tables: dict[int, list[Any]] = {}
    with tempfile.TemporaryDirectory(prefix="rb201-gpu-check-") as tmp:
        for k in s.workers:
            prev = out["runs"].get(1, {})
            if k > 1 and prev and 20 + prev["seconds"] > ctx.left():
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
    return out
