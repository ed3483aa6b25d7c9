"""``rb201 search table`` as a library call: run NAS baselines on a results table and render what they found.

:func:`search_table` runs each algorithm with the same budget, seeds and surrogate (cutting the budget to the classes
that have a value when a table holds fewer, and saying so), and :func:`render_search` writes the outcome as text,
markdown, csv (one tidy table: a row per algorithm and query count) or json. Values are the objective's (accuracies
as fractions); queries count distinct isomorphism classes read per run. No torch import.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..space import Arch
from ..tables.formats import render
from ..vocab import NAS_ALGORITHMS
from .nas import SearchResult, TableSurrogate, run_search

__all__ = ["TableSearch", "search_table", "render_search"]


@dataclass(frozen=True)
class TableSearch:
    """What a search of the table found: per algorithm its result and summary (``SearchResult.to_dict``)."""

    dataset: str
    surrogate: TableSurrogate
    results: list[SearchResult]
    summaries: list[dict[str, Any]]
    warnings: list[str]  # the split warning first, if any

    @property
    def covered(self) -> int:
        """Classes with a value of the objective."""
        return len(self.surrogate.covered)

    def to_dict(self) -> dict[str, Any]:
        s = self.surrogate
        return {"dataset": self.dataset, "objective": s.objective.text, "classes_with_values": self.covered,
                "warning": s.split_warning, "warnings": self.warnings, "results": self.summaries}  # fmt: skip


def search_table(
    surrogate: TableSurrogate,
    dataset: str,
    algos: Sequence[str],
    budget: int,
    seeds: int,
    seed: int = 0,
    *,
    sample: str = "cells",
    ga_batch: int = 10,
    ga_lr: float = 0.2,
    checkpoints: Sequence[int] | None = None,
) -> TableSearch:
    """Run each of ``algos`` (once each, in order) ``seeds`` times with ``budget`` queries on ``surrogate``. A table
    holding fewer classes with a value than ``budget`` (but the space more) is searched over those classes only, the
    budget cut to their number and ``checkpoints`` past it dropped; the warning says so."""
    warnings = [surrogate.split_warning] if surrogate.split_warning else []
    covered = len(surrogate.covered)
    points = list(checkpoints) if checkpoints else None
    if covered < budget <= surrogate.n_classes:
        warnings.append(
            f"only {covered} of {surrogate.n_classes} classes of {dataset} have a value of {surrogate.objective.text}: "
            f"budget {budget} cut to {covered}, random cells drawn from those classes only; over so few classes the "
            "result is no finding"
        )
        budget = covered
        if points:
            points = [p for p in points if p <= budget] or [budget]
    results = [run_search(surrogate, a, budget, seeds, seed, sample=sample, ga_batch=ga_batch, ga_lr=ga_lr,
                          only_covered=budget >= covered)
               for a in dict.fromkeys(algos)]  # fmt: skip
    return TableSearch(dataset, surrogate, results, [r.to_dict(points) for r in results], warnings)


def render_search(search: TableSearch, fmt: str = "text") -> str:
    """The search as ``fmt``: json (:meth:`TableSearch.to_dict`), csv (a row per algorithm and query count), text or
    markdown (the objective and table optimum, then per algorithm its checkpoints, final gap, hits and most frequent
    best cell, and for ga where the exact gradient leads)."""
    summaries = search.summaries
    if fmt == "json":
        return json.dumps(search.to_dict(), indent=2, default=lambda v: None)
    if fmt == "csv":
        heads = ("algo", "queries", "mean", "std", "min", "max", "regret", "runs", "optimum")
        rows = [(s["algo"], c["budget"], c["mean"], c["std"], c["min"], c["max"], c["regret"], s["runs"],
                 s["optimum"]) for s in summaries for c in s["checkpoints"]]  # fmt: skip
        return render(heads, rows, "csv")
    first = search.results[0]
    opt = Arch.from_index(first.optimum_index)
    cons = f" subject to {' and '.join(first.constraints)}" if first.constraints else ""
    heading = f"objective {'max' if first.maximize else 'min'} {first.objective}{cons} on {search.dataset}"
    optimum = f"table optimum {first.optimum:.4f} at #{opt.index} {opt.string}"
    out = [f"**{heading}**; {optimum}"] if fmt == "markdown" else [heading, optimum]
    for s, r in zip(summaries, search.results, strict=True):
        out += _algorithm_lines(s, r, first.optimum, fmt)
    return "\n".join(out)


def _algorithm_lines(s: dict[str, Any], r: SearchResult, optimum: float, fmt: str) -> list[str]:
    rows = [(c["budget"], c["mean"], c["std"], c["min"], c["max"], c["regret"]) for c in s["checkpoints"]]
    title = f"{NAS_ALGORITHMS[s['algo']]} ({s['algo']}), {s['runs']} runs, budget {s['budget']}"
    final = r.trajectories[:, -1]
    gap = abs(optimum - float(final.mean()))
    hit = int((r.regret[:, -1] == 0).sum())
    lines = [f"\n### {title}\n" if fmt == "markdown" else f"\n{title}",
             render(("queries", "mean", "std", "min", "max", "regret"), rows, fmt),
             f"after {s['budget']} queries: mean {final.mean():.4f}, {gap:.4f} from the optimum "
             f"({100 * gap / abs(optimum):.2f}%); {hit}/{s['runs']} runs found the optimum"]  # fmt: skip
    best = s["most_frequent_best"]
    if best:
        lines.append(f"most often found: #{best['index']} ({best['runs']}/{s['runs']} runs) {best['string']}")
    if "exact" in s["params"]:
        ex = s["params"]["exact"]
        lines.append(
            f"exact gradient (reads all {ex['queries']} classes at its first step): #{ex['index']} "
            f"{Arch.from_index(ex['index']).string}, value {ex['value']:.4f}, regret {ex['regret']:.4f}, "
            f"{ex['steps']} steps"
        )
    return lines
