"""Square Attack levers that pay on a GPU: bucket-padded forwards (captured as CUDA graphs) and float16 proposals
whose accept/reject decisions are verified in float32.

Square spends almost all of its time in forward passes over a batch that shrinks as points get fooled
(PROTOCOL.md section 6). On a GPU a small network is then launch-bound: each pass is a hundred small kernels.

* **Buckets** (:class:`BucketedForward`): every forward is padded to the next bucket size ``min_rows * 2**k``, so a
  shrinking batch visits a handful of fixed shapes. Rows are independent in evaluation mode, so padding changes no
  value of a real row beyond the convolution library choosing another kernel for another batch size (on the CPU
  build of the tests: identical from 16 rows up, last-bit differences below that, and identical Square runs). On
  CUDA, with ``graphs=True``, the forward of each bucket is captured once as a CUDA graph (after a warm-up on a
  side stream) and replayed: one launch per pass instead of one per kernel. Graphs are never used on a CPU: there
  the padded eager forward runs, with the same numbers.
* **float16 proposals, verified** (:class:`Fp16VerifiedScores`): each proposal is scored by a float16 copy of the
  network. The float16 margin ``m16`` of a point differs from its float32 margin ``m32`` by at most a band
  ``b = c * max_j |z16_j|``, where ``c`` is measured on the starting points of each run (the largest observed
  ``|m16 - m32| / max_j |z16_j|`` times ``band_safety``, at least ``2**-10`` times it) and grows whenever a later
  float32 check observes a larger ratio. A proposal is accepted or rejected from float16 alone only when the whole
  band lies on one side of the best point's margin (whose float32 value is known, or itself bounded by its band)
  and ``m16 > b`` (it cannot fool); every other proposal, and so every success, is re-evaluated in float32, and the
  best point's float32 margin is computed when needed. While the band holds, every decision equals float32's
  (up to float32 ties: changes of about 1e-7 of the logits, which float32 itself decides by the batch a point is
  computed in), so the trajectory, the flags and the returned points are those of the float32 attack; the returned
  logits are float32 (points accepted from float16 alone are re-evaluated once at the end). ``audit=True`` also
  scores every proposal in float32 and counts the decisions that differ from float32's on the same proposals (a
  measurement mode). Small margin changes lie inside float16's error band, so at small radii most proposals need
  float32 too (BENCHMARKS.md): the lever pays only where float16 is much faster than float32.

Both levers are off by default; a spec turns them on through ``EvalSpec.extra`` (keys in :data:`OPTION_KEYS`,
absent by default, so the hash of a spec that does not use them is unchanged). Radii in [0, 1] units here.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import Rb201Error
from ..vocab import FLOAT32_PRECISIONS
from .base import Attack, margin
from .square import Fp32Scores, Square

#: ``EvalSpec.extra`` keys read here, with their allowed values.
OPTION_KEYS: dict[str, str] = {
    "square_proposals": "'fp32' (default) or 'fp16-verified'",
    "square_buckets": "an integer >= 1: pad Square's forwards to this many rows times a power of two (0: off)",
    "square_cuda_graphs": "true or false: capture each bucket's forward as a CUDA graph (CUDA only; needs buckets)",
    "square_band_safety": "a number >= 1: safety factor on the measured float16 error band (default 4)",
}
PROPOSALS = ("fp32", "fp16-verified")
#: smallest band factor before the safety factor: two roundings of the largest logit to float16 (2 * 2**-11)
MIN_BAND_RATIO = 2.0**-10
#: a margin change within this fraction of the largest logit is a float32 tie (float32 results of one point move
#: by about 1e-7 of it with the batch it is computed in)
TIE_RATIO = 2.0**-18


@dataclass(frozen=True)
class SquareOptions:
    """Square levers of one evaluation (all off by default)."""

    proposals: str = "fp32"
    buckets: int = 0
    cuda_graphs: bool = False
    band_safety: float = 4.0

    @property
    def active(self) -> bool:
        return self.proposals != "fp32" or self.buckets > 0


def square_options(extra: Any, precision: str = "fp32") -> SquareOptions:
    """Read and validate the ``square_*`` entries of ``EvalSpec.extra`` (a dict or tuple of pairs); other keys are
    left alone. ``precision`` is the spec's: float16 proposals need a float32 reference (``fp32`` or ``tf32``)."""
    d = dict(extra or ())
    unknown = sorted(k for k in d if str(k).startswith("square_") and k not in OPTION_KEYS)
    if unknown:
        allowed = "; ".join(f"{k}: {v}" for k, v in OPTION_KEYS.items())
        raise Rb201Error(f"unknown Square option(s) {unknown} in the spec's extra; allowed: {allowed}")
    proposals = d.get("square_proposals", "fp32")
    if proposals not in PROPOSALS:
        raise Rb201Error(f"square_proposals {proposals!r} not allowed; allowed: {', '.join(PROPOSALS)}")
    buckets = d.get("square_buckets", 0)
    if isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 0:
        raise Rb201Error(f"square_buckets {buckets!r} not allowed; allowed: {OPTION_KEYS['square_buckets']}")
    graphs = d.get("square_cuda_graphs", False)
    if not isinstance(graphs, bool):
        raise Rb201Error(f"square_cuda_graphs {graphs!r} not allowed; allowed: true or false")
    if graphs and buckets == 0:
        raise Rb201Error("square_cuda_graphs needs square_buckets >= 1 (a graph is captured per bucket size)")
    safety = d.get("square_band_safety", 4.0)
    if isinstance(safety, bool) or not isinstance(safety, int | float) or not math.isfinite(safety) or safety < 1:
        raise Rb201Error(f"square_band_safety {safety!r} not allowed; allowed: a number >= 1")
    if graphs and precision == "amp":
        raise Rb201Error(
            f"square_cuda_graphs cannot capture autocast (precision 'amp'); use {' or '.join(FLOAT32_PRECISIONS)}"
        )
    if proposals != "fp32" and precision not in FLOAT32_PRECISIONS:
        raise Rb201Error(
            f"square_proposals {proposals!r} verifies float16 in float32 and needs precision "
            f"{' or '.join(FLOAT32_PRECISIONS)}, not {precision!r}"
        )
    return SquareOptions(str(proposals), int(buckets), bool(graphs), float(safety))


def apply_square_options(attack: Attack, options: SquareOptions) -> Attack:
    """``attack`` itself, or a :class:`FastSquare` with the same budget when it is Square and a lever is on."""
    if not options.active or not isinstance(attack, Square) or isinstance(attack, FastSquare):
        return attack
    return FastSquare(
        norm=attack.norm,
        n_queries=attack.n_queries,
        p_init=attack.p_init,
        n_restarts=attack.n_restarts,
        proposals=options.proposals,
        buckets=options.buckets,
        cuda_graphs=options.cuda_graphs,
        band_safety=options.band_safety,
    )


@dataclass
class SquareStats:
    """Counters of the levers (rows are image rows; several runs accumulate)."""

    forward_calls: int = 0  # forwards through a BucketedForward
    rows: int = 0  # real rows sent through a BucketedForward
    padded_rows: int = 0  # rows computed including the padding
    graph_captures: int = 0
    graph_replays: int = 0
    fp16_rows: int = 0  # proposals (and starting points) scored in float16
    fp32_proposal_rows: int = 0  # proposals re-evaluated in float32
    fp32_best_rows: int = 0  # best points evaluated in float32 to settle a decision
    fp32_final_rows: int = 0  # returned points re-evaluated in float32 at the end
    proposals: int = 0
    band_violations: int = 0  # float32 checks that found |m16 - m32| above the band in force
    band_ratio: float = 0.0  # the largest band factor c in force (before the safety factor is applied: c / safety)
    audit_decisions: int = 0
    audit_disagreements: int = 0  # decisions unlike float32's on the same proposal
    audit_ties: int = 0  # of which float32 ties (see Fp16VerifiedScores._audit)

    def reevaluated_fraction(self) -> float:
        """Share of proposals scored again in float32."""
        return self.fp32_proposal_rows / self.proposals if self.proposals else 0.0

    def as_dict(self) -> dict[str, float]:
        out: dict[str, float] = dict(vars(self))
        out["reevaluated_fraction"] = self.reevaluated_fraction()
        out["audit_disagreements_beyond_ties"] = self.audit_disagreements - self.audit_ties
        return out


# ---- bucket padding and CUDA graphs -----------------------------------------------------------------------------
def bucket_size(n: int, min_rows: int) -> int:
    """Smallest ``min_rows * 2**k >= n`` (rows)."""
    if n < 1 or min_rows < 1:
        raise Rb201Error(f"bucket_size needs n >= 1 and min_rows >= 1, got {n} and {min_rows}")
    return min_rows << max(0, math.ceil(math.log2(n / min_rows))) if n > min_rows else min_rows


class _Graph:
    """One captured forward of ``rows`` rows with static input and output buffers."""

    def __init__(self, model: nn.Module, like: torch.Tensor, rows: int, pool: Any) -> None:
        self.x = torch.zeros((rows, *like.shape[1:]), dtype=like.dtype, device=like.device)
        side = torch.cuda.Stream(device=like.device)
        side.wait_stream(torch.cuda.current_stream(like.device))
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(2):  # warm-up: lazy initialisation and cached constants happen outside the capture
                model(self.x)
        torch.cuda.current_stream(like.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool), torch.no_grad():
            self.y = model(self.x)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        self.x[:n].copy_(x)
        self.graph.replay()
        return self.y[:n].clone()


class BucketedForward(nn.Module):
    """``model`` with every batch padded to ``min_rows * 2**k`` rows (same outputs for the real rows); with
    ``graphs`` and a CUDA input, each bucket's forward is a captured CUDA graph. Inference only (no gradients)."""

    def __init__(self, model: nn.Module, min_rows: int = 16, graphs: bool = False, stats: SquareStats | None = None):
        super().__init__()
        if min_rows < 1:
            raise Rb201Error(f"min_rows {min_rows} not allowed; allowed: an integer >= 1")
        self.model = model
        self.min_rows = int(min_rows)
        self.graphs = bool(graphs)
        self.stats = stats if stats is not None else SquareStats()
        self._captured: dict[tuple[Any, ...], _Graph] = {}
        self._pool: Any = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if n == 0:
            return self.model(x)
        rows = bucket_size(n, self.min_rows)
        self.stats.forward_calls += 1
        self.stats.rows += n
        self.stats.padded_rows += rows
        if self.graphs and x.is_cuda:
            key = (rows, tuple(x.shape[1:]), x.dtype, x.device)
            g = self._captured.get(key)
            if g is None:
                if self._pool is None:
                    self._pool = torch.cuda.graph_pool_handle()
                g = self._captured[key] = _Graph(self.model, x, rows, self._pool)
                self.stats.graph_captures += 1
            self.stats.graph_replays += 1
            return g(x)
        if rows == n:
            return self.model(x)
        pad = x.new_zeros((rows - n, *x.shape[1:]))
        return self.model(torch.cat([x, pad]))[:n]


class HalfModel(nn.Module):
    """A float16 copy of ``model`` that takes float32 inputs and returns float32 logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.half()).float()


# ---- float16 proposals verified in float32 ----------------------------------------------------------------------
class Fp16VerifiedScores(Fp32Scores):
    """Square's float32 accept rule, decided from float16 margins where the measured error band allows it and
    from float32 margins everywhere else (see the module docstring). State is kept per row of the run."""

    def __init__(
        self, model32: nn.Module, model16: nn.Module, safety: float, stats: SquareStats, audit: bool = False
    ) -> None:
        super().__init__(model32)
        self.model16 = model16
        self.safety = float(safety)
        self.stats = stats
        self.audit = audit

    @staticmethod
    def _ratio(m16: torch.Tensor, m32: torch.Tensor, scale: torch.Tensor) -> float:
        """Largest ``|m16 - m32| / scale`` over the rows where float16 stayed finite (0 if none)."""
        r = (m16 - m32).abs() / scale.clamp_min(1e-30)
        r = r[torch.isfinite(r)]
        return float(r.max()) if r.numel() else 0.0

    def _check_band(self, m16: torch.Tensor, m32: torch.Tensor, scale: torch.Tensor) -> None:
        """Count float32 checks outside the band in force, and widen the band to cover them (rows where float16
        overflowed are always decided in float32 and do not count)."""
        ok = torch.isfinite(m16) & torch.isfinite(scale)
        bad = ok & ((m16 - m32).abs() > self.c * scale)
        if bad.any():
            self.stats.band_violations += int(bad.sum())
            self.c = max(self.c, self.safety * self._ratio(m16[bad], m32[bad], scale[bad]))
            self.stats.band_ratio = max(self.stats.band_ratio, self.c / self.safety)

    def start(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lg32 = self.model(x).float()
        m32 = margin(lg32, y)
        lg16 = self.model16(x)
        m16 = margin(lg16, y)
        scale = lg16.abs().amax(1)
        self.stats.fp16_rows += x.shape[0]
        ratio = max(MIN_BAND_RATIO, self._ratio(m16, m32, scale))
        self.c = self.safety * ratio
        self.stats.band_ratio = max(self.stats.band_ratio, ratio)
        self.m16_best = m16.clone()
        self.scale_best = scale.clone()
        self.m32_best = m32.clone()
        self.known = torch.ones_like(m32, dtype=torch.bool)  # float32 margin of the best point known
        self.exact = torch.ones_like(m32, dtype=torch.bool)  # float32 logits of the best point held
        self.m32_true = m32.clone() if self.audit else None
        return lg32, m32

    def step(
        self, rows: torch.Tensor, cand: torch.Tensor, y: torch.Tensor, best: torch.Tensor, m_best: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r = rows.numel()
        self.stats.proposals += r
        self.stats.fp16_rows += r
        lg16 = self.model16(cand)
        m16 = margin(lg16, y)
        scale = lg16.abs().amax(1)
        band = self.c * scale
        known = self.known[rows]
        m32b = self.m32_best[rows]
        m16b = self.m16_best[rows]
        band_b = self.c * self.scale_best[rows]
        lo = torch.where(known, m32b, m16b - band_b)  # the best's float32 margin lies in [lo, hi]
        hi = torch.where(known, m32b, m16b + band_b)
        finite = torch.isfinite(lg16).all(1) & torch.isfinite(band)
        safe = finite & (m16 > band)  # cannot fool
        keep = safe & (m16 + band < lo)
        drop = safe & (m16 - band >= hi)
        need = ~(keep | drop)

        m_out = m16.clone()
        lg_out = lg16.clone()
        from32 = torch.zeros(r, dtype=torch.bool, device=cand.device)
        if need.any():
            sel = need.nonzero()[:, 0]
            lg32 = self.model(cand[sel]).float()
            m32 = margin(lg32, y[sel])
            self.stats.fp32_proposal_rows += sel.numel()
            self._check_band(m16[sel], m32, scale[sel])
            m_out[sel], lg_out[sel] = m32, lg32
            from32[sel] = True
            # the best's float32 margin is needed where its band straddles the proposal's exact margin
            unsettled = ~known[sel] & (m32 > 0) & (m32 >= lo[sel]) & (m32 < hi[sel])
            if unsettled.any():
                bsel = sel[unsettled]
                lgb = self.model(best[bsel]).float()
                mb = margin(lgb, y[bsel])
                self.stats.fp32_best_rows += bsel.numel()
                self._check_band(m16b[bsel], mb, self.scale_best[rows[bsel]])
                gb = rows[bsel]
                self.m32_best[gb] = mb
                self.known[gb] = True
                m32b[bsel] = mb
                known[bsel] = True
            # known best: float32's rule; otherwise settled by the band: m32 < lo keeps, m32 >= hi drops
            keep[sel] = (m32 <= 0) | torch.where(known[sel], m32 < m32b[sel], m32 < lo[sel])
        if self.audit:
            self._audit(rows, cand, y, keep)
        if keep.any():
            g = rows[keep]
            self.m16_best[g] = m16[keep]
            self.scale_best[g] = scale[keep]
            self.known[g] = from32[keep]
            self.exact[g] = from32[keep]
            self.m32_best[g] = torch.where(from32[keep], m_out[keep], self.m32_best[g])
        return keep, m_out, lg_out

    def _audit(self, rows: torch.Tensor, cand: torch.Tensor, y: torch.Tensor, keep: torch.Tensor) -> None:
        """Score every proposal in float32 too; count decisions that differ from float32's rule, and among them
        the float32 ties (margin change within :data:`TIE_RATIO` of the largest logit: float32 itself decides
        those by the batch the point happens to be computed in)."""
        assert self.m32_true is not None
        lg = self.model(cand).float()
        m32 = margin(lg, y)
        d32 = m32 - self.m32_true[rows]
        ref = (d32 < 0) | (m32 <= 0)
        differ = ref != keep
        self.stats.audit_decisions += rows.numel()
        self.stats.audit_disagreements += int(differ.sum())
        self.stats.audit_ties += int((differ & (d32.abs() <= TIE_RATIO * lg.abs().amax(1))).sum())
        g = rows[keep]
        self.m32_true[g] = m32[keep]

    def finish(self, x_best: torch.Tensor, logits_best: torch.Tensor) -> torch.Tensor:
        stale = (~self.exact).nonzero()[:, 0]
        if stale.numel():
            logits_best[stale] = self.model(x_best[stale]).float()
            self.stats.fp32_final_rows += stale.numel()
        return logits_best


@dataclass(frozen=True)
class FastSquare(Square):
    """Square (same algorithm, budget and random stream) with the GPU levers: ``buckets`` (0: off; else the
    smallest bucket in rows), ``cuda_graphs`` (CUDA only), ``proposals`` (``fp32`` or ``fp16-verified``) and
    ``band_safety``. ``audit`` scores every proposal in float32 as well (measurement only). ``stats`` accumulates
    counters over the runs of this instance."""

    proposals: str = "fp32"
    buckets: int = 0
    cuda_graphs: bool = False
    band_safety: float = 4.0
    audit: bool = False
    stats: SquareStats = field(default_factory=SquareStats, compare=False, repr=False)

    name: ClassVar[str] = "aa_square"

    def __post_init__(self) -> None:
        super().__post_init__()
        square_options(
            {
                "square_proposals": self.proposals,
                "square_buckets": self.buckets,
                "square_cuda_graphs": self.cuda_graphs,
                "square_band_safety": self.band_safety,
            }
        )

    def params(self) -> dict[str, object]:
        out = super().params()
        out.pop("stats", None)
        return out

    def _scores(self, model: nn.Module) -> Fp32Scores:
        fwd32: nn.Module = model
        if self.buckets:
            fwd32 = BucketedForward(model, self.buckets, self.cuda_graphs, self.stats)
        if self.proposals == "fp32":
            return Fp32Scores(fwd32)
        fwd16: nn.Module = HalfModel(model)
        if self.buckets:
            fwd16 = BucketedForward(fwd16, self.buckets, self.cuda_graphs, self.stats)
        return Fp16VerifiedScores(fwd32, fwd16, self.band_safety, self.stats, self.audit)
