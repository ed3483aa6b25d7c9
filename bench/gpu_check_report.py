"""The report of ``bench/gpu_check.py``: ``gpu_check.json`` (everything measured) and ``gpu_check.txt`` (one line
per part), both rewritten atomically after every part, and the line printed as each part ends. No torch."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FILES = ("gpu_check.json", "gpu_check.txt", "gpu_check.log")


def _jsonable(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return repr(o)


def write(out: Path, report: dict[str, Any]) -> None:
    """Both files, each written beside its target and renamed over it (a reader never sees half a file)."""
    for name, text in (("gpu_check.json", json.dumps(report, indent=1, default=_jsonable)),
                       ("gpu_check.txt", summary(report))):  # fmt: skip
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, out / name)


def _f(v: Any, fmt: str = ".3g") -> str:
    return "-" if v is None else format(v, fmt)


def summary(report: dict[str, Any]) -> str:
    """The text summary: a header, one line per part, the total."""
    m = report.get("machine", {})
    where = m.get("gpu", m.get("device"))
    lines = [f"# rb201 GPU check, {report.get('mode')} mode, {m.get('date_utc')}: {where}, torch {m.get('torch')}, "
             f"CUDA {m.get('cuda')}, cuDNN {m.get('cudnn')}, commit {m.get('git_commit')}"]  # fmt: skip
    if report.get("preflight"):
        lines.append("preflight (run with --allow-missing): " + "; ".join(report["preflight"]))
    lines += [part_line(name, p) for name, p in report.get("parts", {}).items()]
    lines.append(f"total {report.get('seconds', 0):.1f} s of a {report.get('budget')} s budget")
    return "\n".join(lines) + "\n"


def part_line(name: str, p: dict[str, Any]) -> str:
    """``name [status, seconds of share, arithmetic]: what it measured`` (an error or reason when it has one)."""
    a = p.get("arithmetic", {}).get("declared", "-")
    head = f"{name} [{p['status']}, {p.get('seconds', 0):.1f} of {p.get('share', 0):.0f} s, {a}]"
    r = p.get("result") or {}
    text = ""
    if p["status"] in ("ok", "cut") and r:
        try:
            text = _line(name, r)
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:  # a cut part may lack a field
            text = f"(partial: {type(exc).__name__} {exc})"
    why = p.get("error") or p.get("reason") or ""
    return f"{head}: " + "; ".join(t for t in (text, why) if t)


def _line(name: str, r: dict[str, Any]) -> str:  # noqa: C901 - one formatter per part
    if name == "peak":
        return ", ".join(f"{k[:-6]} {v / 1e12:.3g} TFLOP/s" for k, v in r.items() if k.endswith("_flops"))
    if name == "train":
        if not r.get("trained", True):
            return f"UNTRAINED: {r.get('note')}"
        return (f"arch {r['arch']} C={r['channels']} N={r['cells']}, {r['epochs']} epochs in "
                f"{_f(r.get('train_seconds'), '.0f')} s, clean {r['clean_accuracy_test']:.3f} on {r['test_images']} "
                f"test images" + (f" ({r['note']})" if r.get("note") else "")
                + (f"; WARNING {r['warning']}" if r.get("warning") else ""))  # fmt: skip
    if name == "correctness":
        return (f"n={r['n']}: deterministic flags differing device vs cpu {r['deterministic_flags_differing']}/"
                f"{r['deterministic_flags_total']}, random-stream flags {r['random_stream_flags_differing']}/"
                f"{r['random_stream_flags_total']} (different generators), device repeat identical "
                f"{r['device_repeat_identical']}"
                + (f" (differ: {', '.join(r['device_repeat_differing_arrays'])})"
                   if r.get("device_repeat_differing_arrays") else ""))  # fmt: skip
    if name == "oom":
        a = ", ".join(f"{k}: {v['rows_requested']} rows -> {v['settled_batch_rows']} after {v['halvings']} halvings"
                      for k, v in r["attacks"].items())  # fmt: skip
        return f"{r['how']} (cap {_f(r['cap_gib'])} GiB); {a}; same numbers: {r.get('all_equal')}"
    if name == "forward_cost":
        t = [f"{x['batch']}: {x['us_per_image']:.1f} us/img {_f(x.get('of_fp32_peak'), '.1%')}"
             for x in r["table"] if x.get("role") == "largest" and "fwd" in x]  # fmt: skip
        return "largest cell: " + "; ".join(t) + f"; fwd+bwd/fwd {_f(r.get('fwd_bwd_over_fwd'), '.2f')}"
    if name == "grid":
        a = ", ".join(f"{k} {v['wall']:.1f} s" for k, v in r["attacks"].items())
        return (f"N={r['n']} ({r['spec']}): {r['seconds']:.1f} s/arch ({a}); {r['forward_images_per_s']:.3g} fwd/s, "
                f"{r['backward_images_per_s']:.3g} bwd/s; {r['achieved_flops_per_s'] / 1e12:.2f} TFLOP/s = "
                f"{_f(r.get('of_fp32_peak'), '.1%')} of fp32 peak; peak memory {_f(r.get('peak_memory_gib'))} "
                "GiB")  # fmt: skip
    if name == "projection":
        h = r["gpu_hours"]
        return (f"GPU-hours (6466 cells x 3 datasets, jung2023): {h['estimate']:.0f}, bounds {h['low']:.0f}-"
                f"{h['high']:.0f}" + (" [quick mode: not meaningful]" if r.get("grid_is_quick") else ""))  # fmt: skip
    if name == "square_levers":
        parts = []
        for k, v in r["runs"].items():
            speed = f" x{v['speedup_vs_eager']:.2f}" if "speedup_vs_eager" in v else ""
            parts.append(f"{k} " + (f"{v['seconds']:.1f} s{speed}" if "seconds" in v else f"skipped ({v['skipped']})"))
        return f"N={r['n']}, {r['queries']} queries: " + "; ".join(parts) + f"; fp16: {r.get('fp16_verdict')}"
    if name == "workers":
        parts = [f"K={k}: " + (f"{v['seconds']:.1f} s, steady {_f(v['tasks_per_hour_steady'])} tasks/h"
                 + (f", rows equal {v['rows_equal_one_worker']}" if "rows_equal_one_worker" in v else "")
                 if "seconds" in v else f"skipped ({v['skipped']})") for k, v in r["runs"].items()]  # fmt: skip
        return f"{r['tasks']} tasks of N={r['n']}: " + "; ".join(parts)
    if name == "precision":
        return f"n={r['n']}, clean {r['clean']}; weaker than fp32: {r.get('weaker_than_fp32') or 'none'}"
    if name == "train_speed":
        runs = "; ".join(f"{k} {_f(v.get('aggregate_images_per_s'), '.0f')} img/s" for k, v in r["runs"].items())
        p = r.get("projection", {})
        return (f"{runs}; training GPU-hours (6466 x 3 datasets x 200 epochs): {_f(p.get('estimate_gpu_hours'), '.0f')}"
                f" (mean cell, K={p.get('best_k')}), {_f(p.get('if_all_largest_gpu_hours_k1'), '.0f')} if all were "
                f"the largest (K=1)")  # fmt: skip
    if name == "train_levers":
        sp = "; ".join(f"{k} {_f(v.get('images_per_s'), '.0f')} img/s" + (f" x{v['speedup_vs_fp32']:.2f}"
                       if "speedup_vs_fp32" in v else "") for k, v in r["speed"].items())  # fmt: skip
        acc = r.get("accuracy", {})
        return (f"{sp}; accuracy after {acc.get('epochs')} epochs: bf16-fp32 {_f(acc.get('bf16_minus_fp32'), '+.3f')}"
                f" (seed-to-seed {_f(acc.get('seed_to_seed_fp32'), '+.3f')}); pays: {r.get('pays')}")  # fmt: skip
    if name == "reference":
        a = ", ".join(f"{k} x{v['ratio']:.2f}" + ("" if v["complete"] else f" (eps {v['epsilons']})")
                      for k, v in r["attacks"].items())  # fmt: skip
        return f"N={r['n']}: ratio reference/ours {_f(r.get('ratio'), '.2f')} ({a})"
    return ""
