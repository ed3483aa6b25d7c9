"""Correctness parts of ``bench/gpu_check.py``: ``evaluate`` on the device against the CPU, the out-of-memory
fallback driven for real, and the precision modes against fp32. Epsilons in 1/255 units."""

from __future__ import annotations

import copy
import logging
import math
import time
from typing import Any

import numpy as np
import torch
from gpu_check_calls import CallRecorder
from gpu_check_setup import Context, call_seconds, fit, paired_weaker
from torch import nn

from robustbench201.attacks import create_attack
from robustbench201.attacks.cascade import BatchPolicy, run_grid
from robustbench201.evaluation import ArrayKey, EvalResult, evaluate
from robustbench201.models.fast import fast_model
from robustbench201.spec import EvalSpec, attack

#: attacks whose random stream depends on the device's generator (CUDA and CPU draw different numbers)
RANDOM_ON_DEVICE = ("aa_apgd-ce", "aa_apgd-dlr", "aa_square")


def _key_name(k: ArrayKey) -> str:
    eps = "" if math.isnan(k.epsilon) else f"@{k.epsilon:g}"
    sev = f":{k.severity}" if k.severity else ""
    return f"{k.family}/{k.key}{eps}{sev}/{k.measure}" + (f"/{k.semantics}" if k.semantics else "")


def correctness_spec(quick: bool) -> EvalSpec:
    """Every family: FGSM, PGD (no random start, so it is deterministic on both devices), APGD-CE, APGD-DLR,
    Square (L-inf and, via the grid, per-epsilon flags), a corruption, both surrogates, both bounds."""
    eps = (1, 8)
    return EvalSpec(
        name="gpu-check-correctness",
        attacks=(
            attack("fgsm", eps),
            attack("pgd", eps, steps=3 if quick else 5, random_start=False),
            attack("aa_apgd-ce", eps, n_iter=5 if quick else 10),
            attack("aa_apgd-dlr", eps, n_iter=5 if quick else 10),
            attack("aa_square", eps, n_queries=20 if quick else 50),
        ),
        corruptions=("gaussian_noise",),
        severities=(3,),
        surrogates=("jacobian", "hessian"),
        surrogate_n=8 if quick else 16,
        hessian_iters=2 if quick else 3,
        certified=("ibp", "crown-ibp"),
        certified_epsilons=(0.5,),
        certified_n=8 if quick else 32,
        semantics="per-epsilon",
        batch_size=256,
    )


def _compare(dev: EvalResult, cpu: EvalResult) -> dict[str, Any]:
    """Per array: differing flags (bool arrays), largest relative difference (float arrays); per record: values."""
    flags: dict[str, Any] = {}
    floats: dict[str, float] = {}
    for k, a in cpu.arrays.items():
        b = dev.arrays.get(k)
        name = _key_name(k)
        if b is None:
            flags[name] = {"missing_on_device": True}
            continue
        if a.dtype == bool:
            random = k.key in RANDOM_ON_DEVICE or k.key == "worst_case"
            flags[name] = {"n": int(a.size), "differ": int((a != b).sum()), "random_stream_differs": random}
        elif k.measure == "confusion":
            continue  # follows from the flags
        else:
            den = np.maximum(np.abs(a), 1e-12)
            floats[name] = float(np.max(np.abs(a - b) / den)) if a.size else 0.0
    det = {n: v for n, v in flags.items() if not v.get("random_stream_differs") and "differ" in v}
    rnd = {n: v for n, v in flags.items() if v.get("random_stream_differs") and "differ" in v}
    acc = {}
    for r in cpu.records:
        if r.measure in ("accuracy", "value", "margin_lb") and r.semantics in ("", "per-epsilon"):
            other = [
                q.value
                for q in dev.records
                if (q.family, q.key, q.measure, q.severity, q.semantics)
                == (r.family, r.key, r.measure, r.severity, r.semantics)
                and ((math.isnan(q.epsilon) and math.isnan(r.epsilon)) or q.epsilon == r.epsilon)
            ]
            name = f"{r.family}/{r.key}" + ("" if math.isnan(r.epsilon) else f"@{r.epsilon:g}") + f"/{r.measure}"
            acc[name] = {"cpu": r.value, "device": other[0] if other else None}
    return {
        "deterministic_flags_differing": sum(v["differ"] for v in det.values()),
        "deterministic_flags_total": sum(v["n"] for v in det.values()),
        "random_stream_flags_differing": sum(v["differ"] for v in rnd.values()),
        "random_stream_flags_total": sum(v["n"] for v in rnd.values()),
        "flags": flags,
        "float_arrays_max_relative_difference": floats,
        "values": acc,
    }


def part_correctness(ctx: Context, seconds: float) -> dict[str, Any]:
    """``evaluate`` with the same weights and points on the device and on the CPU, and twice on the device. A probe
    on 2 images times the three runs; the comparison then takes as many images as fit in the share (at most
    ``correct_n``). The probe's comparison stays in the report if the larger one is cut."""
    from robustbench201.corruptions.sources import GeneratedCorruptions

    assert ctx.net is not None and ctx.test is not None and ctx.train is not None
    quick = ctx.sizes.mode == "quick"
    spec = correctness_spec(quick)
    cpu_net = copy.deepcopy(ctx.net).cpu()
    out = ctx.result

    def compare(n: int) -> tuple[dict[str, Any], float]:
        test = ctx.test.subset(n, seed=3)  # type: ignore[union-attr]
        corr = GeneratedCorruptions(test, seed=0, device="cpu")  # the same corrupted images for both devices
        t0 = time.perf_counter()
        on_dev = evaluate(ctx.net, test, spec, device=ctx.dev, corruptions=corr, train_data=ctx.train)
        t_dev = time.perf_counter() - t0
        t0 = time.perf_counter()
        on_cpu = evaluate(cpu_net, test, spec, device="cpu", corruptions=corr, train_data=ctx.train)
        t_cpu = time.perf_counter() - t0
        again = evaluate(ctx.net, test, spec, device=ctx.dev, corruptions=corr, train_data=ctx.train)
        differ = sorted(str(k) for k, a in on_dev.arrays.items() if not np.array_equal(a, again.arrays[k]))
        r = _compare(on_dev, on_cpu)
        r.update(n=len(test), spec_hash=spec.hash, device_seconds=t_dev, cpu_seconds=t_cpu,
                 device_repeat_identical=not differ, device_repeat_differing_arrays=differ)  # fmt: skip
        return r, time.perf_counter() - t0 + t_dev + t_cpu

    t0 = time.perf_counter()
    probe, _ = compare(2)
    probe_s = time.perf_counter() - t0
    out.update(probe)
    out["probe_seconds"] = probe_s
    n = fit(ctx.sizes.correct_n, lambda m: probe_s * m / 2, 0.8 * ctx.left(), n_min=2)
    if n > 2:
        full, _ = compare(n)
        out.update(full)
    out["note"] = (
        "Deterministic parts (clean, FGSM, PGD without random start, corruption, surrogates, bounds) are "
        "compared per sample; a differing flag there is a float difference between devices (e.g. a gradient "
        "sign or a margin within float rounding of 0). APGD and Square draw their random start and proposals "
        "from the device's generator, and CUDA and CPU generators give different numbers for the same seed: "
        "their flags are compared as accuracies (values), per sample only device against itself (repeat)."
    )
    return out


# ---- out-of-memory fallback -----------------------------------------------------------------------------------------
class _CapturedHalvings(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "out of memory" in record.getMessage():
            self.sizes.append(int(record.args[-1]))  # type: ignore[index]


class _SimulatedOOM(nn.Module):
    """CPU stand-in for a card that fits ``rows`` rows: larger forwards raise ``torch.OutOfMemoryError``."""

    def __init__(self, inner: nn.Module, rows: int) -> None:
        super().__init__()
        self.inner, self.rows = inner, rows

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > self.rows:
            raise torch.OutOfMemoryError(f"simulated: {x.shape[0]} rows > {self.rows}")
        return self.inner(x)


def part_oom(ctx: Context, seconds: float) -> dict[str, Any]:
    """A batch far too large halves until it fits, and gives exactly the numbers of a run started at the size
    it settled on. On CUDA the card is made small for real: the caching allocator is capped
    (``torch.cuda.set_per_process_memory_fraction``) at what is in use now plus room for an eighth of the requested
    rows' forward (measured on 32 rows; at least 32 MiB), so the allocator
    raises its genuine ``torch.OutOfMemoryError``; on a CPU (no allocator limit) a wrapper raises it. The number of
    images shrinks from ``oom_n`` until the estimated work fits the share; each attack's result is kept as it
    ends."""
    assert ctx.net is not None and ctx.test is not None
    quick = ctx.sizes.mode == "quick"
    model = fast_model(ctx.net)
    eps = (2.0, 8.0)
    steps, queries = (3, 20) if quick else (10, 100)

    def cost(m: int) -> float | None:  # both runs, at the batch sizes the fallback settles on (see below)
        rows = m * len(eps)
        fwd, grad = _est(ctx, 8 * (queries + 1), rows / 8), _est(ctx, 3 * 40 * (steps + 3), rows / 40)
        return None if fwd is None or grad is None else 2 * (fwd + grad)

    n = fit(min(ctx.sizes.oom_n, len(ctx.test)), cost, 0.7 * seconds, n_min=8)
    test = ctx.test.subset(n, seed=4)
    x = torch.from_numpy(test.images).to(ctx.device).float().div_(255)
    y = torch.from_numpy(test.labels).to(ctx.device)
    with torch.no_grad():
        clean = model(x).float().cpu()
    x_cpu = x.cpu()
    attacks = {
        "fgsm": create_attack("fgsm"),
        "pgd": create_attack("pgd", steps=steps),
        "aa_square": create_attack("aa_square", n_queries=queries),
    }
    cap_bytes = None
    fwd: nn.Module = model
    if ctx.device.type == "cuda":
        # room for an eighth of the requested rows' forward (a gradient needs several times more per row): every
        # attack must halve, the forward-only Square about three times
        per_row = _forward_bytes_per_row(model, x[:32], ctx.device)
        headroom = max(32 * 2**20, int(per_row * len(test) * len(eps) / 8))
        torch.cuda.empty_cache()
        total = torch.cuda.get_device_properties(ctx.device).total_memory
        cap_bytes = torch.cuda.memory_reserved(ctx.device) + headroom
        torch.cuda.set_per_process_memory_fraction(min(1.0, cap_bytes / total), ctx.device)
    else:  # a card that fits a sixth of the attacked rows
        attacked = int((clean.argmax(1) == y.cpu()).sum()) * len(eps)
        fwd = _SimulatedOOM(model, max(2, attacked // 6))
    out = ctx.result
    out.update(how="allocator capped at what is in use plus an eighth of the rows' forward" if cap_bytes is not None
               else "simulated (CPU: a wrapper raises above 1/6 of the rows)", n=len(test), epsilons=list(eps),
               cap_gib=None if cap_bytes is None else cap_bytes / 2**30, attacks={})  # fmt: skip
    log = logging.getLogger("robustbench201.attacks.cascade")
    rec = CallRecorder(fwd, ctx.device)
    try:
        for name, atk in attacks.items():
            handler = _CapturedHalvings()
            log.addHandler(handler)
            try:
                big = BatchPolicy(len(test) * len(eps))  # the whole request as one batch
                t0 = time.perf_counter()
                with rec.section(f"{name}/halving"):
                    got = run_grid(atk, rec, x_cpu, y.cpu(), clean, eps, "per-epsilon", _gen(ctx), big, ctx.device)
                t_big = time.perf_counter() - t0
            finally:
                log.removeHandler(handler)
            with rec.section(f"{name}/settled"):
                ref = run_grid(atk, rec, x_cpu, y.cpu(), clean, eps, "per-epsilon", _gen(ctx), BatchPolicy(big.size),
                               ctx.device)  # fmt: skip
            out["calls"] = rec.report()
            out["attacks"][name] = {
                "rows_requested": len(test) * len(eps),
                "halvings": len(handler.sizes),
                "settled_batch_rows": big.size,
                "flags_equal": bool(np.array_equal(got.correct, ref.correct)),
                "logits_equal": bool(torch.equal(got.logits, ref.logits)),
                "max_logit_difference": float((got.logits - ref.logits).abs().max()),
                "seconds_with_fallback": t_big,
            }
    finally:
        if ctx.device.type == "cuda":
            torch.cuda.set_per_process_memory_fraction(1.0, ctx.device)
            torch.cuda.empty_cache()
    res = out["attacks"].values()
    out["all_equal"] = all(r["flags_equal"] and r["logits_equal"] for r in res)
    out["all_halved"] = all(r["halvings"] > 0 for r in res)
    return out


def _forward_bytes_per_row(model: nn.Module, x: torch.Tensor, device: torch.device) -> float:
    """Peak CUDA memory of an inference forward per row of ``x``, beyond what was allocated before."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    with torch.no_grad():
        model(x)
    torch.cuda.synchronize(device)
    return max(1.0, (torch.cuda.max_memory_allocated(device) - base) / max(1, x.shape[0]))


def _est(ctx: Context, calls: float, rows: float) -> float | None:
    """Seconds of ``calls`` forward calls of ``rows`` rows (None before the forward cost part)."""
    t = call_seconds(ctx, rows)
    return None if t is None else calls * t


def _gen(ctx: Context) -> torch.Generator:
    return torch.Generator(device=ctx.device).manual_seed(11)


# ---- precision modes ---------------------------------------------------------------------------------------------
def precision_spec(quick: bool) -> EvalSpec:
    eps = (1, 8) if quick else (1, 4, 8)
    return EvalSpec(
        name="gpu-check-precision",
        attacks=(
            attack("fgsm", eps),
            attack("pgd", eps, steps=3 if quick else 10),
            attack("aa_apgd-ce", eps, n_iter=5 if quick else 20),
            attack("aa_square", eps, n_queries=20 if quick else 300),
        ),
        semantics="per-epsilon",
        batch_size=1024,
    )


def part_precision(ctx: Context, seconds: float) -> dict[str, Any]:
    """fp32, tf32 and amp on the same points and random streams: robust accuracy side by side, and whether a mode
    is a weaker attack than fp32 (paired test, see ``gpu_check_setup.paired_weaker``). ``evaluate`` sets TF32 per
    mode itself; the flags it ran under are recorded per mode. Points shrink from ``precision_n`` until the
    estimated work fits the share; each mode's run is kept as it ends."""
    assert ctx.net is not None and ctx.test is not None
    quick = ctx.sizes.mode == "quick"
    spec = precision_spec(quick).replace(fast_forward=False)  # the fast forward is built here, inside the probe
    eps_n = len(spec.attacks[0].epsilons)
    per_mode = sum(_calls(a.name, dict(a.params)) for a in spec.attacks)
    n = fit(min(ctx.sizes.precision_n, len(ctx.test)), lambda m: _est(ctx, 3 * per_mode, m * eps_n), 0.7 * seconds,
            n_min=8)  # fmt: skip
    test = ctx.test.subset(n, seed=5)
    out = ctx.result
    out.update(n=len(test), seconds={}, clean={}, flags={},
               note="amp is float16 autocast on CUDA, bfloat16 on a CPU; tf32 changes nothing on a CPU")  # fmt: skip
    runs: dict[str, EvalResult] = {}
    rec = CallRecorder(fast_model(ctx.net), ctx.device)
    for mode in ("fp32", "tf32", "amp"):
        t0 = time.perf_counter()
        with rec.section(mode):
            runs[mode] = evaluate(rec, test, spec.replace(precision=mode), device=ctx.dev)
        out["seconds"][mode] = time.perf_counter() - t0
        out["flags"][mode] = rec.flags_seen.get(mode, [])
        out["clean"][mode] = runs[mode].value("clean")
        out["calls"] = rec.report()
    table: list[dict[str, Any]] = []
    for a in spec.attacks:
        for e in a.epsilons:
            k = ArrayKey("adversarial", a.name, "correct", e, 0, "per-epsilon")
            ref = runs["fp32"].arrays[k]
            row: dict[str, Any] = {"attack": a.name, "epsilon": e, "fp32": float(ref.mean())}
            for mode in ("tf32", "amp"):
                ok = runs[mode].arrays[k]
                row[mode] = float(ok.mean())
                row[f"{mode}_vs_fp32"] = paired_weaker(ok, ref)
            table.append(row)
    out["robust_accuracy"] = table
    out["weaker_than_fp32"] = sorted({f"{r['attack']}@{r['epsilon']:g}:{m}" for r in table for m in ("tf32", "amp")
                                      if r[f"{m}_vs_fp32"]["weaker"]})  # fmt: skip
    return out


def _calls(name: str, p: dict[str, Any]) -> float:
    """Forward-call equivalents of one attack on one batch (a gradient call about three forwards)."""
    return {"fgsm": 4.0, "pgd": 3.0 * p.get("steps", 40) + 1, "aa_apgd-ce": 3.0 * (p.get("n_iter", 100) + 1),
            "aa_square": p.get("n_queries", 5000) + 1.0}.get(name, 1.0)  # fmt: skip
