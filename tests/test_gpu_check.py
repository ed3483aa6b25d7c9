"""``bench/gpu_check.py``: the whole check runs on a CPU in quick mode (so it cannot rot before a GPU is at hand) and
its report holds what each part promises; a failing part is recorded and the run goes on; the budget guard
skips parts."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO

BENCH = REPO / "bench"


def _load_main():  # type: ignore[no-untyped-def]
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    import gpu_check

    return gpu_check


def test_quick_cpu_run_of_every_part(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, str(BENCH / "gpu_check.py"), "--device", "cpu", "--quick", "--threads", "1",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    text = (tmp_path / "gpu_check.txt").read_text()
    parts = report["parts"]
    peers = all(importlib.util.find_spec(m) for m in ("pyautoattack", "torchattacks"))
    for name, p in parts.items():
        if name == "reference" and not peers:
            continue
        assert p["status"] == "ok", (name, p.get("error"), p.get("traceback"))
        assert f"{name} [ok" in text
    r = {name: p["result"] for name, p in parts.items() if p["status"] == "ok"}
    assert report["machine"]["torch"] and report["mode"] == "quick"
    assert r["train"]["clean_accuracy_test"] > 0.3  # a network that learned something
    c = r["correctness"]
    assert c["deterministic_flags_differing"] == 0 and c["deterministic_flags_total"] > 0  # cpu against cpu
    assert c["random_stream_flags_differing"] == 0 and c["device_repeat_identical"]
    assert r["oom"]["all_halved"] and r["oom"]["all_equal"]
    assert {row["attack"] for row in r["precision"]["robust_accuracy"]} == {"fgsm", "pgd", "aa_apgd-ce", "aa_square"}
    g = r["grid"]
    assert set(g["attacks"]) == {"fgsm", "pgd", "aa_apgd-ce", "aa_square"} and g["seconds"] > 0
    assert g["attacks"]["aa_square"]["fwd"] > g["n"] and g["attacks"]["pgd"]["bwd"] > 0
    h = r["projection"]["gpu_hours"]
    assert 0 < h["low"] <= h["measured"] <= h["high"]
    assert set(r["projection"]["datasets"]) == {"cifar10", "cifar100", "ImageNet16-120"}
    lv = r["square_levers"]["runs"]
    assert lv["buckets"]["flags_differing_from_eager"] == 0
    assert lv["fp16-audit"]["stats"]["audit_disagreements_beyond_ties"] == 0
    assert r["square_levers"]["fp16_verdict"]["meets_strength_rule"]
    assert r["workers"]["runs"]["2"]["rows_equal_one_worker"] is True
    if peers:
        assert set(r["reference"]["attacks"]) == set(g["attacks"]) and r["reference"]["ratio"] > 0


def test_a_failing_part_is_recorded_and_the_run_goes_on(tmp_path: Path, monkeypatch):
    gc = _load_main()

    def boom(ctx, seconds):  # type: ignore[no-untyped-def]
        raise RuntimeError("no such card")

    def fine(ctx, seconds):  # type: ignore[no-untyped-def]
        ctx.net = object()
        return {"trained": False, "note": "test", "error": None}

    monkeypatch.setattr(gc, "_parts", lambda: {"peak": boom, "train": fine})
    assert gc.main(["--device", "cpu", "--quick", "--parts", "peak,train", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["parts"]["peak"]["status"] == "error" and "no such card" in report["parts"]["peak"]["error"]
    assert "RuntimeError" in report["parts"]["peak"]["traceback"]
    assert report["parts"]["train"]["status"] == "ok"
    assert "peak [error" in (tmp_path / "gpu_check.txt").read_text()


def test_parts_are_skipped_when_the_budget_is_spent(tmp_path: Path, monkeypatch):
    gc = _load_main()
    monkeypatch.setattr(gc, "_parts", lambda: {})
    assert gc.main(["--device", "cpu", "--quick", "--budget", "1", "--parts", "peak,grid", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    for name in ("peak", "grid"):
        assert report["parts"][name]["status"] == "skipped" and "budget" in report["parts"][name]["reason"]
