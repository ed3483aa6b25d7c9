"""Regenerate every figure in ``docs/img`` from the data the repository ships, and ``docs/img/figures.json``.

- ``cifar10_*``: ``rb201 analyze all --dataset cifar10`` on the embedded table (the published CIFAR-10 results of
  Jung et al., ICLR 2023);
- ``regret_fgsm1``, ``regret_clean``: ``rb201 search table --algo rs --algo re --algo ls --algo ga --budget 300
  --seeds 20`` on the embedded CIFAR-10 table, objective ``fgsm@1`` and ``clean`` (docs/SEARCH.md);
- ``dsrna_compare_mnist5k``: the DSRNA comparison measured on MNIST-5k (docs/SEARCH.md), drawn from its report
  ``docs/img/data/dsrna_compare_mnist5k.json`` (the ``compare.json`` of that run).

Each figure is drawn from a small dict of what it plots (:mod:`robustbench201.search.plots`); ``figures.json`` keeps
each figure's title and the sha256 of that dict, and every PNG carries the same hash in a text chunk, so
``tests/test_figures.py`` can tell a committed figure that no longer matches what this script makes without
comparing pixels. Run from the repository root::

    python scripts/make_figures.py            # rewrite docs/img
    python scripts/make_figures.py --check    # exit 1 if a committed figure is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
IMG = ROOT / "docs" / "img"
INDEX = IMG / "figures.json"
DSRNA_REPORT = IMG / "data" / "dsrna_compare_mnist5k.json"
#: The NAS baselines of docs/SEARCH.md: budget, runs, seed.
SEARCH = {"budget": 300, "n_runs": 20, "seed": 0}


def figures() -> dict[str, dict[str, Any]]:
    """File name (without ``.png``) -> the data of each figure in ``docs/img``, computed from the shipped data."""
    import robustbench201 as rb201
    from robustbench201.search.nas import TableSurrogate, run_search
    from robustbench201.search.plots import regret_data
    from robustbench201.search.plots_dsrna import dsrna_compare_data
    from robustbench201.search.report import analyze

    out: dict[str, dict[str, Any]] = {}
    df = rb201.table("cifar10")
    rep = analyze(df, None, "all", "cifar10")
    out.update({f"cifar10_{stem}": data for stem, data in rep.figures.items()})
    for stem, objective in (("regret_fgsm1", "fgsm@1"), ("regret_clean", "clean")):
        sur = TableSurrogate(df, objective)
        results = [
            run_search(sur, algo, SEARCH["budget"], SEARCH["n_runs"], SEARCH["seed"])
            for algo in ("rs", "re", "ls", "ga")
        ]
        out[stem] = regret_data(results, "cifar10")
    if DSRNA_REPORT.is_file():
        out["dsrna_compare_mnist5k"] = dsrna_compare_data(json.loads(DSRNA_REPORT.read_text()))
    return out


def index(data: dict[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
    """What ``figures.json`` holds: per figure file, its title and the hash of its data."""
    from robustbench201.search.plots import data_hash

    return {f"{name}.png": {"title": d.get("title", ""), "sha256": data_hash(d)} for name, d in sorted(data.items())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="Only compare with docs/img; exit 1 when stale.")
    args = parser.parse_args(argv)
    data = figures()
    want = index(data)
    if args.check:
        have = json.loads(INDEX.read_text()) if INDEX.is_file() else {}
        stale = sorted(set(want) ^ set(have) | {k for k in want if have.get(k) != want[k]})
        for name in stale:
            print(f"stale: docs/img/{name}")
        return 1 if stale else 0
    from robustbench201.atomic import write_text_atomic
    from robustbench201.search.plots import draw

    for name, d in data.items():
        print(draw(d, IMG / f"{name}.png").relative_to(ROOT))
    write_text_atomic(INDEX, json.dumps(want, indent=1, sort_keys=True) + "\n")
    print(INDEX.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
