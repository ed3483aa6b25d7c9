"""PGD (Madry et al. 2018) with best-iterate tracking.

Defaults (our choice; the published protocol fixes only 40 steps): a uniform random start in the ball, step size
``2.5 * eps / steps`` (Madry's rule, so the walk can cross the ball), signed gradient steps (L-inf) or normalized
gradient steps (L2), cross-entropy loss. A row counts as fooled if any iterate fools the model; it is final and
is no longer attacked (the best-iterate rule), so fooled rows cost nothing further. Restarts attack only rows
that survived every earlier restart.

``last_iterate=True`` is the training form (Madry et al.; what adversarial training in :mod:`robustbench201.train`
uses): every row takes all steps and the last iterate is returned, fooling or not. It is an execution option of the
attack object, not a hyper-parameter of the stored ``pgd`` key, whose rows always follow the best-iterate rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..vocab import ATTACKS
from .base import (
    Attack,
    AttackOutput,
    ce_loss,
    empty_output,
    loss_and_grad,
    project,
    steepest,
    uniform_start,
    view_rows,
    with_restarts,
)

_DEFAULTS = ATTACKS["pgd"].defaults  # robustbench201.vocab owns the budgets


@dataclass(frozen=True)
class PGD(Attack):
    """Projected gradient descent; ``steps`` gradient steps of size ``step_factor * eps / steps``."""

    steps: int = _DEFAULTS["steps"]
    step_factor: float = _DEFAULTS["step_factor"]
    random_start: bool = _DEFAULTS["random_start"]
    restarts: int = _DEFAULTS["restarts"]
    last_iterate: bool = False

    name: ClassVar[str] = "pgd"
    norms: ClassVar[tuple[str, ...]] = ATTACKS["pgd"].norms

    def params(self) -> dict[str, object]:
        out = super().params()
        out.pop("last_iterate")  # an execution option of training, not part of the stored key's budget
        return out

    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor, generator: torch.Generator
    ) -> AttackOutput:
        if x.shape[0] == 0:
            return empty_output(model, x)
        return with_restarts(lambda xs, ys, es: self._single(model, xs, ys, es, generator), x, y, eps, self.restarts)

    def _single(self, model, x, y, eps, generator):  # type: ignore[no-untyped-def]
        if self.last_iterate:
            return self._last(model, x, y, eps, generator)
        n = x.shape[0]
        alpha = view_rows(eps * (self.step_factor / self.steps), x)
        x_adv = uniform_start(x, eps, self.norm, generator) if self.random_start else x.clone()
        out_x, fooled = x_adv.clone(), torch.zeros(n, dtype=torch.bool, device=x.device)
        out_logits: torch.Tensor | None = None
        rows = torch.arange(n, device=x.device)  # original positions of the active rows
        xa, xo, ya, ea, aa = x_adv, x, y, eps, alpha
        for it in range(self.steps + 1):
            if it < self.steps:
                logits, _, grad = loss_and_grad(model, xa, ya, ce_loss)
            else:  # the last iterate needs no gradient
                with torch.no_grad():
                    logits = model(xa).float()
            if out_logits is None:
                out_logits = torch.empty((n, logits.shape[1]), dtype=logits.dtype, device=x.device)
            hit = logits.argmax(1) != ya
            if it == self.steps:  # survivors return their last iterate
                out_x[rows], out_logits[rows] = xa, logits
                fooled[rows[hit]] = True
                break
            if hit.any():
                out_x[rows[hit]], out_logits[rows[hit]] = xa[hit], logits[hit]
                fooled[rows[hit]] = True
                keep = ~hit
                rows, xa, xo, ya, ea, aa, grad = (t[keep] for t in (rows, xa, xo, ya, ea, aa, grad))
                if rows.numel() == 0:
                    break
            with torch.no_grad():
                xa = project(xa + aa * steepest(grad, self.norm), xo, ea, self.norm)
        return out_x, out_logits, fooled

    def last_iterate_points(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """The last iterate of every row after all ``steps`` steps (radii ``eps`` in [0, 1] units), without the
        forward pass that scoring it would cost: what adversarial training feeds back into the network."""
        alpha = view_rows(eps * (self.step_factor / self.steps), x)
        xa = uniform_start(x, eps, self.norm, generator) if self.random_start else x.clone()
        for _ in range(self.steps):
            _, _, grad = loss_and_grad(model, xa, y, ce_loss)
            with torch.no_grad():
                xa = project(xa + alpha * steepest(grad, self.norm), x, eps, self.norm)
        return xa

    def _last(self, model, x, y, eps, generator):  # type: ignore[no-untyped-def]
        xa = self.last_iterate_points(model, x, y, eps, generator)
        with torch.no_grad():
            logits = model(xa).float()
        return xa, logits, logits.argmax(1) != y
