"""Gradient ascent of ``E_{a ~ p_alpha}[objective(a)]`` over DARTS' architecture weights alone, on the results table:
the table-only baseline of DSRNA's table prior (no images, no supernet), as a NAS-on-the-table method beside random
search, regularized evolution and local search (:mod:`.nas`).

``p_alpha`` is the product distribution of a 6 x 5 alpha matrix (a softmax per edge, :mod:`.cell_distribution`);
the alphas start at 0 (every cell equally likely) and follow Adam, as DARTS' alphas do. Two ways to get the gradient:

* **Sampled** (``ga`` in ``rb201 search table``; :func:`run_sampled`): each step draws ``batch`` cells from
  ``p_alpha`` and reads their values; the score-function estimate ``mean_b (s_b - mean s) (onehot(a_b) - P)`` is an
  unbiased estimate of the gradient of ``E[s]`` in the alphas (REINFORCE with the batch mean as baseline). The
  current argmax cell (the cell the method would return) is read too. **Queries are counted as for the other
  methods**: every cell read is a lookup, and a lookup of an isomorphism class not read before in this run costs one
  query; the gradient uses only the values read. So its regret is comparable with RS, RE and LS at equal queries.
* **Exact** (:func:`exact_ascent`): the expectation itself, a sum over all 15625 cells, as the DSRNA table
  regulariser uses it. A softmax gives every cell positive probability, so the first step already reads every
  class: the exact gradient costs all 6466 queries at once. It shows where the prior alone leads (a cell no
  one-edge change improves much, found without trying cells), not a method for a query budget.

Infeasible cells (constraints, or no value) score -inf in the table surrogate: the sampled method gives them the
worst value read in the same step, the exact one the worst feasible value of the table, so neither is pulled there.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ..space import NUM_EDGES, NUM_OPS
from .cell_distribution import cell_tensor, edge_gradient, expectation, index_of_ops, softmax, softmax_backward

__all__ = ["exact_ascent", "run_sampled"]

#: Adam's betas for the alphas (DARTS uses (0.5, 0.999) with weight decay; plain Adam here, no images to fit).
BETAS = (0.9, 0.999)
#: Steps without a new class after which a run of the sampled method restarts from uniform weights.
PATIENCE = 20


class Queries(Protocol):
    """What the sampled method needs of :class:`.nas._Tracker`: ``n`` runs, ``count`` (queries spent per run),
    ``done`` when every run spent its budget, and ``query(cells)`` (one cell per run) returning the cells'
    maximisation scores (-inf: infeasible)."""

    n: int
    count: np.ndarray

    @property
    def done(self) -> bool: ...

    def query(self, cells: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray: ...


class _Adam:
    """Adam ascent on alphas (one 6 x 5 matrix per run; each run keeps its own step count, so one can restart)."""

    def __init__(self, shape: tuple[int, ...], lr: float) -> None:
        self.lr = lr
        self.t = np.zeros(shape[:-2] + (1, 1))
        self.m, self.v = np.zeros(shape), np.zeros(shape)

    def step(self, alpha: np.ndarray, grad: np.ndarray) -> np.ndarray:
        b1, b2 = BETAS
        self.t = self.t + 1
        self.m = b1 * self.m + (1 - b1) * grad
        self.v = b2 * self.v + (1 - b2) * grad * grad
        m_hat, v_hat = self.m / (1 - b1**self.t), self.v / (1 - b2**self.t)
        return alpha + self.lr * m_hat / (np.sqrt(v_hat) + 1e-8)

    def reset(self, runs: np.ndarray) -> None:
        self.t[runs], self.m[runs], self.v[runs] = 0, 0, 0


def _sample(rng: np.random.Generator, probs: np.ndarray, batch: int) -> np.ndarray:
    """(runs, batch, 6) op indices drawn edge by edge from ``probs`` (runs, 6, 5)."""
    cdf = np.cumsum(probs, axis=-1)
    cdf[..., -1] = 1.0
    u = rng.random((probs.shape[0], batch, NUM_EDGES, 1))
    return (u > cdf[:, None, :, :]).sum(axis=-1)


def run_sampled(
    tr: Queries, rng: np.random.Generator, max_steps: int, batch: int, lr: float, patience: int = PATIENCE
) -> None:
    """Sampled gradient ascent for every run of ``tr`` until each spent its budget (or ``max_steps`` steps). A run
    whose last ``patience`` steps read no class it had not read before (its distribution has settled on cells it
    knows) restarts from uniform weights, as local search restarts at a local optimum."""
    n = tr.n
    alpha = np.zeros((n, NUM_EDGES, NUM_OPS))
    opt = _Adam(alpha.shape, lr)
    rows = np.arange(n)
    stalled = np.zeros(n, dtype=np.int64)
    steps = 0
    while not tr.done and steps < max_steps:
        before = tr.count.copy()
        probs = softmax(alpha)
        ops = _sample(rng, probs, batch)
        cells = index_of_ops(ops)
        scores = np.stack([tr.query(cells[:, b]) for b in range(batch)], axis=1)
        tr.query(index_of_ops(alpha.argmax(axis=-1)))
        finite = np.isfinite(scores)
        worst = np.where(finite, scores, np.inf).min(axis=1, keepdims=True)
        scores = np.where(finite, scores, np.where(np.isfinite(worst), worst, 0.0))  # a row of infeasible reads: flat
        adv = scores - scores.mean(axis=1, keepdims=True)
        onehot = np.zeros((n, batch, NUM_EDGES, NUM_OPS))
        onehot[rows[:, None, None], np.arange(batch)[None, :, None], np.arange(NUM_EDGES), ops] = 1.0
        grad = (adv[:, :, None, None] * (onehot - probs[:, None])).mean(axis=1)
        alpha = opt.step(alpha, grad)
        stalled = np.where(tr.count > before, 0, stalled + 1)
        restart = stalled >= patience
        if restart.any():
            alpha[restart] = 0.0
            opt.reset(restart)
            stalled[restart] = 0
        steps += 1


def exact_ascent(score: np.ndarray, lr: float = 0.1, max_steps: int = 2000, settle: float = 0.99) -> dict[str, Any]:
    """Adam ascent of the exact ``E_{p_alpha}[score]`` (``score``: maximisation score per cell in NB201 index
    order, -inf infeasible) from uniform weights, until every edge's top op has softmax weight >= ``settle`` (or
    ``max_steps``). Returns the derived (argmax) cell ``index``, the ``steps`` taken, the expectation at the start
    and the end (``start``, ``end``), and ``settled``."""
    s = np.asarray(score, dtype=np.float64)
    ok = np.isfinite(s)
    tensor = cell_tensor(np.where(ok, s, s[ok].min()))
    alpha = np.zeros((NUM_EDGES, NUM_OPS))
    opt = _Adam(alpha.shape, lr)
    start = float(expectation(softmax(alpha), tensor))
    steps = 0
    while steps < max_steps:
        probs = softmax(alpha)
        if probs.max(axis=-1).min() >= settle:
            break
        alpha = opt.step(alpha, softmax_backward(probs, edge_gradient(probs, tensor)))
        steps += 1
    probs = softmax(alpha)
    return {
        "index": int(index_of_ops(alpha.argmax(axis=-1))),
        "steps": steps,
        "start": start,
        "end": float(expectation(probs, tensor)),
        "settled": bool(probs.max(axis=-1).min() >= settle),
    }
