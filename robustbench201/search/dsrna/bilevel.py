"""The DSRNA search: differentiable search of robust NB201 cells (Hosseini, Yang & Xie, CVPR 2021; PROTOCOL.md
section 7).

Bilevel DARTS search on :class:`~robustbench201.models.supernet.SearchSupernet`: ``min_alpha L_val(w*, alpha) -
sum_m gamma_m s_m R_m(w*, alpha)`` with ``w* = argmin_w L_train(w, alpha)`` approximated by alternating steps. Each
step first updates alpha on a validation batch, then w on a training batch (the order of DARTS).
``second_order=True`` uses DARTS' unrolled gradient (one virtual SGD step, Hessian-vector product by central finite
differences). ``s_m`` is 1 in ``absolute`` gamma mode (the paper's objective); in ``relative`` mode it is the
validation loss over |R_m| at the start (:func:`calibrate`), fixed for the whole search, so the objective keeps the
paper's form with a gamma that means the same for every metric. Settings and the sources of their defaults:
:mod:`.config`. ``eps`` is in pixel units of 1/255.

Every epoch records, per regulariser, the mean raw R, the mean term ``gamma s R`` and that term as a fraction of the
validation loss (``ratio_<term>``), beside the losses and accuracies.

Deterministic for a seed: weights and alphas come from :func:`~robustbench201.models.supernet.create_supernet`, the
data order from a ``torch.Generator``; all BN layers use batch statistics, so forwards never change module state.
A checkpoint is written atomically after every epoch; ``resume=True`` continues from it bit-exactly (with a fixed
``a_lr``; the automatic rate follows the epoch count, so extending a search changes it for the remaining epochs).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...atomic import atomic_path, write_text_atomic
from ...data.base import ImageSet
from ...errors import CheckpointError, Rb201Error
from ...models.supernet import SearchSupernet, create_supernet
from .config import DSRNAConfig
from .regularizers import certified_regularizer, jacobian_regularizer, table_regularizer
from .result import CHECKPOINT, RESULT, DSRNAResult
from .table_prior import TablePrior, dead_mass, load_prior

__all__ = ["arch_objective", "calibrate", "load_search_data", "search", "table_prior"]

log = logging.getLogger(__name__)


def load_search_data(dataset: str, n_train: int, seed: int, root: str | Path | None = None) -> ImageSet:
    """``n_train`` training images of ``dataset`` chosen with ``seed`` (via ``data.readers.load_dataset``)."""
    from ...data.readers import load_dataset

    return load_dataset(dataset, root, "train", n=n_train, seed=seed)


def _to_float(images: np.ndarray, idx: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(images[idx.numpy()]).float().div_(255.0)


def _w_lr(cfg: DSRNAConfig, epoch: int) -> float:
    """Cosine schedule over ``cfg.epochs`` from the epoch index (resume-exact, extendable)."""
    return cfg.w_lr_min + 0.5 * (cfg.w_lr - cfg.w_lr_min) * (1 + math.cos(math.pi * epoch / cfg.epochs))


def table_prior(cfg: DSRNAConfig) -> TablePrior:
    """The results-table prior of ``cfg`` (its surrogate column, dataset, source and chance handling), read once per
    process."""
    assert cfg.surrogate_dataset is not None  # resolved by DSRNAConfig
    return load_prior(cfg.surrogate_dataset, cfg.surrogate_column, cfg.surrogate_source, cfg.surrogate_chance)


def regularizers(model: SearchSupernet, x: torch.Tensor, y: torch.Tensor, cfg: DSRNAConfig) -> dict[str, torch.Tensor]:
    """The raw regularisers of ``cfg.metric`` on the first ``cfg.reg_batch`` images of a batch (differentiable in
    the alphas and weights): ``{"jacobian": R_Jac, "certified": R_CB, "table": R_table}`` as the metric uses them
    (R_table reads the alphas only)."""
    xr, yr = x[: cfg.reg_batch], y[: cfg.reg_batch]
    out: dict[str, torch.Tensor] = {}
    if "table" in cfg.terms:
        estimator = cfg.table_estimator or "expectation"
        out["table"] = table_regularizer(model.alphas, table_prior(cfg), estimator, cfg.exclude_none)
    if "jacobian" in cfg.terms:
        xg = xr.detach().clone().requires_grad_(True)
        out["jacobian"] = jacobian_regularizer(model(xg), xg, cfg.eps, cfg.q)
    if "certified" in cfg.terms:
        out["certified"] = certified_regularizer(model, xr, yr, cfg.eps, cfg.bound)
    return out


def arch_objective(
    model: SearchSupernet, x: torch.Tensor, y: torch.Tensor, cfg: DSRNAConfig, scale: dict[str, float] | None = None
) -> tuple[torch.Tensor, dict[str, float]]:
    """``L_val - sum_m gamma_m s_m R_m`` on a validation batch, and its parts as floats: ``val_loss``,
    ``val_acc``, ``dead_mass`` (the probability of the dead cells under the architecture distribution), and per
    regulariser ``R_<m>`` (raw) and ``term_<m>`` (``gamma_m s_m R_m``). ``scale``: the ``s_m`` (default 1, absolute
    mode)."""
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    parts = {"val_loss": float(loss.detach()), "val_acc": float((logits.detach().argmax(1) == y).float().mean())}
    parts["dead_mass"] = dead_mass(model.alphas_softmax().double().numpy())
    obj = loss
    for name, r in regularizers(model, x, y, cfg).items():
        weight = cfg.gamma(name) * (scale or {}).get(name, 1.0)
        obj = obj - weight * r
        parts[f"R_{name}"] = float(r.detach())
        parts[f"term_{name}"] = weight * float(r.detach())
    return obj, parts


def calibrate(
    model: SearchSupernet, images: np.ndarray, labels: torch.Tensor, val_idx: torch.Tensor, cfg: DSRNAConfig
) -> dict[str, float]:
    """The ``s_m`` of relative gamma mode: mean validation loss over mean |R_m| on the first ``cfg.calib_batches``
    validation batches (in index order) of the initial supernet; 1 for every term in absolute mode."""
    if cfg.gamma_mode == "absolute" or not cfg.terms:
        return dict.fromkeys(cfg.terms, 1.0)
    device = labels.device
    bs = min(cfg.batch_size, len(val_idx))
    losses: list[float] = []
    regs: dict[str, list[float]] = {t: [] for t in cfg.terms}
    for b in range(min(cfg.calib_batches, max(1, len(val_idx) // bs))):
        iv = val_idx[b * bs : (b + 1) * bs]
        x, y = _to_float(images, iv).to(device), labels[iv.to(device)]
        with torch.no_grad():
            losses.append(float(F.cross_entropy(model(x), y)))
        for name, r in regularizers(model, x, y, cfg).items():
            regs[name].append(abs(float(r.detach())))
    loss = float(np.mean(losses))
    scale = {}
    for name, values in regs.items():
        mag = float(np.mean(values))
        if not (math.isfinite(mag) and mag > 0):
            raise Rb201Error(f"cannot calibrate gamma: |R_{name}| is {mag} at the start; use gamma_mode='absolute'")
        scale[name] = loss / mag
    return scale


def _unrolled_arch_grad(
    model: SearchSupernet,
    w_opt: torch.optim.SGD,
    xt: torch.Tensor,
    yt: torch.Tensor,
    xv: torch.Tensor,
    yv: torch.Tensor,
    cfg: DSRNAConfig,
    lr: float,
    scale: dict[str, float],
) -> dict[str, float]:
    """DARTS second-order alpha gradient into ``alphas.grad``; returns the objective's parts at the virtual
    weights."""
    params = model.weight_parameters()
    alpha = model.alphas
    saved = [p.detach().clone() for p in params]
    # virtual step w' = w - lr * (momentum * buf + grad L_train + wd * w), as DARTS' _compute_unrolled_model
    grads = torch.autograd.grad(F.cross_entropy(model(xt), yt), params)
    with torch.no_grad():
        for p, g in zip(params, grads):
            buf = w_opt.state.get(p, {}).get("momentum_buffer")
            step = g + cfg.w_weight_decay * p
            if buf is not None:
                step = step + cfg.w_momentum * buf
            p.sub_(lr * step)
    obj, parts = arch_objective(model, xv, yv, cfg, scale)
    g_all = torch.autograd.grad(obj, [alpha, *params], allow_unused=True)
    d_alpha = g_all[0] if g_all[0] is not None else torch.zeros_like(alpha)
    d_w = [g if g is not None else torch.zeros_like(p) for g, p in zip(g_all[1:], params)]
    norm = torch.sqrt(sum((g * g).sum() for g in d_w))
    r = 0.01 / float(norm) if float(norm) > 0 else 0.0
    hvp = torch.zeros_like(alpha)
    if r > 0:
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for p, w0, g in zip(params, saved, d_w):
                    p.copy_(w0 + sign * r * g)
            (ga,) = torch.autograd.grad(F.cross_entropy(model(xt), yt), alpha)
            hvp = hvp + sign * ga
        hvp = hvp / (2 * r)
    with torch.no_grad():
        for p, w0 in zip(params, saved):
            p.copy_(w0)
    alpha.grad = (d_alpha - lr * hvp).detach()
    return parts


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_checkpoint(path: Path, cfg: DSRNAConfig) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file: say which, never guess
        raise CheckpointError(f"cannot read DSRNA checkpoint {path}: {exc}") from None
    try:
        old = DSRNAConfig.from_json(state.get("config", {})).identity()
    except Rb201Error as exc:
        raise CheckpointError(f"checkpoint {path} holds settings this version cannot read: {exc}") from None
    new = cfg.identity()
    if old != new:
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise CheckpointError(
            f"checkpoint {path} was written with other settings ({', '.join(diff)}); only --epochs may change on resume"
        )
    return state


def search(
    cfg: DSRNAConfig,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    data: ImageSet | None = None,
    data_root: str | Path | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    threads: int | None = None,
    device: str = "cpu",
) -> DSRNAResult:
    """Run a DSRNA search. ``data`` overrides the training images (else ``cfg.n_train`` images of
    ``cfg.dataset`` from ``data_root``). With ``out``, a checkpoint is written atomically after each epoch and the
    result JSON at the end; ``resume=True`` continues from ``out``'s checkpoint (``cfg.epochs`` may be larger than
    the checkpoint's). ``on_epoch(epoch, stats)`` is called after every epoch (0-based). ``threads`` sets torch's
    intra-op threads for the duration of the call (restored afterwards): on a busy CPU, 1 thread avoids the
    OpenMP spin-waiting that makes the Jacobian's double-backward passes many times slower. ``device``: where
    the supernet and batches live (``"cuda"`` for a GPU); the data order is drawn on the CPU either way."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise Rb201Error(f"unknown torch device {device!r}; allowed: 'cpu', 'cuda', 'cuda:N', 'mps'") from None
    if threads is None:
        return _search(cfg, out, resume, data, data_root, on_epoch, dev)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise Rb201Error(f"threads must be an integer >= 1, got {threads!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _search(cfg, out, resume, data, data_root, on_epoch, dev)
    finally:
        torch.set_num_threads(before)


@dataclass
class _Run:
    """The state of a running search: supernet, optimisers, data order, and what was recorded so far."""

    model: SearchSupernet
    w_opt: torch.optim.SGD
    a_opt: torch.optim.Adam
    gen: torch.Generator
    alpha_history: list[list[list[float]]]
    history: list[dict[str, float]] = field(default_factory=list)
    epoch: int = 0
    scale: dict[str, float] | None = None

    def state(self, cfg: DSRNAConfig) -> dict[str, Any]:
        """What the checkpoint holds after :attr:`epoch` epochs."""
        return {
            "config": cfg.to_json(),
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "w_opt": self.w_opt.state_dict(),
            "a_opt": self.a_opt.state_dict(),
            "generator": self.gen.get_state(),
            "alpha_history": self.alpha_history,
            "history": self.history,
            "reg_scale": self.scale,
        }

    def restore(self, state: dict[str, Any], a_lr: float) -> None:
        """Continue from a checkpoint's ``state``; the architecture lr is ``a_lr`` (the automatic rate follows the
        possibly extended epoch count)."""
        self.model.load_state_dict(state["model"])
        self.w_opt.load_state_dict(state["w_opt"])
        self.a_opt.load_state_dict(state["a_opt"])
        for g in self.a_opt.param_groups:
            g["lr"] = a_lr
        self.gen.set_state(state["generator"])
        self.alpha_history, self.history, self.epoch = state["alpha_history"], state["history"], state["epoch"]
        self.scale = {k: float(v) for k, v in state["reg_scale"].items()}


def _new_run(cfg: DSRNAConfig, data: ImageSet, a_lr: float, device: torch.device) -> _Run:
    """The seeded supernet for ``data``'s image shape and DARTS' two optimisers."""
    c, h, _ = data.shape
    model = create_supernet(
        cfg.dataset, channels=cfg.channels, n_cells=cfg.n_cells, in_channels=c, resolution=h, seed=cfg.seed
    )
    model.to(device).train()
    w_opt = torch.optim.SGD(
        model.weight_parameters(),
        lr=cfg.w_lr,
        momentum=cfg.w_momentum,
        nesterov=cfg.w_nesterov,
        weight_decay=cfg.w_weight_decay,
    )
    a_opt = torch.optim.Adam(model.arch_parameters(), lr=a_lr, betas=cfg.a_betas, weight_decay=cfg.a_weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    return _Run(model, w_opt, a_opt, gen, [model.alphas_softmax().tolist()])


def _run_epoch(run: _Run, cfg: DSRNAConfig, data: ImageSet, labels: torch.Tensor, n_w: int, a_lr: float) -> None:
    """One epoch of alternating steps (alpha on a validation batch, then w on a training batch); appends the epoch's
    mean statistics and softmax alphas to the run and advances its epoch."""
    t0 = time.perf_counter()
    n, steps, device = len(data), cfg.steps_per_epoch(len(data)), labels.device
    model, scale = run.model, run.scale or {}
    bs_w, bs_v = min(cfg.batch_size, n_w), min(cfg.batch_size, n - n_w)
    lr = _w_lr(cfg, run.epoch)
    for g in run.w_opt.param_groups:
        g["lr"] = lr
    order_w = torch.randperm(n_w, generator=run.gen)
    order_v = torch.randperm(n - n_w, generator=run.gen) + n_w
    sums: dict[str, float] = {"train_loss": 0.0, "train_acc": 0.0}
    for s in range(steps):
        it = order_w[s * bs_w : (s + 1) * bs_w]
        iv = order_v.roll(-((s * bs_v) % (n - n_w)))[:bs_v]
        xt, yt = _to_float(data.images, it).to(device), labels[it.to(device)]
        xv, yv = _to_float(data.images, iv).to(device), labels[iv.to(device)]
        # architecture step (validation batch)
        run.a_opt.zero_grad(set_to_none=True)
        if cfg.second_order:
            parts = _unrolled_arch_grad(model, run.w_opt, xt, yt, xv, yv, cfg, lr, scale)
        else:
            obj, parts = arch_objective(model, xv, yv, cfg, scale)
            (model.alphas.grad,) = torch.autograd.grad(obj, [model.alphas])
        run.a_opt.step()
        # weight step (training batch)
        run.w_opt.zero_grad(set_to_none=True)
        logits = model(xt)
        loss = F.cross_entropy(logits, yt)
        loss.backward()
        model.alphas.grad = None
        torch.nn.utils.clip_grad_norm_(model.weight_parameters(), cfg.grad_clip)
        run.w_opt.step()
        sums["train_loss"] += float(loss.detach())
        sums["train_acc"] += float((logits.argmax(1) == yt).float().mean())
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + v
    stats = {k: v / steps for k, v in sums.items()}
    for name in cfg.terms:
        stats[f"ratio_{name}"] = abs(stats[f"term_{name}"]) / max(stats["val_loss"], 1e-12)
    stats |= {"epoch": float(run.epoch), "w_lr": lr, "a_lr": a_lr, "seconds": time.perf_counter() - t0}
    stats["steps"] = float(steps)
    run.history.append(stats)
    run.alpha_history.append(model.alphas_softmax().tolist())
    run.epoch += 1
    log.info("epoch %d: %s; derived %s", run.epoch - 1, stats, model.derive(cfg.exclude_none).string)


def _search(
    cfg: DSRNAConfig,
    out: str | Path | None,
    resume: bool,
    data: ImageSet | None,
    data_root: str | Path | None,
    on_epoch: Callable[[int, dict[str, float]], None] | None,
    device: torch.device,
) -> DSRNAResult:
    out_dir = Path(out) if out is not None else None
    if resume and out_dir is None:
        raise Rb201Error("resume=True needs the output directory holding the checkpoint")
    if data is None:
        data = load_search_data(cfg.dataset, cfg.n_train, cfg.seed, data_root)
    n = len(data)
    n_w = int(n * cfg.split)
    if n_w < 2 or n - n_w < 2:
        raise Rb201Error(f"the search needs >= 2 weight and >= 2 validation images; {n} images at split {cfg.split}")
    steps = cfg.steps_per_epoch(n)
    a_lr = cfg.resolved_a_lr(steps)
    run = _new_run(cfg, data, a_lr, device)
    labels = torch.from_numpy(np.asarray(data.labels, dtype=np.int64)).to(device)
    ckpt = out_dir / CHECKPOINT if out_dir is not None else None
    if resume and ckpt is not None and ckpt.is_file():
        run.restore(_load_checkpoint(ckpt, cfg), a_lr)
        log.info("resumed DSRNA search from %s after epoch %d", ckpt, run.epoch)
    elif resume:
        log.info("no checkpoint in %s: starting a fresh search", out_dir)
    elif ckpt is not None and ckpt.is_file():
        log.warning("%s exists and resume=False: a fresh search will replace it", ckpt)
    if run.scale is None:
        run.scale = calibrate(run.model, data.images, labels, torch.arange(n_w, n), cfg)
    if run.epoch >= cfg.epochs:
        log.info("checkpoint already holds %d epochs (asked %d)", run.epoch, cfg.epochs)
    while run.epoch < cfg.epochs:
        _run_epoch(run, cfg, data, labels, n_w, a_lr)
        if ckpt is not None:
            _save_checkpoint(ckpt, run.state(cfg))
        if on_epoch is not None:
            on_epoch(run.epoch - 1, run.history[-1])
    result = DSRNAResult(
        cfg,
        run.model.derive(cfg.exclude_none),
        run.alpha_history,
        run.history,
        float(sum(h["seconds"] for h in run.history)),
        a_lr,
        steps,
        dict(run.scale),
        {"data_indices": None if data.indices is None else [int(i) for i in data.indices]},
    )
    if out_dir is not None:
        write_text_atomic(out_dir / RESULT, json.dumps(result.to_json(), indent=1))
    return result
