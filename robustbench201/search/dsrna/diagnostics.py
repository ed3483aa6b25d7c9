"""What a finished DSRNA search can honestly claim: how far the architecture weights moved, whether the derived cell
is a decision or an argmax over weights that barely moved, what kind of cell it is, and whether the regulariser
weighed anything.

Pure functions of the numbers a search records (softmax alphas, per-epoch statistics); no torch.

* Per edge: the top op's softmax weight and its lead ("margin") over the second. An edge whose lead is below
  :data:`UNDECIDED_MARGIN` is undecided (at initialisation the leads are about 1e-4; a lead of 0.02 is a logit gap
  of about 0.1 when the other ops are level): its op may change with the seed or the epoch count. A cell whose six
  edges are all undecided is indistinguishable from a uniform draw.
* The cell: dead (no input-output path), the identity (every input-output path is skip connections: DARTS' collapse
  to parameter-free cells, NB201 paper), no parameterised op at all, or no input-output path through a convolution.
* The regulariser: ``gamma s R`` as a fraction of the validation loss per epoch; a warning when it is below 1% (it
  barely changes the search) or above 100x (the search optimises R, not accuracy) in most epochs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import Rb201Error
from ...space import EDGES, OPS, Arch
from .config import A_LR_MAX, A_STEP_BUDGET, epochs_for_budget

#: Below this lead of the top op's softmax weight over the second, an edge is undecided.
UNDECIDED_MARGIN = 0.02
#: The regulariser's term is negligible below this fraction of the validation loss, and dominant above the other.
RATIO_LOW, RATIO_HIGH = 0.01, 100.0
_CONVS = frozenset({OPS.index("nor_conv_1x1"), OPS.index("nor_conv_3x3")})
_SKIP = OPS.index("skip_connect")
_TERM_NAMES = {"jacobian": "R_Jac", "certified": "R_CB", "table": "R_table"}


@dataclass(frozen=True)
class EdgeDecision:
    """One edge after the search: the top op and its softmax weight, the second op and the top op's lead over it."""

    edge: tuple[int, int]
    top: str
    weight: float
    second: str
    margin: float

    @property
    def decided(self) -> bool:
        return self.margin >= UNDECIDED_MARGIN

    def to_json(self) -> dict[str, Any]:
        return {"edge": list(self.edge), "top": self.top, "weight": self.weight, "second": self.second,
                "margin": self.margin, "decided": self.decided}  # fmt: skip


@dataclass(frozen=True)
class Finding:
    """A warning about a search result: a short ``code`` (stable, for tests and JSON) and the sentence to print."""

    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


def edge_decisions(alphas: Sequence[Sequence[float]], exclude_none: bool = False) -> list[EdgeDecision]:
    """Per edge (NB201 edge order) of a 6 x 5 softmax weight matrix: top op, weight, second op, lead. With
    ``exclude_none`` the ranking skips ``none`` (as the derivation does)."""
    a = np.asarray(alphas, dtype=np.float64)
    if a.shape != (len(EDGES), len(OPS)):
        raise Rb201Error(f"alphas must be {len(EDGES)} x {len(OPS)} (edges x ops), got shape {a.shape}")
    out = []
    first = 1 if exclude_none else 0
    for k, row in enumerate(a):
        order = np.argsort(-row[first:], kind="stable") + first
        top, second = int(order[0]), int(order[1])
        out.append(EdgeDecision(EDGES[k], OPS[top], float(row[top]), OPS[second], float(row[top] - row[second])))
    return out


def movement(alpha_history: Sequence[Sequence[Sequence[float]]]) -> dict[str, float]:
    """How far the softmax weights moved: ``max_change`` (largest |w_end - w_start| over edges and ops),
    ``max_weight`` (largest final weight; 0.2 is uniform), ``min_margin`` / ``max_margin`` (leads of the top op)."""
    a = np.asarray(alpha_history, dtype=np.float64)
    leads = [d.margin for d in edge_decisions(a[-1])]
    return {
        "max_change": float(np.abs(a[-1] - a[0]).max()),
        "max_weight": float(a[-1].max()),
        "min_margin": float(min(leads)),
        "max_margin": float(max(leads)),
    }


def cell_findings(
    arch: Arch,
    decisions: Sequence[EdgeDecision],
    a_lr: float | None = None,
    steps_per_epoch: int | None = None,
    epochs: int | None = None,
) -> list[Finding]:
    """Warnings about the derived cell: undecided edges or a cell indistinguishable from a uniform draw (with the
    epochs a search with NB201's DARTS step budget needs at ``a_lr`` and ``steps_per_epoch``), a dead cell, the
    identity cell, no parameterised op, no input-output path through a convolution."""
    out: list[Finding] = []
    undecided = [d for d in decisions if not d.decided]
    if len(undecided) == len(decisions):
        lead = max(d.margin for d in decisions)
        msg = (
            f"the derived cell is indistinguishable from a uniform draw: no edge's top op leads the second by "
            f"{UNDECIDED_MARGIN} or more (largest lead {lead:.4f})"
        )
        if a_lr and steps_per_epoch:
            need = epochs_for_budget(a_lr, steps_per_epoch)
            msg += (
                f"; at architecture lr {a_lr:.3g} and {steps_per_epoch} alpha steps per epoch, a search with NB201's "
                f"DARTS step budget (lr x steps = {A_STEP_BUDGET:.2f}) needs {need} epochs"
            )
            lr_needed = A_STEP_BUDGET / (epochs * steps_per_epoch) if epochs else math.inf
            if lr_needed <= A_LR_MAX:
                msg += f" (or --a-lr {lr_needed:.3g} for {epochs} epochs)"
            else:
                msg += " (or more search images: more steps per epoch)"
        out.append(Finding("uniform", msg))
    elif undecided:
        edges = ", ".join(f"{d.edge[0]}->{d.edge[1]}" for d in undecided)
        out.append(
            Finding(
                "undecided",
                f"{len(undecided)} of {len(decisions)} edges undecided ({edges}: lead < {UNDECIDED_MARGIN}); "
                "their ops won by so little that they may change with the seed or the epoch count",
            )
        )
    live = arch.live_edges()
    if arch.is_dead:
        out.append(Finding("dead", "'none' won on edges that disconnect input from output: the cell is dead"))
    elif all(o == _SKIP for o, on in zip(arch.ops, live, strict=True) if on):
        out.append(
            Finding(
                "identity",
                "the derived cell is the identity: every input-output path is skip connections (DARTS' known "
                "collapse to parameter-free cells)",
            )
        )
    elif not any(o in _CONVS for o in arch.ops):
        out.append(Finding("no_params", "the derived cell has no parameterised op (no convolution on any edge)"))
    elif not any(o in _CONVS and on for o, on in zip(arch.ops, live, strict=True)):
        out.append(Finding("no_conv_path", "no input-output path of the derived cell goes through a convolution"))
    return out


def regularizer_findings(history: Sequence[dict[str, float]], terms: Sequence[str]) -> list[Finding]:
    """A warning per regulariser whose term ``gamma s R`` was below 1% or above 100x of the validation loss in most
    (more than half) of the epochs."""
    out: list[Finding] = []
    for term in terms:
        ratios = [h[f"ratio_{term}"] for h in history if math.isfinite(h.get(f"ratio_{term}", math.nan))]
        if not ratios:
            continue
        name, med = _TERM_NAMES.get(term, term), float(np.median(ratios))
        low = sum(r < RATIO_LOW for r in ratios)
        high = sum(r > RATIO_HIGH for r in ratios)
        if 2 * low > len(ratios):
            out.append(
                Finding(
                    f"weak_{term}",
                    f"gamma x {name} was below {RATIO_LOW:.0%} of the validation loss in {low} of {len(ratios)} "
                    f"epochs (median {med:.2g}): it barely changes the search; raise --gamma-{term} or use "
                    "--gamma-mode relative",
                )
            )
        elif 2 * high > len(ratios):
            out.append(
                Finding(
                    f"dominant_{term}",
                    f"gamma x {name} was above {RATIO_HIGH:.0f}x the validation loss in {high} of {len(ratios)} "
                    f"epochs (median {med:.3g}x): the search optimises {name}, not accuracy; lower --gamma-{term} "
                    "or use --gamma-mode relative",
                )
            )
    return out


def regularizer_table(history: Sequence[dict[str, float]], terms: Sequence[str]) -> list[dict[str, float]]:
    """Per epoch: validation loss and, per regulariser, raw R, the term ``gamma s R`` and its ratio to the loss."""
    keys = ["val_loss", *(f"{p}_{t}" for t in terms for p in ("R", "term", "ratio"))]
    return [{"epoch": h["epoch"] + 1, **{k: h[k] for k in keys if k in h}} for h in history]
