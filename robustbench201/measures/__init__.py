"""Robustness measures beyond attacks: Jacobian / Hessian surrogates and certified margin bounds (IBP, CROWN-IBP).

Epsilons at this package's public API are L-inf radii in units of 1/255 on [0, 1] images.
"""

from __future__ import annotations

from .bounds import certify, interval_bounds, margin_bounds, margin_lower_bound
from .bounds_ops import BoundContext, Mixed, ibp_cell, ibp_forward, ibp_mixed, linear_backward
from .surrogates import hessian_max_eigenvalue, hessian_trace, jacobian_frobenius

__all__ = [
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
]
