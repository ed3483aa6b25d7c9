"""Square Attack, L-inf and L2 (Andriushchenko et al., ECCV 2020), score-based, margin loss, as in AutoAttack.

L-inf start: vertical stripes ``x + eps * s``, ``s`` in {-1, +1} per (channel, column). Iteration ``i`` draws for
every row an independent square window of side ``round(sqrt(p_i * H * W))`` (at least 1, at most the image side) and
an independent sign per channel, sets the window to ``x_best + 2 * eps * sign`` projected onto the ball and [0, 1].

L2 start: a centred grid of pseudo-Gaussian tiles with random signs, scaled to norm ``eps``. Iteration ``i`` draws for
every row two independent windows of side ``round(sqrt(p_i * H * W))`` (odd, at least 3, at most the image side): the
second is zeroed and its norm, with the unused budget, moves into the first, which becomes its old direction plus a
fresh pseudo-Gaussian window with a random sign per channel; the whole perturbation is scaled to norm ``eps`` and
clipped to [0, 1] (which only shrinks it, so the point stays in the ball).

Both keep the candidate if the margin loss ``z_y - max_{j != y} z_j`` decreases (or the candidate fools).
``p_i`` follows the published schedule: ``p_init`` halved at iterations 10, 50, 200, 500, 1000, 2000, 4000, 6000,
8000 (AutoAttack's ``p_selection`` without rescaling). ``n_queries`` iterations after the initial query; rows whose
margin is <= 0 leave the batch (their result is final). All randomness comes from the given generator, drawn per
row. Only forward passes: the engine hands this attack the inference-only fast network. Radii in [0, 1] units.
Proposals are scored by a small object (:class:`Fp32Scores`, the float32 rule above);
:mod:`robustbench201.attacks.square_fast` adds bucket-padded (CUDA-graph) forwards and float16 scoring verified in
float32.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..vocab import ATTACKS
from .base import Attack, AttackOutput, empty_output, l2_norm, margin, view_rows, with_restarts

_DEFAULTS = ATTACKS["aa_square"].defaults  # robustbench201.vocab owns the budgets

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

    n_queries: int = _DEFAULTS["n_queries"]
    p_init: float = _DEFAULTS["p_init"]
    n_restarts: int = _DEFAULTS["n_restarts"]

    name: ClassVar[str] = "aa_square"
    norms: ClassVar[tuple[str, ...]] = ATTACKS["aa_square"].norms
    gradient_free: ClassVar[bool] = True

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
        l2 = self.norm == "L2"

        def signs(shape: tuple[int, ...]) -> torch.Tensor:
            return torch.randint(0, 2, shape, generator=generator, device=dev).to(dt) * 2 - 1

        x_best = _l2_start(x, e4, signs, generator) if l2 else torch.clamp(x + e4 * signs((n, c, 1, w)), 0.0, 1.0)
        scores = self._scores(model)
        logits_best, m_best = scores.start(x_best, y)
        rows = (m_best > 0).nonzero()[:, 0]
        ar_h = torch.arange(h, device=dev)
        ar_w = torch.arange(w, device=dev)
        for i in range(self.n_queries):
            if rows.numel() == 0:
                break
            r = rows.numel()
            xc, xb, ec, yc = x[rows], x_best[rows], e4[rows], y[rows]
            p = p_selection(self.p_init, i)
            if l2:
                cand = _l2_candidate(xc, xb, ec, p, signs, generator)
            else:
                s = min(max(int(round(math.sqrt(p * h * w))), 1), h, w)
                vh = torch.randint(0, h - s + 1, (r,), generator=generator, device=dev)
                vw = torch.randint(0, w - s + 1, (r,), generator=generator, device=dev)
                mh = (ar_h[None] >= vh[:, None]) & (ar_h[None] < vh[:, None] + s)
                mw = (ar_w[None] >= vw[:, None]) & (ar_w[None] < vw[:, None] + s)
                window = (mh[:, :, None] & mw[:, None, :])[:, None]
                cand = torch.where(window, xb + 2.0 * ec * signs((r, c, 1, 1)), xb)
                cand = torch.clamp(torch.minimum(torch.maximum(cand, xc - ec), xc + ec), 0.0, 1.0)
            improved, m, lg = scores.step(rows, cand, yc, xb, m_best[rows])
            if improved.any():
                idx = rows[improved]
                x_best[idx] = cand[improved]
                logits_best[idx] = lg[improved]
                m_best[idx] = m[improved]
            rows = rows[m_best[rows] > 0]
        return x_best, scores.finish(x_best, logits_best)

    def _scores(self, model: nn.Module) -> Fp32Scores:
        """How proposals are scored and accepted (subclasses may score in lower precision, exactly verified)."""
        return Fp32Scores(model)


class Fp32Scores:
    """Square's accept rule in float32: a proposal is kept iff its margin is below the best's or it fools."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def start(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (float32) and margins of the starting points."""
        logits = self.model(x).float()
        return logits, margin(logits, y)

    def step(
        self, rows: torch.Tensor, cand: torch.Tensor, y: torch.Tensor, best: torch.Tensor, m_best: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(kept, margins, logits) of the proposals ``cand`` for the active ``rows`` (current best points ``best``
        with margins ``m_best``)."""
        logits = self.model(cand).float()
        m = margin(logits, y)
        return (m < m_best) | (m <= 0), m, logits

    def finish(self, x_best: torch.Tensor, logits_best: torch.Tensor) -> torch.Tensor:
        """Final float32 logits of the returned points."""
        return logits_best


# ---- L2 ----------------------------------------------------------------------------------------------------------
@functools.cache
def _eta(s: int) -> torch.Tensor:
    """The s x s pseudo-Gaussian window (float64, unit L2 norm): the top ``s // 2`` rows and the bottom rows are two
    rectangles of opposite sign, each a sum of 1 / (k + 1)^2 over the nested squares of half-side ``k`` around its
    centre, i.e. ``sum_{k >= d}^{K - 1} 1 / (k + 1)^2`` at Chebyshev distance ``d`` from the centre."""

    def rectangle(a: int, b: int) -> torch.Tensor:
        if a == 0:
            return torch.zeros(0, b, dtype=torch.float64)
        k = max(a // 2, b // 2) + 1
        tail = torch.flip(torch.cumsum(torch.flip(1.0 / torch.arange(1, k + 1, dtype=torch.float64) ** 2, [0]), 0), [0])
        ii = (torch.arange(a) - a // 2).abs()
        jj = (torch.arange(b) - b // 2).abs()
        rect = tail[torch.maximum(ii[:, None], jj[None, :])]
        return rect / rect.norm()

    eta = torch.cat([rectangle(s // 2, s), -rectangle(s - s // 2, s)])
    return eta / eta.norm()


def _oriented_eta(s: int, flip: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(R, s, s): the window of side ``s`` per row, transposed where ``flip``."""
    eta = _eta(s).to(device=like.device, dtype=like.dtype)
    return torch.where(flip[:, None, None], eta.T[None], eta[None])


def _l2_normalize(delta: torch.Tensor, e4: torch.Tensor) -> torch.Tensor:
    return delta / (view_rows(l2_norm(delta), delta) + 1e-12) * e4


def _l2_start(x: torch.Tensor, e4: torch.Tensor, signs, generator: torch.Generator) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """A centred grid of as many tiles of side ``max(min(H, W) // 5, 1)`` as fit (5 x 5 on 16, 28 and 32 pixel
    squares, as in AutoAttack), each a randomly oriented pseudo-Gaussian window with a random sign per channel,
    scaled to L2 norm ``eps`` (then clipped to [0, 1])."""
    n, c, h, w = x.shape
    s = max(min(h, w) // 5, 1)
    th, tw = h // s, w // s
    oh, ow = (h - th * s) // 2, (w - tw * s) // 2
    flip = torch.randint(0, 2, (n * th * tw,), generator=generator, device=x.device).bool()
    tiles = _oriented_eta(s, flip, x).view(n, 1, th, tw, s, s) * signs((n, c, th, tw))[..., None, None]
    delta = torch.zeros_like(x)
    delta[:, :, oh : oh + th * s, ow : ow + tw * s] = tiles.permute(0, 1, 2, 4, 3, 5).reshape(n, c, th * s, tw * s)
    return torch.clamp(x + _l2_normalize(delta, e4), 0.0, 1.0)


def _l2_candidate(xc, xb, ec, p, signs, generator):  # type: ignore[no-untyped-def]
    """One L2 step per row: in a random s x s window (s odd, at least 3) the perturbation becomes its own direction
    plus a fresh pseudo-Gaussian window with a random sign per channel, rescaled so that it takes the window's old
    norm, the norm of a second random window (zeroed) and its share of the unused budget; the whole perturbation is
    then scaled to L2 norm ``eps`` and clipped to [0, 1]. Norms of windows are per channel."""
    r, c, h, w = xc.shape
    dev = xc.device
    s = max(int(round(math.sqrt(p * h * w))), 3)
    s = min(s + 1 - s % 2, h, w)
    vh, vw, vh2, vw2 = (torch.randint(0, lim - s + 1, (r,), generator=generator, device=dev) for lim in (h, w, h, w))
    flip = torch.randint(0, 2, (r,), generator=generator, device=dev).bool()
    sign = signs((r, c, 1, 1))
    ar_s = torch.arange(s, device=dev)

    def flat_index(v_h: torch.Tensor, v_w: torch.Tensor) -> torch.Tensor:
        """(R, C, s * s) indices of the windows with top-left corners (v_h, v_w) in the flattened H x W plane."""
        idx = (v_h[:, None] + ar_s)[:, :, None] * w + (v_w[:, None] + ar_s)[:, None, :]
        return idx.view(r, 1, s * s).expand(r, c, -1)

    idx1, idx2 = flat_index(vh, vw), flat_index(vh2, vw2)
    delta = xb - xc
    norm_image = view_rows(l2_norm(delta), delta)
    flat = delta.view(r, c, h * w)  # edited in place below: ``delta`` is a fresh tensor
    old = flat.gather(2, idx1)
    flat.scatter_(2, idx1, 0.0)
    # squared norm of the union of both windows: window 1, plus what window 2 holds outside window 1
    sq_windows = old.pow(2).sum(2) + flat.gather(2, idx2).pow(2).sum(2)
    flat.scatter_(2, idx2, 0.0)
    budget = (torch.clamp(ec**2 - norm_image**2, min=0.0) / c + sq_windows[:, :, None, None]).sqrt()
    old = old.view(r, c, s, s)
    new = _oriented_eta(s, flip, xc)[:, None] * sign + old / (old.pow(2).sum((2, 3), keepdim=True).sqrt() + 1e-12)
    new = new / (new.pow(2).sum((2, 3), keepdim=True).sqrt() + 1e-12) * budget
    flat.scatter_(2, idx1, new.reshape(r, c, s * s))
    return torch.clamp(xc + _l2_normalize(delta, ec), 0.0, 1.0)
