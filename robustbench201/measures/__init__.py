"""Robustness measures beyond attacks: Jacobian / Hessian surrogates and certified margin bounds (IBP, CROWN-IBP).

Epsilons at this package's public API are L-inf radii in units of 1/255 on [0, 1] images.

A network whose output does not depend on its input (a dead NB201 cell: no path from the cell input to its output)
is a constant function: its Jacobian norm and Hessian eigenvalue and trace are 0, and its bounds are exact (the
certified margin is the clean margin at every epsilon).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from .bounds import METHODS as BOUND_METHODS
from .bounds import certify, interval_bounds, margin_bounds, margin_lower_bound, sound_margin_lower_bound
from .bounds_ops import BoundContext, Mixed, ibp_cell, ibp_forward, ibp_mixed, linear_backward
from .surrogates import hessian_max_eigenvalue, hessian_trace, jacobian_frobenius

__all__ = [
    "BOUND_METHODS",
    "SURROGATES",
    "BoundContext",
    "Mixed",
    "certify",
    "hessian_max_eigenvalue",
    "hessian_trace",
    "ibp_cell",
    "ibp_forward",
    "ibp_mixed",
    "interval_bounds",
    "jacobian_frobenius",
    "linear_backward",
    "margin_bounds",
    "margin_lower_bound",
    "sound_margin_lower_bound",
]

SurrogateFn = Callable[..., dict]


def _jacobian(model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int, iters: int, generator: Any) -> dict:
    return jacobian_frobenius(model, x, batch_size=batch_size)


def _hessian(model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int, iters: int, generator: Any) -> dict:
    return hessian_max_eigenvalue(model, x, y, batch_size=batch_size, iters=iters, generator=generator)


def _hessian_trace(model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int, iters: int, generator: Any) -> dict:
    return hessian_trace(model, x, y, batch_size=batch_size, n_samples=iters, generator=generator)


#: Surrogate measures by the names of :data:`robustbench201.vocab.SURROGATES`, one signature for all:
#: ``fn(model, x, y, *, batch_size, iters, generator) -> dict(mean, per_batch, n_batches, n)`` (``iters``: power
#: iterations of the Hessian eigenvalue, Rademacher samples of its trace; unused by the Jacobian).
SURROGATES: dict[str, SurrogateFn] = {"jacobian": _jacobian, "hessian": _hessian, "hessian_trace": _hessian_trace}
