"""Projection part of ``bench/gpu_check.py``: GPU-hours of the whole jung2023 dataset (6466 cells x CIFAR-10,
CIFAR-100, ImageNet16-120) from the costs measured in this run and the published robust fractions.

Model (every assumption is written into the report):

* Passes per cell and dataset follow the protocol's per-epsilon semantics over the ``n_test`` test images: only
  clean-correct points are attacked (published clean accuracy); at each epsilon a point the published table calls
  robust costs the attack's full budget (Square: 5000 queries + 1 initial, PGD: 40 forward+backward + 1 forward,
  APGD-CE: 101 forward+backward), a point it calls broken costs ``q_broken`` passes. ``q_broken`` is measured in
  this run's grid where points broke, and the projection is also given at its bounds (1 and the full budget).
  FGSM: 1 forward+backward and 11 forwards per attacked point; clean: 1 forward; the 15 x 5 corruptions (CIFAR
  only): 75 forwards per test point.
* Seconds per forward image: this run's Square cost per forward image on the trained cell (all overhead of
  Square's loop included), scaled to another cell by the forward cost table: an affine fit in FLOPs through the
  two measured cells at the preset's batch of 512 rows; ImageNet16-120 cells use their FLOPs at 16 x 16.
  A forward+backward image costs ``1 + backward_ratio`` forward images (measured). Wall time of the gradient
  attacks' own loops beyond their passes is ignored.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gpu_check_setup import Context

from robustbench201.data.info import PUBLISHED_DATASETS, dataset_info
from robustbench201.models.counting import flop_count

EPS = (0.1, 0.5, 1.0, 2.0, 3.0, 4.0, 8.0)
BUDGET = {"aa_square": 5001.0, "pgd": 41.0, "aa_apgd-ce": 101.0}


def _measured_q_broken(grid: dict[str, Any], name: str, budget: float, per_point_extra: float) -> float | None:
    """Mean passes of a broken point in this run: (passes - budget x robust) / broken, summed over epsilons."""
    a = grid["attacks"].get(name)
    if a is None:
        return None
    n = grid["n"]
    passes = (a["bwd"] if name != "aa_square" else a["fwd"]) - per_point_extra * n
    robust = sum(a["robust"])
    broken = len(a["robust"]) * a["attacked"] - robust
    if broken <= 0:
        return None
    return max(1.0, (passes - budget * robust) / broken)


def _cost_model(ctx: Context) -> tuple[float, float, float]:
    """(slope, intercept, reference FLOPs) of seconds per forward image against FLOPs at 512 rows (or the nearest
    measured batch), from the two cells of the forward cost table."""
    rows = [r for r in ctx.shared["forward_cost"] if "seconds" in r]
    archs = sorted({r["arch"] for r in rows})
    s = ctx.sizes
    pts = []
    for a in archs:
        mine = sorted(rows, key=lambda r: abs(math.log(r["batch"] / 512)))
        r = next(r for r in mine if r["arch"] == a)
        pts.append((2.0 * flop_count(a, 10, s.channels, s.cells, 3, 32), r["seconds"] / r["batch"]))
    (f0, t0), (f1, t1) = sorted(pts)[0], sorted(pts)[-1]
    slope = (t1 - t0) / (f1 - f0) if f1 != f0 else t1 / f1
    return slope, t0 - slope * f0, f1


def part_projection(ctx: Context, seconds: float) -> dict[str, Any]:
    import robustbench201 as rb

    grid = ctx.shared.get("grid")
    if grid is None or "forward_cost" not in ctx.shared:
        raise RuntimeError("the projection needs the forward cost and grid parts")
    s = ctx.sizes
    slope, intercept, _ = _cost_model(ctx)
    f_meas = 2.0 * flop_count(s.arch, 10, s.channels, s.cells, 3, 32)
    model_meas = intercept + slope * f_meas
    sq_eff = grid["square_seconds_per_forward_image"]
    overhead = max(0.0, sq_eff - model_meas)  # Square's own per-row work, beyond the network
    bwd_ratio = float(ctx.shared.get("backward_ratio", 2.0))
    q_meas = {
        "aa_square": _measured_q_broken(grid, "aa_square", BUDGET["aa_square"], 1 + min(8, grid["n"]) / grid["n"]),
        "pgd": _measured_q_broken(grid, "pgd", BUDGET["pgd"] - 1, 0.0),  # gradient passes
        "aa_apgd-ce": _measured_q_broken(grid, "aa_apgd-ce", BUDGET["aa_apgd-ce"], 0.0),
    }
    high = {k: v - (k == "pgd") for k, v in BUDGET.items()}  # a broken point at most spends the whole budget
    scenarios = {"measured": q_meas, "low": dict.fromkeys(BUDGET, 1.0), "high": high}
    out: dict[str, Any] = {"assumptions": __doc__, "seconds_per_forward_image": {
        "network_affine_fit": {"slope_s_per_flop": slope, "intercept_s": intercept},
        "square_effective_on_trained_cell": sq_eff, "square_overhead": overhead, "backward_ratio": bwd_ratio},
        "q_broken_measured": q_meas, "datasets": {}}  # fmt: skip
    totals = dict.fromkeys(scenarios, 0.0)
    total_flop = 0.0
    for ds in PUBLISHED_DATASETS:
        info = dataset_info(ds)
        t = rb.table(ds)
        reps = t[t["representative"] == t.index]
        f = np.array([2.0 * flop_count(i, info.num_classes, s.channels, s.cells, 3, info.resolution)
                      for i in reps.index])  # fmt: skip
        fwd_s = np.maximum(intercept + slope * f, 0.0) + overhead
        grad_s = fwd_s * (1 + bwd_ratio)
        attacked = reps["clean"].to_numpy() * info.n_test
        plain = info.n_test * (1 + (75 if ds in ("cifar10", "cifar100") else 0))  # clean + corruptions
        per_ds: dict[str, Any] = {"cells": len(reps), "n_test": info.n_test, "hours": {}}
        for name, q_broken in scenarios.items():
            secs = fwd_s * plain + attacked * (11 * fwd_s + grad_s)  # clean, corruptions, FGSM
            flop = f * plain + attacked * f * 13
            for key in BUDGET:
                q = q_broken.get(key)
                if q is None:  # nothing broke in this run: the conservative bound
                    q = BUDGET[key]
                robust = sum(reps[f"{key}@{e:g}"].to_numpy() for e in EPS) * info.n_test
                broken = attacked * len(EPS) - robust
                if key == "aa_square":
                    secs = secs + (robust * BUDGET[key] + broken * q) * fwd_s
                    flop = flop + (robust * BUDGET[key] + broken * q) * f
                else:  # PGD's last iterate is a forward only; APGD's 101 passes all have gradients
                    grad = robust * (BUDGET[key] - (key == "pgd")) + broken * q
                    secs = secs + grad * grad_s + robust * (key == "pgd") * fwd_s
                    flop = flop + grad * 2 * f + robust * (key == "pgd") * f
            hours = float(secs.sum()) / 3600
            per_ds["hours"][name] = hours
            totals[name] += hours
            if name == "measured":
                per_ds["flop"] = float(flop.sum())
                total_flop += float(flop.sum())
        out["datasets"][ds] = per_ds
    out["gpu_hours"] = totals
    out["total_flop"] = total_flop
    out["grid_is_quick"] = s.mode == "quick"
    return out
