"""Epsilon grids as one job, with per-epsilon or cumulative semantics (PROTOCOL.md section 6).

* Clean-misclassified points are never attacked (they count as not robust at every epsilon; their "adversarial"
  logits are the clean logits).
* ``per-epsilon``: every clean-correct point is attacked at every epsilon on its own; the epsilons of a grid are
  stacked into one batch (FGSM: one gradient for all). Only exact shortcuts are taken, so every value equals that
  attack run alone at that epsilon. The cumulative numbers are derived for free from the same flags
  (:func:`derive_cumulative`).
* ``cumulative``: the nested cascade; epsilons in increasing order, only points still robust at every smaller
  epsilon are attacked at the next one. A point broken at a smaller epsilon is broken at every larger one (its
  adversarial point lies in every larger ball) and keeps the logits of the point that broke it.

A cascade of attacks (``attack.n_stages`` > 0, e.g. ``autoattack``) also records, per (epsilon, point), the stage that
broke it (:attr:`GridResult.stage`; 0: before any stage, i.e. clean-misclassified or, cumulatively, broken at a smaller
epsilon).

Batches shrink by halves on ``torch.OutOfMemoryError`` (:class:`BatchPolicy`); the attack's generator is rewound
before the retry, so a run that halved gives the numbers of a run that started at the smaller batch size.
Epsilons are in 1/255 units here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import Rb201Error, check_choice
from ..vocab import SEMANTICS
from .base import Attack

log = logging.getLogger(__name__)


class BatchPolicy:
    """Rows per forward pass; halved (down to 1) each time the device runs out of memory."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise Rb201Error(f"batch size {size} out of range; allowed: >= 1")
        self.size = int(size)

    def run(
        self, n: int, fn: Callable[[int, int], None], per_item: int = 1, generator: torch.Generator | None = None
    ) -> None:
        """Call ``fn(start, stop)`` over ``0..n`` in chunks of ``size // per_item`` items, retrying a chunk with
        half the batch after an out-of-memory error. ``generator`` (the one ``fn`` draws from) is rewound to its
        state before the failed chunk, so the failed attempt leaves no trace in the random stream."""
        start = 0
        while start < n:
            step = max(1, self.size // max(1, per_item))
            stop = min(n, start + step)
            state = generator.get_state() if generator is not None else None
            try:
                fn(start, stop)
            except torch.OutOfMemoryError:
                if self.size <= 1 and step <= 1:
                    raise
                if generator is not None and state is not None:
                    generator.set_state(state)
                self.size = max(1, self.size // 2)
                log.warning("out of memory with %d items per batch; retrying with batch size %d", step, self.size)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                continue
            start = stop


def load_images(images: np.ndarray | torch.Tensor, idx: np.ndarray, device: torch.device) -> torch.Tensor:
    """Rows ``idx`` as float32 in [0, 1] on ``device`` (uint8 arrays are converted on the device)."""
    if isinstance(images, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(images[idx])).to(device)
        return t.float().div_(255.0) if t.dtype == torch.uint8 else t.float()
    return images[torch.as_tensor(idx, device=images.device)].to(device=device, dtype=torch.float32)


@dataclass(frozen=True)
class GridResult:
    """Outcome of one attack over an epsilon grid: per (epsilon, point) correctness and logits (CPU)."""

    epsilons: tuple[float, ...]  # 1/255 units, ascending
    semantics: str
    correct: np.ndarray  # (E, N) bool
    logits: torch.Tensor  # (E, N, K) float32
    x_adv: torch.Tensor | None = None  # (E, N, C, H, W) when requested
    #: (E, N) int8 for cascades: 0 = broken before the first stage (clean-misclassified, or under cumulative semantics
    #: broken at a smaller epsilon), k = broken by stage k (1-based), n_stages + 1 = robust
    stage: np.ndarray | None = None


def derive_cumulative_stages(correct: np.ndarray, stage: np.ndarray) -> np.ndarray:
    """Cumulative stages from per-epsilon ones (epsilons ascending along axis 0): a point broken at a smaller
    epsilon is broken before the first stage at every larger one (0); otherwise it keeps its own stage."""
    cum = np.logical_and.accumulate(correct, axis=0)
    out = stage.copy()
    out[1:] = np.where(cum[:-1], stage[1:], 0)
    return out


def derive_cumulative(correct: np.ndarray, logits: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
    """Cumulative worst case from per-epsilon flags (epsilons ascending along axis 0): correct at eps_e iff
    correct at every eps <= eps_e; logits are those of the first breaking epsilon once broken."""
    cum = np.logical_and.accumulate(correct, axis=0)
    out = logits.clone()
    for e in range(1, correct.shape[0]):
        carried = ~cum[e - 1]  # broken earlier: keep the breaking point's logits
        if carried.any():
            out[e, torch.from_numpy(carried)] = out[e - 1, torch.from_numpy(carried)]
    return cum, out


def run_grid(
    attack: Attack,
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    labels: torch.Tensor,
    clean_logits: torch.Tensor,
    epsilons: tuple[float, ...] | list[float],
    semantics: str,
    generator: torch.Generator,
    batch: BatchPolicy,
    device: torch.device | str = "cpu",
    keep_adv: bool = False,
) -> GridResult:
    """Run ``attack`` over ``epsilons`` (1/255 units) on all points (uint8 N x C x H x W or float in [0, 1]).

    ``clean_logits`` (N x K, CPU) decide which points are attacked. Returns flags with the requested semantics."""
    check_choice("semantics", semantics, SEMANTICS)
    eps = tuple(float(e) for e in epsilons)
    if list(eps) != sorted(set(eps)):
        raise Rb201Error(f"epsilons {eps} must be unique and ascending (1/255 units)")
    device = torch.device(device)
    labels = labels.cpu()
    n, k = clean_logits.shape
    n_eps = len(eps)
    clean_ok = (clean_logits.argmax(1) == labels).numpy()
    correct = np.zeros((n_eps, n), dtype=bool)
    logits = clean_logits.float().unsqueeze(0).repeat(n_eps, 1, 1)
    x_adv = None
    stage = np.zeros((n_eps, n), dtype=np.int8) if attack.n_stages else None
    if keep_adv:
        x_adv = torch.stack([load_images(images, np.arange(n), torch.device("cpu"))] * n_eps)
    eps01 = [e / 255.0 for e in eps]

    if semantics == "per-epsilon" or attack.cheap_grid:
        targets = np.flatnonzero(clean_ok)

        def chunk(a: int, b: int) -> None:
            idx = targets[a:b]
            x = load_images(images, idx, device)
            y = labels[idx].to(device)
            out = attack.perturb_grid(model, x, y, eps01, generator)
            m = len(idx)
            correct[:, idx] = ~out.fooled.view(n_eps, m).cpu().numpy()
            logits[:, torch.from_numpy(idx)] = out.logits.view(n_eps, m, -1).float().cpu()
            if x_adv is not None:
                x_adv[:, torch.from_numpy(idx)] = out.x_adv.view(n_eps, m, *x.shape[1:]).cpu()
            if stage is not None and out.stage is not None:
                stage[:, idx] = out.stage.view(n_eps, m).cpu().numpy()

        batch.run(len(targets), chunk, per_item=n_eps, generator=generator)
        if semantics == "cumulative":
            if stage is not None:
                stage = derive_cumulative_stages(correct, stage)
            correct, logits = derive_cumulative(correct, logits)
        return GridResult(eps, semantics, correct, logits, x_adv, stage)

    robust = clean_ok.copy()
    for e_i, e in enumerate(eps01):
        targets = np.flatnonzero(robust)
        if e_i > 0:  # broken earlier: stays broken, keeps the breaking point
            logits[e_i] = logits[e_i - 1]
            if x_adv is not None:
                x_adv[e_i] = x_adv[e_i - 1]

        def chunk(a: int, b: int, e_i: int = e_i, e: float = e, targets: np.ndarray = targets) -> None:
            idx = targets[a:b]
            x = load_images(images, idx, device)
            y = labels[idx].to(device)
            ev = torch.full((len(idx),), e, dtype=x.dtype, device=device)
            out = attack.perturb(model, x, y, ev, generator)
            correct[e_i, idx] = ~out.fooled.cpu().numpy()
            logits[e_i, torch.from_numpy(idx)] = out.logits.float().cpu()
            if x_adv is not None:
                x_adv[e_i, torch.from_numpy(idx)] = out.x_adv.cpu()
            if stage is not None and out.stage is not None:
                stage[e_i, idx] = out.stage.cpu().numpy()

        batch.run(len(targets), chunk, generator=generator)
        robust &= correct[e_i]
    return GridResult(eps, semantics, correct, logits, x_adv, stage)
