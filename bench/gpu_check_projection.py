"""Projection part of ``bench/gpu_check.py``: GPU-hours of the whole jung2023 dataset (6466 cells x CIFAR-10,
CIFAR-100, ImageNet16-120) from the calls this run recorded and the published robust fractions.

Model (the report carries this text):

* **A call's seconds** depend on its rows ``r`` and kind (``fwd``; ``fwd_bwd``: forward + input-gradient backward),
  the cell and the attack: ``t(r) = net(r, kind, cell) + overhead(r, kind, attack)``, and ``t(0) = 0``.
  ``net`` comes from the forward cost table (the smallest, the median and the largest of the 6466 cells by FLOPs,
  at several batch sizes, both kinds): log-log interpolation in rows, linear in FLOPs between the two measured cells
  around a cell's FLOPs (weights in [0, 1]); an ImageNet16-120 image (16 x 16) counts as a quarter of a 32 x 32
  image of the same cell (same kernels, a quarter of the pixels). ``overhead`` is the attack's own work per call
  (proposals, margins, row compaction and the synchronisation it forces), measured on the grid part's calls of the
  trained (largest) cell: per row bin, mean call seconds minus ``net`` of the largest cell, at least 0. Both are
  made non-decreasing in rows (running maximum over increasing rows).
* **The calls of a run**: per-epsilon semantics stacks the epsilons, so a batch of the preset (512 rows) holds 73
  points x 7 epsilons = 511 rows (FGSM: 46 points x 11). A cell with clean accuracy ``c`` attacks ``c * n_test``
  points. Call ``k`` of an attack (Square: the start and 5000 iterations; PGD: 40 ``fwd_bwd`` and a last ``fwd``;
  APGD-CE: 101 ``fwd_bwd``) sends ``n * (rho + (1 - rho) * s_k)`` rows of a batch of ``n``, where ``rho`` is the
  cell's robust fraction (published per-epsilon robust accuracies summed over the epsilons, over ``7 * c``) and
  ``s_k`` the fraction of the eventually broken rows still active at call ``k`` in this run's grid (``s_0 = 1``;
  every attack drops a row once it is fooled, so rows only fall).
* **Bounds by construction**: ``low`` takes ``s_k = 0`` for ``k >= 1`` (every broken row leaves after the first
  call), ``high`` takes ``s_k = 1`` (every row spends the whole budget). ``s_k`` is in [0, 1] and ``t`` is
  non-decreasing in rows, so ``low <= estimate <= high`` call by call; each call's estimate is also clipped to its
  two bounds (that removes last-bit rounding only) and the three sums are taken in the same order, so the order
  holds exactly for every cell, dataset and attack and for the totals.
* Clean pass and corruptions (CIFAR only: 15 x 5 severities of the test set): full batches of 512 rows, network
  time only; FGSM per batch: one ``fwd_bwd`` of its points and one ``fwd`` of their 11 epsilons. Not counted:
  loading images, generating corruptions, writing results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from gpu_check_calls import expand_runs
from gpu_check_setup import Context

from robustbench201.data.info import PUBLISHED_DATASETS, dataset_info
from robustbench201.models.counting import flop_count

EPS = (0.1, 0.5, 1.0, 2.0, 3.0, 4.0, 8.0)
FGSM_EPS = 11
BATCH = 512  # rows per batch of the jung2023 preset
N_CORRUPTED = 75  # 15 corruptions x 5 severities (CIFAR only)
#: the attacks whose rows leave once fooled (the others have a fixed call pattern per batch)
SURVIVAL_ATTACKS = ("pgd", "aa_apgd-ce", "aa_square")


# ---- pure pieces (unit-tested on hand-computed numbers) -------------------------------------------------------------
@dataclass(frozen=True)
class CallCost:
    """Seconds of one call against its rows, from measured ``(rows, seconds)`` knots: non-decreasing by
    construction (running maximum over increasing rows), log-log interpolation between knots, the first knot's
    seconds below it (a launch floor), proportional to rows above the last knot, and 0 for 0 rows."""

    rows: tuple[float, ...]
    seconds: tuple[float, ...]

    @classmethod
    def from_points(cls, points: list[tuple[float, float]]) -> CallCost:
        pts = sorted((float(r), float(s)) for r, s in points if r > 0 and s > 0)
        if not pts:
            raise ValueError("a call cost needs at least one (rows > 0, seconds > 0) point")
        rows = np.array([r for r, _ in pts])
        secs = np.maximum.accumulate(np.array([s for _, s in pts]))
        keep = np.r_[rows[1:] > rows[:-1], True]  # one knot per row count: the largest (last) of equal rows
        return cls(tuple(rows[keep].tolist()), tuple(secs[keep].tolist()))

    def __call__(self, r: np.ndarray | float) -> np.ndarray:
        r = np.asarray(r, dtype=np.float64)
        lr, ls = np.log(np.array(self.rows)), np.log(np.array(self.seconds))
        safe = np.maximum(r, self.rows[0])
        inside = np.exp(np.interp(np.log(safe), lr, ls))
        above = self.seconds[-1] * r / self.rows[-1]
        out = np.where(r > self.rows[-1], above, inside)
        return np.where(r > 0, out, 0.0)


@dataclass(frozen=True)
class StepCost:
    """A non-negative, non-decreasing cost per call from ``(rows, seconds)`` knots: linear between knots, constant
    outside them, 0 for 0 rows (the attack overhead; it may be 0, so no logarithms)."""

    rows: tuple[float, ...]
    seconds: tuple[float, ...]

    @classmethod
    def from_points(cls, points: list[tuple[float, float]]) -> StepCost:
        pts = sorted((float(r), max(0.0, float(s))) for r, s in points if r > 0)
        if not pts:
            return cls((1.0,), (0.0,))
        rows = np.array([r for r, _ in pts])
        secs = np.maximum.accumulate(np.array([s for _, s in pts]))
        keep = np.r_[rows[1:] > rows[:-1], True]
        return cls(tuple(rows[keep].tolist()), tuple(secs[keep].tolist()))

    def __call__(self, r: np.ndarray | float) -> np.ndarray:
        r = np.asarray(r, dtype=np.float64)
        return np.where(r > 0, np.interp(r, self.rows, self.seconds), 0.0)


def flop_weights(flops: np.ndarray, knots: list[float]) -> np.ndarray:
    """(cells, M) weights of the M measured cells (FLOPs ``knots``, ascending) for cells of ``flops``: linear
    interpolation between the two knots around each cell, clamped to the end knots; every row sums to 1."""
    knots_a = np.asarray(knots, dtype=np.float64)
    w = np.zeros((len(flops), len(knots_a)))
    for m in range(len(knots_a)):
        hat = np.zeros(len(knots_a))
        hat[m] = 1.0
        w[:, m] = np.interp(flops, knots_a, hat)
    return w


def survival(rows: list[int], robust_rows: float, n_calls: int) -> np.ndarray:
    """``s_k`` for ``k < n_calls``: the fraction of the eventually broken rows still active at call ``k``,
    ``(rows_k - R) / (rows_0 - R)`` clipped to [0, 1], from one batch's row counts ``rows`` (``rows[0]``: all its
    rows) and its robust rows ``R``; 0 after the recorded calls (the run stopped: no row left); 1 everywhere when no
    row broke (the estimate is then the high bound)."""
    if not rows:
        raise ValueError("no recorded calls")
    r = np.asarray(rows, dtype=np.float64)[:n_calls]
    broken = r[0] - robust_rows
    s = np.zeros(n_calls)
    if broken <= 0:
        s[:] = 1.0
        return s
    s[: len(r)] = np.clip((r - robust_rows) / broken, 0.0, 1.0)
    s[0] = 1.0
    return s


def runs_of(s: np.ndarray, kinds: list[str]) -> list[tuple[float, str, int]]:
    """``(s, kind, count)`` runs of equal consecutive ``(s_k, kind_k)``, call 0 always a run of its own."""
    out: list[tuple[float, str, int]] = [(float(s[0]), kinds[0], 1)]
    for sk, kind in zip(s[1:].tolist(), kinds[1:]):
        if len(out) > 1 and out[-1][0] == sk and out[-1][1] == kind:
            out[-1] = (sk, kind, out[-1][2] + 1)
        else:
            out.append((sk, kind, 1))
    return out


Cost = Callable[[str, np.ndarray], np.ndarray]


def attack_seconds(
    n: np.ndarray, rho: np.ndarray, runs: list[tuple[float, str, int]], cost: Cost
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(low, estimate, high) seconds of one batch of ``n`` rows per cell, robust fraction ``rho`` per cell, calls
    ``runs`` (:func:`runs_of`; the first run is call 0) and ``cost(kind, rows) -> seconds``; each term is ordered
    low <= estimate <= high and the three sums run in the same order (see the module docstring)."""
    n = np.asarray(n, dtype=np.float64)
    rho = np.clip(np.asarray(rho, dtype=np.float64), 0.0, 1.0)
    low, est, high = np.zeros_like(n), np.zeros_like(n), np.zeros_like(n)
    for j, (s, kind, count) in enumerate(runs):
        r_high = n * (rho + (1.0 - rho) * 1.0)
        r_est = n * (rho + (1.0 - rho) * s)
        r_low = n * (rho + (1.0 - rho) * (1.0 if j == 0 else 0.0))
        t_high = cost(kind, r_high)
        t_low = np.minimum(cost(kind, r_low), t_high)
        t_est = np.clip(cost(kind, r_est), t_low, t_high)
        low, est, high = low + count * t_low, est + count * t_est, high + count * t_high
    return low, est, high


def batches(rows: np.ndarray, per_batch: float) -> tuple[np.ndarray, np.ndarray]:
    """(number of full batches, rows of the last partial batch) when ``rows`` are cut into batches of
    ``per_batch``."""
    full = np.floor(rows / per_batch)
    return full, rows - full * per_batch


def budget_kinds(name: str, params: dict[str, Any]) -> list[str]:
    """The kinds of an attack's calls on one batch when no row breaks (its whole budget, one restart)."""
    restarts = int(params.get("n_restarts", params.get("restarts", 1)))
    if restarts != 1:
        raise ValueError(f"{name}: the projection models one restart (jung2023), got {restarts}")
    if name == "aa_square":
        return ["fwd"] * (1 + int(params["n_queries"]))
    if name == "pgd":
        return ["fwd_bwd"] * int(params["steps"]) + ["fwd"]
    if name == "aa_apgd-ce":
        return ["fwd_bwd"] * (1 + int(params["n_iter"]))
    raise ValueError(f"no call pattern for attack {name!r}")


# ---- the part -------------------------------------------------------------------------------------------------------
class CellCost:
    """``cost(kind, rows)`` for a set of cells: the network from the forward cost table (weights over the measured
    cells), rows scaled by ``pixel_ratio`` (a quarter for 16 x 16 images), plus an attack's overhead."""

    def __init__(self, net: dict[str, list[CallCost]], weights: np.ndarray, pixel_ratio: float,
                 overhead: dict[str, StepCost] | None = None) -> None:  # fmt: skip
        self.net, self.weights, self.pixel_ratio = net, weights, pixel_ratio
        self.overhead = overhead or {}

    def __call__(self, kind: str, rows: np.ndarray) -> np.ndarray:
        r = np.asarray(rows, dtype=np.float64)
        t = sum(self.weights[:, m] * c(r * self.pixel_ratio) for m, c in enumerate(self.net[kind]))
        o = self.overhead.get(kind)
        return np.where(r > 0, t + (o(r) if o is not None else 0.0), 0.0)


def net_costs(table: list[dict[str, Any]], archs: list[int]) -> dict[str, list[CallCost]]:
    """Per kind, one :class:`CallCost` per measured cell (in the order of ``archs``)."""
    out: dict[str, list[CallCost]] = {}
    for kind in ("fwd", "fwd_bwd"):
        out[kind] = [CallCost.from_points([(r["batch"], r[kind]) for r in table if r["arch"] == a and kind in r])
                     for a in archs]  # fmt: skip
    return out


def overhead_costs(calls: dict[str, Any], net_largest: dict[str, CallCost]) -> dict[str, StepCost]:
    """An attack's recorded calls on the largest cell, less that cell's network time, per kind."""
    out = {}
    for kind in ("fwd", "fwd_bwd"):
        bins = calls.get(kind, {}).get("bins", [])
        pts = [(b["mean_rows"], b["mean_s"] - float(net_largest[kind](b["mean_rows"]))) for b in bins]
        out[kind] = StepCost.from_points(pts)
    return out


def _plain_seconds(cost: CellCost, n_test: int, clean: np.ndarray, corrupted: bool) -> tuple[np.ndarray, ...]:
    """Seconds per cell of the clean pass, the corruptions and FGSM (the same in every scenario)."""
    ones = np.ones(len(clean))
    full, last = batches(np.full(len(clean), float(n_test)), BATCH)
    clean_s = full * cost("fwd", BATCH * ones) + cost("fwd", last)
    corr_s = clean_s * N_CORRUPTED if corrupted else np.zeros(len(clean))
    per = BATCH // FGSM_EPS
    full, last = batches(clean * n_test, per)
    fgsm = full * (cost("fwd_bwd", per * ones) + cost("fwd", per * FGSM_EPS * ones))
    fgsm = fgsm + cost("fwd_bwd", last) + cost("fwd", last * FGSM_EPS)
    return clean_s, corr_s, fgsm


def _runs(grid: dict[str, Any], name: str) -> tuple[list[tuple[float, str, int]], dict[str, Any]]:
    """The survival runs of attack ``name`` from the grid's recorded sequence, and what they came from (no recorded
    call, e.g. no point was attacked: every row survives, so the estimate is the high bound)."""
    a = grid["attacks"][name]
    kinds = budget_kinds(name, a["params"])
    seq = expand_runs(a["calls"].get("sequence", []))
    if not seq:
        s = np.ones(len(kinds))
        return runs_of(s, kinds), {"recorded_calls": 0, "budget_calls": len(kinds), "mean_survival": 1.0,
                                   "note": "no call recorded: every row taken to survive (the high bound)"}  # fmt: skip
    rows = [r for r, _ in seq]
    if any(b > a_ for a_, b in zip(rows, rows[1:])):
        raise ValueError(f"{name}: the grid's calls span several batches (rows rose); the projection needs one")
    if len(seq) > len(kinds) or [k for _, k in seq] != kinds[: len(seq)]:
        raise ValueError(f"{name}: {len(seq)} recorded calls do not follow the attack's budget ({len(kinds)} calls)")
    robust = a["robust_rows"] if not a.get("partial") else rows[-1]
    s = survival(rows, robust, len(kinds))
    info = {"recorded_calls": len(seq), "budget_calls": len(kinds), "rows_0": rows[0], "robust_rows": robust,
            "mean_survival": float(s.mean())}  # fmt: skip
    if a.get("partial"):
        info["note"] = "the run was cut: the rows still active then are taken as robust (an estimate on the low side)"
    return runs_of(s, kinds), info


def part_projection(ctx: Context, seconds: float) -> dict[str, Any]:
    import robustbench201 as rb

    grid, fc = ctx.shared.get("grid"), ctx.shared.get("forward_cost")
    if grid is None or fc is None:
        raise RuntimeError("the projection needs the forward cost and grid parts")
    if not fc.get("cells"):
        raise RuntimeError("the forward cost part measured no cell")
    s = ctx.sizes
    out: dict[str, Any] = ctx.result
    out["assumptions"] = __doc__
    archs = [c["arch"] for c in fc["cells"]]
    knots = [c["flops"] for c in fc["cells"]]
    net = net_costs(fc["table"], archs)
    largest = {k: v[-1] for k, v in net.items()}
    overhead = {name: overhead_costs(grid["attacks"][name]["calls"], largest) for name in grid["attacks"]}
    missing = [a for a in (*SURVIVAL_ATTACKS, "fgsm") if a not in grid["attacks"]]
    if missing:
        raise RuntimeError(f"the grid part did not finish {missing}: no calls to project from")
    runs, out["survival"] = {}, {}
    for name in SURVIVAL_ATTACKS:
        runs[name], out["survival"][name] = _runs(grid, name)
    totals = {"low": 0.0, "estimate": 0.0, "high": 0.0}
    out["datasets"] = {}
    for ds in PUBLISHED_DATASETS:
        info = dataset_info(ds)
        t = rb.table(ds)
        reps = t[t["representative"] == t.index]
        flops = np.array([2.0 * flop_count(i, 10, s.channels, s.cells, 3, 32) for i in reps.index])
        w = flop_weights(flops, knots)
        ratio = (info.resolution / 32) ** 2
        clean = np.clip(reps["clean"].to_numpy(dtype=np.float64), 0.0, 1.0)
        plain = CellCost(net, w, ratio, overhead.get("fgsm"))
        clean_s, corr_s, fgsm_s = _plain_seconds(plain, info.n_test, clean, ds != "ImageNet16-120")
        per_ds: dict[str, Any] = {"cells": len(reps), "n_test": info.n_test, "hours": {}, "attack_hours": {}}
        base = clean_s + corr_s + fgsm_s
        low, est, high = base.copy(), base.copy(), base.copy()
        points = clean * info.n_test
        per = BATCH // len(EPS)
        for name in SURVIVAL_ATTACKS:
            robust = sum(reps[f"{name}@{e:g}"].to_numpy(dtype=np.float64) for e in EPS) * info.n_test
            attacked = points * len(EPS)
            rho = np.divide(robust, attacked, out=np.ones_like(attacked), where=attacked > 0)
            cost = CellCost(net, w, ratio, overhead[name])
            full, last = batches(points, per)
            l1, e1, h1 = attack_seconds(np.full(len(reps), float(per * len(EPS))), rho, runs[name], cost)
            l2, e2, h2 = attack_seconds(last * len(EPS), rho, runs[name], cost)
            a_low, a_est, a_high = full * l1 + l2, full * e1 + e2, full * h1 + h2
            per_ds["attack_hours"][name] = {"low": float(a_low.sum()) / 3600, "estimate": float(a_est.sum()) / 3600,
                                            "high": float(a_high.sum()) / 3600}  # fmt: skip
            low, est, high = low + a_low, est + a_est, high + a_high
        per_ds["attack_hours"]["fgsm"] = float(fgsm_s.sum()) / 3600
        per_ds["clean_and_corruption_hours"] = float((clean_s + corr_s).sum()) / 3600
        for key, v in (("low", low), ("estimate", est), ("high", high)):
            per_ds["hours"][key] = float(v.sum()) / 3600
            totals[key] += per_ds["hours"][key]
        out["datasets"][ds] = per_ds
    out["gpu_hours"] = totals
    out["grid_is_quick"] = s.mode == "quick"
    out["measured_cells"] = fc["cells"]
    return out
