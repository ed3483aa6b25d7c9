"""Targeted FAB, L-inf (Croce & Hein, ICML 2020, "Minimally distorted adversarial examples with a fast adaptive
boundary attack"), as AutoAttack's ``fab-t`` runs it.

FAB looks for the adversarial point of smallest L-inf norm. Per target class ``t`` (the classes of the 2nd, 3rd, ...
largest clean logits, ``n_target_classes`` of them, at most K - 1) and per row, starting at the clean point ``x0``
(a restart after the first starts at a random point of the box of half-size ``eps / 2``), each of ``n_iter``
iterations

1. linearises ``f = z_t - z_y`` at the iterate ``x1``: the decision boundary is approximated by the hyperplane
   ``f(x1) + grad f(x1) . (z - x1) = 0``;
2. projects both ``x1`` and ``x0`` onto that hyperplane within the box [0, 1] (:func:`project_linf`, the smallest
   L-inf step that reaches it, or the corner of the box nearest to it when it cannot be reached): steps ``d1``, ``d2``;
3. moves to ``((x1 + eta d1)(1 - a) + (x0 + eta d2) a)`` clipped to [0, 1], with
   ``a = min(|d1| / (|d1| + |d2|), alpha_max)`` (norms L-inf, at least 1e-8 each), a bias towards the clean point;
4. where that point is misclassified, keeps it if its distance to ``x0`` is the smallest so far, then pulls the
   iterate back towards ``x0``: ``x1 <- x0 + beta (x1 - x0)``.

A row is fooled when its smallest adversarial point lies within ``eps`` (AutoAttack's success check after FAB). Exact
shortcut: that smallest distance only decreases, so a row whose best point is within ``eps`` is final and leaves the
batch. Returned point per row: the best adversarial point when it is within ``eps``, else the clean point (with its
logits). Radii in [0, 1] units here. With one restart (AutoAttack "standard") the attack draws no random numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..vocab import ATTACKS
from .base import Attack, AttackOutput, empty_output, target_classes, view_rows

_DEFAULTS = ATTACKS["aa_fab-t"].defaults  # robustbench201.vocab owns the budgets


def project_linf(t: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per row: the step ``d`` of smallest L-inf norm with ``w . (t + d) = b`` and ``0 <= t + d <= 1``.

    ``t`` (R x D) in [0, 1], ``w`` (R x D), ``b`` (R). Moving coordinate ``i`` by at most ``lam`` towards the
    hyperplane changes ``w . z`` by ``|w_i| min(lam, room_i)``, ``room_i`` being the distance to the box face in that
    direction; the total ``g(lam)`` is piecewise linear and increasing, so the smallest ``lam`` with
    ``g(lam) = |w.t - b|`` is found from the sorted ``room`` values (one sort and one search per row). Where the
    hyperplane lies beyond the box (``g(inf) <= |w.t - b|``) the step goes to the nearest corner,
    ``d_i = -sign(w_i) room_i``. Coordinates with ``w_i = 0`` do not move."""
    c = (w * t).sum(1) - b
    sign = torch.where(c >= 0, 1.0, -1.0).to(w.dtype)
    ws = w * sign[:, None]  # orientation: w . z must decrease by c_abs
    c_abs = c * sign
    room = torch.where(ws > 0, t, 1.0 - t)  # how far each coordinate can move in the decreasing direction
    aw = ws.abs()
    room_s, order = room.sort(dim=1)
    aw_s = aw.gather(1, order)
    acc = torch.cumsum(aw_s * room_s, dim=1)  # A_k = sum_{j <= k} |w_j| room_j
    tail = aw_s.sum(1, keepdim=True) - torch.cumsum(aw_s, dim=1) + aw_s  # T_k = sum_{j >= k} |w_j|
    at_break = acc - aw_s * room_s + room_s * tail  # g(room_k), nondecreasing in k
    total = acc[:, -1]
    k = torch.searchsorted(at_break.contiguous(), c_abs[:, None].contiguous()).clamp(max=t.shape[1] - 1)
    before = torch.where(k > 0, acc.gather(1, (k - 1).clamp(min=0)), torch.zeros_like(k, dtype=acc.dtype))
    lam = (c_abs[:, None] - before) / tail.gather(1, k).clamp(min=1e-30)
    feasible = (c_abs < total)[:, None]
    move = torch.where(feasible, torch.minimum(lam.clamp(min=0.0), room), room)
    return -torch.sign(ws) * move


@dataclass(frozen=True)
class FABT(Attack):
    """Targeted FAB (``aa_fab-t``), L-inf: ``n_target_classes`` runs of ``n_iter`` iterations."""

    n_iter: int = _DEFAULTS["n_iter"]
    n_restarts: int = _DEFAULTS["n_restarts"]
    n_target_classes: int = _DEFAULTS["n_target_classes"]
    alpha_max: float = _DEFAULTS["alpha_max"]
    eta: float = _DEFAULTS["eta"]
    beta: float = _DEFAULTS["beta"]

    name: ClassVar[str] = "aa_fab-t"
    norms: ClassVar[tuple[str, ...]] = ATTACKS["aa_fab-t"].norms

    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor, generator: torch.Generator
    ) -> AttackOutput:
        if x.shape[0] == 0:
            return empty_output(model, x)
        with torch.no_grad():
            clean = model(x).float()
        targets = target_classes(clean, self.n_target_classes)
        out_x, out_logits = x.clone(), clean.clone()
        fooled = clean.argmax(1) != y  # a misclassified clean point is its own adversarial point (distance 0)
        for t in range(targets.shape[1]):
            for restart in range(self.n_restarts):
                todo = (~fooled).nonzero()[:, 0]
                if todo.numel() == 0:
                    return AttackOutput(out_x, out_logits, fooled)
                xa, lg, fo = self._single(model, x[todo], y[todo], eps[todo], targets[todo, t], generator, restart > 0)
                hit = todo[fo]
                out_x[hit], out_logits[hit] = xa[fo], lg[fo]
                fooled[hit] = True
        return AttackOutput(out_x, out_logits, fooled)

    def _single(self, model, x0, y, eps, target, generator, random_start):  # type: ignore[no-untyped-def]
        """One run towards ``target``: (best adversarial points, their logits, fooled) per row; only the fooled rows'
        points and logits are meaningful (the others are left as they were)."""
        n = x0.shape[0]
        x1 = x0.clone()
        if random_start:
            u = 2 * torch.rand(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype) - 1
            u = u / view_rows(u.flatten(1).abs().amax(1).clamp(min=1e-12), x0)
            x1 = (x0 + 0.5 * view_rows(eps, x0) * u).clamp(0.0, 1.0)
        best_x = x0.clone()
        best_d = torch.full((n,), float("inf"), device=x0.device)
        best_logits: torch.Tensor | None = None
        rows = torch.arange(n, device=x0.device)  # original positions of the active rows
        xo, ya, ta, ea = x0, y, target, eps
        for _ in range(self.n_iter):
            m = rows.numel()
            xr = x1.detach().requires_grad_(True)
            with torch.enable_grad():
                z = model(xr).float()
                f = z.gather(1, ta[:, None])[:, 0] - z.gather(1, ya[:, None])[:, 0]
                grad = torch.autograd.grad(f.sum(), xr, allow_unused=True)[0] if f.requires_grad else None
            with torch.no_grad():
                g = torch.zeros((m, x1[0].numel()), device=x1.device) if grad is None else grad.flatten(1)
                b = (g * x1.flatten(1)).sum(1) - f.detach()  # the linearised boundary: g . z = b
                d = project_linf(torch.cat([x1.flatten(1), xo.flatten(1)]), torch.cat([g, g]), torch.cat([b, b]))
                d1, d2 = d[:m].view_as(x1), d[m:].view_as(x1)
                a1 = d1.flatten(1).abs().amax(1).clamp(min=1e-8)
                a2 = d2.flatten(1).abs().amax(1).clamp(min=1e-8)
                a = view_rows(torch.clamp(a1 / (a1 + a2), min=0.0, max=self.alpha_max), x1)
                x1 = ((x1 + self.eta * d1) * (1 - a) + (xo + self.eta * d2) * a).clamp(0.0, 1.0)
                logits = model(x1).float()
                if best_logits is None:
                    best_logits = torch.zeros((n, logits.shape[1]), dtype=logits.dtype, device=x0.device)
                adv = logits.argmax(1) != ya
                if not adv.any():
                    continue
                dist = (x1 - xo).flatten(1).abs().amax(1)
                better = adv & (dist < best_d[rows])
                idx = rows[better]
                best_x[idx], best_d[idx], best_logits[idx] = x1[better], dist[better], logits[better]
                x1 = torch.where(view_rows(adv, x1), xo + (x1 - xo) * self.beta, x1)
                keep = best_d[rows] > ea  # a row whose best point is within eps is final: its best only gets closer
                if not keep.all():
                    rows, x1, xo, ya, ta, ea = (v[keep] for v in (rows, x1, xo, ya, ta, ea))
                    if rows.numel() == 0:
                        break
        fooled = best_d <= eps
        if best_logits is None:  # no iteration ran
            best_logits = torch.zeros((n, 1), device=x0.device)
        return best_x, best_logits, fooled
