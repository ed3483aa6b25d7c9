"""DARTS' product distribution over the 15625 NB201 cells, and exact expectations of per-cell values under it.

An alpha matrix (6 edges x 5 ops, NB201 orders) defines ``p_alpha(a) = prod_e softmax(alpha_e)[a_e]``: each edge
picks its op independently. The expectation of a per-cell value ``v``, ``E[v] = sum_a prod_e P[e, a_e] v(a)``, is a
sum over all 15625 cells; written as the 5^6 tensor ``T[o_0, ..., o_5] = v(cell with ops o)``, it is the contraction
of ``T`` with one probability vector per axis (15625 x 6 multiply-adds), exact in float64. It is multilinear in the
rows of ``P``, so its gradient with respect to ``P[e, o]`` is the expectation with edge ``e`` fixed to op ``o``
(:func:`edge_gradient`); at a one-hot ``P`` (a single cell) that is the value of the cell's one-edge neighbour.

Pure numpy, no torch: :mod:`.table_ascent` (NAS on the table) and the DSRNA table regulariser
(:mod:`.dsrna.table_prior`, which wraps these functions for autograd) share them. Leading batch axes of ``P`` (one
alpha matrix per run) are supported throughout.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from ..errors import Rb201Error
from ..space import NUM_ARCHS, NUM_EDGES, NUM_OPS, product_positions

__all__ = ["cell_tensor", "edge_gradient", "expectation", "index_of_ops", "softmax", "softmax_backward"]

_SHAPE = (NUM_OPS,) * NUM_EDGES


@cache
def _positions() -> np.ndarray:
    pos = np.asarray(product_positions(), dtype=np.int64)
    pos.setflags(write=False)
    return pos


@cache
def _index_of_position() -> np.ndarray:
    inv = np.empty(NUM_ARCHS, dtype=np.int64)
    inv[_positions()] = np.arange(NUM_ARCHS)
    inv.setflags(write=False)
    return inv


def cell_tensor(values: np.ndarray) -> np.ndarray:
    """Per-cell values in NB201 index order (15625,) as the 5^6 tensor whose axis ``e`` is the op on edge ``e``
    (float64)."""
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (NUM_ARCHS,):
        raise Rb201Error(f"need one value per NB201 cell ({NUM_ARCHS},), got shape {v.shape}")
    out = np.empty(NUM_ARCHS, dtype=np.float64)
    out[_positions()] = v
    return out.reshape(_SHAPE)


def index_of_ops(ops: np.ndarray) -> np.ndarray:
    """NB201 indices of op tuples ``ops`` (..., 6) in NB201 op order."""
    o = np.asarray(ops, dtype=np.int64)
    pos = np.zeros(o.shape[:-1], dtype=np.int64)
    for e in range(NUM_EDGES):
        pos = pos * NUM_OPS + o[..., e]
    return _index_of_position()[pos]


def softmax(alpha: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (the ops of an edge), float64."""
    a = np.asarray(alpha, dtype=np.float64)
    z = np.exp(a - a.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def softmax_backward(probs: np.ndarray, grad_probs: np.ndarray) -> np.ndarray:
    """The gradient with respect to alpha of a function whose gradient with respect to ``probs = softmax(alpha)``
    is ``grad_probs``: ``P * (G - sum_o P G)`` per edge."""
    return probs * (grad_probs - (probs * grad_probs).sum(axis=-1, keepdims=True))


def _check(probs: np.ndarray, tensor: np.ndarray) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.shape[-2:] != (NUM_EDGES, NUM_OPS):
        raise Rb201Error(f"probabilities must be (..., {NUM_EDGES}, {NUM_OPS}) (edges x ops), got shape {p.shape}")
    if tensor.shape != _SHAPE:
        raise Rb201Error(f"the value tensor must be {_SHAPE} (see cell_tensor), got shape {tensor.shape}")
    return p


def _contract(p: np.ndarray, tensor: np.ndarray, keep: int | None) -> np.ndarray:
    """Contract every axis of ``tensor`` except ``keep`` with the matching row of ``p`` (batch axes first)."""
    batch = p.shape[:-2]
    flat = p.reshape(-1, NUM_EDGES, NUM_OPS)
    order = [e for e in range(NUM_EDGES) if e != keep]
    t = tensor if keep is None else np.moveaxis(tensor, keep, -1)
    t = np.tensordot(flat[:, order[0]], t, axes=([1], [0]))  # (runs, 5, ..., 5)
    for e in order[1:]:
        t = np.einsum("ro,ro...->r...", flat[:, e], t)
    return t.reshape(batch + t.shape[1:])


def expectation(probs: np.ndarray, tensor: np.ndarray) -> np.ndarray:
    """``E_{a ~ P}[v(a)]`` for edge-wise probabilities ``probs`` (..., 6, 5) and ``tensor = cell_tensor(v)``:
    exact, float64; shape ``probs.shape[:-2]``."""
    p = _check(probs, tensor)
    return _contract(p, tensor, None)


def edge_gradient(probs: np.ndarray, tensor: np.ndarray) -> np.ndarray:
    """``dE/dP[e, o]`` (..., 6, 5): the expectation over the other edges with edge ``e`` fixed to op ``o``."""
    p = _check(probs, tensor)
    return np.stack([_contract(p, tensor, e) for e in range(NUM_EDGES)], axis=-2)
