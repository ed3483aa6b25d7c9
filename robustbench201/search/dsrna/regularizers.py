"""DSRNA robustness regularisers R, differentiable in the supernet's alphas (PROTOCOL.md section 7).

The architecture objective is ``L_val - gamma * R``: a larger R means a more robust network.

* ``jacobian``: ``R_Jac = -(eps / K) * mean_x sum_k ||grad_x f_k(x)||_q`` (DSRNA eq. from a first-order expansion
  and Hoelder's inequality; ``q = 1`` is the dual norm of the L-inf threat model), computed with
  ``create_graph=True`` so its gradient reaches the alphas. Norm and normalisation: ``grad_x f_k(x)`` is the
  gradient of logit k with respect to the C x H x W input on the [0, 1] scale, its q-norm taken over all its
  entries; the K norms are summed and divided by K (the mean over logits), averaged over the images, and multiplied
  by the radius ``eps / 255``. ``-R_Jac`` is thus the first-order bound of the mean change of a logit over the ball,
  in logit units.
* ``certified``: ``R_CB = mean_x mean_{j != y} lb(f_y - f_j)``, the certified lower bound of each logit margin
  over the L-inf eps-ball (intersected with [0, 1]), averaged over the K - 1 wrong classes and the images, in logit
  units; propagated through the alpha-mixed edges by :mod:`robustbench201.measures.bounds` (the bound of a mixed
  edge is the alpha-weighted combination of its ops' bounds). A point is certified when its smallest bound is > 0.

* ``table``: ``R_table = E_{a ~ p_alpha}[v(a)]``, the exact expectation of a results-table column over the 15625
  cells under the architecture distribution (softmax per edge), in the column's units (an accuracy as a fraction);
  no images. :mod:`.table_prior` builds ``v`` (cells without a value left out and counted, chance handled);
  :func:`table_regularizer` also offers the value of the current argmax cell with a straight-through gradient.

The first two differ in scale by orders of magnitude (on MNIST-5k at eps 2/255 at the start of a search: R_Jac about
-0.03, R_CB about -700 with IBP): ``gamma_mode="relative"`` in :class:`~.config.DSRNAConfig` makes one gamma
mean the same for both. Epsilons are in pixel units of 1/255 throughout and divided by 255 here (inputs are in
[0, 1]).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ...errors import Rb201Error, check_choice
from ...vocab import CERTIFIED_METHODS, DSRNA_METRICS
from ..cell_distribution import index_of_ops

if TYPE_CHECKING:
    from .table_prior import TablePrior

METRICS: tuple[str, ...] = DSRNA_METRICS
BOUND_METHODS: tuple[str, ...] = CERTIFIED_METHODS
#: How R_table enters the objective: the smooth expectation, or the argmax cell's value with a straight-through
#: gradient.
TABLE_ESTIMATORS: tuple[str, ...] = ("expectation", "argmax-st")


def _check_eps(eps: float) -> float:
    if not eps >= 0 or eps > 255:
        raise Rb201Error(f"eps must be in [0, 255] (pixel units of 1/255), got {eps!r}")
    return float(eps) / 255.0


def jacobian_regularizer(
    logits: torch.Tensor, x: torch.Tensor, eps: float, q: float = 1.0, create_graph: bool = True
) -> torch.Tensor:
    """``R_Jac = -(eps/K) mean_x sum_k ||grad_x f_k(x)||_q`` for ``logits = model(x)`` (``x`` requires grad).

    ``eps`` is in 1/255 units. Row k of the input Jacobian is the gradient of the batch sum of ``f_k`` (with
    batch-statistics BatchNorm this includes the batch coupling, as in every batched Jacobian regulariser); the K
    rows take K double-backward passes (on CPU a loop is faster than ``is_grads_batched``'s vmap).
    ``create_graph=True`` keeps it differentiable in the network's parameters and alphas."""
    if not x.requires_grad:
        raise Rb201Error("jacobian_regularizer needs the input x to require grad before the forward pass")
    if not q >= 1:
        raise Rb201Error(f"q must be >= 1 (q=1 is the dual of the L-inf ball, q=inf allowed), got {q!r}")
    e = _check_eps(eps)
    k = logits.shape[1]
    rows = torch.stack(
        [torch.autograd.grad(logits[:, j].sum(), x, create_graph=create_graph, retain_graph=True)[0] for j in range(k)]
    )
    norms = torch.linalg.vector_norm(rows.flatten(2), ord=q, dim=-1)  # K x N
    return -(e / k) * norms.sum(dim=0).mean()


def certified_regularizer(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, method: str = "ibp"
) -> torch.Tensor:
    """``R_CB = mean_x mean_{j != y} lb(f_y - f_j)`` over the L-inf ``eps``-ball (1/255 units) clipped to [0, 1].

    The bounds come from :func:`robustbench201.measures.bounds.margin_bounds` (``"ibp"``, or ``"crown-ibp"``,
    tighter and about K times dearer), which bounds each alpha-mixed edge as the alpha-weighted combination of its
    ops' bounds, so R_CB is differentiable in the alphas. BatchNorm without running statistics is held at the
    batch statistics of the interval midpoints (the clean batch). Larger is more robust."""
    check_choice("bound method", method, BOUND_METHODS)
    _check_eps(eps)
    from ...measures.bounds import ball_box, margin_bounds

    lo, hi = ball_box(x, eps)
    return margin_bounds(model, lo, hi, y.long(), method).mean()


class _TableExpectation(torch.autograd.Function):
    """``E[v | known]`` of a :class:`~.table_prior.TablePrior` at the edge probabilities ``point`` (float64 numpy),
    with its gradient in the probabilities routed to ``probs``. ``point`` is ``probs`` itself for the smooth
    expectation, or the one-hot of the argmax cell for the straight-through estimator."""

    @staticmethod
    def forward(ctx: Any, probs: torch.Tensor, prior: TablePrior, point: np.ndarray) -> torch.Tensor:
        value, grad = prior.value_and_gradient(point)
        ctx.save_for_backward(torch.from_numpy(grad).to(device=probs.device, dtype=probs.dtype))
        return torch.tensor(value, dtype=probs.dtype, device=probs.device)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (grad,) = ctx.saved_tensors
        return grad_out * grad, None, None


def table_regularizer(
    alphas: torch.Tensor, prior: TablePrior, estimator: str = "expectation", exclude_none: bool = False
) -> torch.Tensor:
    """R_table from the architecture parameters ``alphas`` (6 x 5), a float64 scalar differentiable in them.

    ``expectation``: ``E_{a ~ p_alpha}[v(a) | v(a) known]`` over the 15625 cells, exact (the 5^6 value tensor
    contracted with the six softmax rows, float64). ``argmax-st``: the value of the current argmax cell (the cell the
    search would derive, ``exclude_none`` as the derivation), with the straight-through gradient: the gradient of the
    expectation evaluated at that cell's one-hot weights, i.e. ``dR/dP[e, o]`` is how much better the cell's
    one-edge neighbour with op ``o`` on edge ``e`` is (0 for a neighbour without a value), chained through the
    softmax. When the argmax cell has no value, the smooth expectation is used for that step."""
    check_choice("table estimator", estimator, TABLE_ESTIMATORS)
    probs = torch.softmax(alphas.to(torch.float64), dim=-1)
    p = probs.detach().cpu().numpy()
    point = p
    if estimator == "argmax-st":
        first = 1 if exclude_none else 0
        top = p[:, first:].argmax(axis=1) + first
        onehot = np.zeros_like(p)
        onehot[np.arange(p.shape[0]), top] = 1.0
        if prior.known[int(index_of_ops(top))]:
            point = onehot
    return _TableExpectation.apply(probs, prior, point)
