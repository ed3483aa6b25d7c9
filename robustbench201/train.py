"""Training with a recipe (:mod:`robustbench201.recipe`), resumable, and our checkpoint layout.

Recipe ``nb201`` (the default) is the NAS-Bench-201 protocol (PROTOCOL.md section 3): SGD (lr 0.1, momentum 0.9,
Nesterov, weight decay 5e-4 on all parameters), batch 256, plain cross-entropy, cosine schedule from 0.1 to 0 set
once per epoch over the run's epochs (200 for the full protocol, 12 for the short one, any count for CPU demos),
PyTorch default initialisation, no cutout, no label smoothing. Recipe ``wu2024`` is NAS-RobBench-201's adversarial
training (PROTOCOL.md section 8): OneCycleLR stepped per batch, and each batch replaced by its PGD points, computed
by the project's own PGD (:class:`robustbench201.attacks.pgd.PGD`, last iterate, with its batched on-device path)
with the model in eval mode (BatchNorm uses, and does not update, its running statistics), the loss then taken on
the adversarial batch alone in train mode. A recipe's holdout is taken out of the training set before anything
else (:mod:`robustbench201.data.splits`), so the network never sees its validation images.

Augmentation runs batched on the device instead of per-image PIL transforms: random crop with zero padding 4
(2 for 16 x 16 inputs) and a random horizontal flip (none for MNIST-5k, whose digits are not mirror-symmetric).
Images stay uint8 until they reach the device. Randomness is explicit: the initial weights come from a CPU
``torch.Generator`` seeded with ``seed``; data order and augmentation from a device generator seeded with
``seed + DATA_SEED_OFFSET``. Nothing reseeds torch's global generator.

A training checkpoint (model, optimizer, scheduler, generator states, history, epoch) is written atomically after
every epoch; resuming from it gives bit-identical weights to an uninterrupted run on the same device and
thread count. Finished networks go to ``DIR/{dataset}/{arch_index:05d}-seed{seed}-ep{epochs}.pt`` for the plain NB201
recipe and ``DIR/{dataset}/{arch_index:05d}-seed{seed}-{recipe}-{epochs}ep-{hash8}.pt`` for any other
(:func:`checkpoint_file`), a ``torch.save`` dict of tensors and plain metadata (the recipe included) read with
``weights_only=True``.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .atomic import atomic_path
from .attacks.pgd import PGD
from .data.base import ImageSet
from .data.info import canonical_dataset, dataset_info
from .data.splits import holdout_split
from .errors import CheckpointError, Rb201Error
from .models.counting import param_count
from .models.network import NB201Network, create_model
from .models.train_levers import TrainLevers, TrainStep
from .models.weights import load_state_dict_strict
from .recipe import TrainRecipe, resolve_recipe
from .space import Arch

__all__ = ["SEEDS", "DATA_SEED_OFFSET", "TRAINED_FORMAT", "PARTIAL_FORMAT", "NO_FLIP", "EpochStats",
           "TrainResult", "init_default_", "augment", "crop_padding", "make_optimizer", "accuracy",
           "train_model", "train_epoch", "checkpoint_file", "partial_file", "save_trained",
           "read_trained_meta", "load_trained", "Ensured", "ensure_trained"]  # fmt: skip

log = logging.getLogger(__name__)

_NB201 = TrainRecipe.of("nb201")  # robustbench201.vocab owns the recipes' hyper-parameters
#: The NB201 training seeds.
SEEDS = (777, 888, 999)
DATA_SEED_OFFSET = 1_000_003
TRAINED_FORMAT = "rb201-trained-v1"
PARTIAL_FORMAT = "rb201-train-state-v1"
#: Datasets trained without horizontal flips.
NO_FLIP = frozenset({"mnist5k"})


@dataclass(frozen=True)
class EpochStats:
    """One epoch: mean training loss and accuracy (on augmented batches), optional test accuracy, seconds, lr."""

    epoch: int
    loss: float
    train_acc: float
    lr: float
    seconds: float
    test_acc: float | None = None


@dataclass
class TrainResult:
    """A trained network (in eval mode) with its per-epoch history."""

    model: NB201Network
    arch: Arch
    dataset: str
    seed: int
    epochs: int
    history: list[EpochStats] = field(default_factory=list)
    wall_time_s: float = 0.0  # time spent in this call (excludes epochs restored from a checkpoint)
    resumed_from: int = 0  # epochs already done in the checkpoint this call resumed from
    images_per_s: float = 0.0  # training throughput of this call
    recipe: TrainRecipe = _NB201
    n_train: int = 0  # images trained on (the training set less the recipe's holdout)

    @property
    def final_test_acc(self) -> float | None:
        return self.history[-1].test_acc if self.history else None


# ---- building blocks ---------------------------------------------------------------------------------------------
def init_default_(model: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default initialisation of conv, linear and BN layers, drawn from ``generator`` (no global RNG)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
            if m.bias is not None:
                fan_in, _ = nn.init._calculate_fan_in_and_fan_out(m.weight)
                bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)
        elif isinstance(m, nn.BatchNorm2d):
            m.reset_parameters()


def augment(x: torch.Tensor, pad: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random crop (zero padding ``pad``) and optional horizontal flip of a uint8 N x C x H x W batch, batched.

    Returns float32 in [0, 1]. One gather does both: each sample reads its crop window, column order reversed if
    flipped. Random draws come from ``generator`` (on ``x``'s device)."""
    n, _, h, w = x.shape
    dev = x.device
    if pad > 0:
        x = nn.functional.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=dev)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=dev)
    rows = oy[:, None] + torch.arange(h, device=dev)
    cols = torch.arange(w, device=dev).expand(n, w)
    if flip:
        flipped = torch.rand(n, generator=generator, device=dev) < 0.5
        cols = torch.where(flipped[:, None], cols.flip(1), cols)
    cols = ox[:, None] + cols
    out = x[torch.arange(n, device=dev)[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # N x H x W x C
    return out.permute(0, 3, 1, 2).float().div_(255.0)


def crop_padding(resolution: int) -> int:
    """NB201 crop padding: 4 for 32 x 32 (and 28 x 28 MNIST), 2 for 16 x 16."""
    return 2 if resolution <= 16 else 4


def make_optimizer(
    model: nn.Module, epochs: int, recipe: TrainRecipe | None = None, steps_per_epoch: int = 1
) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.LRScheduler]:
    """The recipe's SGD optimizer and schedule (``nb201`` by default): a cosine to 0 over ``epochs`` stepped once
    per epoch, or PyTorch's OneCycleLR (its learning-rate defaults; momentum kept at the recipe's value, as PROTOCOL.md
    section 8 records SGD momentum 0.9) over ``epochs * steps_per_epoch`` batches, stepped per batch."""
    r = resolve_recipe(recipe, epochs)
    opt = torch.optim.SGD(
        model.parameters(), lr=r.lr, momentum=r.momentum, nesterov=r.nesterov, weight_decay=r.weight_decay
    )
    if r.schedule == "onecycle-batch":
        sched: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=r.lr, total_steps=r.epochs * max(1, steps_per_epoch), cycle_momentum=False
        )
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _CosineFactor(r.epochs))
    return opt, sched


class _CosineFactor:
    """Closed-form cosine factor ``(1 + cos(pi * epoch / epochs)) / 2`` (picklable, no lambda)."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def __call__(self, epoch: int) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * epoch / self.epochs))


@torch.no_grad()
def accuracy(model: nn.Module, data: ImageSet, device: str | torch.device = "cpu", batch_size: int = 512) -> float:
    """Clean top-1 accuracy of ``model`` on ``data`` (the model is put in eval mode and left there)."""
    model.eval()
    correct = 0
    for i in range(0, len(data), batch_size):
        x = torch.from_numpy(data.images[i : i + batch_size]).to(device).float().div_(255.0)
        y = torch.from_numpy(data.labels[i : i + batch_size]).to(device)
        correct += int((model(x).argmax(1) == y).sum())
    return correct / len(data)


# ---- the training loop ---------------------------------------------------------------------------------------------
def _check_args(epochs: int, seed: int, batch_size: int, train_set: ImageSet, num_classes: int) -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise Rb201Error(f"epochs must be an integer >= 1 (200 full protocol, 12 short), got {epochs!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise Rb201Error(f"seed must be a non-negative integer (NB201 uses {SEEDS}), got {seed!r}")
    if batch_size < 1:
        raise Rb201Error(f"batch_size must be >= 1 (NB201: {_NB201.batch_size}), got {batch_size}")
    lo, hi = int(train_set.labels.min()), int(train_set.labels.max())
    if lo < 0 or hi >= num_classes:
        raise Rb201Error(f"{train_set.name} labels span {lo}..{hi}; allowed 0..{num_classes - 1}")


def _run_meta(model: NB201Network, dataset: str, seed: int, recipe: TrainRecipe, n_train: int) -> dict:
    meta = {
        "arch": model.arch.string,
        "dataset": dataset,
        "seed": seed,
        "epochs": recipe.epochs,
        "channels": model.channels,
        "n_cells": model.n_cells,
        "num_classes": model.num_classes,
        "n_train": n_train,
        "batch_size": recipe.batch_size,
    }
    if not recipe.plain:  # the plain NB201 run keeps the metadata of checkpoints written before recipes existed
        meta["recipe"] = recipe.to_dict()
    return meta


@dataclass
class _State:
    """What a training checkpoint saves besides the history: network, optimizer, schedule, data generator."""

    model: NB201Network
    opt: torch.optim.SGD
    sched: torch.optim.lr_scheduler.LRScheduler
    gen: torch.Generator

    @classmethod
    def fresh(
        cls, arch: Arch, dataset: str, size: dict[str, int], seed: int, r: TrainRecipe, device: torch.device, steps: int
    ) -> _State:
        """The state before epoch 1: the network at its seeded initialisation, its optimizer and schedule."""
        net = create_model(arch, dataset, **size)
        init_default_(net, torch.Generator().manual_seed(seed))
        net.to(device)
        opt, sched = make_optimizer(net, r.epochs, r, steps)
        return cls(net, opt, sched, torch.Generator(device=device).manual_seed(seed + DATA_SEED_OFFSET))


def train_model(
    arch: object,
    train_set: ImageSet,
    epochs: int | None = None,
    seed: int = 777,
    device: str | torch.device = "cpu",
    channels: int = 16,
    n_cells: int = 5,
    batch_size: int | None = None,
    checkpoint_path: str | os.PathLike[str] | None = None,
    test_set: ImageSet | None = None,
    on_epoch_end: Callable[[EpochStats], None] | None = None,
    discard_unusable_checkpoint: bool = False,
    recipe: TrainRecipe | str | None = None,
    levers: TrainLevers | None = None,
) -> TrainResult:
    """Train the NB201 network of ``arch`` on ``train_set`` with ``recipe`` (a :class:`TrainRecipe` or a name;
    ``nb201`` by default; ``epochs`` and ``batch_size`` replace the recipe's when given); return it in eval mode.

    The recipe's holdout is removed from ``train_set`` first (:func:`robustbench201.data.splits.holdout_split`).
    With ``checkpoint_path``, the full training state is saved atomically after every epoch and, if the file
    already exists (same arch, dataset, seed, recipe, size and data), training resumes from it; a checkpoint that
    cannot be used (corrupt, or of another run) raises :class:`CheckpointError`, or with
    ``discard_unusable_checkpoint`` is deleted and training starts over (for checkpoint paths the caller owns, like
    the batch runner's training folder). ``test_set`` adds a test accuracy to every epoch's stats.
    ``on_epoch_end`` is called after each epoch's checkpoint. ``levers`` (:class:`TrainLevers`: channels-last,
    bfloat16 autocast, TF32, ``torch.compile``) change how the step runs, not the recipe; active levers are part of
    the checkpoint's run metadata. :func:`ensure_trained` is the whole lifecycle of a trained-network file around
    this.
    """
    a = Arch.parse(arch)
    dataset = canonical_dataset(train_set.name)
    info = dataset_info(dataset)
    r = resolve_recipe(recipe, epochs).replace(batch_size=batch_size)
    _check_args(r.epochs, seed, r.batch_size, train_set, info.num_classes)
    train_set, _ = holdout_split(train_set, r.holdout, r.holdout_fraction, r.holdout_seed)
    device = torch.device(device)
    n = len(train_set)
    size = {"channels": channels, "n_cells": n_cells}
    state = _State.fresh(a, dataset, size, seed, r, device, math.ceil(n / r.batch_size))
    meta = _run_meta(state.model, dataset, seed, r, n)
    lv = levers if levers is not None else TrainLevers()
    if lv.active:
        meta["levers"] = lv.to_dict()
    ckpt = Path(checkpoint_path) if checkpoint_path is not None else None
    start, history = 0, []
    if ckpt is not None and ckpt.exists():
        try:
            start, history = _restore(ckpt, meta, state)
            log.info("resuming %s from %s after epoch %d", a.string, ckpt, start)
        except CheckpointError as exc:
            if not discard_unusable_checkpoint:
                raise
            log.warning("%s; discarding it and training %s from the start", exc, a.string)
            ckpt.unlink(missing_ok=True)
            state = _State.fresh(a, dataset, size, seed, r, device, math.ceil(n / r.batch_size))
    x_all = torch.from_numpy(np.ascontiguousarray(train_set.images)).to(device)  # uint8 until here
    y_all = torch.from_numpy(np.ascontiguousarray(train_set.labels)).to(device)
    augmentation = (crop_padding(info.resolution), dataset not in NO_FLIP)
    # forward, loss, backward, update, with the levers (built after a restore: it holds the state's optimizer)
    step = TrainStep(state.model, state.opt, nn.CrossEntropyLoss(), lv, device)
    t_call = time.perf_counter()
    for epoch in range(start, r.epochs):
        t0 = time.perf_counter()
        loss, train_acc, lr = train_epoch(state, step, x_all, y_all, r, augmentation)
        test_acc = accuracy(state.model, test_set, device) if test_set is not None else None
        stats = EpochStats(epoch + 1, loss, train_acc, lr, time.perf_counter() - t0, test_acc)
        history.append(stats)
        log.info("%s epoch %d/%d: %s", a.string, epoch + 1, r.epochs, stats)
        if ckpt is not None:
            _save_state(ckpt, meta, epoch + 1, state, history)
        if on_epoch_end is not None:
            on_epoch_end(stats)
    wall = time.perf_counter() - t_call
    state.model.eval()
    done = r.epochs - start
    ips = done * n / wall if wall > 0 and done else 0.0
    return TrainResult(state.model, a, dataset, seed, r.epochs, history, wall, start, ips, r, n)


def train_epoch(
    state: _State,
    step: TrainStep,
    x_all: torch.Tensor,
    y_all: torch.Tensor,
    r: TrainRecipe,
    augmentation: tuple[int, bool],
) -> tuple[float, float, float]:
    """One epoch over the images ``x_all`` (uint8, on the device) in a random order from ``state.gen``: per batch
    augment (crop padding, flip), replace by PGD points for adversarial recipes, one SGD ``step`` of the state's
    model and optimizer with the training levers (and one schedule
    step for per-batch schedules). Returns (mean loss, accuracy on the training batches, learning rate at the
    epoch's start)."""
    model, opt, sched, gen = state.model, state.opt, state.sched, state.gen
    n, device = len(x_all), x_all.device
    pgd = _training_attack(r)
    per_batch = r.schedule == "onecycle-batch"
    model.train()
    lr = opt.param_groups[0]["lr"]
    order = torch.randperm(n, generator=gen, device=device)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for i in range(0, n, r.batch_size):
        idx = order[i : i + r.batch_size]
        x = augment(x_all[idx], *augmentation, gen)
        y = y_all[idx]
        if pgd is not None:
            x = _adversarial_batch(model, pgd, x, y, r.adv_eps / 255.0, gen)
        logits, loss = step(x, y)
        if per_batch:
            sched.step()
        loss_sum += loss.detach() * len(idx)
        correct += (logits.detach().argmax(1) == y).sum()
    if not per_batch:
        sched.step()
    return float(loss_sum) / n, int(correct) / n, lr


def _training_attack(recipe: TrainRecipe) -> PGD | None:
    """The recipe's PGD for adversarial training (last iterate, L-inf), or None for standard training."""
    if recipe.adversarial != "pgd":
        return None
    return PGD(
        norm="Linf",
        steps=recipe.adv_steps,
        step_factor=recipe.step_factor,
        random_start=recipe.adv_random_start,
        restarts=1,
        last_iterate=True,
    )


def _adversarial_batch(
    model: nn.Module, pgd: PGD, x: torch.Tensor, y: torch.Tensor, eps: float, generator: torch.Generator
) -> torch.Tensor:
    """The batch's PGD points (radius ``eps`` in [0, 1] units), computed with the model in eval mode (BatchNorm's
    running statistics used, not updated); the model is back in train mode afterwards."""
    model.eval()
    try:
        radii = torch.full((x.shape[0],), eps, dtype=x.dtype, device=x.device)
        return pgd.last_iterate_points(model, x, y, radii, generator).detach()
    finally:
        model.train()


def _save_state(path: Path, meta: dict, epoch: int, s: _State, history: list[EpochStats]) -> None:
    state = {
        "format": PARTIAL_FORMAT,
        "meta": meta,
        "epoch": epoch,
        "model": s.model.state_dict(),
        "optimizer": s.opt.state_dict(),
        "scheduler": s.sched.state_dict(),
        "generator": s.gen.get_state(),
        "history": [asdict(h) for h in history],
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _restore(path: Path, meta: dict, s: _State) -> tuple[int, list[EpochStats]]:
    state = _load_weights_only(path)
    if state.get("format") != PARTIAL_FORMAT:
        raise CheckpointError(f"{path} is not an rb201 training checkpoint (format {state.get('format')!r})")
    if state.get("meta") != meta:
        diff = {k: (state["meta"].get(k), v) for k, v in meta.items() if state["meta"].get(k) != v}
        raise CheckpointError(
            f"{path} belongs to another run; differences (checkpoint, requested): {diff}. "
            "Delete it or choose another checkpoint path"
        )
    load_state_dict_strict(s.model, state["model"], str(path))
    s.opt.load_state_dict(state["optimizer"])
    s.sched.load_state_dict(state["scheduler"])
    s.gen.set_state(state["generator"])
    return int(state["epoch"]), [EpochStats(**h) for h in state["history"]]


def _load_weights_only(path: Path) -> dict[str, Any]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except Exception as exc:  # torch raises a variety of errors for corrupt or foreign files
        raise CheckpointError(f"cannot read {path} as an rb201 checkpoint: {_load_error(exc)}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, expected an rb201 checkpoint dict")
    return obj


def _load_error(exc: BaseException) -> str:
    """torch.load's failure in one line, without its advice to unpickle arbitrary objects (rb201 checkpoints hold
    tensors and plain data only, so a file that needs more is not one of them)."""
    text = str(exc)
    if "weights_only" in text or "Weights only load failed" in text:
        return (
            "it is truncated, corrupt, or holds objects other than tensors and plain data (rb201 checkpoints never "
            "need unpickling of code)"
        )
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


# ---- the on-disk layout of trained networks -------------------------------------------------------------------------
def checkpoint_file(
    directory: str | os.PathLike[str],
    dataset: str,
    arch_index: int,
    seed: int,
    epochs: int | None = None,
    recipe: TrainRecipe | str | None = None,
) -> Path:
    """``DIR/{dataset}/{stem}.pt`` (canonical dataset name), ``stem`` = :meth:`TrainRecipe.file_stem`:
    ``{arch_index:05d}-seed{seed}-ep{epochs}`` for the plain NB201 recipe (``nb201`` by default; ``epochs`` replaces
    the recipe's), with the recipe's name and hash otherwise."""
    a = Arch.from_index(arch_index)
    r = resolve_recipe(recipe, epochs)
    return Path(directory) / canonical_dataset(dataset) / f"{r.file_stem(a.index, seed)}.pt"


def partial_file(final: str | os.PathLike[str]) -> Path:
    """Where the resumable training state of ``final`` lives while it trains."""
    final = Path(final)
    return final.with_name(final.name + ".partial")


def save_trained(
    directory: str | os.PathLike[str],
    model: NB201Network,
    dataset: str,
    seed: int,
    epochs: int,
    history: list[EpochStats] | None = None,
    extra: dict[str, Any] | None = None,
    recipe: TrainRecipe | str | None = None,
) -> Path:
    """Save a trained network atomically at :func:`checkpoint_file` with its metadata (the recipe included);
    return the path."""
    dataset = canonical_dataset(dataset)
    r = resolve_recipe(recipe, epochs)
    path = checkpoint_file(directory, dataset, model.arch.index, seed, recipe=r)
    meta = {
        "arch": model.arch.string,
        "arch_index": model.arch.index,
        "dataset": dataset,
        "seed": int(seed),
        "epochs": int(epochs),
        "channels": model.channels,
        "n_cells": model.n_cells,
        "num_classes": model.num_classes,
        "in_channels": model.in_channels,
        "params": param_count(model.arch, model.num_classes, model.channels, model.n_cells, model.in_channels),
        "recipe": r.to_dict(),
        **(extra or {}),
    }
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    obj = {"format": TRAINED_FORMAT, "meta": meta, "state_dict": state, "history": [asdict(h) for h in history or []]}
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


def read_trained_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata dict of a trained-network file."""
    obj = _load_weights_only(Path(path))
    if obj.get("format") != TRAINED_FORMAT:
        raise CheckpointError(f"{path} is not an rb201 trained-network file (format {obj.get('format')!r})")
    return dict(obj["meta"])


def load_trained(
    directory: str | os.PathLike[str],
    arch: object,
    dataset: str,
    seed: int,
    epochs: int | None = None,
    *,
    channels: int | None = None,
    n_cells: int | None = None,
    device: str | torch.device = "cpu",
    recipe: TrainRecipe | str | None = None,
) -> NB201Network:
    """Load our own trained network from the :func:`checkpoint_file` layout, in eval mode on ``device``.

    Refuses (:class:`CheckpointError`) a file whose architecture, dataset, seed, recipe (``nb201`` by default;
    ``epochs`` replaces its epochs; files written before recipes existed are plain ``nb201``), size (``channels`` /
    ``n_cells`` when given) or parameter count does not match the request."""
    a = Arch.parse(arch)
    dataset = canonical_dataset(dataset)
    r = resolve_recipe(recipe, epochs)
    epochs = r.epochs
    path = checkpoint_file(directory, dataset, a.index, seed, recipe=r)
    if not path.is_file():
        raise CheckpointError(
            f"no trained network for arch {a.index} {dataset} seed {seed}, {r.label}: {path} (recipe {r.describe()})"
        )
    obj = _load_weights_only(path)
    if obj.get("format") != TRAINED_FORMAT or not isinstance(obj.get("meta"), dict):
        raise CheckpointError(f"{path} is not an rb201 trained-network file (format {obj.get('format')!r})")
    meta = obj["meta"]
    want = {"arch": a.string, "dataset": dataset, "seed": int(seed), "epochs": int(epochs)}
    if channels is not None:
        want["channels"] = channels
    if n_cells is not None:
        want["n_cells"] = n_cells
    bad = {k: (meta.get(k), v) for k, v in want.items() if meta.get(k) != v}
    held = meta.get("recipe") or TrainRecipe.of("nb201", epochs=meta.get("epochs")).to_dict()
    if held != r.to_dict():
        bad["recipe"] = (held, r.to_dict())
    if bad:
        raise CheckpointError(f"{path} does not hold the requested network; mismatches (file, requested): {bad}")
    info = dataset_info(dataset)
    model = create_model(
        a,
        dataset,
        num_classes=int(meta.get("num_classes", info.num_classes)),
        channels=int(meta["channels"]),
        n_cells=int(meta["n_cells"]),
    )
    n_params = sum(p.numel() for p in model.parameters())
    if meta.get("params") != n_params:
        raise CheckpointError(f"{path} records {meta.get('params')} parameters but {a.string} has {n_params}")
    load_state_dict_strict(model, obj["state_dict"], str(path))
    return model.to(device).eval()


@dataclass
class Ensured:
    """What :func:`ensure_trained` found or did: the trained-network file, and the training this call ran (None
    when the network was trained before)."""

    path: Path
    result: TrainResult | None = None


def ensure_trained(
    directory: str | os.PathLike[str],
    arch: object,
    dataset: str,
    train_set: ImageSet | None,
    *,
    seed: int = 777,
    recipe: TrainRecipe | str | None = None,
    channels: int = 16,
    n_cells: int = 5,
    device: str | torch.device = "cpu",
    test_set: ImageSet | None = None,
    on_resume: Callable[[Path], None] | None = None,
    on_epoch_end: Callable[[EpochStats], None] | None = None,
    discard_unusable_checkpoint: bool = False,
    levers: TrainLevers | None = None,
) -> Ensured:
    """The lifecycle of one trained network in ``directory`` (the :func:`checkpoint_file` layout), shared by
    ``rb201 train`` and the evaluation jobs that train their weights: a network already trained there is kept (a
    file of another size is refused); otherwise it is trained on ``train_set`` with ``recipe``, resuming from its
    partial checkpoint (``on_resume`` is told its path first; one that cannot be used is refused, or with
    ``discard_unusable_checkpoint`` retrained), saved atomically with its metadata (training images, batch size,
    test accuracy when ``test_set`` is given, the active training ``levers``), and the partial checkpoint deleted."""
    a = Arch.parse(arch)
    ds = canonical_dataset(dataset)
    r = resolve_recipe(recipe)
    final = checkpoint_file(directory, ds, a.index, seed, recipe=r)
    if final.exists():
        meta = read_trained_meta(final)
        if (meta.get("channels"), meta.get("n_cells")) != (channels, n_cells):
            raise CheckpointError(
                f"{final} holds C={meta.get('channels')}, N={meta.get('n_cells')}, not the requested "
                f"C={channels}, N={n_cells}; train into another directory"
            )
        return Ensured(final)
    if train_set is None:
        raise Rb201Error(f"arch {a.index} is not trained in {directory} and no training images were given")
    partial = partial_file(final)
    if partial.exists() and on_resume is not None:
        on_resume(partial)
    res = train_model(
        a,
        train_set,
        seed=seed,
        device=device,
        channels=channels,
        n_cells=n_cells,
        checkpoint_path=partial,
        test_set=test_set,
        on_epoch_end=on_epoch_end,
        discard_unusable_checkpoint=discard_unusable_checkpoint,
        recipe=r,  # its holdout is taken out of train_set first: the validation images are never seen
        levers=levers,
    )
    extra: dict[str, Any] = {"n_train": res.n_train, "batch_size": r.batch_size}
    if levers is not None and levers.active:
        extra["levers"] = levers.to_dict()
    if res.final_test_acc is not None and test_set is not None:
        extra.update(test_acc=res.final_test_acc, n_test=len(test_set))
    save_trained(directory, res.model, ds, seed, r.epochs, res.history, extra, r)
    partial.unlink(missing_ok=True)
    return Ensured(final, res)
