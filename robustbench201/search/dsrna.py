"""DSRNA: differentiable search of robust NB201 cells (Hosseini, Yang & Xie, CVPR 2021; PROTOCOL.md section 7).

Bilevel DARTS search on :class:`~robustbench201.models.supernet.SearchSupernet`: ``min_alpha L_val(w*, alpha) -
gamma * R(w*, alpha)`` with ``w* = argmin_w L_train(w, alpha)`` approximated by alternating steps. Each step first
updates alpha on a validation batch, then w on a training batch (the order of DARTS). ``second_order=True`` uses
DARTS' unrolled gradient (one virtual SGD step, Hessian-vector product by central finite differences).

Optimisers, as in DARTS / NB201's DARTS baseline: weights SGD (lr 0.025, cosine to 0.001 over the epochs, set once
per epoch from the epoch index; momentum 0.9; weight decay 3e-4; gradient norm clipped at 5); alphas Adam (lr 3e-4,
betas (0.5, 0.999), weight decay 1e-3). The training images are split in half (DARTS): the first half trains the
weights, the second half the alphas. ``eps`` is in pixel units of 1/255.

Deterministic for a seed: weights and alphas come from :func:`~robustbench201.models.supernet.create_supernet`, the
data order from a ``torch.Generator``; all BN layers use batch statistics, so forwards never change module state.
A checkpoint is written atomically after every epoch; ``resume=True`` continues from it bit-exactly.
"""

from __future__ import annotations

import dataclasses
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

from ..data.base import ImageSet
from ..data.info import canonical_dataset
from ..errors import CheckpointError, Rb201Error, check_choice
from ..models.supernet import SearchSupernet, create_supernet
from ..space import OPS, Arch
from ..store.atomic import atomic_path, write_text_atomic
from .regularizers import BOUND_METHODS, METRICS, certified_regularizer, jacobian_regularizer

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
RESULT = "dsrna_result.json"


@dataclass(frozen=True)
class DSRNAConfig:
    """Settings of one search. ``eps`` in pixel units of 1/255; ``n_train`` images are split half/half into
    weight-training and alpha-validation sets; ``reg_batch`` caps how many validation images per step enter R
    (the Jacobian costs K double-backward passes); ``jacobian_weight``/``certified_weight`` weight the two terms
    of ``combined``; ``exclude_none`` derives the cell without ``none`` (original DARTS; default: NB201's DARTS,
    which keeps ``none`` in the argmax)."""

    dataset: str = "mnist5k"
    metric: str = "jacobian"
    epochs: int = 5
    channels: int = 8
    n_cells: int = 1
    batch_size: int = 64
    n_train: int = 1000
    gamma: float = 0.01
    eps: float = 2.0
    q: float = 1.0
    bound: str = "ibp"
    jacobian_weight: float = 1.0
    certified_weight: float = 1.0
    reg_batch: int = 32
    second_order: bool = False
    exclude_none: bool = False
    seed: int = 0
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    grad_clip: float = 5.0
    a_lr: float = 3e-4
    a_betas: tuple[float, float] = (0.5, 0.999)
    a_weight_decay: float = 1e-3

    def __post_init__(self) -> None:
        object.__setattr__(self, "dataset", canonical_dataset(self.dataset))
        check_choice("metric", self.metric, METRICS)
        check_choice("bound method", self.bound, BOUND_METHODS)
        for name in ("epochs", "channels", "n_cells", "batch_size", "reg_batch"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise Rb201Error(f"{name} must be an integer >= 1, got {v!r}")
        if isinstance(self.n_train, bool) or not isinstance(self.n_train, int) or self.n_train < 4:
            raise Rb201Error(f"n_train must be an integer >= 4 (split half/half), got {self.n_train!r}")
        if not 0 <= self.eps <= 255:
            raise Rb201Error(f"eps must be in [0, 255] (pixel units of 1/255), got {self.eps!r}")
        if not self.q >= 1:
            raise Rb201Error(f"q must be >= 1 (1 is the dual norm of L-inf), got {self.q!r}")
        if not (math.isfinite(self.gamma) and self.gamma >= 0):
            raise Rb201Error(f"gamma must be a finite number >= 0, got {self.gamma!r}")
        object.__setattr__(self, "a_betas", tuple(float(b) for b in self.a_betas))

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"a_betas": list(self.a_betas)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DSRNAConfig:
        d = dict(d)
        d["a_betas"] = tuple(d.get("a_betas", (0.5, 0.999)))
        return cls(**d)


@dataclass(frozen=True)
class DSRNAResult:
    """What a search found: the derived cell, the softmax alphas after each epoch (entry 0: at initialisation;
    each 6 x 5 in NB201 edge and op order), per-epoch losses and timings (seconds)."""

    config: DSRNAConfig
    arch: Arch
    alpha_history: list[list[list[float]]]
    history: list[dict[str, float]]
    total_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def arch_string(self) -> str:
        return self.arch.string

    @property
    def index(self) -> int:
        return self.arch.index

    @property
    def representative(self) -> int:
        """Index of the isomorphism-class representative (the id the table holds)."""
        return self.arch.representative.index

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "rb201-dsrna",
            "config": self.config.to_json(),
            "arch": self.arch_string,
            "index": self.index,
            "representative": self.representative,
            "is_dead": self.arch.is_dead,
            "ops": list(OPS),
            "alpha_history": self.alpha_history,
            "history": self.history,
            "total_seconds": self.total_seconds,
            **self.extra,
        }


def load_search_data(dataset: str, n_train: int, seed: int, root: str | Path | None = None) -> ImageSet:
    """``n_train`` training images of ``dataset`` chosen with ``seed`` (via ``data.readers.load_dataset``)."""
    from ..data.readers import load_dataset

    return load_dataset(dataset, root, "train", n=n_train, seed=seed)


def _to_float(images: np.ndarray, idx: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(images[idx.numpy()]).float().div_(255.0)


def _w_lr(cfg: DSRNAConfig, epoch: int) -> float:
    """Cosine schedule over ``cfg.epochs`` from the epoch index (resume-exact, extendable)."""
    return cfg.w_lr_min + 0.5 * (cfg.w_lr - cfg.w_lr_min) * (1 + math.cos(math.pi * epoch / cfg.epochs))


def arch_objective(
    model: SearchSupernet, x: torch.Tensor, y: torch.Tensor, cfg: DSRNAConfig
) -> tuple[torch.Tensor, float, float]:
    """``L_val - gamma * R`` on a validation batch; returns (objective, L_val, R). R uses the first
    ``cfg.reg_batch`` images (a separate forward when that is fewer than the batch)."""
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    if cfg.metric == "none" or cfg.gamma == 0:
        return loss, float(loss.detach()), 0.0
    xr, yr = x[: cfg.reg_batch], y[: cfg.reg_batch]
    reg = torch.zeros((), dtype=loss.dtype, device=loss.device)
    if cfg.metric in ("jacobian", "combined"):
        xg = xr.detach().clone().requires_grad_(True)
        r = jacobian_regularizer(model(xg), xg, cfg.eps, cfg.q)
        reg = reg + (cfg.jacobian_weight if cfg.metric == "combined" else 1.0) * r
    if cfg.metric in ("certified", "combined"):
        r = certified_regularizer(model, xr, yr, cfg.eps, cfg.bound)
        reg = reg + (cfg.certified_weight if cfg.metric == "combined" else 1.0) * r
    return loss - cfg.gamma * reg, float(loss.detach()), float(reg.detach())


def _unrolled_arch_grad(
    model: SearchSupernet,
    w_opt: torch.optim.SGD,
    xt: torch.Tensor,
    yt: torch.Tensor,
    xv: torch.Tensor,
    yv: torch.Tensor,
    cfg: DSRNAConfig,
    lr: float,
) -> tuple[float, float]:
    """DARTS second-order alpha gradient into ``alphas.grad``; returns (L_val, R) at the virtual weights."""
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
    obj, lval, reg = arch_objective(model, xv, yv, cfg)
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
    return lval, reg


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_checkpoint(path: Path, cfg: DSRNAConfig) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file: say which, never guess
        raise CheckpointError(f"cannot read DSRNA checkpoint {path}: {exc}") from None
    old = dict(state.get("config", {}))
    new = cfg.to_json()
    old.pop("epochs", None)
    new.pop("epochs", None)
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
    if n < 4:
        raise Rb201Error(f"the search needs >= 4 training images, got {n}")
    n_w = n // 2
    c, h, w = data.shape
    model = create_supernet(
        cfg.dataset, channels=cfg.channels, n_cells=cfg.n_cells, in_channels=c, resolution=h, seed=cfg.seed
    )
    model.to(device).train()
    w_opt = torch.optim.SGD(
        model.weight_parameters(), lr=cfg.w_lr, momentum=cfg.w_momentum, weight_decay=cfg.w_weight_decay
    )
    a_opt = torch.optim.Adam(model.arch_parameters(), lr=cfg.a_lr, betas=cfg.a_betas, weight_decay=cfg.a_weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    alpha_history = [model.alphas_softmax().tolist()]
    history: list[dict[str, float]] = []
    start_epoch = 0
    ckpt = out_dir / CHECKPOINT if out_dir is not None else None
    if resume and ckpt is not None and ckpt.is_file():
        state = _load_checkpoint(ckpt, cfg)
        model.load_state_dict(state["model"])
        w_opt.load_state_dict(state["w_opt"])
        a_opt.load_state_dict(state["a_opt"])
        gen.set_state(state["generator"])
        alpha_history, history, start_epoch = state["alpha_history"], state["history"], state["epoch"]
        log.info("resumed DSRNA search from %s after epoch %d", ckpt, start_epoch)
    elif resume:
        log.info("no checkpoint in %s: starting a fresh search", out_dir)
    elif ckpt is not None and ckpt.is_file():
        log.warning("%s exists and resume=False: a fresh search will replace it", ckpt)
    if start_epoch >= cfg.epochs:
        log.info("checkpoint already holds %d epochs (asked %d)", start_epoch, cfg.epochs)
    images = data.images
    labels = torch.from_numpy(np.asarray(data.labels, dtype=np.int64)).to(device)
    bs_w = min(cfg.batch_size, n_w)
    bs_v = min(cfg.batch_size, n - n_w)
    steps = max(1, n_w // bs_w)
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        lr = _w_lr(cfg, epoch)
        for g in w_opt.param_groups:
            g["lr"] = lr
        order_w = torch.randperm(n_w, generator=gen)
        order_v = torch.randperm(n - n_w, generator=gen) + n_w
        sums = {"train_loss": 0.0, "train_acc": 0.0, "val_loss": 0.0, "reg": 0.0}
        for s in range(steps):
            it = order_w[s * bs_w : (s + 1) * bs_w]
            vs = (s * bs_v) % (n - n_w)
            iv = order_v.roll(-vs)[:bs_v]
            xt, yt = _to_float(images, it).to(device), labels[it.to(device)]
            xv, yv = _to_float(images, iv).to(device), labels[iv.to(device)]
            # architecture step (validation batch)
            a_opt.zero_grad(set_to_none=True)
            if cfg.second_order:
                lval, reg = _unrolled_arch_grad(model, w_opt, xt, yt, xv, yv, cfg, lr)
            else:
                obj, lval, reg = arch_objective(model, xv, yv, cfg)
                (model.alphas.grad,) = torch.autograd.grad(obj, [model.alphas])
            a_opt.step()
            # weight step (training batch)
            w_opt.zero_grad(set_to_none=True)
            logits = model(xt)
            loss = F.cross_entropy(logits, yt)
            loss.backward()
            model.alphas.grad = None
            torch.nn.utils.clip_grad_norm_(model.weight_parameters(), cfg.grad_clip)
            w_opt.step()
            sums["train_loss"] += float(loss.detach())
            sums["train_acc"] += float((logits.argmax(1) == yt).float().mean())
            sums["val_loss"] += lval
            sums["reg"] += reg
        stats = {k: v / steps for k, v in sums.items()}
        stats |= {"epoch": float(epoch), "w_lr": lr, "seconds": time.perf_counter() - t0, "steps": float(steps)}
        history.append(stats)
        alpha_history.append(model.alphas_softmax().tolist())
        log.info("epoch %d: %s; derived %s", epoch, stats, model.derive(cfg.exclude_none).string)
        if ckpt is not None:
            _save_checkpoint(
                ckpt,
                {
                    "config": cfg.to_json(),
                    "epoch": epoch + 1,
                    "model": model.state_dict(),
                    "w_opt": w_opt.state_dict(),
                    "a_opt": a_opt.state_dict(),
                    "generator": gen.get_state(),
                    "alpha_history": alpha_history,
                    "history": history,
                },
            )
        if on_epoch is not None:
            on_epoch(epoch, stats)
    arch = model.derive(cfg.exclude_none)
    result = DSRNAResult(
        cfg,
        arch,
        alpha_history,
        history,
        float(sum(h["seconds"] for h in history)),
        {"data_indices": None if data.indices is None else [int(i) for i in data.indices]},
    )
    if out_dir is not None:
        write_text_atomic(out_dir / RESULT, json.dumps(result.to_json(), indent=1))
    return result


@dataclass(frozen=True)
class TableScore:
    """Table values of a derived cell on one dataset (accuracies as fractions; column names are the wide names,
    epsilons in 1/255 units) and, per column, its percentile among the isomorphism classes with a value (the
    share of classes it matches or beats, 0..100)."""

    dataset: str
    index: int
    representative: int
    values: dict[str, float]
    percentiles: dict[str, float]
    n_classes: int

    @property
    def clean(self) -> float:
        return self.values.get("clean", float("nan"))


def _table_column(name: str) -> bool:
    """Accuracy columns worth reporting: clean, attacks (``key@eps``), corruptions (``name:severity``), NB201."""
    if "/" in name:
        return False
    return name in ("clean", "nb201_test_accuracy") or "@" in name or ":" in name


def score_on_table(result: DSRNAResult | object, dataset: str, source: object | None = None) -> TableScore:
    """Look the derived cell (a :class:`DSRNAResult` or any architecture) up in the results table via
    :func:`robustbench201.query`: clean, adversarial and corruption accuracies and percentiles among the
    isomorphism classes (6466 in the full table). ``source``: a dataset directory (default: the embedded table)."""
    arch = result.arch if isinstance(result, DSRNAResult) else Arch.parse(result)
    ds = canonical_dataset(dataset)
    from .. import _query as q

    try:
        res = q.query(arch, ds, source=source)
        wide = q.table(ds, "wide", source=source)
    except Rb201Error as exc:
        raise Rb201Error(f"cannot score {arch.string} on the {ds} table: {exc}") from None
    reps = wide[wide.index.to_numpy() == wide["representative"].to_numpy()]
    values: dict[str, float] = {}
    percentiles: dict[str, float] = {}
    for col in wide.columns:
        if col == "representative" or not _table_column(str(col)):
            continue
        v = float(res.value(str(col)))
        if not math.isfinite(v):
            continue
        column = reps[col].to_numpy(dtype=float)
        column = column[np.isfinite(column)]
        values[str(col)] = v
        if column.size:
            percentiles[str(col)] = float(100.0 * np.mean(column <= v))
    return TableScore(ds, arch.index, arch.representative.index, values, percentiles, int(len(reps)))


ALPHA_PNG = "alphas.png"
TABLE_JSON = "table_score.json"


def summarize(
    result: DSRNAResult, out: str | Path | None = None, *, table_source: object | None = None, plot: bool = True
) -> dict[str, Any]:
    """What a finished search reports: the derived cell, per-epoch times, the final softmax alphas, and, on a
    published dataset, its values and percentiles in the results table. With ``out``, the table score is written
    to ``table_score.json`` and (``plot``) the alphas' trajectories to ``alphas.png`` there."""
    from ..data.info import PUBLISHED_DATASETS

    info: dict[str, Any] = {
        "arch": result.arch_string,
        "index": result.index,
        "representative": result.representative,
        "dead": result.arch.is_dead,
        "seconds_per_epoch": [round(h["seconds"], 3) for h in result.history],
        "alphas": result.alpha_history[-1],
    }
    if result.config.dataset in PUBLISHED_DATASETS:
        try:
            score = score_on_table(result, result.config.dataset, source=table_source)
            info["table"] = {"values": score.values, "percentiles": score.percentiles, "n_classes": score.n_classes}
        except Rb201Error as exc:
            info["table_error"] = str(exc)
    if out is not None:
        out_dir = Path(out)
        if "table" in info:
            write_text_atomic(out_dir / TABLE_JSON, json.dumps(info["table"], indent=1))
        if plot:
            from . import plots

            info["plot"] = str(plots.alphas(result.alpha_history, out_dir / ALPHA_PNG))
    return info
