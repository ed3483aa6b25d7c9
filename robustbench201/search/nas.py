"""NAS baselines with the results table as the surrogate: random search, regularized evolution, local search, and
gradient ascent of the expected objective over DARTS' architecture weights (:mod:`.table_ascent`).

The search space is the 15625 NB201 cells; a cell is looked up through its isomorphism representative
(:attr:`robustbench201.space.Arch.representative`), the network the published dataset trained and evaluated.

**Budget = distinct representatives queried.** A query costs one unit the first time a cell's isomorphism class is
seen (that is when a real search would train a network); querying the class again, through the same cell or an
isomorph, is free (a cache hit). So the budget is at most the number of classes (6466), and every best-so-far
trajectory has exactly ``budget`` entries. The total number of lookups, repeats included, is reported too.

Runs are vectorised over seeds: ``n_runs`` searches advance step by step together, driven by one
``numpy.random.Generator`` seeded with ``seed``; results are determined by ``(seed, n_runs)`` and the parameters.
Cells whose objective is NaN (no row, or missing values) or that violate a constraint count as queried but are
never the best (the trajectory is NaN until a run has seen a feasible cell).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Rb201Error, check_choice
from ..space import NUM_ARCHS, NUM_EDGES, NUM_OPS, Arch, ops_table, product_positions, representative_indices
from ..vocab import NAS_ALGORITHMS
from .objective import (
    Constraint,
    Objective,
    feasible_mask,
    parse_constraints,
    parse_objective,
    split_selection_warning,
)
from .table_ascent import exact_ascent, run_sampled

log = logging.getLogger(__name__)

#: Algorithm names: random search, regularized evolution, local search, gradient ascent over the alphas (sampled).
ALGORITHMS: tuple[str, ...] = tuple(NAS_ALGORITHMS)


class InfeasibleError(Rb201Error):
    """No cell of the table satisfies the constraints (or has a value for the objective)."""


@cache
def _space_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(index -> op tuple (15625, 6), index -> representative, index -> 24 one-edge neighbours (15625, 24))."""
    ops = np.array(ops_table(), dtype=np.int64)
    weights = NUM_OPS ** np.arange(NUM_EDGES - 1, -1, -1)
    pos = np.array(product_positions(), dtype=np.int64)
    index_of_pos = np.empty(NUM_ARCHS, dtype=np.int64)
    index_of_pos[pos] = np.arange(NUM_ARCHS)
    nbrs = np.empty((NUM_ARCHS, NUM_EDGES * (NUM_OPS - 1)), dtype=np.int64)
    col = 0
    for e in range(NUM_EDGES):
        for shift in range(1, NUM_OPS):
            new_op = (ops[:, e] + shift) % NUM_OPS
            nbrs[:, col] = index_of_pos[pos + (new_op - ops[:, e]) * weights[e]]
            col += 1
    reps = np.asarray(representative_indices(), dtype=np.int64)
    for a in (ops, reps, nbrs):
        a.setflags(write=False)
    return ops, reps, nbrs


def neighbours(index: int) -> np.ndarray:
    """The 24 cells that differ from cell ``index`` in exactly one edge's op (NB201 indices)."""
    return _space_tables()[2][Arch.from_index(int(index)).index].copy()


class TableSurrogate:
    """Objective values of all 15625 cells, read from a wide table (rows = NB201 indices, columns = wide names).

    ``objective`` and ``constraints`` use the language of :mod:`robustbench201.search.objective`.
    """

    def __init__(self, df, objective: str | Objective, constraints: str | Iterable[str] | None = ()) -> None:  # type: ignore[no-untyped-def]
        cols = [str(c) for c in df.columns]
        self.objective = objective if isinstance(objective, Objective) else parse_objective(objective, cols)
        cons = constraints if constraints is not None else ()
        if isinstance(cons, str):
            cons = [cons]
        cons = list(cons)
        if cons and all(isinstance(c, Constraint) for c in cons):
            self.constraints: tuple[Constraint, ...] = tuple(cons)
        else:
            self.constraints = parse_constraints(cons, cols)
        used = [*self.objective.expression.columns, *(c for k in self.constraints for c in k.expression.columns)]
        #: why the search may select on the test set (None when it does not; ``rb201 search table`` prints it)
        self.split_warning = split_selection_warning(used, cols)
        if self.split_warning:
            log.info(self.split_warning)
        _, reps, _ = _space_tables()
        try:
            idx = np.asarray(df.index, dtype=np.int64)
        except (TypeError, ValueError):
            raise Rb201Error("the table's index must be NB201 indices (integers 0..15624)") from None
        if idx.size and (idx.min() < 0 or idx.max() >= NUM_ARCHS):
            raise Rb201Error(f"the table's index has values outside 0..{NUM_ARCHS - 1} (NB201 indices)")
        row_value = self.objective.expression.evaluate(df)
        row_ok = feasible_mask(self.constraints, df) & ~np.isnan(row_value)
        value = np.full(NUM_ARCHS, np.nan)
        ok = np.zeros(NUM_ARCHS, dtype=bool)
        has = np.zeros(NUM_ARCHS, dtype=bool)
        value[idx], ok[idx], has[idx] = row_value, row_ok, True
        use_rep = has[reps] | ~has  # the representative's row; a cell's own row only where its class has none
        value = np.where(use_rep, value[reps], value)
        ok = np.where(use_rep, ok[reps], ok)
        #: raw objective value per cell (NaN: unknown); feasibility per cell; maximisation score (-inf: infeasible)
        self.value = value
        self.feasible = ok
        sign = 1.0 if self.objective.maximize else -1.0
        self.score = np.where(ok, sign * np.nan_to_num(value, nan=0.0), -np.inf)
        self.n_classes = int(np.unique(reps).size)
        #: classes (representatives) with a value of the objective: a search cannot ask for more
        self.covered = np.unique(reps[~np.isnan(value)])
        if not ok.any():
            detail = "; ".join(f"{c.text}: {int(c.satisfied(df).sum())} of {len(df)} rows" for c in self.constraints)
            raise InfeasibleError(
                f"no cell satisfies the constraints and has a value for {self.objective.text!r}"
                + (f" (rows satisfying each constraint alone: {detail})" if detail else "")
            )
        best = int(np.argmax(self.score))
        #: best feasible cell (its representative) and its raw objective value
        self.optimum_index = int(reps[best])
        self.optimum = float(value[best])

    @property
    def maximize(self) -> bool:
        return self.objective.maximize


class _Tracker:
    """Budget accounting and best-so-far trajectories for ``n`` runs searched together."""

    def __init__(self, sur: TableSurrogate, n: int, budget: int) -> None:
        self.sur, self.n, self.budget = sur, n, budget
        self.reps = _space_tables()[1]
        self.seen = np.zeros((n, NUM_ARCHS), dtype=bool)  # by representative index
        self.count = np.zeros(n, dtype=np.int64)
        self.lookups = np.zeros(n, dtype=np.int64)
        self.traj = np.full((n, budget), -np.inf)
        self.best_score = np.full(n, -np.inf)
        self.best_index = np.full(n, -1, dtype=np.int64)
        self.rows = np.arange(n)

    @property
    def done(self) -> bool:
        return bool((self.count >= self.budget).all())

    def query(self, cells: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Look up ``cells`` (one per run; runs outside ``mask`` skip) and return their scores."""
        active = self.count < self.budget
        if mask is not None:
            active &= mask
        rep = self.reps[cells]
        new = active & ~self.seen[self.rows, rep]
        score = self.sur.score[cells]
        self.lookups += active
        self.seen[self.rows[new], rep[new]] = True
        better = new & (score > self.best_score)
        self.best_score = np.where(better, score, self.best_score)
        self.best_index = np.where(better, rep, self.best_index)
        r = self.rows[new]
        self.traj[r, self.count[r]] = self.best_score[r]
        self.count += new
        return score


@dataclass(frozen=True)
class SearchResult:
    """Outcome of ``n_runs`` searches. Values are raw objective values (in the objective's units)."""

    algo: str
    objective: str
    constraints: tuple[str, ...]
    budget: int
    seed: int
    maximize: bool
    trajectories: np.ndarray  # (runs, budget): best-so-far value after each counted query; NaN before a feasible one
    best_index: np.ndarray  # (runs,): representative index of each run's best cell (-1: none feasible)
    lookups: np.ndarray  # (runs,): lookups including repeats (cache hits)
    optimum: float
    optimum_index: int
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def n_runs(self) -> int:
        return int(self.trajectories.shape[0])

    @property
    def regret(self) -> np.ndarray:
        """(runs, budget): distance to the table optimum under the constraints (>= 0; NaN before a feasible cell)."""
        sign = 1.0 if self.maximize else -1.0
        return sign * (self.optimum - self.trajectories)

    def checkpoints(self, points: Sequence[int] | None = None) -> list[dict[str, float]]:
        """Mean, std, min, max of the best found value and mean regret at query counts ``points`` (1-based)."""
        if points is None:
            points = default_checkpoints(self.budget)
        out = []
        for b in points:
            if not 1 <= b <= self.budget:
                raise Rb201Error(f"checkpoint {b} outside 1..{self.budget} (the budget)")
            col = self.trajectories[:, b - 1]
            reg = self.regret[:, b - 1]
            found = ~np.isnan(col)
            out.append(
                {
                    "budget": int(b),
                    "mean": float(np.mean(col[found])) if found.any() else float("nan"),
                    "std": float(np.std(col[found])) if found.any() else float("nan"),
                    "min": float(np.min(col[found])) if found.any() else float("nan"),
                    "max": float(np.max(col[found])) if found.any() else float("nan"),
                    "regret": float(np.mean(reg[found])) if found.any() else float("nan"),
                    "found_fraction": float(found.mean()),
                }
            )
        return out

    def most_frequent_best(self) -> tuple[int, int]:
        """(representative index, number of runs) of the cell most often returned as best."""
        idx = self.best_index[self.best_index >= 0]
        if idx.size == 0:
            return -1, 0
        vals, counts = np.unique(idx, return_counts=True)
        k = int(np.argmax(counts))
        return int(vals[k]), int(counts[k])

    def to_dict(self, points: Sequence[int] | None = None) -> dict[str, Any]:
        """JSON-ready summary (checkpoints, optimum, most frequent best cell), without the full trajectories."""
        cell, times = self.most_frequent_best()
        return {
            "algo": self.algo,
            "objective": self.objective,
            "constraints": list(self.constraints),
            "budget": self.budget,
            "runs": self.n_runs,
            "seed": self.seed,
            "params": self.params,
            "optimum": self.optimum,
            "optimum_index": self.optimum_index,
            "checkpoints": self.checkpoints(points),
            "most_frequent_best": {"index": cell, "runs": times, "string": Arch.from_index(cell).string}
            if cell >= 0
            else None,
            "mean_lookups": float(self.lookups.mean()),
        }


def default_checkpoints(budget: int) -> list[int]:
    """About ten query counts from 10 to ``budget``, including ``budget``."""
    pts = sorted({max(1, int(round(budget * f))) for f in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)})
    return [p for p in pts if p >= min(10, budget)]


def _random_cells(rng: np.random.Generator, n: int, pool: np.ndarray) -> np.ndarray:
    return pool[rng.integers(0, pool.size, n)]


def _run_rs(tr: _Tracker, rng: np.random.Generator, pool: np.ndarray, max_steps: int) -> None:
    steps = 0
    while not tr.done and steps < max_steps:
        tr.query(_random_cells(rng, tr.n, pool))
        steps += 1


def _run_re(
    tr: _Tracker, rng: np.random.Generator, pool: np.ndarray, max_steps: int, population: int, sample_size: int
) -> None:
    nbrs = _space_tables()[2]
    n = tr.n
    pop = np.empty((n, population), dtype=np.int64)
    pop_score = np.empty((n, population))
    for k in range(population):
        cells = _random_cells(rng, n, pool)
        pop[:, k], pop_score[:, k] = cells, tr.query(cells)
    rows = np.arange(n)[:, None]
    steps, head = population, 0
    while not tr.done and steps < max_steps:
        pick = rng.integers(0, population, (n, sample_size))
        best = pick[np.arange(n), np.argmax(pop_score[rows, pick], axis=1)]
        parent = pop[np.arange(n), best]
        child = nbrs[parent, rng.integers(0, nbrs.shape[1], n)]
        pop[:, head], pop_score[:, head] = child, tr.query(child)
        head = (head + 1) % population  # the oldest member dies
        steps += 1


def _run_ls(tr: _Tracker, rng: np.random.Generator, pool: np.ndarray, max_steps: int, n_init: int) -> None:
    nbrs = _space_tables()[2]
    n, width = tr.n, nbrs.shape[1]
    every = np.ones(n, dtype=bool)

    def restart(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Best of ``n_init`` random cells for the runs in ``mask``."""
        cur, cur_s = np.zeros(n, dtype=np.int64), np.full(n, -np.inf)
        for _ in range(n_init):
            cells = _random_cells(rng, n, pool)
            s = tr.query(cells, mask)
            up = mask & (s > cur_s) | (mask & (cur_s == -np.inf) & (s == -np.inf))
            cur, cur_s = np.where(up, cells, cur), np.where(up, s, cur_s)
        return cur, cur_s

    current, cur_score = restart(every)
    order = rng.permuted(np.tile(np.arange(width), (n, 1)), axis=1)
    k = np.zeros(n, dtype=np.int64)
    best_nb, best_nb_score = current.copy(), np.full(n, -np.inf)
    steps = n_init
    while not tr.done and steps < max_steps:
        cells = nbrs[current, order[np.arange(n), k]]
        s = tr.query(cells)
        up = s > best_nb_score
        best_nb, best_nb_score = np.where(up, cells, best_nb), np.where(up, s, best_nb_score)
        k += 1
        full = k == width  # neighbourhood exhausted: move to the best neighbour, or restart at a local optimum
        if full.any():
            move = full & (best_nb_score > cur_score)
            stuck = full & ~move
            current, cur_score = np.where(move, best_nb, current), np.where(move, best_nb_score, cur_score)
            if stuck.any():
                r_cur, r_score = restart(stuck)
                current, cur_score = np.where(stuck, r_cur, current), np.where(stuck, r_score, cur_score)
                steps += n_init
            k[full] = 0
            best_nb_score[full] = -np.inf
            order[full] = rng.permuted(np.tile(np.arange(width), (int(full.sum()), 1)), axis=1)
        steps += 1


def run_search(
    surrogate: TableSurrogate,
    algo: str = "re",
    budget: int = 300,
    n_runs: int = 20,
    seed: int = 0,
    sample: str = "cells",
    population: int = 30,
    sample_size: int = 10,
    n_init: int = 10,
    max_steps: int | None = None,
    ga_batch: int = 10,
    ga_lr: float = 0.2,
    only_covered: bool = False,
) -> SearchResult:
    """Run ``n_runs`` searches of ``algo`` with ``budget`` distinct-class queries each (see the module docstring).

    ``sample``: random cells are drawn uniformly from the 15625 ``"cells"`` (a class is as likely as its size) or
    from the isomorphism ``"classes"`` (uniform over representatives). Regularized evolution (Real et al. 2019) uses
    ``population`` and ``sample_size`` (tournament with replacement, mutation = one edge gets another op, the oldest
    member dies); local search starts from the best of ``n_init`` random cells, scans the 24 one-edge neighbours in
    random order, moves to the best one if it improves, and restarts when stuck. Gradient ascent (``ga``,
    :func:`.table_ascent.run_sampled`) draws ``ga_batch`` cells per step from DARTS' architecture distribution
    (``sample`` does not apply: it starts uniform over the cells) and reads them and its argmax cell, each read
    counted like the others' (a new class costs one query), and takes an Adam step of rate ``ga_lr`` along the
    score-function gradient; ``params["exact"]`` adds the exact gradient's end point (:func:`.table_ascent.
    exact_ascent`), which reads every class at its first step; ``only_covered``
    does not apply to it (it draws from its distribution; a read without a value scores as the worst of its step).
    ``only_covered`` (the others): draw random cells only from the classes with a value of the objective
    (:attr:`TableSurrogate.covered`, for a table covering few).
    """
    check_choice("search algorithm", algo, ALGORITHMS)
    check_choice("random sampling domain", sample, ("cells", "classes"))
    for name, v, lo in (("budget", budget, 1), ("n_runs", n_runs, 1), ("population", population, 2)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < lo:
            raise Rb201Error(f"{name} must be an integer >= {lo}, got {v!r}")
    if budget > surrogate.n_classes:
        raise Rb201Error(
            f"budget {budget} exceeds the search space: {surrogate.n_classes} distinct cells (isomorphism classes); "
            f"allowed: 1..{surrogate.n_classes}"
        )
    if not 1 <= sample_size <= population:
        raise Rb201Error(f"sample_size must be in 1..population ({population}), got {sample_size}")
    if n_init < 1:
        raise Rb201Error(f"n_init must be >= 1, got {n_init}")
    if isinstance(ga_batch, bool) or not isinstance(ga_batch, int | np.integer) or ga_batch < 2:
        raise Rb201Error(f"ga_batch must be an integer >= 2 (the baseline is the batch mean), got {ga_batch!r}")
    if not (isinstance(ga_lr, int | float) and 0 < ga_lr < float("inf")):
        raise Rb201Error(f"ga_lr must be a finite number > 0, got {ga_lr!r}")
    rng = np.random.default_rng(seed)
    pool = np.arange(NUM_ARCHS) if sample == "cells" else np.unique(_space_tables()[1])
    if only_covered:
        pool = pool[np.isin(_space_tables()[1][pool], surrogate.covered)]
    tr = _Tracker(surrogate, int(n_runs), int(budget))
    limit = max_steps if max_steps is not None else 200 * budget + 10_000
    params: dict[str, Any] = {"sample": sample}
    if algo == "rs":
        _run_rs(tr, rng, pool, limit)
    elif algo == "re":
        params.update(population=population, sample_size=sample_size)
        _run_re(tr, rng, pool, limit, population, sample_size)
    elif algo == "ls":
        params.update(n_init=n_init)
        _run_ls(tr, rng, pool, limit, n_init)
    else:
        params = {"batch": int(ga_batch), "lr": float(ga_lr), "exact": _exact(surrogate, float(ga_lr))}
        run_sampled(tr, rng, limit, int(ga_batch), float(ga_lr))
    if not tr.done:
        log.warning("%s stopped after %d steps with %s queries (budget %d)", algo, limit, tr.count.min(), budget)
        for r in np.flatnonzero(tr.count < budget):  # pad: the best found stays the best
            tr.traj[r, tr.count[r] :] = tr.best_score[r]
    sign = 1.0 if surrogate.maximize else -1.0
    traj = np.where(np.isneginf(tr.traj), np.nan, sign * tr.traj)
    return SearchResult(
        algo=algo,
        objective=surrogate.objective.text,
        constraints=tuple(c.text for c in surrogate.constraints),
        budget=int(budget),
        seed=int(seed),
        maximize=surrogate.maximize,
        trajectories=traj,
        best_index=tr.best_index.copy(),
        lookups=tr.lookups.copy(),
        optimum=surrogate.optimum,
        optimum_index=surrogate.optimum_index,
        params=params,
    )


def _exact(sur: TableSurrogate, lr: float) -> dict[str, Any]:
    """Where the exact gradient of the expected objective leads from uniform weights: the derived cell (its
    representative), its raw value and regret, the steps, and its cost in queries (every class: the expectation reads
    all of them at the first step)."""
    res = exact_ascent(sur.score, lr=lr)
    rep = int(_space_tables()[1][res["index"]])
    value = float(sur.value[res["index"]]) if sur.feasible[res["index"]] else float("nan")
    sign = 1.0 if sur.maximize else -1.0
    return {"index": rep, "value": value, "regret": sign * (sur.optimum - value), "steps": res["steps"],
            "settled": res["settled"], "queries": sur.n_classes}  # fmt: skip


def search_table(
    df,  # type: ignore[no-untyped-def]
    objective: str = "fgsm@1",
    constraints: str | Iterable[str] | None = (),
    algo: str = "re",
    budget: int = 300,
    n_runs: int = 20,
    seed: int = 0,
    **params: Any,
) -> SearchResult:
    """One call: build the :class:`TableSurrogate` of ``df`` and run :func:`run_search`."""
    return run_search(TableSurrogate(df, objective, constraints), algo, budget, n_runs, seed, **params)


def load_table(dataset: str = "cifar10", source: str | Path | None = None):  # type: ignore[no-untyped-def]
    """The wide table of ``dataset``: a wide file (``.parquet``, ``.csv``: rows = NB201 indices in the first or an
    ``arch_index`` column) when ``source`` is one, else :func:`robustbench201.table` (embedded or ``source``)."""
    from ..data.info import canonical_dataset

    name = canonical_dataset(dataset)
    if source is not None and Path(source).suffix.lower() in (".parquet", ".csv"):
        import pandas as pd

        path = Path(source)
        if not path.is_file():
            raise Rb201Error(f"table file {str(path)!r} does not exist")
        df = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
        if "arch_index" in df.columns:
            df = df.set_index("arch_index")
        elif path.suffix.lower() == ".csv":
            df = df.set_index(df.columns[0])
        return df
    from .._query import table

    return table(name, form="wide", source=source)
