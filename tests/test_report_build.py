"""The report of a build, on shards written by real ``rb201 evaluate`` runs: one complete, one whose every cell fails
(no trained weights), and one stopped after its first committed architecture and then killed. While the stopped
run holds its shard the report shows it being written, with a rate and an ETA; after the kill it shows the cells
left and the commands that retry them, and running those commands finishes the build. The pages are opened in
headless Chromium (tests/browser.py) and screenshots saved for a person to look at."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
from browser import screenshot_dir
from selenium.webdriver.common.by import By
from test_report import page_data

from robustbench201.report import source_kind, watch_report, write_report
from robustbench201.report.build_view import COVERAGE_CODES, _bucket, _covering_ranges, _eta, _rate, build_report
from robustbench201.runner.launch_record import launch_record_path, write_launch_record
from robustbench201.runner.plan import select_archs
from robustbench201.runner.status import shard_progress

TINY = ["--dataset", "mnist5k", "--preset", "smoke", "--channels", "4", "--cells", "1", "--n-test", "20",
        "--corruptions", "none", "--no-progress"]  # fmt: skip
DONE, FAILED, KILLED = (0, 6), (12, 16), (40, 56)


def rb201(*args: str) -> list[str]:
    return [sys.executable, "-m", "robustbench201.cli", *args]


def _retry(plan) -> list[str]:  # type: ignore[no-untyped-def]
    from robustbench201.cli.report_cmd import retry_commands

    return retry_commands(plan)


@pytest.fixture(scope="module")
def build(tmp_path_factory):  # type: ignore[no-untyped-def]
    """The three runs; the reports written while the third is stopped (holding its shard) and after its kill."""
    root = tmp_path_factory.mktemp("build")
    out, empty, env = root / "shards", root / "no-weights", {**os.environ, "OMP_NUM_THREADS": "1"}
    empty.mkdir()

    def evaluate(cells: tuple[int, int], weights: str) -> list[str]:
        return rb201(
            "evaluate", "--arch-range", f"{cells[0]}:{cells[1]}", "--weights", weights, *TINY, "--out", str(out)
        )

    subprocess.run(evaluate(DONE, "init"), check=True, env=env, capture_output=True, timeout=600)
    failed = subprocess.run(evaluate(FAILED, str(empty)), env=env, capture_output=True, text=True, timeout=600)
    assert failed.returncode == 3, failed.stderr  # every cell failed: no trained network in the folder
    proc = subprocess.Popen(evaluate(KILLED, "init"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob(f"shard-{KILLED[0]:05d}-*/arch-*.parquet")):
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before its first commit"
            time.sleep(0.01)
        proc.send_signal(signal.SIGSTOP)  # frozen after its first commit, still holding the shard's lock
        committed = len(list(out.glob(f"shard-{KILLED[0]:05d}-*/arch-*.parquet")))
        assert committed < len(select_archs([KILLED])), "the run finished before it could be stopped"
        during = write_report(out, root / "during.html", commands=_retry)
        watch = watch_report(out, root / "watched.html", 1.0, commands=_retry)
        watched_running = next(watch)
        watched_text = watched_running.path.read_text(encoding="utf-8")
    finally:
        proc.kill()
        proc.wait()
    watched_idle = next(watch)
    watch_ended = next(watch, None) is None
    after = write_report(out, root / "after.html", commands=_retry)
    return SimpleNamespace(root=root, out=out, during=during, after=after, pid=proc.pid, committed=committed,
                           watched=(watched_running, watched_text, watched_idle, watch_ended))  # fmt: skip


@pytest.fixture
def shots(request):  # type: ignore[no-untyped-def]
    folder = screenshot_dir(request.node.name)
    request.node.user_properties.append(("screenshots", str(folder)))
    return folder


def _groups(data: dict) -> dict[str, dict]:
    return {g["identity"]["weights"]: g for g in data["groups"]}


def test_while_a_run_holds_its_shard_the_report_shows_it_being_written(build):
    data = page_data(build.during.path)
    rows = {r.shard: r for r in shard_progress(build.out)}
    assert build.during.kind == "build" and not build.during.idle
    shards = {s["shard"]: s for s in data["shards"]}
    assert set(shards) == set(rows) and len(shards) == 3
    running = [s for s in shards.values() if s["state"] == "running"]
    assert len(running) == 1 and f"pid {build.pid} " in running[0]["writer"]
    g = _groups(data)
    init, none = g["init"], g["train-200ep"]
    planned = len(select_archs([DONE])) + len(select_archs([KILLED]))
    done = len(select_archs([DONE])) + build.committed
    assert init["cells"] == {"planned": planned, "done": done, "failed": 0, "remaining": planned - done,
                             "writing": planned - done}  # fmt: skip
    assert none["cells"]["failed"] == len(select_archs([FAILED])) and none["cells"]["done"] == 0
    assert init["tasks"]["running"] == 1 and none["tasks"]["failed"] == 1
    # the ETA is the cells left over the rate of the commits of the last hour
    assert init["eta"]["state"] == "estimated"
    assert init["eta"]["seconds"] == pytest.approx((planned - done) / (init["rate_per_hour"] / 3600), rel=1e-12)
    assert sum(init["throughput"]) == done and data["throughput"]["buckets"] == len(init["throughput"])
    assert init["retry"] is None  # nothing of this job is stranded: its remaining cells are being written
    cov = init["coverage"]
    assert len(cov) == 6466 and set(cov) <= set(COVERAGE_CODES)
    assert cov.count("d") == done and cov.count("w") == planned - done and cov.count("f") == 0
    assert none["coverage"].count("f") == len(select_archs([FAILED]))


def test_after_the_kill_the_report_says_what_is_left_and_how_to_retry_it(build):
    data = page_data(build.after.path)
    assert build.after.idle and data["refresh_s"] is None
    g = _groups(data)
    init, none = g["init"], g["train-200ep"]
    killed = select_archs([KILLED])
    left = killed[build.committed :]
    assert init["eta"]["state"] == "idle" and init["cells"]["remaining"] == len(left) and init["cells"]["writing"] == 0
    assert init["retry"]["archs"] == left and init["retry"]["ranges"] == [[left[0], KILLED[1]]]
    merge, evaluate = init["retry"]["commands"]
    assert merge == shlex.join(["rb201", "merge", str(build.out), "--out", f"{build.out}-merged", "--overwrite"])
    assert f"--missing-from {build.out}-merged" in evaluate and f"--arch-range {left[0]}:{KILLED[1]}" in evaluate
    assert "--weights init" in evaluate and "--channels 4 --cells 1" in evaluate
    failures = [f for f in data["failures"] if f["job"] == none["job"]]
    assert [f["arch"] for f in failures] == select_archs([FAILED])
    assert all(f["error_type"] == "CheckpointError" and "no trained network for arch" in f["message"] for f in failures)
    assert none["retry"]["failed"] == len(failures) and "--weights " in none["retry"]["commands"][1]


def test_watching_rewrites_the_report_while_a_task_runs_and_stops_once_the_build_is_idle(build):
    running, text, idle, ended = build.watched
    assert not running.idle and '<meta http-equiv="refresh" content="1">' in text
    assert idle.idle and 'http-equiv="refresh"' not in idle.path.read_text(encoding="utf-8") and ended


def test_the_commands_of_the_report_finish_the_killed_run(build, tmp_path):
    out = tmp_path / "shards"
    subprocess.run(["cp", "-a", str(build.out), str(out)], check=True)
    plan = page_data(write_report(out, tmp_path / "r.html", commands=_retry).path)
    cmds = _groups(plan)["init"]["retry"]["commands"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for cmd in cmds:
        args = shlex.split(cmd)
        assert args[0] == "rb201"
        res = subprocess.run(rb201(*args[1:], "--no-progress") if args[1] == "evaluate" else rb201(*args[1:]),
                             env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
        assert res.returncode == 0, (cmd, res.stdout, res.stderr)
    again = page_data(write_report(out, tmp_path / "r2.html", commands=_retry).path)
    init = _groups(again)["init"]
    planned = len(select_archs([DONE])) + len(select_archs([KILLED]))
    assert init["cells"] == {"planned": planned, "done": planned, "failed": 0, "remaining": 0, "writing": 0}
    assert init["retry"] is None and init["eta"]["state"] == "finished"


def test_a_single_shard_is_a_source_too(build, tmp_path):
    shard = next(build.out.glob(f"shard-{DONE[0]:05d}-*"))
    assert source_kind(shard) == "build"
    data = page_data(write_report(shard, tmp_path / "one.html").path)
    assert [s["shard"] for s in data["shards"]] == [shard.name] and data["totals"]["cells"]["done"] == 6


def test_tasks_a_launch_planned_that_have_not_started_count_as_remaining(tmp_path):
    ident = {"dataset": "mnist5k", "weights": "init", "seed": 777, "spec_hash": "0123456789abcdef"}
    tasks = [{"shard": "shard-00000-00064-0123456789ab-000000", "job_id": "99_0", "cells": 64, "bounds": [0, 64]}]
    write_launch_record(launch_record_path(tmp_path, "99"), executor="slurm", job_id="99", identity=ident,
                        tasks=tasks, request={"unique_only": True})  # fmt: skip
    assert source_kind(tmp_path) == "build"
    data = build_report(tmp_path)
    g = data["groups"][0]
    n = len(select_archs([(0, 64)]))
    assert (
        data["totals"]["states"]["not started"] == 1 and g["cells"]["remaining"] == n and g["tasks"]["not started"] == 1
    )
    assert g["coverage"].count("r") == n and g["eta"]["state"] == "idle"
    assert data["launches"] == [{"job_id": "99", "executor": "slurm", "submitted": data["launches"][0]["submitted"],
                                 "tasks": 1}]  # fmt: skip


def test_rates_etas_bars_and_retry_ranges_follow_their_definitions():
    commits = np.array([0.0, 600.0, 1200.0, 4200.0, 4800.0])
    rate, window = _rate(commits, 4800.0)
    assert window == 3600.0 and rate == 2 / 3600  # the commits of the last hour: after 1200 s, up to 4800 s
    # a younger build: the window starts at its first commit, which it does not count (one commit per interval)
    assert _rate(commits, 900.0) == (1 / 900, 900.0)
    assert _rate(commits[:1], 10.0) == (None, 0.0)
    # with the moment the job started, its first commit counts: one cell in the 400 s since the start
    assert _rate(np.array([100.0]), 400.0, start=0.0) == (1 / 400, 400.0)
    assert _rate(np.array([100.0]), 5000.0, start=0.0) == (None, 3600.0)  # nothing committed in the last hour
    assert _eta(10, 2 / 3600, True) == {"state": "estimated", "seconds": 18000.0}
    assert _eta(10, 2 / 3600, False)["state"] == "idle" and _eta(0, None, False)["state"] == "finished"
    assert _eta(10, None, True)["state"] == "unknown"
    assert _bucket(59) == 1 and _bucket(3600) == 60 and _bucket(86400 * 3) == 7200
    # 24..31: 25, 29 and 30 are isomorphs (a --missing-from run skips them), the others representatives
    assert _covering_ranges([24, 26, 31], skip=set()) == [(24, 27), (31, 32)]  # 27, 28 would be evaluated
    assert _covering_ranges([24, 26, 31], skip={27, 28}) == [(24, 32)]  # finished cells may sit in between
    assert _covering_ranges([24, 26], skip=set()) == [(24, 27)] and _covering_ranges([28, 31], set()) == [(28, 32)]


# ---- in the browser ---------------------------------------------------------------------------------------------
def test_the_build_reports_load_and_show_progress_coverage_and_failures(browser, build, shots):
    browser.open(build.during.path)
    tabs = browser.js("return [...document.querySelectorAll('#tabs [role=tab]')].map(t => t.textContent)")
    assert tabs == ["Progress", "Coverage", "Failures (4)", "Tasks"]
    text = browser.js("return document.getElementById('view-progress').textContent")
    assert "ETA: about" in text and "cells/hour" in text
    size = browser.js(
        "return [...document.querySelectorAll('#view-progress figure svg')].map(s => s.getBoundingClientRect().height)"
    )
    assert size and min(size) > 50
    browser.screenshot(shots, "during-progress")
    browser.driver.find_element(By.ID, "tab-coverage").click()
    browser.wait("return !document.getElementById('view-coverage').hidden")
    cov = browser.js("""return [...document.querySelectorAll('#view-coverage canvas')].map(c => ({
        w: c.getBoundingClientRect().width, h: c.getBoundingClientRect().height,
        label: c.getAttribute('aria-label')}))""")
    assert len(cov) == 2 and all(c["w"] > 300 and c["h"] > 200 for c in cov)
    assert any("4 failed" in c["label"] for c in cov)
    browser.screenshot(shots, "during-coverage")
    assert browser.errors() == []

    browser.open(build.after.path, "view=failures")
    text = browser.js("return document.getElementById('view-failures').textContent")
    assert "no trained network for arch 12" in text and "rb201 evaluate --missing-from" in text
    browser.screenshot(shots, "after-failures")
    browser.open(build.after.path, "view=progress")
    assert "no task is writing now" in browser.js("return document.getElementById('eta').textContent")
    browser.screenshot(shots, "after-progress")
    browser.open(build.after.path, "view=shards")
    browser.screenshot(shots, "after-tasks")
    assert browser.errors() == []
