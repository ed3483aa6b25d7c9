"""``bench/gpu_check.py``: the whole check runs on a CPU in quick mode (so it cannot rot before a GPU is at hand) and
its report holds what each part promises, with every part's arithmetic flags; the watchdog cuts a part and the
report stays valid; a failing part is recorded and the run goes on; the preflight fails at once naming what is
missing; the projection's formula on hand-computed numbers, with its bounds holding by construction; the call
recorder; the wheel folder's repacking."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO

BENCH = REPO / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import gpu_check as gc  # noqa: E402
from gpu_check_budget import MODES, Deadline, PartCut, share_of, tf32_of, watchdog  # noqa: E402
from gpu_check_calls import CallRecorder, expand_runs, run_lengths  # noqa: E402
from gpu_check_projection import (  # noqa: E402
    CallCost,
    StepCost,
    attack_seconds,
    budget_kinds,
    flop_weights,
    runs_of,
    survival,
)
from gpu_check_training import training_hours  # noqa: E402

PEERS = all(importlib.util.find_spec(m) for m in ("pyautoattack", "torchattacks"))


# ---- the quick CPU run of every part (one run, several tests) ---------------------------------------------------
@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> tuple[dict, str, Path]:
    out = tmp_path_factory.mktemp("gpu-check")
    # a budget far above what quick mode needs (about a minute on a loaded 2-core machine): no part is cut
    proc = subprocess.run(
        [sys.executable, str(BENCH / "gpu_check.py"), "--device", "cpu", "--quick", "--threads", "1",
         "--budget", "1200", "--out", str(out)],
        capture_output=True, text=True, timeout=1500, cwd=out,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "gpu_check.json").read_text()), (out / "gpu_check.txt").read_text(), out


def _results(report: dict) -> dict:
    return {name: p["result"] for name, p in report["parts"].items() if p["status"] == "ok"}


def test_quick_cpu_run_of_every_part(quick):
    report, text, _ = quick
    parts = report["parts"]
    assert list(parts) == list(gc.WEIGHTS)
    for name, p in parts.items():
        if name == "reference" and not PEERS:
            continue
        assert p["status"] == "ok", (name, p.get("error"), p.get("traceback"))
        assert f"{name} [ok" in text
    r = _results(report)
    assert report["machine"]["torch"] and report["mode"] == "quick" and report["machine"]["git_commit"]
    assert r["train"]["clean_accuracy_test"] > 0.3  # a network that learned something
    c = r["correctness"]
    assert c["deterministic_flags_differing"] == 0 and c["deterministic_flags_total"] > 0  # cpu against cpu
    assert c["random_stream_flags_differing"] == 0 and c["device_repeat_identical"]
    assert r["oom"]["all_halved"] and r["oom"]["all_equal"]
    assert {row["attack"] for row in r["precision"]["robust_accuracy"]} == {"fgsm", "pgd", "aa_apgd-ce", "aa_square"}
    g = r["grid"]
    assert set(g["attacks"]) == {"fgsm", "pgd", "aa_apgd-ce", "aa_square"} and g["seconds"] > 0
    assert g["attacks"]["aa_square"]["fwd"] > g["n"] and g["attacks"]["pgd"]["bwd"] > 0
    assert {c["role"] for c in r["forward_cost"]["cells"]} == {"smallest", "median", "largest"}
    lv = r["square_levers"]["runs"]
    assert lv["buckets"]["flags_differing_from_eager"] == 0
    assert lv["fp16-audit"]["stats"]["audit_disagreements_beyond_ties"] == 0
    assert r["square_levers"]["fp16_verdict"]["meets_strength_rule"]
    assert r["workers"]["runs"]["2"]["rows_equal_one_worker"] is True
    if PEERS:
        assert set(r["reference"]["attacks"]) == set(g["attacks"]) and r["reference"]["ratio"] > 0


def test_every_part_records_the_arithmetic_it_ran_in(quick):
    report, _, _ = quick
    for name, p in report["parts"].items():
        a = p["arithmetic"]
        assert a["declared"] in MODES, name
        # fp32 parts run with TF32 off from start to end; mixed parts start with it off and record each setting
        assert tf32_of(a["at_start"]) is False and tf32_of(a["at_end"]) is False, name
    r = _results(report)
    assert tf32_of(r["peak"]["flags"]["fp32"]) is False and tf32_of(r["peak"]["flags"]["bf16"]) is False
    pf = r["precision"]["flags"]  # as evaluate set them, seen by the network's calls in each mode
    for mode, tf32 in (("fp32", False), ("tf32", True), ("amp", False)):
        assert pf[mode] and all(tf32_of(f) is tf32 for f in pf[mode]), mode
    assert any(f["autocast_cpu"] for f in pf["amp"]) and not any(f["autocast_cpu"] for f in pf["fp32"])
    grid_flags = [f for seen in r["grid"]["arithmetic_flags"].values() for f in seen]
    assert grid_flags and all(tf32_of(f) is False for f in grid_flags)
    assert tf32_of(r["train_speed"]["flags"]) is False
    for k, run in r["train_speed"]["runs"].items():
        for proc in run.get("per_process", {}).values():
            assert tf32_of(proc["flags"]) is False, k
    for config, v in r["train_levers"]["speed"].items():
        assert tf32_of(v["flags"]) is (config == "tf32"), config
        assert v["flags"]["autocast_cpu"] is ("bf16" in config), config


def test_projections_of_evaluation_and_training_are_in_the_report(quick):
    report, _, _ = quick
    r = _results(report)
    p = r["projection"]
    h = p["gpu_hours"]
    assert 0 < h["low"] <= h["estimate"] <= h["high"]
    assert set(p["datasets"]) == {"cifar10", "cifar100", "ImageNet16-120"}
    for ds in p["datasets"].values():
        assert ds["hours"]["low"] <= ds["hours"]["estimate"] <= ds["hours"]["high"]
        for name in ("pgd", "aa_apgd-ce", "aa_square"):
            a = ds["attack_hours"][name]
            assert a["low"] <= a["estimate"] <= a["high"]
    t = r["train_speed"]["projection"]
    assert t["estimate_gpu_hours"] > 0 and t["if_all_largest_gpu_hours_k1"] > 0 and t["by_k_mean_cell"]
    assert set(r["train_speed"]["cells"]) == {"largest", "mean"}
    acc = r["train_levers"]["accuracy"]
    assert {"fp32_seed777", "bf16_seed777", "fp32_seed888", "bf16_minus_fp32"} <= set(acc)


def test_every_call_of_the_grid_is_recorded(quick):
    report, _, _ = quick
    g = _results(report)["grid"]
    for name, a in g["attacks"].items():
        seq = expand_runs(a["calls"]["sequence"])
        calls = sum(k["calls"] for kind, k in a["calls"].items() if kind != "sequence")
        assert calls == len(seq) and all(k in ("fwd", "fwd_bwd") for _, k in seq), name
        assert a["fwd"] == sum(r for r, _ in seq) and a["bwd"] == sum(r for r, k in seq if k == "fwd_bwd"), name
        if name != "fgsm":  # rows only leave: Square's active rows per iteration never rise
            rows = [r for r, _ in seq]
            assert rows[0] == a["attacked"] * len(a["epsilons"]) and rows == sorted(rows, reverse=True), name
            assert rows[-1] >= a["robust_rows"]


def test_the_report_files_fit_what_comes_back_from_the_gpu_machine(quick):
    report, text, out = quick
    files = sorted(p.name for p in out.iterdir())
    assert files == ["gpu_check.json", "gpu_check.log", "gpu_check.txt"]  # at most 8 files, no folders
    assert report["imported_torchvision"] is False
    assert len(text.splitlines()) == len(report["parts"]) + 2


# ---- the watchdog, failures, the budget ---------------------------------------------------------------------------
def test_a_part_cut_by_the_watchdog_leaves_a_valid_report(tmp_path, monkeypatch):
    def endless(ctx, seconds):  # type: ignore[no-untyped-def]
        ctx.result["rounds"] = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 120:  # never ends by itself within the test: only a cut stops it early
            ctx.result["rounds"] += 1
        return ctx.result

    def fine(ctx, seconds):  # type: ignore[no-untyped-def]
        ctx.net = object()
        return {"trained": False, "note": "test"}

    monkeypatch.setattr(gc, "_parts", lambda: {"peak": endless, "train": fine})
    t0 = time.perf_counter()
    assert (
        gc.main(["--device", "cpu", "--quick", "--budget", "4", "--parts", "peak,train", "--out", str(tmp_path)]) == 0
    )
    assert time.perf_counter() - t0 < 60
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    peak = report["parts"]["peak"]
    assert peak["status"] == "cut" and "watchdog" in peak["reason"] and peak["result"]["rounds"] > 0
    assert tf32_of(peak["arithmetic"]["at_end"]) is False  # the flags were recorded and restored after the cut
    assert report["parts"]["train"]["status"] == "ok"  # the run went on
    assert "peak [cut" in (tmp_path / "gpu_check.txt").read_text()


def test_the_deadline_is_checked_by_the_recorder_off_the_main_thread():
    rec = CallRecorder(torch.nn.Identity(), torch.device("cpu"))
    got: dict = {}

    def part():  # type: ignore[no-untyped-def]
        deadline = Deadline(0.2)
        rec.deadline = deadline
        try:
            with watchdog(deadline):  # no signals off the main thread: the cooperative check takes over
                t0 = time.perf_counter()
                while time.perf_counter() - t0 < 120:
                    rec(torch.zeros(2, 3))
        except PartCut as cut:
            got["cut"] = str(cut)
        got["cooperative"] = deadline.cooperative

    th = threading.Thread(target=part)
    th.start()
    th.join(timeout=150)
    assert got["cooperative"] and "deadline" in got["cut"]


def test_a_failing_part_is_recorded_and_the_run_goes_on(tmp_path, monkeypatch):
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


def test_parts_are_skipped_when_the_budget_is_spent(tmp_path, monkeypatch):
    monkeypatch.setattr(gc, "_parts", lambda: {})
    assert (
        gc.main(["--device", "cpu", "--quick", "--budget", "0.5", "--parts", "peak,grid", "--out", str(tmp_path)]) == 0
    )
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    for name in ("peak", "grid"):
        assert report["parts"][name]["status"] == "skipped" and "budget" in report["parts"][name]["reason"]


def test_shares_follow_the_weights_of_the_parts_left():
    w = {"a": 1.0, "b": 3.0}
    assert share_of(100.0, w, ["a", "b"], 0) == 25.0 and share_of(60.0, w, ["a", "b"], 1) == 60.0
    assert share_of(-5.0, w, ["a", "b"], 0) == 0.0


# ---- preflight ----------------------------------------------------------------------------------------------------
def test_the_preflight_fails_before_importing_torch_naming_what_is_missing(tmp_path):
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import gpu_check_preflight as p; "
        "p.REQUIRED['rb201_no_such_module'] = 'a test'; import gpu_check; "
        "rc = gpu_check.main(['--out', sys.argv[2], '--commit', 'not-a-sha']); "
        "print('rc', rc, 'torch' in sys.modules)"
    )
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code, str(BENCH), str(tmp_path)], capture_output=True, text=True)
    assert time.perf_counter() - t0 < 60  # a fresh interpreter; the check itself does no work
    assert "rc 2 False" in r.stdout, r.stdout + r.stderr  # failed, and torch was never imported
    assert "python module rb201_no_such_module not found: needed by a test" in r.stderr
    assert "--commit 'not-a-sha' is not a git commit" in r.stderr
    assert not (tmp_path / "gpu_check.json").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_the_default_device_without_cuda_stops_with_a_clear_message(tmp_path, capsys):
    assert gc.main(["--out", str(tmp_path)]) == 2  # the default device is cuda: no silent CPU run of the full check
    assert "--device cuda but torch" in capsys.readouterr().err and not (tmp_path / "gpu_check.json").exists()


def test_allow_missing_runs_and_records_what_is_missing(tmp_path, monkeypatch):
    import gpu_check_preflight

    monkeypatch.setitem(gpu_check_preflight.REQUIRED, "rb201_no_such_module", "a test")
    monkeypatch.setattr(gc, "_parts", lambda: {})
    args = ["--device", "cpu", "--quick", "--budget", "0.5", "--parts", "peak", "--out", str(tmp_path)]
    assert gc.main(args) == 2
    assert gc.main([*args, "--allow-missing", "--commit", "0123456789abcdef0123456789abcdef01234567"]) == 0
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert any("rb201_no_such_module" in p for p in report["preflight"])
    assert report["machine"]["git_commit"].startswith("0123456789") and report["machine"]["commit_source"] == "--commit"
    assert "rb201_no_such_module" in (tmp_path / "gpu_check.txt").read_text()


# ---- the projection's formula on hand-computed numbers --------------------------------------------------------------
def test_call_cost_interpolates_log_log_and_never_falls_with_rows():
    t = CallCost.from_points([(2, 1.0), (4, 2.0), (8, 4.0)])
    # between knots log-log: seconds proportional to rows here; below the first knot its seconds; 0 rows cost 0
    assert t(np.array([0, 1, 2, 3, 4, 8, 16])) == pytest.approx([0, 1, 1, 1.5, 2, 4, 8], rel=1e-12)
    dip = CallCost.from_points([(2, 1.0), (4, 0.5), (8, 4.0)])  # a measured dip is lifted to the running maximum
    assert dip(4) == pytest.approx(1.0) and dip(3) == pytest.approx(1.0)
    o = StepCost.from_points([(2, 0.5), (4, -1.0), (8, 1.5)])  # overheads: linear, clipped at 0, non-decreasing
    assert o(np.array([0, 1, 3, 6, 100])) == pytest.approx([0, 0.5, 0.5, 1.0, 1.5])


def test_projection_of_one_batch_on_hand_computed_numbers():
    # one batch of n = 8 rows, 2 robust (rho = 1/4); recorded rows per call 8, 4, 2, so s = 1, 1/3, 0
    s = survival([8, 4, 2], robust_rows=2, n_calls=3)
    assert s == pytest.approx([1, 1 / 3, 0])
    runs = runs_of(s, ["fwd", "fwd", "fwd"])
    cost = CallCost.from_points([(2, 1.0), (4, 2.0), (8, 4.0)])
    low, est, high = attack_seconds(np.array([8.0]), np.array([0.25]), runs, lambda kind, r: cost(r))
    # estimate: calls of 8, 4, 2 rows = 4 + 2 + 1 s; low: 8 rows, then only the 2 robust rows = 4 + 1 + 1 s;
    # high: every call with all 8 rows = 3 x 4 s
    assert (low[0], est[0], high[0]) == pytest.approx((6.0, 7.0, 12.0), rel=1e-12)


def test_projection_bounds_hold_by_construction_for_any_calls():
    rng = np.random.default_rng(0)
    for _ in range(300):
        knots = np.cumsum(rng.uniform(0.5, 3, 5))
        secs = np.cumsum(rng.uniform(0, 1, 5)) + 1e-6 * rng.uniform(1, 2)
        net = CallCost.from_points(list(zip(np.exp(knots), secs)))
        over = StepCost.from_points(list(zip(np.exp(knots), rng.normal(0, 1e-3, 5))))
        k = int(rng.integers(2, 60))
        s = np.r_[1.0, np.sort(rng.uniform(-0.1, 1.1, k - 1))[::-1]].clip(0, 1)
        kinds = list(rng.choice(["fwd", "fwd_bwd"], k))
        n, rho = rng.uniform(0, 600, 50), rng.uniform(0, 1, 50)

        def cost(kind: str, r: np.ndarray, net: CallCost = net, over: StepCost = over) -> np.ndarray:
            return net(r) * (1 + (kind == "fwd_bwd")) + over(r)

        low, est, high = attack_seconds(n, rho, runs_of(s, kinds), cost)
        assert np.all(low <= est) and np.all(est <= high)


def test_no_broken_row_puts_the_estimate_at_the_high_bound():
    # the failure this replaces: a measured count scaled past the budget made "measured" exceed "high"
    s = survival([511, 511, 511], robust_rows=511, n_calls=5001)
    assert np.all(s == 1)
    runs = runs_of(s, budget_kinds("aa_square", {"n_queries": 5000, "n_restarts": 1}))
    cost = CallCost.from_points([(1, 1e-3), (512, 4e-3)])
    low, est, high = attack_seconds(np.full(3, 511.0), np.array([0.0, 0.5, 1.0]), runs, lambda kind, r: cost(r))
    assert np.array_equal(est, high) and np.all(low <= est)


def test_survival_is_clipped_and_zero_after_the_last_call():
    assert survival([10, 12, 6], robust_rows=4, n_calls=5) == pytest.approx([1, 1, 1 / 3, 0, 0])


def test_budget_kinds_follow_each_attack():
    assert budget_kinds("aa_square", {"n_queries": 5000, "n_restarts": 1}) == ["fwd"] * 5001
    assert budget_kinds("pgd", {"steps": 40, "restarts": 1}) == ["fwd_bwd"] * 40 + ["fwd"]
    assert budget_kinds("aa_apgd-ce", {"n_iter": 100, "n_restarts": 1}) == ["fwd_bwd"] * 101
    with pytest.raises(ValueError, match="one restart"):
        budget_kinds("pgd", {"steps": 40, "restarts": 2})


def test_flop_weights_interpolate_between_the_measured_cells():
    w = flop_weights(np.array([0.5, 1, 1.5, 3, 5]), [1, 2, 4])
    assert w == pytest.approx(np.array([[1, 0, 0], [1, 0, 0], [0.5, 0.5, 0], [0, 0.5, 0.5], [0, 0, 1]]))


def test_training_projection_on_hand_computed_numbers():
    # 2 cells x (100 images x 10 epochs / 10 img/s + 50 x 10 / 5) = 2 x 200 s = 400 s
    assert training_hours(2, 10, {"a": 100, "b": 50}, {"a": 10.0, "b": 5.0}) == pytest.approx(400 / 3600)


# ---- the call recorder --------------------------------------------------------------------------------------------
def test_the_recorder_keeps_rows_kinds_and_a_histogram_per_section():
    rec = CallRecorder(torch.nn.Linear(3, 2), torch.device("cpu"))
    with rec.section("square", sequence=True), torch.no_grad():
        for n in (5, 5, 3, 3, 3, 1):
            rec(torch.zeros(n, 3))
    with rec.section("pgd"):
        rec(torch.zeros(4, 3, requires_grad=True)).sum().backward()
    r = rec.report()
    assert r["square"]["sequence"] == [[5, "fwd", 2], [3, "fwd", 3], [1, "fwd", 1]]
    bins = {b["rows_lo"]: b["calls"] for b in r["square"]["fwd"]["bins"]}
    assert bins == {4: 2, 2: 3, 1: 1} and r["square"]["fwd"]["rows"] == 20
    assert r["pgd"]["fwd_bwd"]["calls"] == 1 and "sequence" not in r["pgd"]
    assert rec.forward_images == 24 and rec.backward_images == 4
    assert set(rec.flags_seen) == {"square", "pgd"} and len(rec.flags_seen["square"]) == 1
    assert expand_runs(run_lengths([(2, "fwd"), (2, "fwd"), (1, "fwd_bwd")])) == [
        (2, "fwd"),
        (2, "fwd"),
        (1, "fwd_bwd"),
    ]


# ---- the wheel folder ---------------------------------------------------------------------------------------------
def test_repacked_wheels_lose_the_cut_folders_and_keep_a_true_record(tmp_path):
    import gpu_check_wheels as gw

    src = tmp_path / "pyautoattack-0.2.0-py3-none-any.whl"
    files = {"pyautoattack/__init__.py": b"x = 1\n", "pyautoattack/examples/model_test.pt": b"0" * 1000,
             "pyautoattack-0.2.0.dist-info/METADATA": b"Name: pyautoattack\n"}  # fmt: skip
    with zipfile.ZipFile(src, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr("pyautoattack-0.2.0.dist-info/RECORD", "stale\n")
    dest = tmp_path / "out.whl"
    removed = gw.repack(src, dest, gw.CUT["pyautoattack"])
    assert removed == ["pyautoattack/examples/model_test.pt"]
    with zipfile.ZipFile(dest) as z:
        names = set(z.namelist())
        record = z.read("pyautoattack-0.2.0.dist-info/RECORD").decode().splitlines()
        for line in record:
            path, digest, size = line.split(",")
            if path.endswith("RECORD"):
                continue
            data = z.read(path)
            want = "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == want and int(size) == len(data)
    assert "pyautoattack/examples/model_test.pt" not in names and len(record) == len(names) == 3
