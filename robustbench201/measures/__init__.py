"""Robustness measures beyond attacks: Jacobian / Hessian surrogates and certified margin bounds (IBP, CROWN-IBP).

Epsilons at this package's public API are L-inf radii in units of 1/255 on [0, 1] images.

A network whose output does not depend on its input (a dead NB201 cell: no path from the cell input to its output)
is a constant function: its Jacobian norm and Hessian eigenvalue and trace are 0, and its bounds are exact (the
certified margin is the clean margin at every epsilon).
"""

from __future__ import annotations

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

#: Surrogate measures by name (each returns ``dict(mean, per_batch, n_batches, n)``); ``jacobian`` takes
#: ``(model, x, batch_size)``, the Hessian ones ``(model, x, y, batch_size, ...)``.
SURROGATES = {"jacobian": jacobian_frobenius, "hessian": hessian_max_eigenvalue, "hessian_trace": hessian_trace}
