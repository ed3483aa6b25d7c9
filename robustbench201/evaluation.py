"""The single evaluation entry point: ``evaluate(model, data, spec) -> EvalResult``. Pure compute: no file I/O,
no printing.

Measures per (key, epsilon or severity): ``accuracy``; ``confidence_pred`` = mean softmax probability of the
predicted class; ``confidence_true`` = mean softmax probability of the true class (both at the evaluated point:
the clean / corrupted image, or the adversarial point the attack returns: the first fooling point, else the
attack's best point); for clean and corrupted images also ``ece``, the expected calibration error with 15
equal-width bins (:mod:`robustbench201.measures.calibration`); a confusion matrix (K x K int64, rows = true class,
columns = predicted class) and the per-sample correct flags (bool, N) as arrays. With ``spec.per_sample``, also per
sample: ``pred`` (int16), ``prob_pred`` and ``prob_true`` (float16). Epsilons are in 1/255 units everywhere.

A cascade of attacks (``autoattack``) adds ``accuracy_after_<stage>`` per stage (the robust accuracy after that stage
of the cascade; the last equals ``accuracy``) and a per-sample ``stage`` array (int8: 0 = broken before the first
stage, k = broken by stage k, stages + 1 = robust).

Every record carries its ``split``: ``test`` (the test set: clean, attacks, corruptions, certified bounds) or, when
``spec.splits`` holds it, ``valid`` (a split held out of the training set, given as ``valid_data``: clean and
attacks). Surrogates are computed on training images and say ``test`` (they belong to the network, not to a split).

Adversarial rows carry their semantics (PROTOCOL.md section 6): with ``spec.semantics == "per-epsilon"`` every
attack value is that attack alone at that epsilon, and the cumulative numbers derived from the same flags are
stored too; with ``"cumulative"`` only the nested cascade is run and stored. Key ``worst_case`` is the per-sample
AND over all attacks sharing an epsilon.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .attacks import create_attack
from .attacks.cascade import (
    BatchPolicy,
    GridResult,
    derive_cumulative,
    derive_cumulative_stages,
    load_images,
    run_grid,
)
from .attacks.square_fast import apply_square_options, square_options
from .data.base import CorruptionSource, ImageSet
from .errors import Rb201Error
from .measures import SURROGATES
from .measures.bounds import certify
from .measures.calibration import expected_calibration_error, per_sample_outputs
from .models.fast import fast_model
from .spec import EvalSpec
from .vocab import ATTACKS as ATTACK_ENTRIES

__all__ = ["Record", "ArrayKey", "EvalResult", "evaluate"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Record:
    """One scalar result (epsilon in 1/255 units, NaN if none; severity 0 if none)."""

    family: str
    key: str
    measure: str
    value: float
    n: int
    norm: str = ""
    epsilon: float = math.nan
    severity: int = 0
    semantics: str = ""
    split: str = "test"


@dataclass(frozen=True)
class ArrayKey:
    """Identifies one array like a :class:`Record` (measure ``confusion``, ``correct``, ``stage``, ``pred``,
    ``prob_pred`` or ``prob_true``)."""

    family: str
    key: str
    measure: str
    epsilon: float = math.nan
    severity: int = 0
    semantics: str = ""
    split: str = "test"


@dataclass
class EvalResult:
    """Records, arrays and wall-clock timings (seconds per stage) of one evaluation."""

    spec: EvalSpec
    records: list[Record] = field(default_factory=list)
    arrays: dict[ArrayKey, np.ndarray] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    #: ``source`` of the corruption rows: the corruption source's ``row_source`` (generated corruptions name their
    #: generator version there, so rows of two generator versions never merge), else "rb201".
    corruption_row_source: str = "rb201"

    def value(
        self,
        key: str,
        measure: str = "accuracy",
        epsilon: float = math.nan,
        severity: int = 0,
        semantics: str | None = None,
        split: str = "test",
    ) -> float:
        """Look one value up (epsilon in 1/255 units)."""
        for r in self.records:
            if (
                r.key == key
                and r.measure == measure
                and r.severity == severity
                and ((math.isnan(epsilon) and math.isnan(r.epsilon)) or r.epsilon == epsilon)
                and (semantics is None or r.semantics == semantics)
                and r.split == split
            ):
                return r.value
        raise Rb201Error(
            f"no record for key={key!r} measure={measure!r} epsilon={epsilon} severity={severity} split={split!r}"
        )


class _Precision(nn.Module):
    """Runs the model under autocast and returns float32 logits (precision 'amp')."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        super().__init__()
        self.model = model
        self.device_type = device.type
        self.dtype = torch.float16 if device.type == "cuda" else torch.bfloat16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=self.dtype):
            out = self.model(x)
        return out.float()


@contextlib.contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _measures(
    logits: torch.Tensor, labels: torch.Tensor, correct: np.ndarray, k: int, per_sample: bool = False
) -> dict[str, object]:
    probs = torch.softmax(logits.float(), dim=1)
    top = probs.max(1)
    pred = top.indices
    conf = np.zeros((k, k), dtype=np.int64)
    np.add.at(conf, (labels.numpy(), pred.numpy()), 1)
    out: dict[str, object] = {
        "accuracy": float(correct.mean()),
        "confidence_pred": float(top.values.mean()),
        "confidence_true": float(probs.gather(1, labels[:, None]).mean()),
        # calibration of the model's own predictions (its accuracy here is that of argmax = the correct flags)
        "ece": expected_calibration_error(top.values.numpy(), (pred == labels).numpy()),
        "confusion": conf,
        "correct": correct.astype(bool),
    }
    if per_sample:
        out |= per_sample_outputs(probs.numpy(), labels.numpy())
    return out


#: Scalar measures stored per family (``ece`` only for clean and corrupted images).
_SCALARS = {"clean": ("accuracy", "confidence_pred", "confidence_true", "ece")}
_SCALARS["corruption"] = _SCALARS["clean"]
_PER_SAMPLE = ("pred", "prob_pred", "prob_true")


def _add(
    result: EvalResult,
    family: str,
    key: str,
    m: dict[str, object],
    n: int,
    norm: str = "",
    epsilon: float = math.nan,
    severity: int = 0,
    semantics: str = "",
    split: str = "test",
) -> None:
    for measure in _SCALARS.get(family, ("accuracy", "confidence_pred", "confidence_true")):
        result.records.append(
            Record(family, key, measure, float(m[measure]), n, norm, epsilon, severity, semantics, split)  # type: ignore[arg-type]
        )
    for measure in ("confusion", "correct", *_PER_SAMPLE):
        if measure in m:
            result.arrays[ArrayKey(family, key, measure, epsilon, severity, semantics, split)] = m[measure]  # type: ignore


def _forward_all(model: nn.Module, images: np.ndarray, batch: BatchPolicy, device: torch.device) -> torch.Tensor:
    """Logits (CPU, float32) of every image, batched, with the out-of-memory fallback."""
    chunks: dict[int, torch.Tensor] = {}

    def fn(a: int, b: int) -> None:
        with torch.inference_mode():
            chunks[a] = model(load_images(images, np.arange(a, b), device)).float().cpu()

    batch.run(len(images), fn)
    return torch.cat([chunks[a] for a in sorted(chunks)])


def _check_data(data: ImageSet, logits: torch.Tensor, what: str) -> None:
    if not torch.isfinite(logits).all():
        bad = int((~torch.isfinite(logits)).any(1).sum())
        raise Rb201Error(f"the model returns NaN or inf logits for {bad} of {len(logits)} {what} images")
    k = logits.shape[1]
    labels = np.asarray(data.labels)
    if labels.min() < 0 or labels.max() >= k:
        raise Rb201Error(
            f"{what} labels range over {labels.min()}..{labels.max()}; the model has {k} classes (allowed: 0..{k - 1})"
        )


def evaluate(
    model: nn.Module,
    data: ImageSet,
    spec: EvalSpec,
    device: str | torch.device = "cpu",
    corruptions: CorruptionSource | None = None,
    train_data: ImageSet | None = None,
    valid_data: ImageSet | None = None,
) -> EvalResult:
    """Evaluate ``model`` (input in [0, 1], logits out) on ``data`` (the test set) under ``spec``: clean, attacks
    (epsilons in 1/255 units), corruptions (when a source is given), surrogates (when ``train_data`` is given) and
    certified bounds; with ``"valid"`` in ``spec.splits`` also clean and attacks on ``valid_data``, a split held out
    of the training set (required then). Images stay uint8 until each batch reaches ``device``."""
    if not isinstance(spec, EvalSpec):
        raise Rb201Error(f"spec must be an EvalSpec (see robustbench201.spec.preset), got {type(spec).__name__}")
    if len(data) == 0:
        raise Rb201Error(f"{data.name}/{data.split}: the image set is empty")
    if "valid" in spec.splits and valid_data is None:
        raise Rb201Error(
            f"spec {spec.name!r} evaluates the validation split; pass valid_data, images held out of the training set "
            "(robustbench201.data.splits.holdout_split)"
        )
    square_options(spec.extra, spec.precision)  # Square levers in the spec's extra: checked before any work
    device = torch.device(device)
    was_training = model.training
    model.eval()
    result = EvalResult(spec)
    batch = BatchPolicy(spec.batch_size)
    labels = torch.from_numpy(np.asarray(data.labels, dtype=np.int64))
    try:
        with _tf32(spec.precision == "tf32"):
            model = model.to(device)
            # cheap checks on a few images before any expensive work
            probe = _forward_all(model, data.images[: min(8, len(data))], BatchPolicy(8), device)
            _check_data(data, probe, "test")
            if "valid" in spec.splits and valid_data is not None:
                _check_data(valid_data, _forward_all(model, valid_data.images[:8], BatchPolicy(8), device), "valid")
            if corruptions is not None and spec.corruptions:
                avail = set(corruptions.corruptions())
                missing = [c for c in spec.corruptions if c not in avail]
                if missing:
                    raise Rb201Error(f"corruption source {corruptions.name!r} lacks {missing}; it has {sorted(avail)}")
            fwd = fast_model(model) if spec.fast_forward else model
            if spec.precision == "amp":
                fwd = _Precision(fwd, device)
            fwd = fwd.to(device)
            _run_clean_and_attacks(result, fwd, data, labels, spec, batch, device)
            if "valid" in spec.splits and valid_data is not None:
                valid_labels = torch.from_numpy(np.asarray(valid_data.labels, dtype=np.int64))
                _run_clean_and_attacks(result, fwd, valid_data, valid_labels, spec, batch, device, split="valid")
            if corruptions is not None and spec.corruptions:
                _run_corruptions(result, fwd, data, corruptions, spec, batch, device)
            elif spec.corruptions:
                log.info("no corruption source given: the spec's %d corruptions are skipped", len(spec.corruptions))
            if spec.surrogates:
                _run_surrogates(result, model, train_data, spec, device)
            if spec.certified:
                _run_certified(result, model, data, labels, spec, device)
    finally:
        model.train(was_training)
    return result


def _run_clean_and_attacks(
    result: EvalResult,
    fwd: nn.Module,
    data: ImageSet,
    labels: torch.Tensor,
    spec: EvalSpec,
    batch: BatchPolicy,
    device: torch.device,
    split: str = "test",
) -> None:
    where = "" if split == "test" else f"{split}/"  # timings of another split carry its name
    t0 = time.perf_counter()
    clean = _forward_all(fwd, data.images, batch, device)
    _check_data(data, clean, split)
    k = clean.shape[1]
    n = len(data)
    clean_ok = (clean.argmax(1) == labels).numpy()
    _add(result, "clean", "clean", _measures(clean, labels, clean_ok, k, spec.per_sample), n, split=split)
    result.timings[f"{where}clean"] = time.perf_counter() - t0

    grids: list[tuple[str, str, GridResult]] = []
    for a in spec.attacks:
        t0 = time.perf_counter()
        attack = apply_square_options(create_attack(a.name, **a.kwargs()), square_options(spec.extra, spec.precision))
        need = ATTACK_ENTRIES[a.name].min_classes
        if k < need:
            raise Rb201Error(f"{a.name} needs at least {need} classes; the model has {k}")
        stream = spec.seed * 1_000_003 + zlib.crc32(a.name.encode()) + (zlib.crc32(split.encode()) if where else 0)
        gen = torch.Generator(device=device).manual_seed(stream)
        res = run_grid(attack, fwd, data.images, labels, clean, a.epsilons, spec.semantics, gen, batch, device)
        sems = [(spec.semantics, res.correct, res.logits, res.stage)]
        if spec.semantics == "per-epsilon":
            cum, cum_logits = derive_cumulative(res.correct, res.logits)
            cum_stage = derive_cumulative_stages(res.correct, res.stage) if res.stage is not None else None
            sems.append(("cumulative", cum, cum_logits, cum_stage))
        stage_names = [s.name for s in attack.stages()] if attack.n_stages else []  # type: ignore[attr-defined]
        for sem, corr, lg, stage in sems:
            per_sample = spec.per_sample and sem == spec.semantics  # the points the run evaluated
            for e_i, eps in enumerate(res.epsilons):
                m = _measures(lg[e_i], labels, corr[e_i], k, per_sample)
                _add(result, "adversarial", a.name, m, n, a.norm, eps, 0, sem, split)
                if stage is not None:
                    _add_stages(result, a.name, stage_names, stage[e_i], n, a.norm, eps, sem, split)
        grids.append((a.name, a.norm, res))
        result.timings[f"{where}{a.name}"] = time.perf_counter() - t0

    # worst case over attacks per (norm, epsilon): a point is robust only if no attack breaks it
    by_eps: dict[tuple[str, float], list[GridResult]] = {}
    for _, norm, res in grids:
        for eps in res.epsilons:
            by_eps.setdefault((norm, eps), []).append(res)
    sem_list = [spec.semantics] + (["cumulative"] if spec.semantics == "per-epsilon" else [])
    for (norm, eps), results in sorted(by_eps.items()):
        if len(results) < 2:
            continue
        for sem in sem_list:
            flags = np.ones(n, dtype=bool)
            for res in results:
                corr = res.correct if sem == res.semantics else derive_cumulative(res.correct, res.logits)[0]
                flags &= corr[res.epsilons.index(eps)]
            result.records.append(
                Record("adversarial", "worst_case", "accuracy", float(flags.mean()), n, norm, eps, 0, sem, split)
            )
            result.arrays[ArrayKey("adversarial", "worst_case", "correct", eps, 0, sem, split)] = flags


def _add_stages(
    result: EvalResult,
    key: str,
    stage_names: list[str],
    stage: np.ndarray,
    n: int,
    norm: str,
    eps: float,
    semantics: str,
    split: str,
) -> None:
    """Robust accuracy after each stage of a cascade (``accuracy_after_<stage>``) and the per-sample stage array."""
    for k, name in enumerate(stage_names, start=1):
        value = float((stage > k).mean())
        result.records.append(
            Record("adversarial", key, f"accuracy_after_{name}", value, n, norm, eps, 0, semantics, split)
        )
    result.arrays[ArrayKey("adversarial", key, "stage", eps, 0, semantics, split)] = stage.astype(np.int8)


def _run_corruptions(
    result: EvalResult,
    fwd: nn.Module,
    data: ImageSet,
    source: CorruptionSource,
    spec: EvalSpec,
    batch: BatchPolicy,
    device: torch.device,
) -> None:
    t0 = time.perf_counter()
    result.corruption_row_source = str(getattr(source, "row_source", "rb201"))
    for c in spec.corruptions:
        for s in spec.severities:
            cs = source.get(c, s)
            if len(cs) != len(data) or not np.array_equal(cs.labels, data.labels):
                raise Rb201Error(
                    f"corruption {c!r} severity {s}: {len(cs)} images whose labels do not match the "
                    f"{len(data)} test images (a corruption set must be aligned with the test set)"
                )
            lg = _forward_all(fwd, cs.images, batch, device)
            _check_data(cs, lg, f"{c}:{s}")
            lab = torch.from_numpy(np.asarray(cs.labels, dtype=np.int64))
            ok = (lg.argmax(1) == lab).numpy()
            m = _measures(lg, lab, ok, lg.shape[1], spec.per_sample)
            _add(result, "corruption", c, m, len(cs), severity=s)
    result.timings["corruptions"] = time.perf_counter() - t0


def _run_surrogates(
    result: EvalResult, model: nn.Module, train_data: ImageSet | None, spec: EvalSpec, device: torch.device
) -> None:
    if train_data is None:
        log.info("no training data given: surrogates %s are skipped", list(spec.surrogates))
        return
    t0 = time.perf_counter()
    sub = train_data.subset(min(spec.surrogate_n, len(train_data)), seed=spec.seed)
    x = load_images(sub.images, np.arange(len(sub)), device)
    y = torch.from_numpy(np.asarray(sub.labels, dtype=np.int64)).to(device)
    bs = min(spec.batch_size, len(sub))
    for name in spec.surrogates:
        # A CPU generator on every device: the power iteration's start and Hutchinson's probes are then the same
        # vectors on a GPU and a CPU (with the device's generator a 20-step power iteration gave 0.0461 on the CPU
        # and 0.0495 on an H200 for the same weights and images).
        gen = torch.Generator().manual_seed(spec.seed)
        out = SURROGATES[name](model, x, y, batch_size=bs, iters=spec.hessian_iters, generator=gen)
        result.records.append(Record("surrogate", name, "value", float(out["mean"]), len(sub)))
        result.arrays[ArrayKey("surrogate", name, "per_batch")] = np.asarray(out["per_batch"], dtype=np.float64)
    result.timings["surrogates"] = time.perf_counter() - t0


def _run_certified(
    result: EvalResult, model: nn.Module, data: ImageSet, labels: torch.Tensor, spec: EvalSpec, device: torch.device
) -> None:
    t0 = time.perf_counter()
    n = min(spec.certified_n, len(data))
    x = load_images(data.images, np.arange(n), device)
    y = labels[:n].to(device)
    eps = list(spec.certified_epsilons)
    for method in spec.certified:
        out = certify(model, x, y, eps, method)
        lb = out["margin_lb"].detach().float().cpu()
        cert = out["certified"].detach().cpu().numpy().astype(bool)
        for e_i, e in enumerate(eps):
            result.records.append(Record("certified", method, "accuracy", float(cert[e_i].mean()), n, "Linf", e))
            result.records.append(Record("certified", method, "margin_lb", float(lb[e_i].mean()), n, "Linf", e))
            result.arrays[ArrayKey("certified", method, "correct", e)] = cert[e_i]
    result.timings["certified"] = time.perf_counter() - t0
