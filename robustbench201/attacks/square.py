"""Square Attack, L-inf (Andriushchenko et al., ECCV 2020), score-based, margin loss, as in AutoAttack.

Start: vertical stripes ``x + eps * s``, ``s`` in {-1, +1} per (channel, column). Iteration ``i`` draws for every
row an independent square window of side ``round(sqrt(p_i * H * W))`` (at least 1, at most the image side) and an
independent sign per channel, sets the window to ``x_best + 2 * eps * sign`` projected onto the ball and [0, 1],
and keeps the candidate if the margin loss ``z_y - max_{j != y} z_j`` decreases (or the candidate fools).
``p_i`` follows the published schedule: ``p_init`` halved at iterations 10, 50, 200, 500, 1000, 2000, 4000, 6000,
8000 (AutoAttack's ``p_selection`` without rescaling). ``n_queries`` iterations after the initial query; rows whose
margin is <= 0 leave the batch (their result is final). Only forward passes: the engine hands this attack the
inference-only fast network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..errors import Rb201Error
from .base import Attack, AttackOutput, empty_output, margin, view_rows, with_restarts

#: (iteration bound, divisor): after ``bound`` iterations ``p = p_init / divisor``.
_SCHEDULE = ((10, 2), (50, 4), (200, 8), (500, 16), (1000, 32), (2000, 64), (4000, 128), (6000, 256), (8000, 512))


def p_selection(p_init: float, it: int) -> float:
    """Fraction of pixels changed at iteration ``it`` (published schedule, AutoAttack's ``p_selection``)."""
    div = 1
    for bound, d in _SCHEDULE:
        if it > bound:
            div = d
    return p_init / div


@dataclass(frozen=True)
class Square(Attack):
    """Square Attack with ``n_queries`` iterations and initial fraction ``p_init``."""

    n_queries: int = 5000
    p_init: float = 0.8
    n_restarts: int = 1

    name: ClassVar[str] = "aa_square"
    norms: ClassVar[tuple[str, ...]] = ("Linf",)
    gradient_free: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_queries < 1 or self.n_restarts < 1 or not 0 < self.p_init <= 1:
            raise Rb201Error(
                f"aa_square needs n_queries >= 1, n_restarts >= 1, 0 < p_init <= 1; got {self.n_queries}, "
                f"{self.n_restarts}, {self.p_init}"
            )

    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor, generator: torch.Generator
    ) -> AttackOutput:
        if x.shape[0] == 0:
            return empty_output(model, x)

        def single(xs: torch.Tensor, ys: torch.Tensor, es: torch.Tensor):  # type: ignore[no-untyped-def]
            xa, lg = self._single(model, xs, ys, es, generator)
            return xa, lg, lg.argmax(1) != ys

        with torch.no_grad():
            return with_restarts(single, x, y, eps, self.n_restarts)

    def _single(self, model, x, y, eps, generator):  # type: ignore[no-untyped-def]
        n, c, h, w = x.shape
        dev, dt = x.device, x.dtype
        e4 = view_rows(eps, x)

        def signs(shape: tuple[int, ...]) -> torch.Tensor:
            return torch.randint(0, 2, shape, generator=generator, device=dev).to(dt) * 2 - 1

        x_best = torch.clamp(x + e4 * signs((n, c, 1, w)), 0.0, 1.0)
        logits_best = model(x_best).float()
        m_best = margin(logits_best, y)
        rows = (m_best > 0).nonzero()[:, 0]
        ar_h = torch.arange(h, device=dev)
        ar_w = torch.arange(w, device=dev)
        for i in range(self.n_queries):
            if rows.numel() == 0:
                break
            r = rows.numel()
            xc, xb, ec, yc = x[rows], x_best[rows], e4[rows], y[rows]
            p = p_selection(self.p_init, i)
            s = min(max(int(round(math.sqrt(p * h * w))), 1), h, w)
            vh = torch.randint(0, h - s + 1, (r,), generator=generator, device=dev)
            vw = torch.randint(0, w - s + 1, (r,), generator=generator, device=dev)
            mh = (ar_h[None] >= vh[:, None]) & (ar_h[None] < vh[:, None] + s)
            mw = (ar_w[None] >= vw[:, None]) & (ar_w[None] < vw[:, None] + s)
            window = (mh[:, :, None] & mw[:, None, :])[:, None]
            cand = torch.where(window, xb + 2.0 * ec * signs((r, c, 1, 1)), xb)
            cand = torch.clamp(torch.minimum(torch.maximum(cand, xc - ec), xc + ec), 0.0, 1.0)
            lg = model(cand).float()
            m = margin(lg, yc)
            improved = (m < m_best[rows]) | (m <= 0)
            if improved.any():
                idx = rows[improved]
                x_best[idx] = cand[improved]
                logits_best[idx] = lg[improved]
                m_best[idx] = m[improved]
            rows = rows[m_best[rows] > 0]
        return x_best, logits_best
