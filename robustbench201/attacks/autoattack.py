"""AutoAttack "standard" (Croce & Hein, ICML 2020) as one key, ``autoattack``: APGD-CE, APGD-T, FAB-T and Square run
one after the other as a per-sample worst-case cascade. Each stage attacks only the rows no earlier stage broke; a
row counts as robust only if it survives all four.

Budgets of the standard version (the vocabulary's defaults): APGD-CE 100 iterations, 1 restart; APGD-T 9 target
classes x 100 iterations, 1 restart; FAB-T 9 target classes x 100 iterations, 1 restart (alpha_max 0.1, eta 1.05,
beta 0.9); Square 5000 queries, p_init 0.8, 1 restart. L-inf only. Radii in [0, 1] units here.

Per row the output says which stage broke it (``AttackOutput.stage``: 1..4, or 5 when none did), so the robust
accuracy after each stage is stored beside the composite one (:mod:`robustbench201.evaluation`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..vocab import ATTACKS, AUTOATTACK_STAGES
from .apgd import APGD, APGDT
from .base import Attack, AttackOutput, empty_output
from .fab import FABT
from .square import Square

_DEFAULTS = ATTACKS["autoattack"].defaults  # robustbench201.vocab owns the budgets


@dataclass(frozen=True)
class AutoAttack(Attack):
    """The ``autoattack`` cascade; ``stages()`` builds its four attacks from these hyper-parameters."""

    n_iter: int = _DEFAULTS["n_iter"]
    n_target_classes: int = _DEFAULTS["n_target_classes"]
    n_queries: int = _DEFAULTS["n_queries"]
    p_init: float = _DEFAULTS["p_init"]
    rho: float = _DEFAULTS["rho"]
    alpha_max: float = _DEFAULTS["alpha_max"]
    eta: float = _DEFAULTS["eta"]
    beta: float = _DEFAULTS["beta"]

    name: ClassVar[str] = "autoattack"
    norms: ClassVar[tuple[str, ...]] = ATTACKS["autoattack"].norms
    n_stages: ClassVar[int] = len(AUTOATTACK_STAGES)

    def stages(self) -> tuple[Attack, ...]:
        """APGD-CE, APGD-T, FAB-T, Square (the order of :data:`robustbench201.vocab.AUTOATTACK_STAGES`)."""
        return (
            APGD(norm=self.norm, n_iter=self.n_iter, n_restarts=1, rho=self.rho),
            APGDT(
                norm=self.norm, n_iter=self.n_iter, n_restarts=1, rho=self.rho, n_target_classes=self.n_target_classes
            ),
            FABT(
                norm=self.norm,
                n_iter=self.n_iter,
                n_restarts=1,
                n_target_classes=self.n_target_classes,
                alpha_max=self.alpha_max,
                eta=self.eta,
                beta=self.beta,
            ),
            Square(norm=self.norm, n_queries=self.n_queries, p_init=self.p_init, n_restarts=1),
        )

    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor, generator: torch.Generator
    ) -> AttackOutput:
        if x.shape[0] == 0:
            out = empty_output(model, x)
            return AttackOutput(out.x_adv, out.logits, out.fooled, torch.zeros(0, dtype=torch.long, device=x.device))
        n = x.shape[0]
        out_x = x.clone()
        out_logits: torch.Tensor | None = None
        fooled = torch.zeros(n, dtype=torch.bool, device=x.device)
        stage = torch.full((n,), self.n_stages + 1, dtype=torch.long, device=x.device)
        for k, attack in enumerate(self.stages(), start=1):
            todo = (~fooled).nonzero()[:, 0]
            if todo.numel() == 0:
                break
            res = attack.perturb(model, x[todo], y[todo], eps[todo], generator)
            if out_logits is None:  # the first stage sees every row: its points stand for rows no stage breaks
                out_logits = res.logits.clone()
                out_x = res.x_adv.clone()
            hit = todo[res.fooled]
            out_x[hit], out_logits[hit] = res.x_adv[res.fooled], res.logits[res.fooled].to(out_logits.dtype)
            fooled[hit] = True
            stage[hit] = k
        assert out_logits is not None
        return AttackOutput(out_x, out_logits, fooled, stage)
