"""APGD (Croce & Hein, ICML 2020), the published algorithm as in AutoAttack, with CE or DLR loss.

Per row: a random start in the ball, first step of size ``2 * eps``, momentum ``alpha = 0.75`` after the first
iteration, checkpoints at ``p_j`` (first after ``0.22 * n_iter`` iterations, then shrinking by ``0.03 * n_iter`` to at
least ``0.06 * n_iter``); at a checkpoint the step size halves and the iterate restarts from the best point when
the loss increased in at most ``rho`` of the steps since the last checkpoint, or when the step was not reduced
last time and the best loss did not improve. The highest-loss point is tracked.

Exact shortcut: a row fooled at any iterate is final (AutoAttack returns its first fooling point and the run's
result does not depend on later iterations), so it leaves the batch at once; every other row follows exactly the
same trajectory as in a full-batch run. Restarts attack only rows that survived earlier restarts.
Returned point per row: the first fooling point, else the highest-loss point.

APGD-T (``aa_apgd-t``, AutoAttack's targeted APGD): one run per target class, the classes of the 2nd, 3rd, ...
largest clean logits (``n_target_classes`` of them, at most K - 1), each on the targeted DLR loss
``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)``; a run attacks only rows no earlier run fooled. Success is
misclassification (any class but the label), as in AutoAttack.
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
    dlr_loss,
    dlr_targeted_loss,
    empty_output,
    loss_and_grad,
    project,
    steepest,
    target_classes,
    view_rows,
    with_restarts,
)

_DEFAULTS = ATTACKS["aa_apgd-ce"].defaults  # robustbench201.vocab owns the budgets


@dataclass(frozen=True)
class APGD(Attack):
    """Auto-PGD with cross-entropy loss (``aa_apgd-ce``)."""

    n_iter: int = _DEFAULTS["n_iter"]
    n_restarts: int = _DEFAULTS["n_restarts"]
    rho: float = _DEFAULTS["rho"]

    name: ClassVar[str] = "aa_apgd-ce"
    norms: ClassVar[tuple[str, ...]] = ATTACKS["aa_apgd-ce"].norms
    loss: ClassVar[str] = "ce"

    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor, generator: torch.Generator
    ) -> AttackOutput:
        if x.shape[0] == 0:
            return empty_output(model, x)
        return with_restarts(lambda xs, ys, es: self._single(model, xs, ys, es, generator), x, y, eps, self.n_restarts)

    def _single(self, model, x, y, eps, generator, target=None):  # type: ignore[no-untyped-def]
        """One run from a random start; returns (points, their logits, fooled) per row."""
        n_iter, dev = self.n_iter, x.device
        x_adv = _random_start(x, eps, self.norm, generator)
        st: dict[str, torch.Tensor] = {"target": target} if target is not None else {}
        loss_fn = self._loss_fn(st)
        logits, loss, grad = loss_and_grad(model, x_adv, y, loss_fn)
        k_cls = logits.shape[1]
        out_x, out_logits, fooled = x_adv.clone(), logits.clone(), logits.argmax(1) != y
        st |= _start_state(x, y, eps, x_adv, grad, logits, loss, n_iter)
        rows = torch.arange(x.shape[0], device=dev)  # the active rows (compacted whenever rows get fooled)
        if fooled.any():
            rows = _compact(st, rows, ~fooled)
        k = max(int(0.22 * n_iter), 1)  # iterations until the next checkpoint
        counter = 0
        for i in range(n_iter):
            if rows.numel() == 0:
                break
            xa, logits = self._iterate(model, st, i, loss_fn)
            counter += 1
            if counter == k:
                self._checkpoint(st, i, k, xa)
                k = max(k - max(int(0.03 * n_iter), 1), max(int(0.06 * n_iter), 1))
                counter = 0
            hit = logits.argmax(1) != st["y"]
            if hit.any():
                out_x[rows[hit]] = xa[hit]
                out_logits[rows[hit]] = logits[hit]
                fooled[rows[hit]] = True
                rows = _compact(st, rows, ~hit)
        # survivors return their highest-loss point
        out_x[rows] = st["x_best"]
        out_logits[rows] = st["logits_best"].to(out_logits.dtype)
        assert out_logits.shape[1] == k_cls
        return out_x, out_logits, fooled

    def _loss_fn(self, st: dict[str, torch.Tensor]):  # type: ignore[no-untyped-def]
        """The run's loss: CE, DLR, or targeted DLR against the targets of the rows still active in ``st``."""
        if self.loss == "dlr-targeted":

            def loss_fn(logits: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
                return dlr_targeted_loss(logits, yy, st["target"])

            return loss_fn
        return dlr_loss if self.loss == "dlr" else ce_loss

    def _iterate(self, model, st: dict[str, torch.Tensor], i: int, loss_fn):  # type: ignore[no-untyped-def]
        """Iteration ``i``: a steepest-ascent step with momentum (0.75 after the first), projected on the ball;
        the best point so far is kept per row. Returns (the new iterate, its logits)."""
        norm = self.norm
        with torch.no_grad():
            xa, xo, e = st["x_adv"], st["x"], st["eps"]
            grad2 = xa - st["x_old"]
            st["x_old"] = xa
            a = 0.75 if i > 0 else 1.0
            z = project(xa + st["step"] * steepest(st["grad"], norm), xo, e, norm)
            xa = project(xa + (z - xa) * a + grad2 * (1 - a), xo, e, norm)
        logits, loss, grad = loss_and_grad(model, xa, st["y"], loss_fn)
        st["x_adv"], st["grad"] = xa, grad
        st["loss_steps"][i] = loss
        better = loss > st["loss_best"]
        st["x_best"] = torch.where(view_rows(better, xa), xa, st["x_best"])
        st["grad_best"] = torch.where(view_rows(better, xa), grad, st["grad_best"])
        st["logits_best"] = torch.where(better[:, None], logits, st["logits_best"])
        st["loss_best"] = torch.where(better, loss, st["loss_best"])
        return xa, logits

    def _checkpoint(self, st: dict[str, torch.Tensor], i: int, k: int, xa: torch.Tensor) -> None:
        """At a checkpoint (``k`` iterations after the last): halve the step and restart from the best point where
        the loss increased in at most ``rho`` of those steps, or where the step was not reduced last time and the
        best loss did not improve."""
        ls = st["loss_steps"]
        incr = torch.zeros(ls.shape[1], device=xa.device)
        for c in range(k):
            incr += (ls[i - c] > ls[i - c - 1]).float()
        osc = incr <= k * self.rho
        no_impr = (st["reduced_last"] == 0) & (st["loss_best_last"] >= st["loss_best"])
        red = osc | no_impr
        st["reduced_last"] = red.float()
        st["loss_best_last"] = st["loss_best"].clone()
        if red.any():
            r4 = view_rows(red, xa)
            st["step"] = torch.where(r4, st["step"] / 2.0, st["step"])
            st["x_adv"] = torch.where(r4, st["x_best"], st["x_adv"])
            st["grad"] = torch.where(r4, st["grad_best"], st["grad"])


def _random_start(x: torch.Tensor, eps: torch.Tensor, norm: str, generator: torch.Generator) -> torch.Tensor:
    """AutoAttack's random start: a random direction scaled to the ball's surface, then clipped to [0, 1]."""
    dev = x.device
    if norm == "Linf":
        t = 2 * torch.rand(x.shape, generator=generator, device=dev, dtype=x.dtype) - 1
        t = t / (view_rows(t.flatten(1).abs().amax(1), x) + 1e-12)
    else:
        t = torch.randn(x.shape, generator=generator, device=dev, dtype=x.dtype)
        t = t / (view_rows(t.flatten(1).norm(dim=1), x) + 1e-12)
    return torch.clamp(x + view_rows(eps, x) * t, 0.0, 1.0)


def _start_state(x, y, eps, x_adv, grad, logits, loss, n_iter: int) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    """The per-row state of a run at its start (first step ``2 * eps``)."""
    n, dev = x.shape[0], x.device
    return {
        "x": x,
        "y": y,
        "eps": eps,
        "x_adv": x_adv,
        "x_old": x_adv.clone(),
        "grad": grad,
        "x_best": x_adv.clone(),
        "grad_best": grad.clone(),
        "logits_best": logits.clone(),
        "loss_best": loss.clone(),
        "step": view_rows(2.0 * eps, x).clone(),
        "loss_steps": torch.zeros((n_iter, n), device=dev),
        "reduced_last": torch.ones(n, device=dev),
        "loss_best_last": loss.clone(),
    }


def _compact(st: dict[str, torch.Tensor], rows: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Keep only the rows ``keep`` of the state (in place) and of ``rows``; returns the kept ``rows``."""
    for key, v in st.items():
        st[key] = v[:, keep] if key == "loss_steps" else v[keep]
    return rows[keep]


@dataclass(frozen=True)
class APGDDLR(APGD):
    """Auto-PGD with the difference-of-logits-ratio loss (``aa_apgd-dlr``; needs at least 3 classes)."""

    name: ClassVar[str] = "aa_apgd-dlr"
    loss: ClassVar[str] = "dlr"


_DEFAULTS_T = ATTACKS["aa_apgd-t"].defaults


@dataclass(frozen=True)
class APGDT(APGD):
    """Targeted APGD (``aa_apgd-t``): ``n_target_classes`` runs of ``n_iter`` iterations, one per target class."""

    n_iter: int = _DEFAULTS_T["n_iter"]
    n_restarts: int = _DEFAULTS_T["n_restarts"]
    rho: float = _DEFAULTS_T["rho"]
    n_target_classes: int = _DEFAULTS_T["n_target_classes"]

    name: ClassVar[str] = "aa_apgd-t"
    norms: ClassVar[tuple[str, ...]] = ATTACKS["aa_apgd-t"].norms
    loss: ClassVar[str] = "dlr-targeted"

    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor, generator: torch.Generator
    ) -> AttackOutput:
        if x.shape[0] == 0:
            return empty_output(model, x)
        with torch.no_grad():
            clean = model(x).float()
        targets = target_classes(clean, self.n_target_classes)
        out_x, out_logits = x.clone(), clean.clone()
        fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        first = True
        for t in range(targets.shape[1]):
            for _ in range(self.n_restarts):
                todo = (~fooled).nonzero()[:, 0]
                if todo.numel() == 0:
                    return AttackOutput(out_x, out_logits, fooled)
                xa, lg, fo = self._single(model, x[todo], y[todo], eps[todo], generator, target=targets[todo, t])
                # the first run's points stand for rows no run fools; later runs replace a point only where they fool
                keep = torch.ones_like(fo) if first else fo
                out_x[todo[keep]], out_logits[todo[keep]] = xa[keep], lg[keep].to(out_logits.dtype)
                fooled[todo[fo]] = True
                first = False
        return AttackOutput(out_x, out_logits, fooled)
