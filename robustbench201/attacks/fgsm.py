"""FGSM (Goodfellow et al. 2015): one signed-gradient step of size epsilon from the clean point.

L2 variant (FGM): one step of L2 length epsilon along the normalized gradient. The gradient at the clean point does
not depend on epsilon, so a whole epsilon grid costs one gradient plus one forward per epsilon.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..vocab import ATTACKS
from .base import Attack, AttackOutput, ce_loss, empty_output, loss_and_grad, project, steepest, view_rows


@dataclass(frozen=True)
class FGSM(Attack):
    """Fast gradient sign method; no random start, no iterations."""

    name: ClassVar[str] = "fgsm"
    norms: ClassVar[tuple[str, ...]] = ATTACKS["fgsm"].norms
    cheap_grid: ClassVar[bool] = True

    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor, generator: torch.Generator
    ) -> AttackOutput:
        if x.shape[0] == 0:
            return empty_output(model, x)
        _, _, grad = loss_and_grad(model, x, y, ce_loss)
        x_adv = project(x + view_rows(eps, x) * steepest(grad, self.norm), x, eps, self.norm)
        with torch.no_grad():
            logits = model(x_adv).float()
        return AttackOutput(x_adv, logits, logits.argmax(1) != y)

    def perturb_grid(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: list[float], generator: torch.Generator
    ) -> AttackOutput:
        """One gradient for all radii, then one batched forward over the E x N perturbed points."""
        if x.shape[0] == 0:
            return empty_output(model, x)
        _, _, grad = loss_and_grad(model, x, y, ce_loss)
        direction = steepest(grad, self.norm)
        n = x.shape[0]
        es = torch.tensor(eps, dtype=x.dtype, device=x.device).repeat_interleave(n)
        reps = (len(eps),) + (1,) * (x.dim() - 1)
        xs, ds, ys = x.repeat(*reps), direction.repeat(*reps), y.repeat(len(eps))
        x_adv = project(xs + view_rows(es, xs) * ds, xs, es, self.norm)
        with torch.no_grad():
            logits = model(x_adv).float()
        return AttackOutput(x_adv, logits, logits.argmax(1) != ys)
